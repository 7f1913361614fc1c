"""Ride -> features -> Triton -> minutes. The only place the service touches the model.

Features come from :mod:`services.domain.taxi.features`, the module training uses too, so the
service and the model never disagree about them. Concurrent requests are coalesced into one
Triton call (:class:`services.common.batching.Coalescer`) unless disabled in settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from services.common.batching import Coalescer
from services.common.errors import TritonUnavailable
from services.common.triton import TritonClient
from services.domain.taxi import features
from services.domain.taxi.times import new_york_local
from services.ride_duration.routing.table import Route
from services.ride_duration.schemas import Ride

INPUT_NAME = "features"
OUTPUT_NAME = "duration_minutes"
#: No taxi ride is shorter than this; the model's raw output is clipped to it.
MIN_DURATION_MINUTES = 1.0
#: Below this many rides, plain Python per ride beats numpy's fixed cost (measured: 3.5 us vs
#: 50 us for one ride, 93 us vs 130 us for 32, 743 us vs 656 us for 256).
ROW_PATH_MAX_RIDES = 64


def ride_feature_matrix(rides: Sequence[Ride]) -> npt.NDArray[np.float32]:
    """The (n, N_FEATURES) float32 matrix the model takes, for these rides.

    Small batches (the online path) go through the one-row feature code, large ones through the
    vectorized code: both are the shared feature module, equal to the last bit.
    """
    if len(rides) < ROW_PATH_MAX_RIDES:
        return np.array(
            [
                features.ride_feature_row(
                    pickup_datetime=new_york_local(r.pickup_datetime),
                    pickup_location_id=r.pickup_location_id,
                    dropoff_location_id=r.dropoff_location_id,
                    trip_distance=r.trip_distance,
                    passenger_count=r.passenger_count,
                    ratecode_id=r.ratecode_id,
                    payment_type=r.payment_type,
                )
                for r in rides
            ],
            dtype=np.float32,
        ).reshape(len(rides), features.N_FEATURES)
    return features.ride_features(
        pickup_datetime=np.array(
            [new_york_local(r.pickup_datetime) for r in rides], dtype="datetime64[s]"
        ),
        pickup_location_id=np.array([r.pickup_location_id for r in rides]),
        dropoff_location_id=np.array([r.dropoff_location_id for r in rides]),
        trip_distance=np.array([r.trip_distance for r in rides]),
        passenger_count=np.array([r.passenger_count for r in rides]),
        ratecode_id=np.array([r.ratecode_id or features.DEFAULT_RATECODE_ID for r in rides]),
        payment_type=np.array(
            [
                features.DEFAULT_PAYMENT_TYPE if r.payment_type is None else r.payment_type
                for r in rides
            ]
        ),
    )


class DurationPredictor:
    """Predicts ride durations with the Triton model ``model`` (or another model version).

    One coalescer per (model, version) called: rides routed to different variants never share
    a Triton call.
    """

    def __init__(
        self,
        triton: TritonClient,
        *,
        model: str,
        coalesce: bool = True,
        coalesce_max_rows: int = 256,
        coalesce_max_in_flight: int = 2,
    ) -> None:
        self.triton = triton
        self.model = model
        self.coalesce = coalesce
        self.coalesce_max_rows = coalesce_max_rows
        self.coalesce_max_in_flight = coalesce_max_in_flight
        self._coalescers: dict[tuple[str, str], Coalescer[Ride, float, str]] = {}

    async def _predict_now(
        self, rides: Sequence[Ride], *, model: str, version: str
    ) -> tuple[list[float], str]:
        """One Triton call for these rides: minutes per ride and the model version."""
        result = await self.triton.infer(
            model, {INPUT_NAME: ride_feature_matrix(rides)}, outputs=[OUTPUT_NAME], version=version
        )
        raw: list[float] = result.outputs[OUTPUT_NAME].reshape(-1).tolist()
        return [round(max(m, MIN_DURATION_MINUTES), 2) for m in raw], result.model_version

    def _coalescer(self, model: str, version: str) -> Coalescer[Ride, float, str]:
        coalescer = self._coalescers.get((model, version))
        if coalescer is None:

            async def run(rides: Sequence[Ride]) -> tuple[list[float], str]:
                return await self._predict_now(rides, model=model, version=version)

            coalescer = self._coalescers[(model, version)] = Coalescer(
                run, max_items=self.coalesce_max_rows, max_in_flight=self.coalesce_max_in_flight
            )
        return coalescer

    async def predict(
        self, rides: Sequence[Ride], *, model: str | None = None, version: str = ""
    ) -> tuple[list[float], str]:
        """Minutes per ride (same order) and the model version that computed them.

        ``model`` / ``version`` select a variant (default: the service's model, Triton's
        default version). With coalescing on, the rides of concurrent requests to the same
        variant share one feature computation and one Triton call.
        """
        model = model or self.model
        if not self.coalesce:
            return await self._predict_now(rides, model=model, version=version)
        minutes, served = await self._coalescer(model, version).submit(rides)
        return list(minutes), served

    async def predict_with_traffic(
        self, ride: Ride, traffic_speed_mph: float, *, model: str
    ) -> tuple[float, str]:
        """Minutes for one ride from the sensor-aware ``model`` (features and the traffic speed
        at pickup) and the model version that computed them."""
        x = features.with_traffic(ride_feature_matrix((ride,)), [traffic_speed_mph])
        result = await self.triton.infer(model, {INPUT_NAME: x}, outputs=[OUTPUT_NAME])
        minutes = float(result.outputs[OUTPUT_NAME].reshape(-1)[0])
        return round(max(minutes, MIN_DURATION_MINUTES), 2), result.model_version

    async def predict_variant(self, route: Route, rides: Sequence[Ride]) -> tuple[list[float], str]:
        """:meth:`predict` for a variant of the routing table (a ``VariantCall``)."""
        return await self.predict(rides, model=route.model, version=route.version)

    async def ready(self) -> None:
        """Readiness: the model itself is loaded (server-wide readiness flaps during reloads)."""
        if not await self.triton.model_ready(self.model):
            raise TritonUnavailable(f"model {self.model!r} is not ready in Triton")
