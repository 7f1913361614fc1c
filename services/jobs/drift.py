"""The classifier's drift scenario, shared by ``modelfleet demo drift`` and the integration test.

A client of a running classifier: it sends products with feedback (the true category), reads
the rolling macro-F1 gauge of the serving version from ``/metrics``, and follows retraining
runs through ``GET /v1/retraining``.

    async with httpx.AsyncClient(base_url=url) as client:
        await send_products(client, generate_catalogue(200, seed=1, drift=True))
        f1 = await rolling_f1(client)

Products come from :func:`models.classifier.data.generate_catalogue` (``drift=True``: the
shifted feed). :func:`alertmanager_notification` builds the body Alertmanager would POST for a
firing ``ModelfleetClassifierF1Low`` (used when no Alertmanager runs, e.g. under ``make up``).
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd

from models.classifier.data import generate_catalogue

F1_ALERT = "ModelfleetClassifierF1Low"
_GAUGE = re.compile(
    r'^modelfleet_classifier_rolling_(macro_f1|window_labels)\{model="([^"]+)",'
    r'version="([^"]+)"\} (\S+)$',
    re.MULTILINE,
)


@dataclass
class Traffic:
    """What :func:`send_products` saw."""

    statuses: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    correct: int = 0

    @property
    def failed(self) -> int:
        return sum(1 for s in self.statuses if s != 200)


def classify_body(row: pd.Series) -> dict[str, Any]:
    """The JSON body of POST /v1/classify for one catalogue row."""
    body: dict[str, Any] = {"title": row["title"], "description": row["description"]}
    if isinstance(row["image_bytes"], bytes):
        body["image"] = base64.b64encode(row["image_bytes"]).decode()
    return body


async def send_products(
    client: httpx.AsyncClient,
    products: pd.DataFrame,
    *,
    feedback: bool = True,
    concurrency: int = 4,
    traffic: Traffic | None = None,
) -> Traffic:
    """Classify every product (``concurrency`` at a time), then label it with its category."""
    seen = traffic if traffic is not None else Traffic()
    rows = [row for _, row in products.iterrows()]
    queue: asyncio.Queue[pd.Series] = asyncio.Queue()
    for row in rows:
        queue.put_nowait(row)

    async def worker() -> None:
        while not queue.empty():
            row = queue.get_nowait()
            response = await client.post("/v1/classify", json=classify_body(row))
            seen.statuses.append(response.status_code)
            if response.status_code != 200:
                continue
            answer = response.json()
            seen.versions.append(answer["model"]["version"])
            seen.correct += answer["category"] == row["category_path"]
            if feedback:
                labelled = await client.post(
                    "/v1/feedback",
                    json={
                        "prediction_id": answer["prediction_id"],
                        "true_category": row["category_path"],
                    },
                )
                seen.statuses.append(labelled.status_code)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


async def gauges(client: httpx.AsyncClient) -> dict[str, dict[str, float]]:
    """{version: {"macro_f1": ..., "window_labels": ...}} from the classifier's /metrics."""
    text = (await client.get("/metrics")).text
    found: dict[str, dict[str, float]] = {}
    for name, _model, version, value in _GAUGE.findall(text):
        found.setdefault(version, {})[name] = float(value)
    return found


async def rolling_f1(client: httpx.AsyncClient, version: str | None = None) -> float | None:
    """The rolling macro-F1 of ``version`` (default: the newest version with a gauge)."""
    found = await gauges(client)
    if not found:
        return None
    key = version if version is not None else max(found, key=lambda v: int(v))
    return found.get(key, {}).get("macro_f1")


def alertmanager_notification(
    *, model: str, version: str, f1: float, receiver: str = "classifier-retraining"
) -> dict[str, Any]:
    """The body Alertmanager POSTs to a webhook for a firing ``ModelfleetClassifierF1Low``."""
    labels = {"alertname": F1_ALERT, "model": model, "version": version, "severity": "warning"}
    return {
        "version": "4",
        "status": "firing",
        "receiver": receiver,
        "groupKey": f'{{}}:{{alertname="{F1_ALERT}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": F1_ALERT},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"classifier {model} v{version} macro-F1 is {f1:.2f}"},
                "startsAt": datetime.now(UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{abs(hash((model, version))):016x}"[:16],
            }
        ],
    }


async def wait_for_run(
    client: httpx.AsyncClient,
    *,
    timeout_s: float,
    done: Callable[[dict[str, Any]], bool],
    interval_s: float = 0.5,
) -> dict[str, Any] | None:
    """Poll GET /v1/retraining until the newest run satisfies ``done`` (None: time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        latest = (await client.get("/v1/retraining", params={"limit": 1})).json()["runs"]
        if latest and done(latest[0]):
            run: dict[str, Any] = latest[0]
            return run
        await asyncio.sleep(interval_s)
    return None


@dataclass(frozen=True)
class DemoResult:
    """The macro-F1 figures of one demo and the run that retrained."""

    f1_before: float | None
    f1_drift: float | None
    f1_after: float | None
    run: dict[str, Any] | None


async def run_demo(
    url: str,
    *,
    say: Callable[[str], None],
    products: int = 300,
    wait_for_alert_s: float = 0.0,
    timeout_s: float = 900.0,
    seed: int = 2026,
) -> DemoResult:
    """``modelfleet demo drift`` against a running classifier at ``url``.

    Catalogue-like traffic, then the shifted feed (both labelled); then the alert: with
    ``wait_for_alert_s`` > 0 it waits that long for Prometheus + Alertmanager to start a run
    (the cluster), otherwise (or when none came) it POSTs Alertmanager's notification itself;
    then it waits for the run and sends new shifted traffic to the new version.
    """
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        serving = await send_products(client, generate_catalogue(products, seed=seed))
        version = serving.versions[-1] if serving.versions else "?"
        f1_before = await rolling_f1(client, version)
        say(f"1. {len(serving.versions)} catalogue-like products on version {version}: "
            f"rolling macro-F1 {f1_before}")  # fmt: skip
        drifted = await send_products(
            client, generate_catalogue(products, seed=seed + 1, drift=True)
        )
        f1_drift = await rolling_f1(client, version)
        say(f"2. {len(drifted.versions)} products of the shifted feed: rolling macro-F1 "
            f"{f1_drift}")  # fmt: skip
        run = None
        if wait_for_alert_s > 0:
            say(f"3. waiting up to {wait_for_alert_s:.0f} s for the alert to start a run")
            run = await wait_for_run(
                client,
                timeout_s=wait_for_alert_s,
                done=lambda r: r["reason"] == "alert" and r["status"] in ("queued", "running"),
            )
        if run is None:
            say("3. POST /v1/alerts with the notification Alertmanager sends for "
                f"{F1_ALERT}")  # fmt: skip
            body = alertmanager_notification(
                model="classifier", version=version, f1=f1_drift or 0.0
            )
            answer = await client.post("/v1/alerts", json=body)
            answer.raise_for_status()
            say(f"   {answer.status_code} {answer.json()['action']}: {answer.json()['url']}")
        finished = await wait_for_run(
            client, timeout_s=timeout_s, done=lambda r: r["status"] not in ("queued", "running")
        )
        if finished is None:
            say(f"4. no run finished within {timeout_s:.0f} s (GET /v1/retraining)")
        else:
            metrics = finished["metrics"] or {}
            say(
                f"4. run {finished['run_id']} {finished['status']}: version "
                f"{finished['serving_version']} -> {finished['new_version']}; candidate "
                f"macro-F1 {metrics.get('macro_f1')}, serving version on the same test set "
                f"{metrics.get('serving_macro_f1_on_same_test')}; error {finished['error']}"
            )
        recovered = await send_products(
            client, generate_catalogue(products, seed=seed + 2, drift=True)
        )
        new = recovered.versions[-1] if recovered.versions else "?"
        f1_after = await rolling_f1(client, new)
        say(f"5. {len(recovered.versions)} new products of the shifted feed on version {new}: "
            f"rolling macro-F1 {f1_after}")  # fmt: skip
        return DemoResult(f1_before, f1_drift, f1_after, finished)
