"""values.schema.json: a wrong values file fails at install with a clear message."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from tests.chart.conftest import CHART, render

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"default": {"replicas": "two"}}, "/default/replicas"),
    ({"unknownKey": True}, "unknownKey"),
    (
        {"components": {"ride-duration": {"enabled": True, "kind": "service", "colour": 1}}},
        "colour",
    ),
    ({"components": {"x": {"enabled": True, "kind": "lambda"}}}, "/components/x/kind"),
    ({"components": {"y": {"enabled": True, "kind": "service"}}}, "command"),
    (
        {"postgresql": {"enabled": False, "auth": {"existingSecret": "", "secretKey": "pw"}}},
        "existingSecret",
    ),
    ({"postgresql": {"password": "hunter2"}}, "password"),
    ({"image": {"repository": "r", "tag": "", "pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"default": {"resources": {"requests": {"cpu": "lots"}}}}, "/default/resources/requests/cpu"),
    ({"modelRepository": {"source": "s3"}}, "/modelRepository/s3/uri"),
    ({"modelRepository": {"source": "ftp"}}, "/modelRepository/source"),
]


def _schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


@pytest.mark.parametrize(("values", "where"), BAD_VALUES)
def test_helm_rejects_bad_values_with_a_clear_message(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render(values)
    assert where in str(caught.value)


def test_schema_is_closed_everywhere() -> None:
    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, path
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}/{i}")

    walk(_schema(), "#")


def test_values_yaml_matches_the_schema() -> None:
    # The scenarios are checked by Helm itself in every render of the other tests.
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(defaults, _schema())
