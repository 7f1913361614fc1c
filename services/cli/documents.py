"""``modelfleet ingest`` and ``modelfleet eval chatbot``: the chatbot's documents (catalogue
products and PDFs into pgvector) and the retrieval figures over them (services/jobs)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from services.cli.output import EXIT_FAIL, EXIT_OK, Output
from services.cli.servers import job_server_urls
from services.stack import StackSettings


def _ingest_settings(settings: StackSettings, args: argparse.Namespace) -> Any:
    """IngestSettings from the environment (INGEST_*), the stack's URLs and the flags."""
    from services.jobs import ingest as module

    overrides: dict[str, Any] = {"log_json": False, **job_server_urls(settings, nats=True)}
    for flag, field in (("catalogue", "catalogue_path"), ("rows", "catalogue_rows")):
        if getattr(args, flag, None) is not None:
            overrides[field] = str(getattr(args, flag)) if flag == "catalogue" else args.rows
    if getattr(args, "no_products", False):
        overrides["products"] = False
    return module.IngestSettings(**overrides)


def cmd_ingest(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet ingest [--no-products] [--catalogue FILE] [--rows N] [PDF|DIR ...]`."""
    from services.jobs import ingest as module

    try:
        report = asyncio.run(
            module.run_ingest(
                settings=_ingest_settings(settings, args), pdf_paths=args.paths, say=out.line
            )
        )
    except FileNotFoundError as exc:
        out.error(str(exc))
        return EXIT_FAIL
    for name, error in report.failures:
        out.error(f"{name}: {error}")
    return EXIT_FAIL if report.failures else EXIT_OK


def cmd_eval(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet eval chatbot`: generated questions (today's set and the hard set) ->
    retrieval figures per retriever (+ the answers of /v1/chat)."""
    from services.jobs import chatbot_eval as module

    url = args.chatbot_url
    if url is None and not args.no_chat:
        url = f"http://{settings.host}:{settings.chatbot_port}"
    report = asyncio.run(
        module.run_eval(
            settings=_ingest_settings(settings, args),
            product_questions=args.questions,
            hard_per_kind=args.hard_per_kind,
            chatbot_url=url,
            chat_sets=args.chat_sets or module.SETS,
            chat_concurrency=args.chat_concurrency,
            chat_timeout_s=args.chat_timeout,
            say=out.line,
        )
    )
    out.line(f"today's set, {module.DEFAULT_RETRIEVAL} retrieval:")
    out.table(
        ["QUESTIONS", "N", "RECALL@1", "RECALL@5", "MRR"],
        [
            [name, str(s.questions), f"{s.recall_at_1:.3f}", f"{s.recall_at_5:.3f}", f"{s.mrr:.3f}"]
            for name, s in (("all", report.overall), *report.by_kind.items())
        ],
    )
    out.line("per retriever (hard-dev: tune on it; hard-test: report it):")
    out.table(
        ["RETRIEVER", "SET", "N", "RECALL@1", "RECALL@5", "MRR"],
        [
            [
                retriever,
                name,
                str(s.questions),
                f"{s.recall_at_1:.3f}",
                f"{s.recall_at_5:.3f}",
                f"{s.mrr:.3f}",
            ]  # fmt: skip
            for retriever, sets in report.retrievers.items()
            for name, s in sets.items()
        ],
    )
    out.line("hard set (both splits) per kind, recall@5:")
    kinds = list(next(iter(report.hard_kinds.values()), {}))
    out.table(
        ["RETRIEVER", *(kind.upper() for kind in kinds)],
        [
            [retriever, *(f"{by_kind[kind].recall_at_5:.3f}" for kind in kinds)]
            for retriever, by_kind in report.hard_kinds.items()
        ],
    )

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    if report.answers:
        out.line(f"/v1/chat at {url} (its own retrieval and generation):")
        out.table(
            [
                "SET",
                "ASKED",
                "ERRORS",
                "ANSWER ACC",
                "CITATION ACC",
                "CITATION PREC",
                "REFUSAL ACC",
                "FALSE REFUSALS",
                "LLM VALIDATED",
            ],  # fmt: skip
            [
                [
                    name,
                    str(a.asked),
                    str(a.errors),
                    figure(a.answer_accuracy),
                    figure(a.citation_accuracy),
                    figure(a.citation_precision),
                    figure(a.refusal_accuracy),
                    figure(a.false_refusals),
                    figure(a.validated),
                ]  # fmt: skip
                for name, a in report.answers.items()
            ],
        )
    elif url is not None:
        out.line(f"/v1/chat: no answers from {url} ({report.chat_errors} errors)")
    for miss in report.misses[: args.show_misses]:
        out.line(f"  miss: {miss}")
    return EXIT_OK if report.overall.recall_at_5 >= args.min_recall else EXIT_FAIL


def add_parser(sub: Any) -> None:
    """Add ``ingest`` and ``eval`` to the CLI's sub-parsers."""
    ingest = sub.add_parser(
        "ingest", help="catalogue products and PDF files into the chatbot's vector store"
    )
    ingest.add_argument("paths", nargs="*", type=Path, help="PDF files or folders of PDFs")
    ingest.add_argument("--no-products", action="store_true", help="PDFs only")
    ingest.add_argument("--catalogue", type=Path, help="real catalogue (JSON lines/CSV)")
    ingest.add_argument("--rows", type=int, help="synthetic catalogue size (default 5000)")
    ingest.set_defaults(func=cmd_ingest)

    evaluate = sub.add_parser("eval", help="evaluate a model or service on generated data")
    evaluate.add_argument("target", choices=["chatbot"])
    evaluate.add_argument("--chatbot-url", help="chatbot URL (default: the local stack's)")
    evaluate.add_argument("--no-chat", action="store_true", help="retrieval figures only")
    evaluate.add_argument("--questions", type=int, default=100, help="catalogue questions")
    evaluate.add_argument(
        "--chat-sets",
        nargs="+",
        choices=["today", "hard-dev", "hard-test"],
        help="sets asked to /v1/chat (default: all; a local LLM answers one at a time)",
    )
    evaluate.add_argument(
        "--chat-concurrency", type=int, default=4, help="questions to /v1/chat at a time"
    )
    evaluate.add_argument(
        "--chat-timeout", type=float, default=30.0, help="seconds per /v1/chat answer"
    )
    evaluate.add_argument(
        "--hard-per-kind", type=int, default=40, help="hard questions per kind (both splits)"
    )
    evaluate.add_argument("--catalogue", type=Path, help="real catalogue (JSON lines/CSV)")
    evaluate.add_argument("--rows", type=int, help="synthetic catalogue size (default 5000)")
    evaluate.add_argument("--min-recall", type=float, default=0.9, help="exit 1 below (recall@5)")
    evaluate.add_argument("--show-misses", type=int, default=10, help="questions missed to list")
    evaluate.set_defaults(func=cmd_eval)
