"""``python -m services.workers KIND [--host H] [--port P]``: run one streaming worker.

KIND is ``tip``, ``cost``, ``dynamic-duration`` or ``sensor-duration``. The process consumes its
durable JetStream consumer and serves ``/healthz``, ``/readyz`` and ``/metrics`` on host:port
(uvicorn in this process, uvloop). SIGTERM/SIGINT stop it cleanly: the batch in hand finishes or
is redelivered.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from services.workers.app import create_worker_app
from services.workers.handlers import KINDS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.workers", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="health and metrics port")
    args = parser.parse_args(argv)
    app = create_worker_app(args.kind)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
