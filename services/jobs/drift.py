"""The classifier's drift scenario, shared by ``modelfleet demo drift`` and the integration test.

A client of a running classifier: it sends products with feedback (the true category), at
once or ``lag`` predictions late as labels arrive in a shop (:class:`LaggedLabels`), reads the
labelled (rolling) and estimated (CBPE) macro-F1 gauges of the serving version from
``/metrics``, watches when each quality alert fires (:func:`watch_alerts`: in Prometheus, or
the rules' conditions on the gauges where no Prometheus runs), and follows retraining runs
through ``GET /v1/retraining``.

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
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd

from models.classifier.data import generate_catalogue

F1_ALERT = "ModelfleetClassifierF1Low"
ESTIMATE_ALERT = "ModelfleetClassifierEstimatedF1Low"
#: Feedback arrives this many predictions after its prediction (issue 16's default lag).
DEFAULT_LABEL_LAG = 500
#: The rules' threshold and minimum windows (monitoring/rules/modelfleet.rules.yaml).
F1_THRESHOLD = 0.8
MIN_WINDOW_LABELS = 50
MIN_ESTIMATE_PREDICTIONS = 200
_GAUGE = re.compile(
    r"^modelfleet_classifier_(rolling_macro_f1|rolling_window_labels|estimated_macro_f1|"
    r'estimate_window_predictions)\{model="([^"]+)",version="([^"]+)"\} (\S+)$',
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

    @property
    def predictions(self) -> int:
        """Products classified (answered 200) so far."""
        return len(self.versions)


class LaggedLabels:
    """Feedback that arrives ``lag`` predictions after its prediction, as labels do in a shop.

    Each answered prediction is queued with its true category; once more than ``lag`` are
    waiting, the oldest is sent to ``POST /v1/feedback``. ``lag=0`` labels each at once;
    :meth:`flush` sends what still waits.
    """

    def __init__(self, client: httpx.AsyncClient, *, lag: int, traffic: Traffic) -> None:
        self.client = client
        self.lag = lag
        self.traffic = traffic
        self._waiting: deque[tuple[str, str]] = deque()

    async def predicted(self, prediction_id: str, true_category: str) -> None:
        self._waiting.append((prediction_id, true_category))
        while len(self._waiting) > self.lag:
            await self._send(*self._waiting.popleft())

    async def flush(self) -> None:
        while self._waiting:
            await self._send(*self._waiting.popleft())

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def _send(self, prediction_id: str, true_category: str) -> None:
        labelled = await self.client.post(
            "/v1/feedback", json={"prediction_id": prediction_id, "true_category": true_category}
        )
        self.traffic.statuses.append(labelled.status_code)


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
    labels: LaggedLabels | None = None,
) -> Traffic:
    """Classify every product (``concurrency`` at a time), then label it with its category:
    at once, or through ``labels`` (late); ``feedback=False`` labels nothing."""
    seen = traffic if traffic is not None else Traffic()
    labeller = labels if labels is not None else LaggedLabels(client, lag=0, traffic=seen)
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
                await labeller.predicted(answer["prediction_id"], row["category_path"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


async def gauges(client: httpx.AsyncClient) -> dict[str, dict[str, float]]:
    """{version: {"rolling_macro_f1", "rolling_window_labels", "estimated_macro_f1",
    "estimate_window_predictions"}} (those present) from the classifier's /metrics."""
    text = (await client.get("/metrics")).text
    found: dict[str, dict[str, float]] = {}
    for name, _model, version, value in _GAUGE.findall(text):
        found.setdefault(version, {})[name] = float(value)
    return found


def _newest(found: dict[str, dict[str, float]], version: str | None) -> dict[str, float]:
    if not found:
        return {}
    return found.get(version if version is not None else max(found, key=int), {})


async def rolling_f1(client: httpx.AsyncClient, version: str | None = None) -> float | None:
    """The rolling (labelled) macro-F1 of ``version`` (default: the newest version with one)."""
    return _newest(await gauges(client), version).get("rolling_macro_f1")


async def estimated_f1(client: httpx.AsyncClient, version: str | None = None) -> float | None:
    """The estimated (CBPE) macro-F1 of ``version`` (default: the newest version with one)."""
    return _newest(await gauges(client), version).get("estimated_macro_f1")


def conditions_on_gauges(found: dict[str, dict[str, float]]) -> set[str]:
    """The quality alerts whose expressions hold on one process's gauges (the rules' thresholds
    and minimum windows, without their ``for``): what :func:`watch_alerts` uses where no
    Prometheus evaluates the rules."""
    holding: set[str] = set()
    for figures in found.values():
        f1, labels = figures.get("rolling_macro_f1"), figures.get("rolling_window_labels", 0)
        if f1 is not None and f1 < F1_THRESHOLD and labels >= MIN_WINDOW_LABELS:
            holding.add(F1_ALERT)
        estimate = figures.get("estimated_macro_f1")
        predictions = figures.get("estimate_window_predictions", 0)
        if (
            estimate is not None
            and estimate < F1_THRESHOLD
            and predictions >= MIN_ESTIMATE_PREDICTIONS
        ):
            holding.add(ESTIMATE_ALERT)
    return holding


async def firing_in_prometheus(prometheus: httpx.AsyncClient) -> set[str]:
    """The names of the alerts firing in the Prometheus ``prometheus`` points at."""
    alerts = (await prometheus.get("/api/v1/alerts")).json()["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


async def watch_alerts(
    probe: Callable[[], Awaitable[set[str]]],
    traffic: Traffic,
    seen: dict[str, int],
    *,
    names: tuple[str, ...] = (ESTIMATE_ALERT, F1_ALERT),
    since: int = 0,
    interval_s: float = 0.25,
) -> None:
    """Fill ``seen`` with {alert: predictions since ``since`` when ``probe`` first named it} for
    every name in ``names``; returns once each has been seen (cancel it to stop before)."""
    while set(names) - seen.keys():
        try:
            now = await probe()
        except httpx.HTTPError:
            now = set()
        for name in set(names) & now - seen.keys():
            seen[name] = traffic.predictions - since
        await asyncio.sleep(interval_s)


def alertmanager_notification(
    *,
    model: str,
    version: str,
    f1: float,
    receiver: str = "classifier-retraining",
    alert: str = F1_ALERT,
) -> dict[str, Any]:
    """The body Alertmanager POSTs to a webhook for a firing quality ``alert``."""
    labels = {"alertname": alert, "model": model, "version": version, "severity": "warning"}
    return {
        "version": "4",
        "status": "firing",
        "receiver": receiver,
        "groupKey": f'{{}}:{{alertname="{alert}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": alert},
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
class Quality:
    """The labelled (rolling) and estimated (CBPE) macro-F1 of one version at one moment."""

    labelled: float | None
    estimated: float | None

    def __str__(self) -> str:
        return "labelled {}, estimated {}".format(
            *("-" if f is None else f"{f:.4f}" for f in (self.labelled, self.estimated))
        )


async def quality(client: httpx.AsyncClient, version: str) -> Quality:
    figures = _newest(await gauges(client), version)
    return Quality(figures.get("rolling_macro_f1"), figures.get("estimated_macro_f1"))


@dataclass(frozen=True)
class DemoResult:
    """The figures of one demo: quality before the drift, during it and after retraining, the
    predictions since the drift began until each alert fired, and the run that retrained."""

    before: Quality
    during: Quality
    after: Quality
    fired: dict[str, int]
    run: dict[str, Any] | None

    @property
    def estimate_first(self) -> bool:
        """The estimated-F1 alert fired, and before the labelled one (or without it)."""
        estimate, labelled = self.fired.get(ESTIMATE_ALERT), self.fired.get(F1_ALERT)
        return estimate is not None and (labelled is None or estimate <= labelled)


async def run_demo(
    url: str,
    *,
    say: Callable[[str], None],
    products: int = 300,
    label_lag: int = DEFAULT_LABEL_LAG,
    prometheus_url: str | None = None,
    wait_for_alert_s: float = 0.0,
    timeout_s: float = 900.0,
    seed: int = 2026,
    rate_per_s: float = 20.0,
) -> DemoResult:
    """``modelfleet demo drift`` against a running classifier at ``url``.

    Catalogue-like traffic whose labels arrive ``label_lag`` predictions late, until the
    labelled window holds ``products`` labels; then the shifted feed at ``rate_per_s`` until
    both quality alerts fired (in the Prometheus at ``prometheus_url``, else the rules'
    conditions on the classifier's gauges), counting the predictions since the drift began;
    then the retraining: with ``wait_for_alert_s`` > 0 it waits that long for Alertmanager to
    start a run, otherwise (or when none came) it POSTs Alertmanager's notification itself;
    then new shifted traffic on the new version, labelled at once.
    """
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        traffic = Traffic()
        labels = LaggedLabels(client, lag=label_lag, traffic=traffic)
        serving = await send_products(
            client,
            generate_catalogue(label_lag + products, seed=seed),
            labels=labels,
            traffic=traffic,
        )
        version = serving.versions[-1] if serving.versions else "?"
        before = await quality(client, version)
        say(f"1. {traffic.predictions} catalogue-like products on version {version}, labels "
            f"{label_lag} predictions late: macro-F1 {before}")  # fmt: skip

        fired: dict[str, int] = {}
        if prometheus_url is not None:
            prom = httpx.AsyncClient(base_url=prometheus_url, timeout=10.0)

            async def probe() -> set[str]:
                return await firing_in_prometheus(prom)

            where = f"firing in Prometheus at {prometheus_url}"
        else:
            prom = None

            async def probe() -> set[str]:
                return conditions_on_gauges(await gauges(client))

            where = "the rules' conditions on the gauges (no Prometheus given)"
        say(f"2. the shifted feed at {rate_per_s:g}/s until both alerts fire ({where})")
        drift_began = traffic.predictions
        watcher = asyncio.create_task(watch_alerts(probe, traffic, fired, since=drift_began))
        feed = generate_catalogue(label_lag + 4 * products, seed=seed + 1, drift=True)
        during = before
        loop = asyncio.get_running_loop()
        try:
            for start in range(0, len(feed), 10):
                began = loop.time()
                await send_products(
                    client, feed.iloc[start : start + 10], labels=labels, traffic=traffic
                )
                if ESTIMATE_ALERT in fired and during is before:
                    during = await quality(client, version)
                if F1_ALERT in fired:
                    break
                await asyncio.sleep(max(0.0, 10 / rate_per_s - (loop.time() - began)))
        finally:
            watcher.cancel()
            if prom is not None:
                await prom.aclose()
        await labels.flush()
        for name in (ESTIMATE_ALERT, F1_ALERT):
            count = fired.get(name)
            say(f"   {name}: " + (f"after {count} predictions since the drift began"
                if count is not None else "did not fire"))  # fmt: skip
        say(f"   at the first alert: macro-F1 {during}")

        run = None
        if wait_for_alert_s > 0:
            say(f"3. waiting up to {wait_for_alert_s:.0f} s for the alert to start a run")
            run = await wait_for_run(
                client,
                timeout_s=wait_for_alert_s,
                done=lambda r: r["reason"] == "alert" and r["status"] in ("queued", "running"),
            )
        if run is None:
            first = ESTIMATE_ALERT if ESTIMATE_ALERT in fired else F1_ALERT
            say(f"3. POST /v1/alerts with the notification Alertmanager sends for {first}")
            body = alertmanager_notification(
                model="classifier", version=version, f1=during.estimated or 0.0, alert=first
            )
            answer = await client.post("/v1/alerts", json=body)
            answer.raise_for_status()
            say(f"   {answer.status_code} {answer.json()['action']}: {answer.json()['url']}")
        else:
            say(f"   run {run['run_id']} started by {run['alert']['labels']['alertname']}")
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
        after = await quality(client, new)
        say(f"5. {len(recovered.versions)} new products of the shifted feed on version {new}, "
            f"labelled at once: macro-F1 {after}")  # fmt: skip
        return DemoResult(before, during, after, fired, finished)
