"""The typed state of the classifier: what its lifespan builds and its handlers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends

from services.classifier.predictor import CategoryPredictor
from services.classifier.settings import ClassifierSettings
from services.classifier.triggers import Trigger
from services.common.buffered_writer import BufferedCopyWriter
from services.common.state import ServiceState, state_dependency
from services.common.triton import TritonClient


@dataclass(kw_only=True)
class ClassifierState(ServiceState):
    settings: ClassifierSettings
    #: Predictions and feedback are stored in Postgres (critical for readiness).
    pool: asyncpg.Pool
    triton: TritonClient
    predictor: CategoryPredictor
    #: Prediction rows, written behind the answers (feedback waits for a recent one).
    predictions: BufferedCopyWriter
    #: Starts retraining runs (a Kubernetes Job, a local process, or nothing).
    retraining_trigger: Trigger


StateDep = Annotated[ClassifierState, Depends(state_dependency(ClassifierState))]
