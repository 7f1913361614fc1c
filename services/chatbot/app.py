"""The chatbot app factory: ``uvicorn --factory services.chatbot.app:create_app``.

Start-up: the Triton client and the embedder, the Postgres pool and the schemas (documents,
then the chatbot's conversations), NATS for the answer cache (optional: when NATS cannot be
reached at start the service answers without a cache and says so in /readyz), the generator the
settings select, and the background ingestion of uploads.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from nats.aio.client import Client as NatsClient

from services.chatbot import api, metrics
from services.chatbot.answer import Answerer
from services.chatbot.cache import AnswerCache
from services.chatbot.generation import create_generator
from services.chatbot.settings import ChatbotSettings
from services.chatbot.sources import chunk_search
from services.chatbot.state import ChatbotState
from services.chatbot.uploads import Ingestion
from services.common.app import create_service_app
from services.common.db import check_database, create_pool
from services.common.errors import BrokerUnavailable, TritonUnavailable
from services.common.health import register_readiness
from services.common.migrations import apply_migrations
from services.common.nats import check_nats, connect
from services.common.triton import TritonClient
from services.domain.documents.corpus import bump_generation
from services.domain.documents.embeddings import Embedder
from services.domain.documents.store import apply_documents_schema

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)


def create_app(settings: ChatbotSettings | None = None) -> FastAPI:
    settings = settings or ChatbotSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[ChatbotState]:
        async with AsyncExitStack() as stack:
            triton = TritonClient.from_settings(settings)
            stack.push_async_callback(triton.close)
            embedder = Embedder.from_settings(settings, triton=triton)

            async def embedding_model_ready() -> None:
                if not await triton.model_ready(settings.embedding_model):
                    raise TritonUnavailable(f"model {settings.embedding_model} is not ready")

            register_readiness(app, "triton", embedding_model_ready)
            pool = await create_pool(settings)
            stack.push_async_callback(pool.close)
            await apply_documents_schema(pool)
            await apply_migrations(pool, service="chatbot", directory=MIGRATIONS)
            register_readiness(app, "postgres", lambda: check_database(pool))

            nc: NatsClient | None = None
            cache: AnswerCache | None = None
            try:
                nc = await connect(settings.nats_url, name=settings.service_name)
                stack.push_async_callback(nc.close)
                if settings.cache_enabled:
                    cache = await AnswerCache.open(
                        nc.jetstream(),
                        ttl_s=settings.cache_ttl_s,
                        timeout_s=settings.cache_timeout_s,
                    )
            except BrokerUnavailable as exc:
                log.warning("answer cache off: %s", exc.detail)
            if nc is not None:
                client = nc
                register_readiness(app, "nats", lambda: check_nats(client), critical=False)

            generator = create_generator(settings, triton)
            if generator is not None:
                stack.push_async_callback(generator.close)
            if settings.generation == "triton":

                async def llm_ready() -> None:
                    if not await triton.model_ready(settings.llm_triton_model):
                        raise TritonUnavailable(f"model {settings.llm_triton_model} is not ready")

                register_readiness(app, "llm", llm_ready)

            async def corpus_changed() -> None:
                if nc is not None:
                    await bump_generation(nc.jetstream())

            ingestion = Ingestion(
                pool, embedder, corpus_changed, timeout_s=settings.ingest_timeout_s
            )
            stack.push_async_callback(ingestion.close)
            metrics.initialise(
                mode=generator.mode if generator else "extractive",
                model=generator.model if generator else None,
            )
            yield ChatbotState(
                settings=settings,
                pool=pool,
                triton=triton,
                ingestion=ingestion,
                user_labels=metrics.user_labels(settings.identity_metrics_top_n),
                answerer=Answerer(
                    settings=settings,
                    pool=pool,
                    embedder=embedder,
                    search=chunk_search(
                        pool, retrieval=settings.retrieval, timeout_s=settings.database_timeout_s
                    ),
                    generator=generator,
                    cache=cache,
                ),
            )

    app = create_service_app(
        settings=settings,
        title="chatbot",
        version="1.0.0",
        description="Questions over the product catalogue and uploaded PDFs: product facts from "
        "SQL, pgvector retrieval, cited answers (extractive, an LLM on Triton, or an "
        "OpenAI-compatible endpoint), PDF uploads, a chat page at /.",
        routers=[api.router, api.page_router],
        lifespan=lifespan,
        public_paths=api.PAGE_PATHS,
    )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        api.document_question_limit(document, settings)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return app
