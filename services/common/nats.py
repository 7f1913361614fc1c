"""The NATS JetStream connection, written once.

Connects with endless reconnects (a pull loop carries on by itself once the server is back),
a name per process for ``nats-server`` monitoring, and translates connection errors into
:class:`services.common.errors.BrokerUnavailable`.

    nc = await connect(settings.nats_url, name="backend")
    js = nc.jetstream()
"""

from __future__ import annotations

import nats
from nats.aio.client import Client as NatsClient

from services.common.errors import BrokerUnavailable


async def connect(url: str, *, name: str, connect_timeout_s: float = 2.0) -> NatsClient:
    """Connect to NATS; raises BrokerUnavailable when the first connect fails."""
    try:
        return await nats.connect(
            servers=[u.strip() for u in url.split(",")],
            name=name,
            connect_timeout=connect_timeout_s,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
        )
    except (OSError, nats.errors.Error) as exc:
        raise BrokerUnavailable(f"cannot connect to NATS at {url}") from exc


async def check_nats(nc: NatsClient) -> None:
    """Readiness: the connection is up (not reconnecting)."""
    if not nc.is_connected:
        raise BrokerUnavailable("NATS connection is down (reconnecting)")
