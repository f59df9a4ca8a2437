"""A cluster's objects: one global, monotonically increasing resourceVersion;
create / replace / delete with the apiserver's preconditions (409 on a stale
resourceVersion or an existing name, 404 on a missing object or namespace); a
write that changes nothing keeps the object's resourceVersion; with dry run
every check runs and nothing is stored or counted."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.localkube.errors import already_exists, bad_request, conflict, not_found
from sandbox.localkube.resources import Resource

Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name
# fields a client never sets: the server keeps its own
_SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_of(resource: Resource, namespace: str | None, name: str) -> Key:
    return (resource.group, resource.plural, namespace or "", name)


@dataclass
class Store:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    resource_version: int = 1000
    lock: threading.RLock = field(default_factory=threading.RLock)

    def next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            found = self.objects.get(key_of(resource, namespace, name))
            if found is None:
                raise not_found(resource.plural, resource.group, name)
            return copy.deepcopy(found)

    def find(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get(key_of(resource, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def items(self, resource: Resource, namespace: str | None) -> Iterator[dict[str, Any]]:
        """Copies, ordered by namespace and name (as etcd's key order)."""
        with self.lock:
            for (group, plural, ns, _), obj in sorted(self.objects.items()):
                if (group, plural) == (resource.group, resource.plural) and namespace in (None, ns):
                    yield copy.deepcopy(obj)

    def create(self, resource: Resource, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        metadata = obj["metadata"]
        if metadata.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        with self.lock:
            key = key_of(resource, metadata.get("namespace"), metadata["name"])
            if key in self.objects:
                raise already_exists(resource.plural, resource.group, metadata["name"])
            for server_field in _SERVER_METADATA:
                metadata.pop(server_field, None)
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now()
            if not dry_run:
                metadata["resourceVersion"] = self.next_version()
                self.objects[key] = copy.deepcopy(obj)
            return obj

    def current_for_write(
        self, resource: Resource, namespace: str | None, name: str, resource_version: str | None
    ) -> dict[str, Any]:
        """The stored object a write applies to: 404 if absent, 409 if the writer
        names a resourceVersion that is no longer current (optimistic locking)."""
        current = self.get(resource, namespace, name)
        if resource_version and resource_version != current["metadata"]["resourceVersion"]:
            raise conflict(resource.plural, resource.group, name)
        return current

    def replace(
        self, resource: Resource, current: dict[str, Any], obj: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        """Store `obj` in place of `current` (read under the caller's lock)."""
        metadata = obj["metadata"]
        for server_field in _SERVER_METADATA:
            if server_field in current["metadata"]:
                metadata[server_field] = current["metadata"][server_field]
            else:
                metadata.pop(server_field, None)
        if obj == current:
            return obj  # a no-op write is not a new version
        key = key_of(resource, metadata.get("namespace"), metadata["name"])
        if not dry_run:
            metadata["resourceVersion"] = self.next_version()
            self.objects[key] = copy.deepcopy(obj)
        return obj

    def delete(
        self, resource: Resource, namespace: str | None, name: str, *, dry_run: bool
    ) -> dict[str, Any]:
        with self.lock:
            current = self.get(resource, namespace, name)
            if not dry_run:
                del self.objects[key_of(resource, namespace, name)]
                if resource.plural == "namespaces":  # its contents go with it
                    for key in [k for k in self.objects if k[2] == name and k[1] != "namespaces"]:
                        del self.objects[key]
                self.next_version()
            return current
