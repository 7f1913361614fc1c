"""The typed state of ride-duration: what its lifespan builds and its handlers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.common.buffered_writer import BufferedCopyWriter
from services.common.state import ServiceState, state_dependency
from services.common.triton import TritonClient
from services.ride_duration.outcomes import OutcomeTracker
from services.ride_duration.predictor import DurationPredictor
from services.ride_duration.routing.live import LiveRouting
from services.ride_duration.settings import RideDurationSettings


@dataclass(kw_only=True)
class RideDurationState(ServiceState):
    settings: RideDurationSettings
    triton: TritonClient
    predictor: DurationPredictor
    routing: LiveRouting
    #: The prediction log (None: RIDE_DURATION_PREDICTION_LOG=false).
    prediction_log: BufferedCopyWriter | None = None
    #: Outcomes matched to logged predictions (None without the prediction log).
    outcomes: OutcomeTracker | None = None


StateDep = Annotated[RideDurationState, Depends(state_dependency(RideDurationState))]
