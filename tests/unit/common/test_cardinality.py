"""Bounded metric labels: at most n identities labelled, the frequent ones win, the rest other."""

from __future__ import annotations

from services.common.cardinality import OTHER, TopLabels


def test_first_n_identities_get_labels_then_other() -> None:
    labels = TopLabels(2)
    assert [labels.label(u) for u in ("a", "b", "c")] == ["a", "b", OTHER]
    assert labels.labelled == {"a", "b"}


def test_a_frequent_identity_takes_the_label_of_a_rare_one() -> None:
    evicted: list[str] = []
    labels = TopLabels(2, on_evict=evicted.append)
    for _ in range(5):
        labels.label("a")
    labels.label("b")
    results = [labels.label("c") for _ in range(3)]
    assert results[0] == OTHER  # c seen once: not more frequent than b yet
    assert results[-1] == "c"
    assert evicted == ["b"]
    assert labels.labelled == {"a", "c"}


def test_never_more_than_n_labels_under_many_identities() -> None:
    labels = TopLabels(3, tracked=8)
    seen = {labels.label(f"ip:{i % 50}") for i in range(2_000)}
    assert len(seen - {OTHER}) <= 3 + 50  # labels handed out over time
    assert len(labels.labelled) == 3


def test_empty_identity_is_other() -> None:
    assert TopLabels(1).label("") == OTHER


def test_zero_labels_count_everyone_as_other() -> None:
    labels = TopLabels(0)
    assert {labels.label(u) for u in ("a", "b", "a")} == {OTHER}
