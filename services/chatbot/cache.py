"""Answers to frequent questions, cached in NATS JetStream KV (bucket ``CHAT_ANSWERS``).

The key is a hash of the normalised question (case, spaces and end punctuation ignored), the
filters, the generation mode and the corpus generation token
(:mod:`services.domain.documents.corpus`): when documents or products change the token changes, so
no answer cached before the change is served after it; and :data:`ANSWER_LOGIC_VERSION`, so an
answer made by an older release (retrieval, composition) is not served by a newer one during a
rolling update. Entries expire after ``CHATBOT_CACHE_TTL_S`` (the bucket's TTL). The cache never
fails a request: a KV error or a missed deadline counts as ``error`` and the question is answered
without it.

    cache = await AnswerCache.open(js, ttl_s=600, timeout_s=0.5)
    generation = await cache.generation()        # None: cache unusable now
    key = cache_key(question, filters={"source": None}, mode="extractive", generation=generation)
    body = await cache.get(key)                  # dict or None (miss)
    await cache.put(key, body)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from typing import Any

import nats.js.errors
import orjson
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.chatbot import metrics
from services.common.errors import ModelfleetError
from services.common.jetstream import NATS_ERRORS
from services.common.metrics import observe_dependency
from services.domain.documents.corpus import CORPUS_BUCKET, current_generation, key_value

ANSWERS_BUCKET = "CHAT_ANSWERS"
ANSWER_LOGIC_VERSION = 2
"""Bump when the way answers are made changes (2: unfiltered search merged per source)."""

log = logging.getLogger(__name__)

_TRAILING = re.compile(r"[\s?!.]+$")


def normalise(question: str) -> str:
    """The question as cached: lower case, single spaces, no trailing ?!. punctuation."""
    return _TRAILING.sub("", " ".join(question.lower().split()))


def cache_key(question: str, *, filters: dict[str, Any], mode: str, generation: str) -> str:
    """A KV-safe key (hex) for one question under one corpus generation."""
    material = orjson.dumps(
        {
            "q": normalise(question),
            "f": filters,
            "m": mode,
            "g": generation,
            "v": ANSWER_LOGIC_VERSION,
        },  # fmt: skip
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()


class AnswerCache:
    """Get/put answer bodies by key, with a deadline on every KV call; errors are misses."""

    def __init__(self, answers: KeyValue, corpus: KeyValue, *, timeout_s: float) -> None:
        self._answers = answers
        self._corpus = corpus
        self.timeout_s = timeout_s

    @classmethod
    async def open(cls, js: JetStreamContext, *, ttl_s: float, timeout_s: float) -> AnswerCache:
        answers = await key_value(js, ANSWERS_BUCKET, ttl_s=ttl_s)
        corpus = await key_value(js, CORPUS_BUCKET)
        return cls(answers, corpus, timeout_s=timeout_s)

    async def generation(self) -> str | None:
        """The corpus generation now, or None when it cannot be read (cache unusable)."""
        try:
            return await asyncio.wait_for(current_generation(self._corpus), timeout=self.timeout_s)
        except (TimeoutError, ModelfleetError) as exc:
            log.warning("answer cache unavailable: %s", exc)
            metrics.CACHE.labels("error").inc()
            return None

    async def get(self, key: str) -> dict[str, Any] | None:
        """The cached body, or None (miss, or the cache could not answer in time)."""
        try:
            with observe_dependency("nats", "kv_get"):
                entry = await asyncio.wait_for(self._answers.get(key), timeout=self.timeout_s)
        except nats.js.errors.KeyNotFoundError:
            metrics.CACHE.labels("miss").inc()
            return None
        except NATS_ERRORS as exc:
            log.warning("answer cache get failed: %s", exc)
            metrics.CACHE.labels("error").inc()
            return None
        try:
            body: dict[str, Any] = orjson.loads(entry.value or b"")
        except orjson.JSONDecodeError:
            metrics.CACHE.labels("miss").inc()
            return None
        metrics.CACHE.labels("hit").inc()
        return body

    async def put(self, key: str, body: dict[str, Any]) -> None:
        """Store a body; a failure is logged and counted, never raised."""
        try:
            with observe_dependency("nats", "kv_put"):
                await asyncio.wait_for(
                    self._answers.put(key, orjson.dumps(body)), timeout=self.timeout_s
                )
        except NATS_ERRORS as exc:
            log.warning("answer cache put failed: %s", exc)
            metrics.CACHE.labels("error").inc()
