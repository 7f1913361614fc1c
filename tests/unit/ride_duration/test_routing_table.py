"""Routing table rules, sticky hashing, split proportions and the compiled snapshot."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from services.common.errors import InvalidInput
from services.ride_duration.routing.shadow import compare
from services.ride_duration.routing.table import (
    RoutingTable,
    Snapshot,
    Variant,
    user_point,
    validate_variants,
    validation_errors,
)

MODEL = "ride_duration"


def variant(name: str, role: str, weight: float, version: int | None = 1, **extra: Any) -> Variant:
    return Variant.model_validate(
        {"name": name, "model": MODEL, "model_version": version, "role": role, "weight": weight}
        | extra
    )


def snapshot(*variants: Variant, salt: str = "") -> Snapshot:
    return Snapshot.compile(
        RoutingTable(service="test", version=1, variants=list(variants), salt=salt)
    )


def messages(variants: list[Variant], **kwargs: Any) -> list[str]:
    return [e["message"] for e in validation_errors(variants, **kwargs)]


def test_a_valid_canary_table_passes() -> None:
    assert messages([variant("stable", "stable", 0.8), variant("canary", "canary", 0.2, 2)]) == []


@pytest.mark.parametrize(
    ("variants", "fragment"),
    [
        ([variant("x", "canary", 1.0)], "exactly one variant must be stable, found 0"),
        ([variant("s", "stable", 0.5), variant("t", "stable", 0.5)], "found 2"),
        ([variant("s", "stable", 0.7), variant("c", "canary", 0.2)], "sum to 0.9"),
        ([variant("s", "stable", 0.5), variant("s", "canary", 0.5)], "used twice"),
        ([variant("s", "stable", 0.5), variant("a", "a", 0.5)], "needs a variant of role 'a'"),
        (
            [
                variant("s", "stable", 0.2),
                variant("c", "canary", 0.4),
                variant("a", "a", 0.2),
                variant("b", "b", 0.2),
            ],
            "not both",
        ),  # fmt: skip
        ([variant("s", "stable", 1.0), variant("sh", "shadow", 0.0)], "share of traffic > 0"),
        (
            [variant("s", "stable", 1.0, segment={"attribute": "vendor_id", "values": [1]})],
            "no segment",
        ),
    ],
)
def test_broken_rules_are_named(variants: list[Variant], fragment: str) -> None:
    assert any(fragment in m for m in messages(variants)), messages(variants)


def test_shadow_weight_is_not_part_of_the_served_sum() -> None:
    assert messages([variant("s", "stable", 1.0), variant("sh", "shadow", 1.0, 3)]) == []


def test_unknown_model_versions_are_rejected_with_every_error_listed() -> None:
    served = {(MODEL, 1)}
    variants = [variant("s", "stable", 0.5), variant("c", "canary", 0.4, 9)]
    with pytest.raises(InvalidInput) as caught:
        validate_variants(variants, known=lambda m, v: (m, v) in served)
    errors = caught.value.extra["errors"]
    assert {e["field"] for e in errors} == {"variants", "variants.1.model_version"}
    assert caught.value.status == 422


def test_user_point_is_stable_uniform_and_salted() -> None:
    assert user_point(b"", "rider-1") == user_point(b"", "rider-1")
    assert user_point(b"exp-1", "rider-1") != user_point(b"exp-2", "rider-1")
    points = [user_point(b"s", f"user-{i}") for i in range(20_000)]
    assert all(0.0 <= p < 1.0 for p in points)
    deciles = Counter(int(p * 10) for p in points)
    # each decile holds 2,000 +- 5 sigma (sigma = sqrt(20000 * 0.1 * 0.9) = 42)
    assert all(abs(deciles[d] - 2000) < 5 * 42.5 for d in range(10)), deciles


def test_ab_assignment_is_sticky_per_user() -> None:
    table = snapshot(
        variant("stable", "stable", 0.0), variant("a", "a", 0.5), variant("b", "b", 0.5, 2),
        salt="exp",
    )  # fmt: skip
    first = {f"u{i}": table.choose(f"u{i}").name for i in range(500)}
    for _ in range(3):
        assert {u: table.choose(u).name for u in first} == first
    assert set(first.values()) == {"a", "b"}


@pytest.mark.parametrize("keyed", [True, False])
def test_canary_share_is_within_statistical_tolerance(keyed: bool) -> None:
    table = snapshot(variant("stable", "stable", 0.8), variant("canary", "canary", 0.2, 2))
    n = 20_000
    hits = sum(table.choose(f"u{i}" if keyed else None).name == "canary" for i in range(n))
    sigma = math.sqrt(n * 0.2 * 0.8)
    assert abs(hits - 0.2 * n) < 5 * sigma, hits


def test_growing_a_canary_keeps_its_users() -> None:
    small = snapshot(variant("stable", "stable", 0.95), variant("canary", "canary", 0.05, 2))
    large = snapshot(variant("stable", "stable", 0.75), variant("canary", "canary", 0.25, 2))
    users = [f"u{i}" for i in range(5000)]
    in_small = {u for u in users if small.choose(u).name == "canary"}
    in_large = {u for u in users if large.choose(u).name == "canary"}
    assert in_small and in_small <= in_large


def test_segment_limits_a_variant_to_matching_requests() -> None:
    table = snapshot(
        variant("stable", "stable", 0.0),
        variant("a", "a", 0.5, segment={"attribute": "vendor_id", "values": [2]}),
        variant("b", "b", 0.5, 2),
    )
    outside = SimpleNamespace(vendor_id=1)
    inside = SimpleNamespace(vendor_id=2)
    names_outside = {table.choose(f"u{i}", outside).name for i in range(200)}
    names_inside = {table.choose(f"u{i}", inside).name for i in range(200)}
    assert names_outside == {"stable", "b"}
    assert names_inside == {"a", "b"}


def test_default_table_needs_no_hash_and_routes_to_default_version() -> None:
    table = snapshot(variant("stable", "stable", 1.0, None))
    assert table.bands == ()
    route = table.choose("anyone")
    assert (route.name, route.model, route.version) == ("stable", MODEL, "")


def test_shadows_are_sampled_by_their_share() -> None:
    table = snapshot(
        variant("stable", "stable", 1.0), variant("all", "shadow", 1.0, 2),
        variant("some", "shadow", 0.25, 3),
    )  # fmt: skip
    picks = Counter(r.name for _ in range(8000) for r in table.mirrors())
    assert picks["all"] == 8000
    assert abs(picks["some"] - 2000) < 5 * math.sqrt(8000 * 0.25 * 0.75)


@pytest.mark.parametrize(
    ("answer", "shadow", "agree"),
    [(10.0, 10.5, True), (10.0, 12.0, False), (100.0, 109.0, True), (0.0, 0.5, True)],
)
def test_shadow_agreement_uses_absolute_or_relative_tolerance(
    answer: float, shadow: float, agree: bool
) -> None:
    result = compare(answer, shadow, abs_tolerance=1.0, rel_tolerance=0.1)
    assert result.agree is agree
    assert result.abs_delta == pytest.approx(abs(shadow - answer))
