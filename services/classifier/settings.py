"""Settings of the classifier service (env prefix ``CLASSIFIER_``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ClassifierSettings(ServiceSettings):
    """Environment -> settings for classifier; shared names (DATABASE_URL ...) unprefixed."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_")

    service_name: str = "classifier"
    triton_model: str = Field(default="classifier", description="Triton model to serve.")
    max_image_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest accepted image (decoded bytes)."
    )
    max_text_chars: int = Field(default=10_000, ge=100, description="Per text field.")
    default_top_k: int = Field(default=3, ge=1, le=50)
    coalesce_requests: bool = Field(
        default=True,
        description="Concurrent classifications share one Triton call (idle: a call at once).",
    )
    prediction_flush_interval_s: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="Prediction rows are written behind the answer: one COPY per interval.",
    )
    feedback_wait_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Feedback on a prediction made less than this long ago whose row is not "
        "written yet waits for it (re-reads every flush interval) instead of a 404.",
    )
    quality_window: int = Field(
        default=500,
        ge=10,
        le=100_000,
        description="Rolling window: the last N labelled predictions per model version.",
    )
    estimate_quality: bool = Field(
        default=True,
        description="Estimate quality before the labels arrive (CBPE over estimate_window); "
        "off: no estimated gauges (the benchmark's anchor for its cost).",
    )
    estimate_window: int = Field(
        default=500,
        ge=10,
        le=100_000,
        description="Estimated quality (CBPE): the last N predictions, labelled or not, per "
        "model version, in this process.",
    )

    retraining_trigger: Literal["subprocess", "kubernetes"] = Field(
        default="subprocess",
        description="How a retraining run starts: a child process (local stack) or a "
        "Kubernetes Job from the chart's template.",
    )
    retraining_alerts: frozenset[str] = Field(
        default=frozenset({"ModelfleetClassifierF1Low", "ModelfleetClassifierEstimatedF1Low"}),
        description="Alert names (POST /v1/alerts) that start a retraining run: the labelled "
        "and the estimated (CBPE) macro-F1 alerts.",
    )
    retraining_command: tuple[str, ...] = Field(
        default=(sys.executable, "-m", "services.cli", "retrain", "classifier"),
        min_length=1,
        description="subprocess trigger: the command of one run (gets CLASSIFIER_RETRAIN_RUN_ID).",
    )
    retraining_job_template: Path = Field(
        default=Path("/etc/modelfleet/retraining/job.yaml"),
        description="kubernetes trigger: the Job manifest the chart renders into a ConfigMap.",
    )
    retraining_namespace: str = Field(
        default="",
        description="kubernetes trigger: namespace of the Jobs (default: the template's, "
        "else the pod's own).",
    )
    retraining_kube_api_url: str = Field(
        default="",
        description="kubernetes trigger: API server URL; empty: the in-cluster configuration.",
    )
    retraining_start_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Deadline of starting a run: the process start, or one Kubernetes API call.",
    )
    retraining_stale_after_s: float = Field(
        default=4 * 3600.0,
        gt=0,
        description="A run queued or running for longer is marked failed (its job was lost) "
        "when the next one is asked for.",
    )
