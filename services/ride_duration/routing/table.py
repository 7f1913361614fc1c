"""The routing table of a model service: variants, validation, and the compiled snapshot.

A table names the service's variants: each a Triton model + version and a role.

- ``stable``: exactly one; answers every request no other served variant takes.
- ``canary``: a weighted share of traffic (random per request, or by user id when one is given).
- ``a`` / ``b``: an experiment, sticky by user id: ``blake2b(salt + user id)`` maps a user to a
  point in [0, 1), so a user keeps the same variant as long as the weights do not change.
- ``shadow``: never answers; a copy of ``weight`` of the traffic is sent to it off the request
  path and compared with the answer (:mod:`services.ride_duration.routing.shadow`).

The weights of the served roles (stable, canary, a, b) sum to 1. A variant with a ``segment``
only takes requests whose attribute is in the segment's values; the others fall to stable.
Served variants other than stable take the low end of [0, 1) in table order, stable the rest,
so raising a canary's weight from 5% to 25% keeps the users it already had.

    snapshot = Snapshot.compile(table)
    route = snapshot.choose(user_id, ride)       # -> Route (variant, model, version string)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import InvalidInput
from services.common.fields import JsonRequest
from services.common.pgtext import PgText
from services.ride_duration.routing.metrics import VariantMetrics

Role = Literal["stable", "canary", "shadow", "a", "b"]
SERVED_ROLES: frozenset[str] = frozenset({"stable", "canary", "a", "b"})
WEIGHT_TOLERANCE = 1e-6
_HASH_SCALE = float(2**64)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class Segment(JsonRequest):
    """Requests whose ``attribute`` (a field of the request body) is one of ``values``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_][a-z0-9_]*$")
    values: list[str | int | float] = Field(min_length=1, max_length=1000)


class Variant(JsonRequest):
    """One variant: a Triton model version with a role and a share of traffic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique in the table; a metric label.")
    model: PgText = Field(min_length=1, max_length=128, description="Triton model name.")
    model_version: int | None = Field(
        default=None, ge=1, description="Triton model version; null: Triton's default (newest)."
    )
    role: Role
    weight: float = Field(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Share of traffic (served roles); share mirrored (shadow).",
    )
    segment: Segment | None = None


class RoutingSpec(JsonRequest):
    """What a client writes: ``PUT /v1/admin/routing``."""

    model_config = ConfigDict(extra="forbid")

    expected_version: int = Field(
        ge=0, description="The table version this change is based on (409 when it moved on)."
    )
    variants: list[Variant] = Field(min_length=1, max_length=16)
    salt: PgText = Field(
        default="", max_length=64, description="Experiment salt of the sticky user hash."
    )
    comment: PgText | None = Field(default=None, max_length=500)


class RoutingTable(BaseModel):
    """What a client reads: ``GET /v1/admin/routing`` (version 0: nothing written yet)."""

    service: str
    version: int
    variants: list[Variant]
    salt: str = ""
    comment: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class RoutingHistory(BaseModel):
    tables: list[RoutingTable]


def default_variants(model: str) -> list[Variant]:
    """The table of a service nobody configured: all traffic to Triton's default version."""
    return [Variant(name="stable", model=model, model_version=None, role="stable", weight=1.0)]


def validation_errors(
    variants: list[Variant], *, known: Callable[[str, int | None], bool] | None = None
) -> list[dict[str, str]]:
    """Every rule the variants break, as problem+json ``errors`` entries (empty: valid).

    ``known(model, version)`` says whether Triton serves that model version (None: unchecked).
    """
    errors: list[dict[str, str]] = []

    def error(where: str, message: str) -> None:
        errors.append({"field": where, "in": "body", "message": message, "type": "routing"})

    names = [v.name for v in variants]
    for name in sorted({n for n in names if names.count(n) > 1}):
        error("variants", f"variant name {name!r} is used twice")
    stables = [v for v in variants if v.role == "stable"]
    if len(stables) != 1:
        error("variants", f"exactly one variant must be stable, found {len(stables)}")
    roles = {v.role for v in variants}
    if "canary" in roles and roles & {"a", "b"}:
        error("variants", "a table runs a canary or an A/B experiment, not both")
    if bool("a" in roles) != bool("b" in roles):
        error("variants", "an A/B experiment needs a variant of role 'a' and one of role 'b'")
    served = sum(v.weight for v in variants if v.role in SERVED_ROLES)
    if abs(served - 1.0) > WEIGHT_TOLERANCE:
        error("variants", f"weights of stable/canary/a/b variants sum to {served:g}, not 1")
    for i, variant in enumerate(variants):
        where = f"variants.{i}"
        if variant.role == "stable" and variant.segment is not None:
            error(f"{where}.segment", "the stable variant takes every request: no segment")
        if variant.role == "shadow" and variant.weight <= 0.0:
            error(f"{where}.weight", "a shadow variant mirrors a share of traffic > 0")
        if known is not None and not known(variant.model, variant.model_version):
            version = "default" if variant.model_version is None else variant.model_version
            error(
                f"{where}.model_version",
                f"Triton does not serve model {variant.model!r} version {version}",
            )
    return errors


def validate_variants(
    variants: list[Variant], *, known: Callable[[str, int | None], bool] | None = None
) -> None:
    """Raise :class:`InvalidInput` (422) listing every broken rule."""
    errors = validation_errors(variants, known=known)
    if errors:
        raise InvalidInput(
            f"routing table rejected: {errors[0]['message']}"
            + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""),
            extra={"errors": errors},
        )


def user_point(salt: bytes, key: str) -> float:
    """A user's stable point in [0, 1): blake2b of salt + user id (never flips between calls)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=salt[:64]).digest()
    return int.from_bytes(digest, "big") / _HASH_SCALE


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled variant: what the request path needs, computed once per table version."""

    variant: Variant
    version: str  # Triton's version string ("" = the model's default)
    metrics: VariantMetrics
    segment_values: frozenset[str] | None = None

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def role(self) -> str:
        return self.variant.role

    @property
    def model(self) -> str:
        return self.variant.model

    def matches(self, request: Any) -> bool:
        """Whether the request falls in this variant's segment (True without a segment)."""
        if self.segment_values is None or self.variant.segment is None:
            return True
        value = getattr(request, self.variant.segment.attribute, None)
        return str(value) in self.segment_values

    @classmethod
    def of(cls, variant: Variant, *, service: str) -> Route:
        values = frozenset(str(v) for v in variant.segment.values) if variant.segment else None
        version = "" if variant.model_version is None else str(variant.model_version)
        metrics = VariantMetrics.of(
            service=service, variant=variant.name, role=variant.role, version=version
        )
        return cls(variant=variant, version=version, metrics=metrics, segment_values=values)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable, compiled routing table; :meth:`choose` is the whole per-request cost."""

    table: RoutingTable
    stable: Route
    #: (upper bound in [0, 1), route) of the served non-stable variants, in table order.
    bands: tuple[tuple[float, Route], ...] = ()
    #: (mirrored share, route) of the shadow variants.
    shadows: tuple[tuple[float, Route], ...] = ()
    sticky: bool = False
    salt: bytes = b""
    routes: dict[str, Route] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return self.table.version

    @classmethod
    def compile(cls, table: RoutingTable) -> Snapshot:
        routes = {v.name: Route.of(v, service=table.service) for v in table.variants}
        stable = next(routes[v.name] for v in table.variants if v.role == "stable")
        bands: list[tuple[float, Route]] = []
        upper = 0.0
        for variant in table.variants:
            if variant.role in SERVED_ROLES and variant.role != "stable" and variant.weight > 0:
                upper += variant.weight
                bands.append((upper, routes[variant.name]))
        shadows = tuple((v.weight, routes[v.name]) for v in table.variants if v.role == "shadow")
        return cls(
            table=table,
            stable=stable,
            bands=tuple(bands),
            shadows=shadows,
            sticky=any(v.role in {"a", "b"} for v in table.variants),
            salt=table.salt.encode(),
            routes=routes,
        )

    def choose(self, key: str | None = None, request: Any = None) -> Route:
        """The variant that answers this request; ``key`` is the user id (sticky when given)."""
        if not self.bands:
            return self.stable
        point = user_point(self.salt, key) if key else random.random()
        for upper, route in self.bands:
            if point < upper:
                return (
                    route
                    if route.segment_values is None or route.matches(request)
                    else (self.stable)
                )
        return self.stable

    def mirrors(self) -> list[Route]:
        """The shadow variants a call is copied to (each samples its own share; the caller
        applies their segments)."""
        return [route for share, route in self.shadows if share >= 1.0 or random.random() < share]


def targets(snapshot: Snapshot) -> Iterable[tuple[str, str]]:
    """Every (model, version) the snapshot may call."""
    return {(r.model, r.version) for r in snapshot.routes.values()}
