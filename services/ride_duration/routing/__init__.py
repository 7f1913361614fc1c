"""Model-level rollouts, the same for every model service: a routing table per service.

- :mod:`.table`: the table's schema, its validation rules and the compiled :class:`Snapshot`
  that picks a variant per request (a dict lookup and one hash: the hot path).
- :mod:`.store`: the table in Postgres (versioned history, optimistic concurrency, NOTIFY).
- :mod:`.live`: the snapshot every replica serves, swapped atomically when the table changes
  (LISTEN/NOTIFY, with a periodic poll as the fallback).
- :mod:`.shadow`: shadow calls off the request path (bounded queue) and their comparison.
- :mod:`.metrics`: per-variant Prometheus metrics.
- :mod:`.api`: the admin API ``GET/PUT /v1/admin/routing`` and ``/v1/admin/routing/history``.

See docs/rollouts.md.
"""
