"""Authorization as the apiserver's RBAC authorizer decides it, from the Role,
ClusterRole, RoleBinding and ClusterRoleBinding objects stored in the cluster:
allow when some binding that applies to the request's namespace (or the whole
cluster) names the user, one of its groups or its service account, and its
role has a rule matching verb, API group, resource and (when the request names
one) the object. A rule with resourceNames never allows create or list, whose
requests carry no name. Members of system:masters may do anything, and every
authenticated user may read the discovery documents, as the default policy."""

from __future__ import annotations

from typing import Any

from sandbox.localkube.authn import AUTHENTICATED, MASTERS, User
from sandbox.localkube.errors import ApiError, qualified
from sandbox.localkube.resources import by_plural
from sandbox.localkube.store import Store

_NAMELESS_VERBS = frozenset({"create", "list", "watch", "deletecollection"})
DISCOVERY_PATHS = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _rule_allows(
    rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None
) -> bool:
    def has(values: list[str] | None, wanted: str) -> bool:
        return values is not None and ("*" in values or wanted in values)

    if not (has(rule.get("verbs"), verb) and has(rule.get("apiGroups"), group)):
        return False
    if not has(rule.get("resources"), resource):
        return False
    names = rule.get("resourceNames")
    return not names or (name is not None and name in names)


def _path_allowed(rule: dict[str, Any], verb: str, path: str) -> bool:
    if not (set(rule.get("verbs") or ()) & {verb, "*"}):
        return False
    for pattern in rule.get("nonResourceURLs") or ():
        if pattern == path or (pattern.endswith("*") and path.startswith(pattern[:-1])):
            return True
    return False


class Authorizer:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._roles = by_plural("roles")
        self._cluster_roles = by_plural("clusterroles")
        self._bindings = by_plural("rolebindings")
        self._cluster_bindings = by_plural("clusterrolebindings")

    def _rules(self, user: User, namespace: str | None) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for binding in self._store.items(self._cluster_bindings, None):
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                role = self._store.find(self._cluster_roles, None, binding["roleRef"]["name"])
                rules += (role or {}).get("rules") or []
        if namespace:
            for binding in self._store.items(self._bindings, namespace):
                if not any(
                    _subject_matches(s, user, namespace) for s in binding.get("subjects") or []
                ):
                    continue
                ref = binding["roleRef"]
                role = (
                    self._store.find(self._roles, namespace, ref["name"])
                    if ref["kind"] == "Role"
                    else self._store.find(self._cluster_roles, None, ref["name"])
                )
                rules += (role or {}).get("rules") or []
        return rules

    def authorize(  # noqa: PLR0917 - the attributes an RBAC request is made of
        self,
        user: User,
        verb: str,
        group: str,
        resource: str,
        namespace: str | None,
        name: str | None,
    ) -> None:
        if MASTERS in user.groups:
            return
        named = None if verb in _NAMELESS_VERBS else name
        if any(
            _rule_allows(rule, verb, group, resource, named)
            for rule in self._rules(user, namespace)
        ):
            return
        what = f'{qualified(resource, group)} "{named}"' if named else qualified(resource, group)
        scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        details: dict[str, Any] = {"name": named or "", "kind": resource}
        if group:
            details["group"] = group
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" in API '
            f'group "{group}"{scope}',
            **details,
        )

    def authorize_path(self, user: User, verb: str, path: str) -> None:
        if MASTERS in user.groups:
            return
        discovery = any(path == p or path.startswith(p + "/") for p in DISCOVERY_PATHS)
        if discovery and verb == "get" and AUTHENTICATED in user.groups:
            return
        if any(_path_allowed(rule, verb, path) for rule in self._rules(user, None)):
            return
        raise ApiError(
            403, "Forbidden", f'forbidden: User "{user.name}" cannot {verb} path "{path}"'
        )
