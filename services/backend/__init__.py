"""backend: the taxi app's API (rides, results, Server-Sent Events, telemetry, outbox relay)."""
