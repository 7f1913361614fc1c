"""Which Kubernetes API calls a package's code makes, found statically (``ast``), as the RBAC
permissions they need: ``(group, resource, subresource, verb)``.

The calls are the methods of the official ``kubernetes`` client's API classes (``BatchV1Api``,
``CoreV1Api``, ``AppsV1Api``, ``NetworkingV1Api``, ``CustomObjectsApi``, ...) used on an
instance the module builds (``self._batch = kube.BatchV1Api(api)``, ``apps = AppsV1Api(api)``,
or inline). Each method's HTTP method and path come from the client itself: its generated
``_<method>_serialize`` hands both to ``api_client.param_serialize``, which a recorder catches.
The path and HTTP method then give the permission as the API server's authorizer sees it
(https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb,
docs/decisions.md). ``CustomObjectsApi`` calls take the group and plural from the call's
string literals.

Anything that would hide a call from this reading is an error, never skipped: ``getattr`` on an
API instance, an instance passed around as a value, a method that does not exist, a custom
object call whose group or plural is not a literal.

    calls = kube_calls(ROOT / "services" / "classifier")
    {c.permission for c in calls}   # {("batch", "jobs", "", "create"), ...}
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kubernetes import client as kube

Permission = tuple[str, str, str, str]  # (apiGroup, resource, subresource, verb)

#: HTTP method -> verb, for a path naming one object / a collection (the authorizer's table).
_VERBS = {
    "GET": ("get", "list"),
    "POST": ("create", "create"),
    "PUT": ("update", "update"),
    "PATCH": ("patch", "patch"),
    "DELETE": ("delete", "deletecollection"),
}
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?P<watch>/watch)?(?:/namespaces/\{namespace\})?/(?P<rest>.+)$"
)


class UnreadableCall(ValueError):
    """A use of the client this reading cannot turn into permissions (the message says where)."""


@dataclass(frozen=True)
class KubeCall:
    """One API method used in the code, and the permission it needs."""

    where: str  # path:line
    api: str  # the client class, e.g. BatchV1Api
    method: str  # e.g. read_namespaced_job_status
    http: str  # e.g. GET /apis/batch/v1/namespaces/{namespace}/jobs/{name}/status
    permission: Permission


@cache
def api_classes() -> dict[str, type]:
    """The client's API classes by name (every ``kubernetes.client.*Api`` but ``ApiClient``)."""
    classes = {name: getattr(kube, name) for name in dir(kube) if name.endswith("Api")}
    return {
        name: cls
        for name, cls in classes.items()
        if inspect.isclass(cls) and "api_client" in inspect.signature(cls.__init__).parameters
    }


class _Captured(Exception):
    def __init__(self, method: str, path: str) -> None:
        super().__init__(method, path)
        self.method, self.path = method, path


class _Recorder:
    """Stands in for ``ApiClient``: catches what a generated method would request."""

    def select_header_accept(self, accepts: list[str]) -> str | None:
        return None

    def select_header_content_type(self, content_types: list[str]) -> str | None:
        return None

    def param_serialize(self, *, method: str, resource_path: str, **_: Any) -> Any:
        raise _Captured(method, resource_path)


@cache
def http_of(api: str, method: str) -> tuple[str, str]:
    """(HTTP method, path template) of ``api.method``, as the client itself builds it."""
    cls = api_classes()[api]
    serialize = getattr(cls, f"_{method}_serialize", None)
    if serialize is None:
        raise UnreadableCall(f"kubernetes client {api}.{method}: no _{method}_serialize")
    params = [p for p in inspect.signature(serialize).parameters if p != "self"]
    try:
        serialize(cls(api_client=_Recorder()), **dict.fromkeys(params))
    except _Captured as captured:
        return captured.method, captured.path
    raise UnreadableCall(f"kubernetes client {api}.{method} made no request")


def permission_of(http_method: str, path: str) -> Permission:
    """The RBAC permission a request needs: ``GET /apis/batch/v1/namespaces/{namespace}/jobs/
    {name}/status`` -> ``("batch", "jobs", "status", "get")``."""
    match = _PATH.match(path)
    if match is None:
        raise UnreadableCall(f"not a resource path: {path}")
    group = "" if match["core"] else match["group"]
    resource, *rest = match["rest"].split("/")
    named = bool(rest)
    subresource = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2 or (named and not rest[0].startswith("{")):
        raise UnreadableCall(f"not a resource path: {path}")
    verb = "watch" if match["watch"] else _VERBS[http_method][0 if named else 1]
    return group, resource, subresource, verb


def _constant_args(call: ast.Call | None, api: str, method: str) -> dict[str, str]:
    """The call's string-literal arguments by parameter name."""
    if call is None:
        return {}
    names = [p for p in inspect.signature(getattr(api_classes()[api], method)).parameters]
    values = {name: arg for name, arg in zip(names[1:], call.args, strict=False)}
    values |= {k.arg: k.value for k in call.keywords if k.arg is not None}
    constants = {k: v for k, v in values.items() if isinstance(v, ast.Constant)}
    return {k: v.value for k, v in constants.items() if isinstance(v.value, (str, bool))}


def _api_of(node: ast.expr, classes: dict[str, type]) -> str | None:
    """``kube.BatchV1Api(...)`` / ``BatchV1Api(...)`` -> ``"BatchV1Api"``."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name if name in classes else None


def _call_of(node: ast.Attribute, parent: ast.AST | None, api: str, where: str) -> KubeCall:
    """The call ``node`` (``<instance>.<method>``, called or not) and its permission."""
    classes = api_classes()
    if node.attr.startswith("_") or not callable(getattr(classes[api], node.attr, None)):
        raise UnreadableCall(f"{where}: {api} has no API method {node.attr!r}")
    call = parent if isinstance(parent, ast.Call) and parent.func is node else None
    http_method, template = http_of(api, node.attr)
    args = _constant_args(call, api, node.attr)
    if api == "CustomObjectsApi" and not {"group", "plural"} <= args.keys():
        raise UnreadableCall(f"{where}: {node.attr} without a literal group and plural")
    filled = re.sub(r"\{(group|version|plural)\}", lambda m: str(args.get(m[1], m[0])), template)
    group, resource, sub, verb = permission_of(http_method, filled)
    if verb == "list" and args.get("watch") is True:
        verb = "watch"
    permission = (group, resource, sub, verb)
    return KubeCall(where, api, node.attr, f"{http_method} {template}", permission)


def _module_calls(path: Path, root: Path) -> list[KubeCall]:
    tree = ast.parse(path.read_text(), filename=str(path))
    classes = api_classes()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    instances: dict[str, str] = {}  # "self._batch" -> "BatchV1Api"
    targets: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            api = _api_of(node.value, classes)
            if api is not None:
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    instances[ast.unparse(target)] = api
                    targets.add(target)
    calls: list[KubeCall] = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        parent = parents.get(node)
        if isinstance(node, ast.Attribute):
            api = _api_of(node.value, classes) or instances.get(ast.unparse(node.value))
            if api is not None:
                calls.append(_call_of(node, parent, api, where))
        instance = _api_of(node, classes) if isinstance(node, ast.Call) else None
        if isinstance(node, (ast.Name, ast.Attribute)):
            instance = instances.get(ast.unparse(node))
        used_for_a_method = isinstance(parent, ast.Attribute) and parent.value is node
        assigned = node in targets or (
            isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node
        )
        if instance is not None and not used_for_a_method and not assigned:
            raise UnreadableCall(
                f"{where}: a {instance} instance ({ast.unparse(node)}) is used as a value"
                " (getattr, a dict, an argument): call its methods directly"
            )
    return calls


def kube_calls(package: Path, *, root: Path | None = None) -> list[KubeCall]:
    """Every Kubernetes API method the modules under ``package`` use, with its permission."""
    root = root or package.parent
    return [call for path in sorted(package.rglob("*.py")) for call in _module_calls(path, root)]
