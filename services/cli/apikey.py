"""``modelfleet apikey create|list|revoke``: API keys (services/common/security/keycommands.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from services.cli.output import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK, Output
from services.cli.servers import job_server_urls
from services.stack import StackSettings


def cmd_apikey(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet apikey create|list|revoke`: services/common/security/keycommands.py."""
    from services.common.errors import ClientError, ModelfleetError
    from services.common.security.keycommands import run_apikey
    from services.common.settings import ServiceSettings

    database_url = job_server_urls(settings).get("database_url")
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


def add_parser(sub: Any) -> None:
    """Add ``apikey`` and its sub-commands to the CLI's sub-parsers."""
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
