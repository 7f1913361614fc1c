"""Security logic without servers: token buckets, API key shape and hash, scopes from claims,
identities, and secrets kept out of settings' URLs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.security.apikeys import PREFIX, hash_key, key_id_of
from services.common.security.identity import Identity
from services.common.security.jwt import scopes_of
from services.common.security.ratelimit import TokenBuckets
from services.common.settings import ServiceSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refuses_with_the_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token every 0.5 s
    assert buckets.take("b") == 0.0  # per key
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    clock.now += 100  # refills to the burst, never above
    assert [buckets.take("a") for _ in range(4)][-1] > 0


def test_buckets_are_bounded() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        buckets.take(key)
    assert buckets.take("a") == 0.0  # "a" was dropped (least recently used): a fresh bucket
    assert buckets.take("c") > 0


def test_key_shape_and_hash() -> None:
    key = f"{PREFIX}0123456789ab_secretpart"
    assert key_id_of(key) == "0123456789ab"
    for bad in ("mfk_short_x", "abc", "mfk_0123456789ab_", "mfk_0123456789ab"):
        assert key_id_of(bad) is None
    assert hash_key(key, "") != hash_key(key, "pepper")  # the pepper changes every hash
    assert hash_key(key, "pepper") == hash_key(key, "pepper")
    assert key not in hash_key(key, "")


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"scope": "openid modelfleet:read modelfleet:write"}, {"read", "write"}),
        ({"scp": ["modelfleet:admin", "other"]}, {"admin"}),
        ({"scope": "modelfleet:root read"}, set()),
        ({}, set()),
    ],
)
def test_scopes_from_claims(claims: dict[str, object], expected: set[str]) -> None:
    assert scopes_of(claims, "modelfleet:") == expected


def test_admin_passes_every_scope_write_does_not_imply_read() -> None:
    admin = Identity(kind="jwt", subject="a", scopes=frozenset({"admin"}))
    writer = Identity(kind="jwt", subject="w", scopes=frozenset({"write"}))
    assert all(admin.allows(s) for s in ("read", "write", "admin"))
    assert writer.allows("write") and not writer.allows("read")


def test_database_password_is_taken_out_of_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:s3cr%40t@db.internal:5432/modelfleet")
    settings = ServiceSettings()
    assert settings.database_url == "postgresql://svc@db.internal:5432/modelfleet"
    assert settings.database_password is not None
    assert settings.database_password.get_secret_value() == "s3cr@t"
    assert "s3cr" not in repr(settings) and "s3cr" not in settings.model_dump_json()


def test_jwt_mode_needs_its_settings_and_https() -> None:
    with pytest.raises(ValidationError, match="AUTH_JWKS_URL"):
        ServiceSettings(auth_mode="jwt")
    with pytest.raises(ValidationError, match="https"):
        ServiceSettings(
            auth_mode="jwt", auth_jwks_url="http://idp/jwks", auth_issuer="i", auth_audience="a"
        )
    ok = ServiceSettings(
        auth_mode="jwt", auth_jwks_url="https://idp/jwks", auth_issuer="i", auth_audience="a"
    )
    assert ok.auth_mode == "jwt"
    assert "s3cr3t-pepper" not in repr(ServiceSettings(auth_api_key_pepper="s3cr3t-pepper"))
