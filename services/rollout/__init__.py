"""`modelfleet rollout`: a candidate stepped through traffic shares, gated by PromQL.

See docs/rollouts.md.

- :mod:`.spec`: the rollout spec file (YAML): target, steps, gates.
- :mod:`.prometheus`: PromQL instant queries with a deadline, and gate evaluation.
- :mod:`.state`: the durable state of each rollout (a JSON file per rollout, locked transitions).
- :mod:`.targets`: what a step changes: a model service's routing table (admin API) or, in a
  cluster, Ingresses / Services / Deployments (:mod:`.kube`, the official kubernetes client).
- :mod:`.controller`: the step / gate state machine: start, status, promote, abort.
- :mod:`.commands`: the ``modelfleet rollout`` sub-commands.
"""
