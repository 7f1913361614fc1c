"""A FAKE of the Kubernetes API server's strategic merge patch, for the fake API server of
tests/fakes/kube_rollout_api.py. It is written from the Kubernetes documentation, apart from the
code under test (never ``services.rollout.kube.strategic_merge``), so that a wrong merge in the
controller is not confirmed by the fake it talks to.

It does only what the rollout controller's patches need, as the API server does it:

- maps merge key by key, recursively; a ``null`` value deletes the key;
- a list whose field has a patch merge key in the Kubernetes schema merges item by item on that
  key: only ``spec.template.spec.containers`` of a Deployment here (``patchMergeKey: name``,
  ``patchStrategy: merge``); items of the patch whose key is not in the object are appended;
- every other list (and every scalar) is replaced by the patch's.

What it does not know it refuses (:class:`PatchNotSupported`, the fake answers 400) instead of
guessing: ``$patch``/``$retainKeys``/``$setElementOrder`` directives, a merge-keyed item without
its key, and a patch of the other merge-keyed lists of these objects (:data:`NOT_FAKED`: the
server would merge them on their own keys). Not modelled: defaulting, ``resourceVersion``.

    merged = apply_patch("Deployment", deployment, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "app:2"}]}}}})
"""

from __future__ import annotations

import copy
from typing import Any

Path = tuple[str, ...]

#: (kind, path of a list field) -> its patch merge key, from the Kubernetes 1.30 schema.
MERGE_KEYS: dict[tuple[str, Path], str] = {
    ("Deployment", ("spec", "template", "spec", "containers")): "name",
}
ITEM = "[]"  # the path step of a list item
_POD = ("spec", "template", "spec")
_CONTAINER = (*_POD, "containers", ITEM)
#: Lists the API server merges on a key (or as sets) that no rollout patch touches: refused.
NOT_FAKED: frozenset[tuple[str, Path]] = frozenset(
    [(kind, ("metadata", "ownerReferences")) for kind in ("Deployment", "Service", "Ingress")]
    + [(kind, ("metadata", "finalizers")) for kind in ("Deployment", "Service", "Ingress")]
    + [("Deployment", (*_POD, f)) for f in ("initContainers", "volumes", "imagePullSecrets")]
    + [("Deployment", (*_CONTAINER, f)) for f in ("ports", "env", "volumeMounts")]
    + [("Service", ("spec", "ports"))]
)


class PatchNotSupported(ValueError):
    """A patch this fake cannot apply as the API server would."""


def apply_patch(kind: str, obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (a ``kind``) with the strategic merge patch ``patch`` applied; ``obj`` is kept."""
    merged = _merge(kind, (), obj, patch)
    assert isinstance(merged, dict)
    return merged


def _merge(kind: str, path: Path, obj: Any, patch: Any) -> Any:
    if isinstance(patch, dict):
        directives = sorted(key for key in patch if key.startswith("$"))
        if directives:
            raise PatchNotSupported(f"{'.'.join(path) or '.'}: directive {directives} not faked")
        base = obj if isinstance(obj, dict) else {}
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = _merge(kind, (*path, key), base.get(key), value)
        return merged
    if isinstance(patch, list):
        if (kind, path) in NOT_FAKED:
            raise PatchNotSupported(
                f"{'.'.join(path)}: a merge-keyed list this fake does not merge"
            )
        merge_key = MERGE_KEYS.get((kind, path))
        if merge_key is not None:
            return _merge_by_key(kind, path, merge_key, obj if isinstance(obj, list) else [], patch)
    return copy.deepcopy(patch)


def _merge_by_key(
    kind: str, path: Path, merge_key: str, items: list[Any], patch: list[Any]
) -> list[Any]:
    """``items`` patched item by item on ``merge_key``; the patch's new items appended."""
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchNotSupported(f"{'.'.join(path)}: an item without its key {merge_key!r}")
    patches = {item[merge_key]: item for item in patch}
    merged = [
        _merge(kind, (*path, ITEM), item, patches.pop(item.get(merge_key), {})) for item in items
    ]
    return merged + [_merge(kind, (*path, ITEM), {}, item) for item in patches.values()]
