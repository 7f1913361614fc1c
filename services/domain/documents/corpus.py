"""The chat corpus generation: a token that changes whenever documents or products change.

Whatever changes what the chatbot can retrieve (a PDF upload, ``modelfleet ingest``, a
catalogue refresh) calls :func:`bump_generation` after its commit; the chatbot's answer cache
puts the current token into every cache key, so answers cached before the change are never
served after it (they expire by TTL). The token lives in the JetStream KV bucket
``CHAT_CORPUS`` (key ``generation``, no TTL), so every replica and every job sees the same one.

    js = nc.jetstream()
    await bump_generation(js)       # after ingesting
    token = await current_generation(await key_value(js, CORPUS_BUCKET))
"""

from __future__ import annotations

import uuid

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.common.errors import BrokerUnavailable
from services.common.jetstream import NATS_ERRORS
from services.common.metrics import observe_dependency

CORPUS_BUCKET = "CHAT_CORPUS"
GENERATION_KEY = "generation"
#: The token before anything was ever ingested (or after the bucket was lost).
INITIAL_GENERATION = "0"


async def key_value(js: JetStreamContext, bucket: str, *, ttl_s: float | None = None) -> KeyValue:
    """The KV bucket ``bucket``, created when missing (idempotent across processes)."""
    try:
        with observe_dependency("nats", "kv_bucket"):
            try:
                return await js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                return await js.create_key_value(bucket=bucket, ttl=ttl_s, history=1)
    except NATS_ERRORS as exc:
        raise BrokerUnavailable(f"cannot open JetStream KV bucket {bucket}") from exc


async def current_generation(kv: KeyValue) -> str:
    """The corpus token now (``INITIAL_GENERATION`` when never bumped)."""
    try:
        with observe_dependency("nats", "kv_get"):
            entry = await kv.get(GENERATION_KEY)
    except nats.js.errors.KeyNotFoundError:
        return INITIAL_GENERATION
    except NATS_ERRORS as exc:
        raise BrokerUnavailable("cannot read the corpus generation") from exc
    return (entry.value or b"").decode() or INITIAL_GENERATION


async def bump_generation(js: JetStreamContext) -> str:
    """Give the corpus a new token (call after a committed change); returns the token."""
    kv = await key_value(js, CORPUS_BUCKET)
    token = uuid.uuid4().hex
    try:
        with observe_dependency("nats", "kv_put"):
            await kv.put(GENERATION_KEY, token.encode())
    except NATS_ERRORS as exc:
        raise BrokerUnavailable("cannot bump the corpus generation") from exc
    return token
