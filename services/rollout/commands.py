"""The ``modelfleet rollout`` sub-commands (wired into services/cli/rollout.py).

    modelfleet rollout start SPEC.yaml      step through the spec; exit 0 promoted, 1 aborted
    modelfleet rollout status [NAME] [--json]
    modelfleet rollout promote NAME         promote now (skips the remaining steps)
    modelfleet rollout abort NAME [--reason TEXT]   roll back now
    modelfleet rollout resume NAME          carry on after the controller's process died

State files: ``MODELFLEET_ROLLOUT_STATE_DIR`` (default ``$MODELFLEET_HOME/rollouts``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Protocol

from services.rollout.controller import Controller
from services.rollout.prometheus import PrometheusClient
from services.rollout.settings import RolloutSettings
from services.rollout.spec import RolloutSpec, RoutingTarget, SpecError, load_spec
from services.rollout.state import RolloutState, StateError, StateStore
from services.rollout.targets import RoutingTableTarget, Target, TargetError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


class Printer(Protocol):
    def line(self, text: str = "") -> None: ...

    def error(self, text: str) -> None: ...


def make_target(spec: RolloutSpec, settings: RolloutSettings) -> Target:
    """The target of a spec: the routing table (admin API) or Kubernetes objects."""
    if isinstance(spec.target, RoutingTarget):
        return RoutingTableTarget(spec.target, settings, rollout=spec.name)
    from services.rollout.kube import KubernetesRolloutTarget, kube_api_client

    return KubernetesRolloutTarget(spec.target, kube_api_client(settings))


def make_controller(
    settings: RolloutSettings, home: Path, printer: Printer | None = None
) -> Controller:
    """The controller with the state folder and clients the settings name."""
    state_dir = settings.state_dir or home / "rollouts"
    return Controller(
        StateStore(state_dir),
        target_for=lambda spec: make_target(spec, settings),
        prometheus_for=lambda spec: PrometheusClient(
            spec.prometheus.url or settings.prometheus_url,
            timeout_s=spec.prometheus.timeout_s or settings.prometheus_timeout_s,
        ),
        report=printer.line if printer is not None else (lambda _: None),
        poll_interval_s=settings.poll_interval_s,
    )


def describe(state: RolloutState) -> list[str]:
    """What `status` prints for one rollout."""
    steps = len(state.spec["steps"])
    lines = [
        f"rollout {state.name}: {state.status.upper()} at step {state.step + 1}/{steps}, "
        f"candidate weight {state.weight:.0%}",
        f"  target: {json.dumps(state.spec['target'])}",
    ]
    if state.reason:
        lines.append(f"  reason: {state.reason}")
    for gate in state.gates:
        verdict = "pass" if gate["passed"] else "FAIL"
        lines.append(f"  gate {verdict} {gate['name']}: {gate['reason']}")
    lines.append("  history:")
    lines += [f"    {e.at:%Y-%m-%d %H:%M:%S} {e.kind}: {e.message}" for e in state.events]
    return lines


def _outcome(out: Printer, state: RolloutState) -> int:
    for line in describe(state):
        out.line(line)
    return EXIT_OK if state.status == "promoted" else EXIT_FAIL


def run(out: Printer, home: Path, args: argparse.Namespace) -> int:
    """Run one ``modelfleet rollout`` sub-command."""
    settings = RolloutSettings()
    controller = make_controller(settings, home, out)
    try:
        if args.rollout_command == "start":
            return _outcome(out, controller.start(load_spec(args.spec)))
        if args.rollout_command == "resume":
            return _outcome(out, controller.run(args.name))
        if args.rollout_command == "promote":
            return _outcome(out, controller.promote(args.name))
        if args.rollout_command == "abort":
            return _outcome(out, controller.abort(args.name, f"aborted by hand: {args.reason}"))
        return status(out, controller.store, args.name, as_json=args.json)
    except SpecError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except (StateError, TargetError) as exc:
        out.error(str(exc))
        return EXIT_FAIL


def status(out: Printer, store: StateStore, name: str | None, *, as_json: bool) -> int:
    """`rollout status`: one rollout, or every rollout of the state folder."""
    states = [store.load(name)] if name else [store.load(n) for n in store.names()]
    if as_json:
        payload: list[dict[str, Any]] = [s.model_dump(mode="json") for s in states]
        out.line(json.dumps(payload if not name else payload[0], indent=2))
        return EXIT_OK
    if not states:
        out.line(f"no rollouts in {store.folder}")
    for state in states:
        for line in describe(state):
            out.line(line)
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``rollout`` and its sub-commands to the CLI's sub-parsers."""
    rollout = sub.add_parser(
        "rollout", help="gated canary / blue-green rollouts (docs/rollouts.md)"
    )
    commands = rollout.add_subparsers(dest="rollout_command", required=True, metavar="COMMAND")
    start = commands.add_parser("start", help="step through a rollout spec file")
    start.add_argument("spec", type=Path, help="the rollout spec (YAML)")
    show = commands.add_parser("status", help="state, gates and history of rollouts")
    show.add_argument("name", nargs="?", help="one rollout (default: all)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (("promote", "promote now"), ("abort", "roll back now"),
                       ("resume", "carry on a running rollout")):  # fmt: skip
        command = commands.add_parser(name, help=text)
        command.add_argument("name", help="the rollout's name (spec `name`)")
        if name == "abort":
            command.add_argument("--reason", default="no reason given", help="recorded")
    return rollout  # type: ignore[no-any-return]
