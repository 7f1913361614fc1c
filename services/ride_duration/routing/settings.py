"""Settings of a service that serves model variants through a routing table.

A model service's settings class subclasses :class:`ModelServiceSettings` instead of
``ServiceSettings`` and gets, under its own prefix (``RIDE_DURATION_`` ...), the routing
poll interval and the shadow queue's size, concurrency and agreement tolerances.
"""

from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class ModelServiceSettings(ServiceSettings):
    """``ServiceSettings`` plus routing and shadow settings (see docs/rollouts.md)."""

    routing_table: bool = Field(
        default=True,
        description="Route through the routing table in Postgres; false: all to the default.",
    )
    routing_poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="Routing table poll (the fallback when a LISTEN notification is lost).",
    )
    shadow_queue_size: int = Field(
        default=1000, ge=1, description="Shadow calls waiting at most; more are dropped."
    )
    shadow_concurrency: int = Field(
        default=2, ge=1, le=64, description="Shadow calls running at once."
    )
    shadow_abs_tolerance: float = Field(
        default=1.0, ge=0, description="A shadow row agrees when |delta| <= this ..."
    )
    shadow_rel_tolerance: float = Field(
        default=0.1, ge=0, description="... or when |delta| <= this x |answer|."
    )
