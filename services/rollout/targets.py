"""What a rollout step changes. A target takes a weight (0..1 of the traffic to the candidate),
promotes the candidate, or puts back what it recorded before the rollout (the baseline).

:class:`RoutingTableTarget` drives a model service's routing table through its admin API
(``GET/PUT /v1/admin/routing``, docs/rollouts.md): during the rollout the table is the
baseline's stable variant plus the candidate; promotion makes the candidate the only, stable,
variant; rollback writes the baseline table back as it was. The Kubernetes target is in
:mod:`services.rollout.kube`.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from services.rollout.settings import RolloutSettings
from services.rollout.spec import RoutingTarget

ACTOR_HEADER = "x-modelfleet-actor"
WRITE_ATTEMPTS = 3


class TargetError(RuntimeError):
    """The target refused a change or could not be reached."""


class Target(Protocol):
    """One rollout's handle on what it changes."""

    def describe(self) -> str: ...

    def baseline(self) -> dict[str, Any]:
        """What the target looks like now (recorded at start, written back by rollback)."""
        ...

    def set_weight(self, weight: float, baseline: dict[str, Any]) -> str:
        """Send ``weight`` of the traffic to the candidate; returns what was done."""
        ...

    def promote(self, baseline: dict[str, Any]) -> str: ...

    def rollback(self, baseline: dict[str, Any]) -> str: ...

    def close(self) -> None:
        """Release connections."""
        ...


class RoutingTableTarget:
    """A candidate model version in a model service's routing table."""

    def __init__(
        self,
        spec: RoutingTarget,
        settings: RolloutSettings,
        *,
        rollout: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.spec = spec
        headers = {ACTOR_HEADER: f"{settings.actor}:{rollout}"}
        if settings.admin_token is not None:
            headers["authorization"] = f"Bearer {settings.admin_token.get_secret_value()}"
        self._client = httpx.Client(
            base_url=spec.url, timeout=settings.http_timeout_s, headers=headers, transport=transport
        )
        self._rollout = rollout

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        c = self.spec.candidate
        version = "default" if c.model_version is None else c.model_version
        return f"{self.spec.url} routing table: {c.role} {c.name} = {c.model} v{version}"

    def _read(self) -> dict[str, Any]:
        try:
            response = self._client.get("/v1/admin/routing")
        except httpx.HTTPError as exc:
            raise TargetError(f"admin API unreachable: {exc}") from exc
        if response.status_code != 200:
            raise TargetError(f"GET /v1/admin/routing: HTTP {response.status_code} {response.text}")
        table: dict[str, Any] = response.json()
        return table

    def _write(self, variants: list[dict[str, Any]], *, salt: str, comment: str) -> int:
        """PUT a new table on top of the version in force (re-read on 409); its version."""
        for _ in range(WRITE_ATTEMPTS):
            current = self._read()
            body = {
                "expected_version": current["version"],
                "variants": variants,
                "salt": salt,
                "comment": comment[:500],
            }
            try:
                response = self._client.put("/v1/admin/routing", json=body)
            except httpx.HTTPError as exc:
                raise TargetError(f"admin API unreachable: {exc}") from exc
            if response.status_code == 200:
                return int(response.json()["version"])
            if response.status_code != 409:
                status = response.status_code
                raise TargetError(f"PUT /v1/admin/routing: HTTP {status} {response.text}")
        raise TargetError(f"the routing table kept moving ({WRITE_ATTEMPTS} conflicts)")

    def baseline(self) -> dict[str, Any]:
        table = self._read()
        names = {v["name"] for v in table["variants"]}
        if self.spec.candidate.name in names:
            raise TargetError(f"the table already has a variant {self.spec.candidate.name!r}")
        return {"variants": table["variants"], "salt": table.get("salt", ""),
                "version": table["version"]}  # fmt: skip

    def _stable(self, baseline: dict[str, Any]) -> dict[str, Any]:
        (stable,) = [v for v in baseline["variants"] if v["role"] == "stable"]
        return dict(stable)

    def set_weight(self, weight: float, baseline: dict[str, Any]) -> str:
        stable = self._stable(baseline)
        candidate = self.spec.candidate.model_dump()
        candidate["weight"] = weight
        served = candidate["role"] == "canary"
        stable["weight"] = round(1.0 - weight, 9) if served else 1.0
        version = self._write(
            [stable, candidate], salt=baseline["salt"], comment=f"{self._rollout}: {weight:.0%}"
        )
        return f"routing table v{version}: {candidate['name']} {weight:.0%} ({candidate['role']})"

    def promote(self, baseline: dict[str, Any]) -> str:
        c = self.spec.candidate
        stable = {"name": "stable", "model": c.model, "model_version": c.model_version,
                  "role": "stable", "weight": 1.0}  # fmt: skip
        version = self._write([stable], salt="", comment=f"{self._rollout}: promoted")
        return f"routing table v{version}: {c.model} v{c.model_version or 'default'} is stable"

    def rollback(self, baseline: dict[str, Any]) -> str:
        version = self._write(
            baseline["variants"], salt=baseline["salt"], comment=f"{self._rollout}: rolled back"
        )
        return f"routing table v{version}: baseline (v{baseline['version']}) restored"
