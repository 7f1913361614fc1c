"""The chart's optional `llm` component: llama.cpp's OpenAI-compatible server (off by default),
and a chatbot wired to it through its settings (docs/kubernetes.md, decision 52)."""

from __future__ import annotations

from typing import Any

from tests.chart.conftest import Obj, by_kind, component, render

LLM_URL = 'http://{{ include "modelfleet.componentName" (dict "root" . "name" "llm") }}:8000/v1'
VALUES: dict[str, Any] = {
    "components": {
        "llm": {"enabled": True, "llm": {"modelFile": "gemma-3-1b-it-q4_k_m.gguf", "threads": 4}},
        "chatbot": {
            "settings": {
                "GENERATION": "openai",
                "OPENAI_BASE_URL": LLM_URL,
                "OPENAI_MODEL": "local-llm",
                "LLM_CONCURRENCY": "1",
            },
            "dependencies": ["triton", "postgresql", "nats", "llm"],
        },
    }
}


def _of(objects: list[Obj], kind: str, name: str) -> list[Obj]:
    return [o for o in by_kind(objects, kind) if component(o) == name]


def test_the_llm_is_off_by_default() -> None:
    assert not [o for o in render({}) if o["metadata"].get("labels", {}).get(
        "app.kubernetes.io/component"
    ) == "llm"]  # fmt: skip


def test_the_llm_serves_a_gguf_file_from_its_claim_and_the_chatbot_calls_it() -> None:
    objects = render(VALUES)
    [deployment] = _of(objects, "Deployment", "llm")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "ghcr.io/ggml-org/llama.cpp:server-b9603"
    args = container["args"]
    assert args[args.index("--model") + 1] == "/models/gemma-3-1b-it-q4_k_m.gguf"
    assert args[args.index("--threads") + 1] == "4"
    assert "--metrics" in args  # scraped by its ServiceMonitor
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    [models] = [v for v in pod["volumes"] if v["name"] == "models"]
    assert models["persistentVolumeClaim"] == {
        "claimName": "modelfleet-llm-model",
        "readOnly": True,
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not _of(objects, "HorizontalPodAutoscaler", "llm")
    assert _of(objects, "ServiceMonitor", "llm")
    [service] = _of(objects, "Service", "llm")
    assert service["metadata"]["name"] == "mf-modelfleet-llm"
    [config] = _of(objects, "ConfigMap", "chatbot")
    assert config["data"]["CHATBOT_OPENAI_BASE_URL"] == "http://mf-modelfleet-llm:8000/v1"
    [policy] = _of(objects, "NetworkPolicy", "llm")
    callers = [
        peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if "podSelector" in peer
    ]
    assert "chatbot" in callers
