"""The retraining job loads a new classifier version on every Triton pod of a shared repository
(CLASSIFIER_RETRAIN_TRITON_PODS, a headless Service), and reports the pods that refused."""

from __future__ import annotations

import pytest

from services.common.errors import DependencyFailed
from services.jobs.classifier_retrain import RetrainSettings, load_on_every_pod, triton_pod_urls


async def test_without_pods_only_the_triton_url() -> None:
    settings = RetrainSettings(triton_grpc_url="triton.internal:8001")
    assert await triton_pod_urls(settings) == ["triton.internal:8001"]


async def test_every_address_of_the_headless_service() -> None:
    urls = await triton_pod_urls(RetrainSettings(triton_pods="localhost:8001"))
    assert "127.0.0.1:8001" in urls
    assert all(url.endswith(":8001") for url in urls)


async def test_an_unknown_service_is_a_dependency_failure() -> None:
    with pytest.raises(DependencyFailed, match="no-such-service.invalid:8001"):
        await triton_pod_urls(RetrainSettings(triton_pods="no-such-service.invalid:8001"))


async def test_every_pod_is_asked_and_the_refusals_are_returned() -> None:
    asked: list[str] = []

    async def load(url: str) -> None:
        asked.append(url)
        if url == "10.0.0.2:8001":
            raise DependencyFailed("load failed: bad model")

    pods = ["10.0.0.1:8001", "10.0.0.2:8001", "10.0.0.3:8001"]
    refused = await load_on_every_pod(pods, load)
    assert sorted(asked) == pods
    assert list(refused) == ["10.0.0.2:8001"]
    assert await load_on_every_pod(["10.0.0.1:8001"], load) == {}


async def test_a_bug_is_not_taken_for_a_refusal() -> None:
    async def load(url: str) -> None:
        raise KeyError(url)

    with pytest.raises(KeyError):
        await load_on_every_pod(["10.0.0.1:8001"], load)
