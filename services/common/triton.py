"""The one Triton client of modelfleet: async gRPC, a deadline on every call, bounded retry.

One :class:`TritonClient` per process (one gRPC channel). Inference calls go over gRPC too, or,
with ``TRITON_INFER_TRANSPORT=http``, over Triton's HTTP endpoint with binary tensors
(:mod:`services.common.triton_http`, decision 53: a quarter of gRPC's CPU per call); the
deadline, retry, errors and metrics below are the same for both. Every call has a deadline
(tritonclient's default is none at all): its own timeout, cut to what is left of the request's
budget (:mod:`services.common.deadline`), so Triton drops a call whose caller has given up. Only
``UNAVAILABLE`` is retried, with jittered backoff, inside the same overall deadline: it means the
request never reached a model (server down, model reloading).
Errors leave this module as the :mod:`services.common.errors` tree:

    UNAVAILABLE, NOT_FOUND (model not loaded)  -> TritonUnavailable (503)
    DEADLINE_EXCEEDED, our own deadline        -> DependencyTimeout (504)
    anything else                              -> DependencyFailed (502)

    client = TritonClient("127.0.0.1:8101", timeout_s=1.0, retries=2)
    result = await client.infer("ride_duration", {"features": x}, outputs=["duration_minutes"])
    result.outputs["duration_minutes"], result.model_version
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
from prometheus_client import Histogram
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from services.common.deadline import bounded
from services.common.errors import DependencyFailed, DependencyTimeout, TritonUnavailable
from services.common.logging import request_id_var
from services.common.metrics import TRITON_BATCH_ROWS, TRITON_LATENCY, TRITON_RETRIES
from services.common.settings import ServiceSettings
from services.common.triton_http import TritonHttpInfer

_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 0.5

#: gRPC channel options. gRPC's default reconnect backoff grows to 120 s, so after a long
#: Triton outage a service would keep failing for up to two minutes once Triton is back; capped
#: at 1 s, it recovers within a second. Message size limits as tritonclient sets them.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass(frozen=True, slots=True)
class InferOutput:
    """Outputs of one inference call and the model version that computed them."""

    outputs: dict[str, npt.NDArray[Any]]
    model_name: str
    model_version: str


@dataclass(frozen=True, slots=True)
class ModelVersionState:
    """One row of Triton's repository index."""

    name: str
    version: str
    state: str
    reason: str


def _status(exc: InferenceServerException) -> str:
    status = exc.status() or ""
    return status.removeprefix("StatusCode.")


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, InferenceServerException) and _status(exc) == "UNAVAILABLE"


def triton_retrying(model: str, *, retries: int, deadline: float) -> AsyncRetrying:
    """The retry policy of one Triton call: UNAVAILABLE only, ``retries`` more attempts at most.

    The pause before retry n is ``U(0, min(0.5 s, 50 ms * 2**n))``, cut at ``deadline`` (a
    ``time.monotonic()``; the attempt then finds no time left and raises DependencyTimeout);
    each retry counts in ``modelfleet_triton_retries_total``.
    """
    backoff = wait_random_exponential(multiplier=2 * _BACKOFF_BASE_S, max=_BACKOFF_CAP_S)

    def pause(state: RetryCallState) -> float:
        return min(backoff(state), max(0.0, deadline - time.monotonic()))

    def count(_state: RetryCallState) -> None:
        TRITON_RETRIES.labels(model).inc()

    return AsyncRetrying(
        retry=retry_if_exception(_unavailable),
        stop=stop_after_attempt(retries + 1),
        wait=pause,
        before_sleep=count,
        reraise=True,
    )


def translate_error(exc: InferenceServerException, *, model: str) -> Exception:
    """Map a tritonclient error onto the modelfleet error tree."""
    status = _status(exc)
    message = exc.message() or str(exc)
    if status in {"UNAVAILABLE", "NOT_FOUND"}:
        return TritonUnavailable(f"Triton cannot serve model {model!r} now: {message}")
    if status == "DEADLINE_EXCEEDED":
        return DependencyTimeout(f"Triton did not answer for model {model!r} in time")
    return DependencyFailed(f"Triton failed on model {model!r}: {status or message}")


@dataclass(frozen=True, slots=True)
class _ModelMetrics:
    """A model's metric children, looked up once (``labels()`` costs a lock and a dict lookup)."""

    batch_rows: Histogram
    latency_ok: Histogram

    @classmethod
    def of(cls, model: str) -> _ModelMetrics:
        return cls(TRITON_BATCH_ROWS.labels(model), TRITON_LATENCY.labels(model, "ok"))


def _replay(
    first: BaseException, attempt: Callable[[], Awaitable[Any]]
) -> Callable[[], Awaitable[Any]]:
    """``attempt`` whose first call raises ``first`` again: the attempt made before the policy."""
    pending = [first]

    async def replayed() -> Any:
        if pending:
            raise pending.pop()
        return await attempt()

    return replayed


class TritonClient:
    """Async Triton client with deadlines, retry on UNAVAILABLE and metrics.

    ``http_url`` (``http://host:port``): inference calls go to Triton's HTTP endpoint with binary
    tensors instead of gRPC; every other call stays on gRPC (``url``).
    """

    def __init__(self, url: str, *, timeout_s: float, retries: int = 2, http_url: str = "") -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self._client = InferenceServerClient(url=url, channel_args=CHANNEL_OPTIONS)
        self._http = TritonHttpInfer(http_url) if http_url else None
        self._metrics: dict[str, _ModelMetrics] = {}

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TritonClient:
        """The client a service's settings describe (URLs, transport, deadline, retries)."""
        return cls(
            settings.triton_grpc_url,
            timeout_s=settings.triton_timeout_s,
            retries=settings.triton_retries,
            http_url=settings.triton_http_url if settings.triton_infer_transport == "http" else "",
        )

    @property
    def transport(self) -> str:
        """``grpc`` or ``http``: how inference calls travel."""
        return "http" if self._http is not None else "grpc"

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self._client.close()

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        outputs: Sequence[str],
        version: str = "",
        timeout_s: float | None = None,
    ) -> InferOutput:
        """Run one inference call; the whole call, retries included, ends by the deadline."""
        # The call's own timeout, cut to what is left of the request's budget (if any).
        deadline = time.monotonic() + bounded(timeout_s or self.timeout_s)
        metrics = self._metrics.get(model)
        if metrics is None:
            metrics = self._metrics[model] = _ModelMetrics.of(model)
        metrics.batch_rows.observe(next(iter(inputs.values())).shape[0] if inputs else 0)
        request_id = request_id_var.get() or ""
        if self._http is not None:
            return await self._infer_http(
                model,
                inputs,
                outputs=outputs,
                version=version,
                deadline=deadline,
                request_id=request_id,
                metrics=metrics,
            )
        infer_inputs = []
        for name, array in inputs.items():
            item = InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            item.set_data_from_numpy(array)
            infer_inputs.append(item)
        requested = [InferRequestedOutput(name) for name in outputs]

        async def attempt() -> Any:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DependencyTimeout(f"Triton did not answer for model {model!r} in time")
            return await self._client.infer(
                model,
                infer_inputs,
                model_version=version,
                outputs=requested,
                request_id=request_id,
                client_timeout=remaining,
            )

        start = time.perf_counter()
        try:
            try:
                # The first attempt runs without tenacity (its per-call cost is ~0.1 ms, the
                # same order as a small inference); only an UNAVAILABLE one enters the policy.
                result = await attempt()
            except InferenceServerException as exc:
                if not _unavailable(exc) or self.retries == 0:
                    raise translate_error(exc, model=model) from exc
                retrying = triton_retrying(model, retries=self.retries, deadline=deadline)
                try:
                    result = await retrying(_replay(exc, attempt))
                except InferenceServerException as last:
                    raise translate_error(last, model=model) from last
            response = result.get_response()
            output = InferOutput(
                outputs={name: result.as_numpy(name) for name in outputs},
                model_name=response.model_name,
                model_version=response.model_version,
            )
            metrics.latency_ok.observe(time.perf_counter() - start)
            return output
        except BaseException as exc:
            TRITON_LATENCY.labels(model, type(exc).__name__).observe(time.perf_counter() - start)
            raise

    async def _infer_http(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        outputs: Sequence[str],
        version: str,
        deadline: float,
        request_id: str,
        metrics: _ModelMetrics,
    ) -> InferOutput:
        """:meth:`infer` over HTTP: the same deadline, retry policy, errors and metrics."""
        http = self._http
        assert http is not None

        async def attempt() -> InferOutput:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DependencyTimeout(f"Triton did not answer for model {model!r} in time")
            return await http.infer(
                model,
                inputs,
                outputs=outputs,
                version=version,
                request_id=request_id,
                timeout_s=remaining,
            )

        start = time.perf_counter()
        try:
            try:
                output = await attempt()
            except InferenceServerException as exc:
                if not _unavailable(exc) or self.retries == 0:
                    raise translate_error(exc, model=model) from exc
                retrying = triton_retrying(model, retries=self.retries, deadline=deadline)
                try:
                    output = await retrying(_replay(exc, attempt))
                except InferenceServerException as last:
                    raise translate_error(last, model=model) from last
            metrics.latency_ok.observe(time.perf_counter() - start)
            return output
        except BaseException as exc:
            TRITON_LATENCY.labels(model, type(exc).__name__).observe(time.perf_counter() - start)
            raise

    async def model_ready(self, model: str, version: str = "", *, timeout_s: float = 1.0) -> bool:
        """True when Triton says this model (version) is ready; False when it says not, or fails."""
        try:
            return bool(await self._client.is_model_ready(model, version, client_timeout=timeout_s))
        except InferenceServerException:
            return False

    async def repository_index(self, *, timeout_s: float = 2.0) -> list[ModelVersionState]:
        """Every model version Triton knows about, with its state (READY, UNAVAILABLE ...)."""
        try:
            index = await self._client.get_model_repository_index(
                as_json=True, client_timeout=timeout_s
            )
        except InferenceServerException as exc:
            raise translate_error(exc, model="*") from exc
        return [
            ModelVersionState(
                name=str(entry.get("name", "")),
                version=str(entry.get("version", "")),
                state=str(entry.get("state", "")),
                reason=str(entry.get("reason", "")),
            )
            for entry in index.get("models", [])
        ]

    async def load_model(self, model: str, *, timeout_s: float = 120.0) -> None:
        """(Re)load ``model`` through the model-control API (``--model-control-mode=explicit``).

        Triton re-reads the model's config and loads the version(s) its policy selects beside
        the serving one, switches when they are ready, then unloads the old one: requests keep
        being served. Returns when the load is done; a failed load raises (DependencyFailed) and
        the old version keeps serving.
        """
        start = time.perf_counter()
        try:
            await self._client.load_model(model, client_timeout=timeout_s)
        except InferenceServerException as exc:
            TRITON_LATENCY.labels(model, "load_failed").observe(time.perf_counter() - start)
            raise translate_error(exc, model=model) from exc

    async def model_config(self, model: str, *, timeout_s: float = 2.0) -> dict[str, Any]:
        """The model's configuration as Triton serves it (JSON form of ModelConfig)."""
        try:
            response = await self._client.get_model_config(
                model, as_json=True, client_timeout=timeout_s
            )
        except InferenceServerException as exc:
            raise translate_error(exc, model=model) from exc
        config: dict[str, Any] = response.get("config", {})
        return config
