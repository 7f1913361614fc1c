"""The `modelfleet` command line: run the local stack, build the models, run the benchmarks.

    modelfleet up [--detach]        build the model repository, start everything, print URLs;
                                    foreground until Ctrl-C/SIGTERM (then stops it all);
                                    `--llm`: also the local LLM the chatbot generates with
    modelfleet down                 stop what `$MODELFLEET_HOME/run` records (any process's)
    modelfleet status [--json]      name, url, pid, ready per component (exit 1 if not all ready)
    modelfleet jobs [--json]        the chart's CronJobs under `up`: schedule, next and last run
    modelfleet jobs run NAME        run one now (same command, deadline, run file); its exit code
    modelfleet models build [--seed 42] [--rows N] [--data PATH] [--force]
    modelfleet train classifier     retrain, gate, load the new version into Triton
                                    (alias `retrain classifier`; `--catalogue FILE`)
    modelfleet demo taxi            rides at a rate, NATS killed (SIGKILL) mid-way and started
                                    again by the supervisor; every ride's results counted
    modelfleet demo chat            a manual uploaded and asked (its page cited), then a
                                    catalogue question answered from SQL
    modelfleet demo drift           drift scenario: shifted products -> F1 falls -> alert ->
                                    retraining run -> new version -> F1 recovers
    modelfleet demo rollout         canary, A/B, shadow, blue/green, rolling on ride-duration
    modelfleet score [--file PATH]  batch-score new rides (or a TLC file) through Triton
    modelfleet ingest [PDF|DIR ...] catalogue products + PDFs -> chunks -> embeddings -> pgvector
    modelfleet eval chatbot         retrieval recall@1/@5, MRR (+ citation accuracy of /v1/chat)
    modelfleet worker KIND [ARGS]   a streaming worker: tip, cost, (dynamic|sensor)-duration
    modelfleet apikey create NAME --scopes read,write | list | revoke KEY_ID   API keys
    modelfleet bench [ARGS...]      the benchmarks (bench/run.py)
    modelfleet rollout start|status|promote|abort|resume   gated rollouts (docs/rollouts.md)

Settings come from `MODELFLEET_*` environment variables (see services/stack/settings.py);
`--home` overrides `MODELFLEET_HOME`.

One module per command group, each with ``add_parser(sub)`` registering its sub-commands and
their handlers; ``console`` builds the parser from them and runs ``main``.
"""

from __future__ import annotations

from services.cli.console import build_parser, main

__all__ = ["build_parser", "main"]
