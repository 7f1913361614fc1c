"""Bounded label values for metrics keyed by unbounded identities (users, client IPs).

A label per user would grow a series per user forever. :class:`TopLabels` keeps at most ``n``
identities as label values: the ``n`` most frequent seen by this process (estimated with the
space-saving algorithm over ``n * 4`` tracked identities); every other identity counts as
``"other"``. When an identity overtakes the least frequent labelled one, that one loses its
label and ``on_evict`` is called with it so the caller can remove its series
(``Counter.remove``). The sum over all label values is always the total.

    users = TopLabels(50, on_evict=lambda v: REQUESTS_BY_USER.remove(v))
    REQUESTS_BY_USER.labels(users.label(identity)).inc()
"""

from __future__ import annotations

import threading
from collections.abc import Callable

OTHER = "other"


class TopLabels:
    """At most ``n`` label values, the most frequent identities; the rest ``"other"``."""

    def __init__(
        self, n: int, *, tracked: int | None = None, on_evict: Callable[[str], None] | None = None
    ) -> None:
        if n < 0:
            raise ValueError("n must be at least 0 (0: every identity is 'other')")
        self.n = n
        self.tracked = max(tracked or n * 4, n)
        self._on_evict = on_evict
        self._counts: dict[str, int] = {}
        self._labelled: set[str] = set()
        self._lock = threading.Lock()

    @property
    def labelled(self) -> frozenset[str]:
        """The identities that have their own label value now."""
        return frozenset(self._labelled)

    def _count(self, identity: str) -> int:
        counts = self._counts
        if identity in counts:
            counts[identity] += 1
        elif len(counts) < self.tracked:
            counts[identity] = 1
        else:  # space-saving: the new identity inherits the smallest count (an overestimate)
            smallest = min(
                (k for k in counts if k not in self._labelled), key=counts.__getitem__, default=None
            )
            if smallest is None:
                return 0
            counts[identity] = counts.pop(smallest) + 1
        return counts[identity]

    def label(self, identity: str) -> str:
        """Count one event of ``identity``; the label value to record it under."""
        identity = identity or OTHER
        if identity == OTHER or self.n == 0:
            return OTHER
        evicted: str | None = None
        with self._lock:
            count = self._count(identity)
            if identity in self._labelled:
                return identity
            if len(self._labelled) < self.n:
                self._labelled.add(identity)
                return identity
            weakest = min(self._labelled, key=lambda k: self._counts.get(k, 0))
            if count <= self._counts.get(weakest, 0):
                return OTHER
            self._labelled.remove(weakest)
            self._labelled.add(identity)
            evicted = weakest
        if evicted is not None and self._on_evict is not None:
            self._on_evict(evicted)
        return identity
