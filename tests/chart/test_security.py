"""Security in the chart: AUTH_* in every service's ConfigMap, the API key pepper from a Secret,
the JWKS egress only in jwt mode, the restricted Namespace, the ExternalSecrets, least privilege."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.chart.conftest import Obj, by_kind, component, render, scenario_values

SCHEMAS = Path(__file__).parent / "schemas"
JWT = {
    "auth": {
        "mode": "jwt",
        "jwksUrl": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json",
        "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
        "audience": "5p1abc",
        "scopePrefix": "modelfleet/",
    }
}


def _service_configmaps(objects: list[Obj]) -> list[Obj]:
    return [o for o in by_kind(objects, "ConfigMap") if "DATABASE_URL" in (o.get("data") or {})]


def _service_containers(objects: list[Obj]) -> list[tuple[str, Obj]]:
    out = []
    for deployment in by_kind(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["name"] != "triton":
                out.append((component(deployment), container))
    return out


def test_auth_settings_in_every_service_configmap(scenario: str, objects: list[Obj]) -> None:
    configmaps = _service_configmaps(objects)
    assert configmaps
    mode = scenario_values(scenario).get("auth", {}).get("mode", "none")  # eks: jwt (Cognito)
    for cm in configmaps:
        data = cm["data"]
        assert data["AUTH_MODE"] == mode
        assert {"AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_SCOPE_PREFIX"} <= set(data)
        assert not any("PEPPER" in key or "PASSWORD" in key for key in data)  # secrets never here


def test_pepper_comes_from_an_optional_secret(objects: list[Obj]) -> None:
    containers = _service_containers(objects)
    assert containers
    for name, container in containers:
        env = {e["name"]: e for e in container.get("env", [])}
        ref = env["AUTH_API_KEY_PEPPER"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "modelfleet-auth", "key": "api-key-pepper", "optional": True}, name


def test_jwt_mode_renders_settings_and_jwks_egress() -> None:
    objects = render(JWT)
    for cm in _service_configmaps(objects):
        assert cm["data"]["AUTH_MODE"] == "jwt"
        assert cm["data"]["AUTH_ISSUER"] == JWT["auth"]["issuer"]
        assert cm["data"]["AUTH_SCOPE_PREFIX"] == "modelfleet/"
    services = {component(cm) for cm in _service_configmaps(objects)}

    def egress(rendered: list[Obj]) -> dict[str, list[Any]]:
        return {
            component(p): p["spec"].get("egress", [])
            for p in by_kind(rendered, "NetworkPolicy")
            if p["metadata"]["labels"].get("app.kubernetes.io/component") in services
        }

    with_jwt, without = egress(objects), egress(render({}))
    assert set(with_jwt) == services
    for name in services:  # exactly one rule more in jwt mode: HTTPS to the provider
        assert with_jwt[name] == [*without[name], {"ports": [{"port": 443, "protocol": "TCP"}]}]


@pytest.mark.parametrize(
    "auth",
    [
        {"mode": "jwt", "jwksUrl": "http://idp.example/jwks", "issuer": "x", "audience": "y"},
        {"mode": "jwt", "jwksUrl": "https://idp.example/jwks", "issuer": "", "audience": "y"},
        {"mode": "basic"},
    ],
)
def test_schema_refuses_incomplete_jwt_settings(auth: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="(?i)schema|jwksUrl|issuer|mode"):
        render({"auth": auth})


def test_namespace_with_restricted_pod_security_only_when_asked(objects: list[Obj]) -> None:
    assert by_kind(objects, "Namespace") == []
    (namespace,) = by_kind(render({"namespace": {"create": True}}), "Namespace")
    kubernetes_validate.validate(namespace, "1.30", strict=True)
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_external_secrets_fill_the_secrets_the_chart_reads(objects: list[Obj]) -> None:
    assert by_kind(objects, "ExternalSecret") == []
    rendered = render({"externalSecrets": {"enabled": True}})
    secrets = by_kind(rendered, "ExternalSecret")
    schema = json.loads((SCHEMAS / "externalsecret.schema.json").read_text())
    for obj in secrets:
        jsonschema.validate(obj, schema)
    targets = {o["spec"]["target"]["name"]: o["spec"]["data"][0]["secretKey"] for o in secrets}
    # The database one fills the Secret the chart would otherwise generate.
    assert targets == {"mf-modelfleet-database": "password", "modelfleet-auth": "api-key-pepper"}
    assert by_kind(rendered, "Secret") == []
    store = {o["spec"]["secretStoreRef"]["name"] for o in secrets}
    assert store == {"aws-secrets-manager"}


def test_eks_values_turn_on_jwt_and_irsa() -> None:
    values = scenario_values("eks")
    assert values["auth"]["mode"] == "jwt"
    objects = render(values)
    accounts = by_kind(objects, "ServiceAccount")
    annotated = [
        a
        for a in accounts
        if "eks.amazonaws.com/role-arn" in (a["metadata"].get("annotations") or {})
    ]
    assert annotated  # IRSA: the S3 readers carry a role
    for account in accounts:
        assert account.get("automountServiceAccountToken") is False
