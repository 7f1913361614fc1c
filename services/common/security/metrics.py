"""Security metrics: authentication failures by reason, requests per identity (bounded).

Per-identity series are bounded: the first ``top_n`` identities a process sees get their own
``identity`` label, every later one is counted as ``other`` (so a flood of new API keys or
subjects cannot blow up the metric's cardinality).
"""

from __future__ import annotations

from prometheus_client import Counter

AUTH_FAILURES = Counter(
    "modelfleet_auth_failures_total",
    "Requests refused by authentication or authorisation, by reason.",
    ["reason"],
)

IDENTITY_REQUESTS = Counter(
    "modelfleet_identity_requests_total",
    "Requests per caller identity (first N identities per process, the rest 'other'), "
    "by outcome: admitted, rate_limited, forbidden.",
    ["identity", "outcome"],
)

JWKS_REFRESHES = Counter(
    "modelfleet_auth_jwks_refreshes_total",
    "JWKS fetches from the identity provider, by outcome (ok, error).",
    ["outcome"],
)

OTHER = "other"


class IdentityLabels:
    """Maps identities to a bounded set of metric labels."""

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self._named: set[str] = set()

    def label(self, identity: str) -> str:
        if identity in self._named:
            return identity
        if len(self._named) < self.top_n:
            self._named.add(identity)
            return identity
        return OTHER

    def count(self, identity: str, outcome: str) -> None:
        IDENTITY_REQUESTS.labels(self.label(identity), outcome).inc()
