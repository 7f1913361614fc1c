"""The `modelfleet` command line: run the local stack, build the models, run the benchmarks.

    modelfleet up [--detach]        build the model repository, start everything, print URLs;
                                    foreground until Ctrl-C/SIGTERM (then stops it all)
    modelfleet down                 stop what `$MODELFLEET_HOME/run` records (any process's)
    modelfleet status [--json]      name, url, pid, ready per component (exit 1 if not all ready)
    modelfleet models build [--seed 42] [--rows N] [--data PATH] [--force]
    modelfleet train classifier     retrain, gate, load the new version into Triton
                                    (alias `retrain classifier`; `--catalogue FILE`)
    modelfleet demo drift           drift scenario: shifted products -> F1 falls -> alert ->
                                    retraining run -> new version -> F1 recovers
    modelfleet score [--file PATH]  batch-score new rides (or a TLC file) through Triton
    modelfleet ingest [PDF|DIR ...] catalogue products + PDFs -> chunks -> embeddings -> pgvector
    modelfleet eval chatbot         retrieval recall@1/@5, MRR (+ citation accuracy of /v1/chat)
    modelfleet worker KIND [ARGS]   one streaming worker: tip, cost or dynamic-duration
    modelfleet apikey create NAME --scopes read,write | list | revoke KEY_ID   API keys
    modelfleet bench [ARGS...]      the benchmarks (bench/run.py)
    modelfleet rollout start|status|promote|abort|resume   gated rollouts (docs/rollouts.md)

Settings come from `MODELFLEET_*` environment variables (see services/stack/settings.py);
`--home` overrides `MODELFLEET_HOME`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from services.rollout import commands as rollout_commands
from services.stack import (
    AlreadyRunningError,
    ComponentStatus,
    PortInUseError,
    Stack,
    StackError,
    StackSettings,
    StartupError,
)

log = logging.getLogger("modelfleet.cli")

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DESCRIPTION = "modelfleet: run the local stack, build the models, run the benchmarks."


class Output:
    """Everything the CLI prints goes through here (stdout for results, stderr for errors)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._err = err if err is not None else sys.stderr

    def line(self, text: str = "") -> None:
        """One line of normal output."""
        print(text, file=self._out, flush=True)

    def error(self, text: str) -> None:
        """One (possibly multi-line) error message."""
        print(f"modelfleet: {text}", file=self._err, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A plain aligned table."""
        widths = [len(h) for h in headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        for row in (headers, *rows):
            self.line(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )


def _status_rows(statuses: Sequence[ComponentStatus]) -> list[list[str]]:
    return [
        [s.name, s.url, "-" if s.pid is None else str(s.pid), "yes" if s.ready else "no"]
        for s in statuses
    ]


def _print_urls(out: Output, statuses: Sequence[ComponentStatus]) -> None:
    rows: list[list[str]] = []
    for s in statuses:
        rows.append([s.name, s.url, "-" if s.pid is None else str(s.pid)])
        rows.extend([f"  {label}", url, ""] for label, url in s.extra_urls.items())
    out.table(["COMPONENT", "URL", "PID"], rows)
    out.line(f"logs: {statuses[0].log_file.parent}" if statuses else "")


# -- models / bench (lazy imports: those packages are written elsewhere) -------------------
def _build_repository(
    out: Output,
    settings: StackSettings,
    *,
    seed: int,
    rows: int | None,
    data: Path | None = None,
    force: bool = False,
) -> None:
    """Call models.repository.build_repository(home/model-repository, seed=..., rows=...)."""
    from models.repository import DEFAULT_TRIPS, build_repository

    target = settings.paths.model_repository
    out.line(f"building the model repository in {target} ...")
    result = build_repository(
        target, seed=seed, rows=DEFAULT_TRIPS if rows is None else rows, data_path=data, force=force
    )
    state = "built" if result.built else "already up to date"
    out.line(f"model {result.model} version {result.version} {state}: {result.path}")


def cmd_models_build(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet models build`."""
    _build_repository(
        out, settings, seed=args.seed, rows=args.rows, data=args.data, force=args.force
    )
    return EXIT_OK


def _job_server_urls(settings: StackSettings) -> dict[str, str]:
    """Server URLs of a job: in a pod (the chart's Job) DATABASE_URL and TRITON_GRPC_URL come
    from the environment; under `make up` they default to the local stack's servers."""
    urls: dict[str, str] = {}
    for env_name, field, local_url in (
        ("DATABASE_URL", "database_url", settings.database_url),
        ("TRITON_GRPC_URL", "triton_grpc_url", settings.triton_grpc_url),
    ):
        if env_name not in os.environ:
            urls[field] = local_url
    return urls


def cmd_train(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet train classifier`: retrain (catalogue + feedback), gate, load into Triton."""
    from services.jobs import classifier_retrain as module

    # A flag given wins; else CLASSIFIER_RETRAIN_SEED / _ROWS / _MIN_GAIN (a pod's ConfigMap),
    # else RetrainSettings' defaults.
    flags = {"seed": args.seed, "rows": args.rows, "min_gain": args.min_gain}
    overrides: dict[str, Any] = {name: value for name, value in flags.items() if value is not None}
    overrides.update(_job_server_urls(settings))
    job_settings = module.RetrainSettings(log_json=False, **overrides)
    report = asyncio.run(
        module.run_retrain(
            settings=job_settings,
            repo_dir=settings.paths.model_repository,
            catalogue_path=args.data,
            say=out.line,
        )
    )
    outcome = report.outcome
    serving = "-" if outcome.serving_macro_f1 is None else f"{outcome.serving_macro_f1:.4f}"
    out.line(
        f"run {report.run_id}: {report.status}; candidate macro-F1 "
        f"{outcome.candidate_macro_f1:.4f}, serving version {outcome.serving_version} on the "
        f"same test set {serving}"
    )
    return EXIT_OK if report.status in ("serving", "rejected") else EXIT_FAIL


def cmd_demo_rollout(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo rollout`: the five model-level strategies on ride-duration (services/
    jobs/rollout_demo.py); exit 0 when the story went as told (``DemoOutcome.succeeded``)."""
    from services.jobs import rollout_demo as module

    result = module.run_rollout_demo(settings, say=out.line)
    return EXIT_OK if result.succeeded else EXIT_FAIL


def cmd_demo(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo drift|rollout`: a scenario against a running stack."""
    if args.scenario == "rollout":
        return cmd_demo_rollout(out, settings, args)
    from services.jobs import drift as module

    url = args.url or f"http://{settings.host}:{settings.classifier_port}"
    out.line(f"drift demo against {url}")
    result = asyncio.run(
        module.run_demo(
            url,
            say=out.line,
            products=args.products,
            wait_for_alert_s=args.wait_for_alert,
            timeout_s=args.timeout,
        )
    )
    figures = (result.f1_before, result.f1_drift, result.f1_after)
    out.line(
        "macro-F1 before drift {}, after drift {}, after retraining {}".format(
            *("-" if f is None else f"{f:.4f}" for f in figures)
        )
    )
    ok = result.run is not None and result.run["status"] == "succeeded"
    return EXIT_OK if ok else EXIT_FAIL


def cmd_score(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet score [--file PATH] [--run-id ID]`: batch scoring through Triton.

    Exit 0 when the run is complete, 2 on bad input (a clear message), 1 when a dependency fails.
    """
    from services.common.errors import ClientError, ModelfleetError
    from services.jobs.scoring import runner
    from services.jobs.scoring import settings as settings_module

    overrides: dict[str, Any] = dict(_job_server_urls(settings))
    for field in ("models", "chunk_rows", "concurrency"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    try:
        job_settings = settings_module.ScoreSettings(log_json=False, **overrides)
        summary = asyncio.run(
            runner.run_score(
                settings=job_settings, file=args.file, run_id=args.run_id, say=out.line
            )
        )
    except ClientError as exc:
        out.error(exc.detail)
        return EXIT_BAD_INPUT
    except ModelfleetError as exc:
        out.error(f"{type(exc).__name__}: {exc.detail}")
        return EXIT_FAIL
    except ValueError as exc:  # pydantic ValidationError: a bad SCORE_* setting or option
        out.error(str(exc))
        return EXIT_BAD_INPUT
    for line in summary.lines():
        out.line(line)
    return EXIT_OK if summary.status == "done" else EXIT_FAIL


def cmd_apikey(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet apikey create|list|revoke`: services/common/security/keycommands.py."""
    from services.common.errors import ClientError, ModelfleetError
    from services.common.security.keycommands import run_apikey
    from services.common.settings import ServiceSettings

    database_url = _job_server_urls(settings).get("database_url")
    try:
        service_settings = (
            ServiceSettings(log_json=False, database_url=database_url)
            if database_url is not None
            else ServiceSettings(log_json=False)
        )
        lines = asyncio.run(
            run_apikey(
                service_settings,
                args.apikey_command,
                by=args.by,
                name=getattr(args, "name", ""),
                scopes=[s for s in getattr(args, "scopes", "").split(",") if s],
                key_id=getattr(args, "key_id", ""),
            )
        )
    except ClientError as exc:
        out.error(exc.detail)
        return EXIT_BAD_INPUT
    except (ModelfleetError, OSError) as exc:
        out.error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAIL
    for line in lines:
        out.line(line)
    return EXIT_OK


def _stack_urls(settings: StackSettings) -> dict[str, Any]:
    """DATABASE_URL, TRITON_GRPC_URL, NATS_URL of the local stack for a job's settings, except
    those set in the environment (in a pod, the chart's Job sets them)."""
    urls = {
        "DATABASE_URL": ("database_url", settings.database_url),
        "TRITON_GRPC_URL": ("triton_grpc_url", settings.triton_grpc_url),
        "NATS_URL": ("nats_url", settings.nats_url),
    }
    return {field: url for env, (field, url) in urls.items() if env not in os.environ}


def _ingest_settings(settings: StackSettings, args: argparse.Namespace) -> Any:
    """IngestSettings from the environment (INGEST_*), the stack's URLs and the flags."""
    from services.jobs import ingest as module

    overrides: dict[str, Any] = {"log_json": False, **_stack_urls(settings)}
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
    """`modelfleet eval chatbot`: generated questions -> retrieval figures (+ /v1/chat)."""
    from services.jobs import chatbot_eval as module

    url = args.chatbot_url
    if url is None and not args.no_chat:
        url = f"http://{settings.host}:{settings.chatbot_port}"
    report = asyncio.run(
        module.run_eval(
            settings=_ingest_settings(settings, args),
            product_questions=args.questions,
            chatbot_url=url,
            say=out.line,
        )
    )
    out.table(
        ["QUESTIONS", "N", "RECALL@1", "RECALL@5", "MRR"],
        [
            [name, str(s.questions), f"{s.recall_at_1:.3f}", f"{s.recall_at_5:.3f}", f"{s.mrr:.3f}"]
            for name, s in (("all", report.overall), *report.by_kind.items())
        ],
    )
    if report.citation_accuracy is not None:
        answers = "-" if report.answer_accuracy is None else f"{report.answer_accuracy:.3f}"
        out.line(
            f"/v1/chat: citation accuracy {report.citation_accuracy:.3f}, answer accuracy "
            f"(manual facts) {answers}, errors {report.chat_errors}"
        )
    elif url is not None:
        out.line(f"/v1/chat: no answers from {url} ({report.chat_errors} errors)")
    for miss in report.misses[: args.show_misses]:
        out.line(f"  miss: {miss}")
    return EXIT_OK if report.overall.recall_at_5 >= args.min_recall else EXIT_FAIL


def cmd_worker(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet worker KIND [--host H] [--port P]`: services.workers.__main__.main(ARGS)."""
    from services.workers import __main__ as module

    result = module.main(list(args.args))
    return result if isinstance(result, int) else EXIT_OK


def cmd_rollout(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet rollout ...`: services/rollout/commands.py."""
    return rollout_commands.run(out, settings.paths.home, args)


def cmd_bench(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet bench [ARGS...]`: bench.run.main(ARGS)."""
    from bench import run as module

    os.environ["MODELFLEET_HOME"] = str(settings.home)  # bench reads StackSettings() itself
    result = module.main(list(args.args))
    return result if isinstance(result, int) else EXIT_OK


# -- stack commands ------------------------------------------------------------------------
def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_up(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet up [--detach]`."""
    stack = Stack(settings)
    running = stack.running()
    if running:
        raise AlreadyRunningError(running, home=settings.paths.home)
    stack.check_ports()
    if not args.no_build:
        try:
            _build_repository(out, settings, seed=args.seed, rows=args.rows)
        except ModuleNotFoundError as exc:
            if exc.name not in ("models.repository", "models"):
                raise
            out.error("models.repository is not available yet: using the repository as it is")
    # SIGTERM during startup behaves like Ctrl-C: Stack.start stops what it started.
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        statuses = stack.start()
    except KeyboardInterrupt:
        out.error("interrupted during startup; everything started was stopped")
        return EXIT_FAIL
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    _print_urls(out, statuses)
    timings = ", ".join(f"{name} {sec:.1f} s" for name, sec in stack.startup_seconds.items())
    out.line(f"ready ({timings})")
    if "chatbot" in stack.names and not args.no_ingest:
        try:
            _ingest_catalogue(out, settings, seed=args.seed, rows=args.rows)
        except KeyboardInterrupt:
            out.error("interrupted while ingesting the catalogue; stopping everything")
            stack.stop()
            return EXIT_INTERRUPTED
    if args.detach:
        out.line("running detached: `modelfleet status`, `modelfleet down`")
        return EXIT_OK
    return _serve_foreground(out, stack)


def _ingest_catalogue(out: Output, settings: StackSettings, *, seed: int, rows: int | None) -> None:
    """After `up`: the classifier's synthetic catalogue (same seed and size, so the same
    products) into the chatbot's tables; idempotent, so a second `up` only compares hashes."""
    from models import repository
    from services.jobs import ingest as module

    size = repository.default_catalogue_rows(*(() if rows is None else (rows,)))
    out.line(f"ingesting the catalogue ({size} products) for the chatbot ...")
    job = module.IngestSettings(
        log_json=False, catalogue_rows=size, catalogue_seed=seed, **_stack_urls(settings)
    )
    try:
        asyncio.run(module.run_ingest(settings=job, say=out.line))
    except Exception as exc:  # the stack keeps running; `modelfleet ingest` can be rerun
        out.error(
            f"catalogue ingestion failed ({type(exc).__name__}: {exc}); run `modelfleet ingest`"
        )


def _serve_foreground(out: Output, stack: Stack) -> int:
    """Wait for Ctrl-C/SIGTERM (warning when a component dies), then stop everything."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    out.line("press Ctrl-C to stop")
    reported: set[str] = set()
    try:
        while not stop.wait(1.0):
            for name in stack.names:
                component = stack.component(name)
                if name not in reported and component.pid is None:
                    reported.add(name)
                    out.error(f"{name} is not running any more (log: {component.log_path})")
        out.line("stopping ...")
        stopped = stack.stop()
        out.line(f"stopped {', '.join(stopped) or 'nothing'}")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return EXIT_OK


def cmd_down(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet down`."""
    stopped = Stack(settings).stop()
    out.line(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return EXIT_OK


def cmd_status(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet status [--json]`: exit 0 when every component is ready, else 1."""
    statuses = Stack(settings).status()
    if args.json:
        out.line(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "url": s.url,
                        "pid": s.pid,
                        "ready": s.ready,
                        "extra_urls": dict(s.extra_urls),
                    }
                    for s in statuses
                ],
                indent=2,
            )
        )
    else:
        out.table(["NAME", "URL", "PID", "READY"], _status_rows(statuses))
    return EXIT_OK if statuses and all(s.ready for s in statuses) else EXIT_FAIL


# -- parser --------------------------------------------------------------------------------
Command = Callable[[Output, StackSettings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of `modelfleet`."""
    parser = argparse.ArgumentParser(prog="modelfleet", description=DESCRIPTION)
    parser.add_argument("--home", type=Path, help="state folder (default: $MODELFLEET_HOME)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings in the log")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="build the models and start the whole local stack")
    up.add_argument("--detach", action="store_true", help="leave it running and return")
    up.add_argument("--seed", type=int, default=42, help="seed of the model build")
    up.add_argument("--rows", type=int, help="training rows of the model build")
    up.add_argument("--no-build", action="store_true", help="use the model repository as it is")
    up.add_argument(
        "--no-ingest", action="store_true", help="skip ingesting the catalogue for the chatbot"
    )
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the stack recorded in $MODELFLEET_HOME/run")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="url, pid and readiness of each component")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    models = sub.add_parser("models", help="model repository commands")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    build = models_sub.add_parser("build", help="train and export into the model repository")
    build.add_argument("--seed", type=int, default=42)
    build.add_argument("--rows", type=int)
    build.add_argument("--data", type=Path, help="real NYC TLC parquet/CSV file or folder")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.set_defaults(func=cmd_models_build)

    train = sub.add_parser(
        "train",
        aliases=["retrain"],
        help="retrain a model and roll it out without downtime (alias: retrain)",
    )
    train.add_argument("model", choices=["classifier"])
    train.add_argument(
        "--seed", type=int, help="seed of the catalogue and split (default 43, or the env's)"
    )
    train.add_argument("--rows", type=int, help="catalogue products (default 5000, or the env's)")
    train.add_argument(
        "--data", "--catalogue", dest="data", type=Path, help="real catalogue (JSON lines/CSV)"
    )
    train.add_argument(
        "--min-gain", type=float, help="macro-F1 the candidate must gain to serve (default 0)"
    )
    train.set_defaults(func=cmd_train)

    demo = sub.add_parser("demo", help="scenarios against a running stack")
    demo.add_argument("scenario", choices=["drift", "rollout"])
    demo.add_argument("--url", help="classifier URL (default: the local stack's)")
    demo.add_argument("--products", type=int, default=300, help="products per phase")
    demo.add_argument(
        "--wait-for-alert",
        type=float,
        default=0.0,
        help="seconds to wait for Prometheus + Alertmanager to start the run (0: send "
        "Alertmanager's notification to /v1/alerts directly, as under `make up`)",
    )
    demo.add_argument("--timeout", type=float, default=900.0, help="seconds for the run")
    demo.set_defaults(func=cmd_demo)

    score = sub.add_parser(
        "score", help="batch-score rides (Postgres) or a TLC parquet/CSV file through Triton"
    )
    score.add_argument("--file", type=Path, help="TLC trips file or folder (default: new rides)")
    score.add_argument("--run-id", help="resume or start this run (default: resume the source's)")
    score.add_argument("--models", help="comma-separated models (default: $SCORE_MODELS)")
    score.add_argument("--chunk-rows", type=int, help="rows per chunk and transaction")
    score.add_argument("--concurrency", type=int, help="Triton requests in flight")
    score.set_defaults(func=cmd_score)

    apikey = sub.add_parser("apikey", help="API keys of machine clients (stored hashed)")
    apikey.add_argument(
        "--by", default=os.environ.get("USER", "cli"), help="who acts (the audit log's actor)"
    )
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True, metavar="COMMAND")
    create = apikey_sub.add_parser("create", help="make a key and print it once")
    create.add_argument("name", help="what the key is for, e.g. batch-scorer")
    create.add_argument("--scopes", default="read", help="comma separated: read,write,admin")
    apikey_sub.add_parser("list", help="ids, names, scopes, state (never the keys)")
    revoke = apikey_sub.add_parser("revoke", help="revoke a key (effective within seconds)")
    revoke.add_argument("key_id", help="the key's id (12 hex characters)")
    apikey.set_defaults(func=cmd_apikey)

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
    evaluate.add_argument("--catalogue", type=Path, help="real catalogue (JSON lines/CSV)")
    evaluate.add_argument("--rows", type=int, help="synthetic catalogue size (default 5000)")
    evaluate.add_argument("--min-recall", type=float, default=0.9, help="exit 1 below (recall@5)")
    evaluate.add_argument("--show-misses", type=int, default=10, help="questions missed to list")
    evaluate.set_defaults(func=cmd_eval)

    # Same pass-through as bench: `modelfleet worker tip --port 8010` = python -m services.workers.
    worker = sub.add_parser(
        "worker",
        help="run one streaming worker: tip, cost or dynamic-duration (services.workers)",
        add_help=False,
        prefix_chars="\0",
    )
    worker.add_argument("args", nargs=argparse.REMAINDER, help="KIND [--host H] [--port P]")
    worker.set_defaults(func=cmd_worker)

    # prefix_chars="\0": every argument, --help included, goes to bench.run's own parser.
    bench = sub.add_parser(
        "bench", help="run the benchmarks (bench/run.py)", add_help=False, prefix_chars="\0"
    )
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmarks")
    bench.set_defaults(func=cmd_bench)

    rollout_commands.add_parser(sub).set_defaults(func=cmd_rollout)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `modelfleet` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    out = Output()
    settings = StackSettings() if args.home is None else StackSettings(home=args.home)
    func: Command = args.func
    try:
        return func(out, settings, args)
    except (AlreadyRunningError, PortInUseError, StartupError) as exc:
        out.error(str(exc))
        return EXIT_FAIL
    except StackError as exc:
        out.error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
