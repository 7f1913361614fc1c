"""Who is calling: the :class:`Identity` a request was admitted with, and the scopes.

Scopes are three words: ``read`` (predictions, classify, chat, GETs), ``write`` (feedback,
telemetry, rides, document upload) and ``admin`` (routing tables, retraining, API keys, alert
webhooks). ``admin`` passes every check; ``write`` does not imply ``read``.

    identity = current_identity()      # inside a request: who is calling (None outside one)
    identity.label                     # "alice" / "apikey:3f9c0e1a2b4d" / "ip:10.0.0.7"
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")

IdentityKind = Literal["jwt", "api_key", "anonymous"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller: a token's subject, an API key, or an anonymous client (AUTH_MODE=none)."""

    kind: IdentityKind
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        """The name used in logs, metrics, rate limits and the audit log."""
        return self.subject

    def allows(self, scope: str) -> bool:
        """True when this identity holds ``scope`` (or ``admin``)."""
        return scope in self.scopes or "admin" in self.scopes


identity_of_request: ContextVar[Identity | None] = ContextVar("identity_of_request", default=None)


def current_identity() -> Identity | None:
    """The identity of the request being served (None outside a request)."""
    return identity_of_request.get()


def actor_name() -> str:
    """The current identity's label for the audit log ("system" outside a request)."""
    identity = identity_of_request.get()
    return identity.label if identity is not None else "system"
