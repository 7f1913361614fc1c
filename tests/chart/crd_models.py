"""The chart's objects of the add-ons' CRDs, checked against models generated from the upstream
CRDs: PyPI ``cloudcoil-models-prometheus-operator`` (ServiceMonitor, PrometheusRule,
AlertmanagerConfig, ...) and ``cloudcoil-models-keda`` (ScaledObject, TriggerAuthentication),
pydantic models that cloudcoil's codegen writes from each operator's CRD openAPI schema. Their
versions are pinned to the operators that docs/kubernetes.md installs: kube-prometheus-stack
67.8.0 ships prometheus-operator v0.79.2 (models 0.79.2.x), KEDA's chart 2.16.1 KEDA 2.16.1
(models 2.16.1.x); pyproject's dev extra pins them.

The models check types, enums, patterns and required fields, but they DROP a field they do not
know instead of refusing it; so the check is a round trip: validate, dump (by alias, only the
fields that were set) and compare with the input. A field the dump lost is a field the CRD does
not have (a typo: ``spec.endpoints[0].intervall``), and a value it changed is one the CRD types
differently: both are errors.

HTTPRoute (Gateway API) and ExternalSecret (External Secrets Operator) have no generated models
on PyPI (no cloudcoil package, no package shipping their CRD YAML), so they keep the
hand-written subsets in tests/chart/schemas (JSON Schema, closed with additionalProperties).
npm has generated ones (``@kubernetes-models/gateway-api``, ``/external-secrets`` 2.0.0), but they
need Node >= 22 (Debian bookworm has 18) and would put Node into these Python tests for two kinds.

    problems = crd_problems(obj)     # [] when valid; each problem names its field path
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

with warnings.catch_warnings():
    # The generated Alertmanager/Prometheus models have fields named `name` and `namespace`,
    # which shadow cloudcoil's Resource helpers: pydantic warns at import (harmless for us).
    warnings.simplefilter("ignore", UserWarning)
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as monitoring
    from cloudcoil.models.prometheus_operator import v1alpha1 as monitoring_alpha

SCHEMAS = Path(__file__).parent / "schemas"

#: (apiVersion, kind) -> the model generated from the upstream CRD.
MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PodMonitor"): monitoring.PodMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule,
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): monitoring_alpha.AlertmanagerConfig,
    ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
}
#: Kinds without a generated model: their hand-written JSON Schema subset.
HAND_WRITTEN: dict[str, Path] = {
    "HTTPRoute": SCHEMAS / "httproute.schema.json",
    "ExternalSecret": SCHEMAS / "externalsecret.schema.json",
}
#: The API groups whose objects must go through this check (anything else is core Kubernetes).
GROUPS = frozenset(
    {"monitoring.coreos.com", "keda.sh", "gateway.networking.k8s.io", "external-secrets.io"}
)


def is_crd_object(obj: dict[str, Any]) -> bool:
    """Whether ``obj`` belongs to one of the add-ons' CRDs (not to Kubernetes itself)."""
    return str(obj.get("apiVersion", "")).split("/")[0] in GROUPS


def _path(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def round_trip_losses(given: Any, dumped: Any, at: list[str | int] | None = None) -> list[str]:
    """Where ``dumped`` lost or changed what ``given`` holds (``spec.x[0].y: dropped``)."""
    at = at or []
    if isinstance(given, dict) and isinstance(dumped, dict):
        problems = []
        for key, value in given.items():
            if key not in dumped:
                problems.append(f"{_path([*at, key])}: not a field of the CRD (dropped)")
            else:
                problems += round_trip_losses(value, dumped[key], [*at, key])
        return problems
    if isinstance(given, list) and isinstance(dumped, list) and len(given) == len(dumped):
        return [p for i, (g, d) in enumerate(zip(given, dumped, strict=True))
                for p in round_trip_losses(g, d, [*at, i])]  # fmt: skip
    if given != dumped or type(given) is not type(dumped):
        return [f"{_path(at)}: {given!r} became {dumped!r}"]
    return []


def crd_problems(obj: dict[str, Any]) -> list[str]:
    """Everything wrong with ``obj`` for its CRD (empty: valid)."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    model = MODELS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if model is not None:
        try:
            parsed = model.model_validate(obj)
        except ValidationError as exc:
            return [f"{name}: {_path(list(e['loc']))}: {e['msg']}" for e in exc.errors()]
        dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return [f"{name}: {problem}" for problem in round_trip_losses(obj, dumped)]
    schema = HAND_WRITTEN.get(obj.get("kind", ""))
    if schema is None:
        return [f"{name}: no model or schema for {obj.get('apiVersion')} {obj.get('kind')}"]
    loaded = json.loads(schema.read_text())
    validator = jsonschema.validators.validator_for(loaded)(loaded)
    return [f"{name}: {error.json_path}: {error.message}" for error in validator.iter_errors(obj)]
