"""Security metrics: authentication failures by reason, requests per identity (bounded).

Per-identity series are bounded (:class:`services.common.cardinality.TopLabels`): the ``top_n``
most frequent identities a process sees have their own ``identity`` label, every other one is
counted as ``other``, and an identity that drops out of the top loses its series (so a flood
of new API keys, subjects or client IPs cannot blow up the metric's cardinality).
"""

from __future__ import annotations

from prometheus_client import Counter

from services.common.cardinality import TopLabels

AUTH_FAILURES = Counter(
    "modelfleet_auth_failures_total",
    "Requests refused by authentication or authorisation, by reason.",
    ["reason"],
)

IDENTITY_REQUESTS = Counter(
    "modelfleet_identity_requests_total",
    "Requests per caller identity (the N most frequent per process, the rest 'other'), "
    "by outcome: admitted, rate_limited, forbidden.",
    ["identity", "outcome"],
)

JWKS_REFRESHES = Counter(
    "modelfleet_auth_jwks_refreshes_total",
    "JWKS fetches from the identity provider, by outcome (ok, error).",
    ["outcome"],
)


class IdentityLabels:
    """Maps identities to a bounded set of metric labels (the most frequent ones)."""

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self._outcomes: set[str] = set()
        self._labels = TopLabels(top_n, on_evict=self._forget)

    def _forget(self, identity: str) -> None:
        for outcome in list(self._outcomes):
            try:
                IDENTITY_REQUESTS.remove(identity, outcome)
            except KeyError:
                pass

    def label(self, identity: str) -> str:
        return self._labels.label(identity)

    def count(self, identity: str, outcome: str) -> None:
        self._outcomes.add(outcome)
        IDENTITY_REQUESTS.labels(self.label(identity), outcome).inc()
