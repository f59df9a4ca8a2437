"""Per-cluster association map pushed into the cluster's ConfigMap.

Two keys: `WEBHOOK_KEY` is exactly the container-credentials config file the
pod identity webhook watches (`--watch-container-credentials-config`);
`FULL_MAP_KEY` adds what the node agent's self-managed backend needs.
Same associations in -> same bytes and hash out, whatever the input order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from functions.core.models import AssociationKey, AssociationSpec, Cluster

WEBHOOK_KEY = "identities.json"
FULL_MAP_KEY = "associations.json"
MAP_SCHEMA_VERSION = 1


class HasKeyAndSpec(Protocol):
    @property
    def key(self) -> AssociationKey: ...

    @property
    def spec(self) -> AssociationSpec: ...


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True, slots=True)
class AssociationMap:
    cluster: str
    cluster_arn: str
    webhook_config: str
    associations: tuple[dict[str, Any], ...]
    sha256: str

    def full_map(self, generation: int) -> str:
        return canonical_json(
            {
                "schemaVersion": MAP_SCHEMA_VERSION,
                "cluster": self.cluster,
                "clusterArn": self.cluster_arn,
                "generation": generation,
                "sha256": self.sha256,
                "associations": list(self.associations),
            }
        )

    def configmap_data(self, generation: int) -> dict[str, str]:
        return {WEBHOOK_KEY: self.webhook_config, FULL_MAP_KEY: self.full_map(generation)}


def _content_hash(cluster_arn: str, entries: list[dict[str, Any]]) -> str:
    content = {
        "clusterArn": cluster_arn,
        "associations": entries,
        "schemaVersion": MAP_SCHEMA_VERSION,
    }
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _entry(key: AssociationKey, spec: AssociationSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "namespace": key.namespace,
        "serviceAccount": key.service_account,
        "roleArn": spec.role_arn,
        "disableSessionTags": spec.disable_session_tags,
    }
    if spec.target_role_arn:
        entry["targetRoleArn"] = spec.target_role_arn
    if spec.policy:
        entry["policy"] = spec.policy
    return entry


def build_association_map(
    cluster: Cluster, associations: Iterable[HasKeyAndSpec]
) -> AssociationMap:
    entries = sorted(
        (_entry(a.key, a.spec) for a in associations if a.key.cluster == cluster.ref),
        key=lambda e: (e["namespace"], e["serviceAccount"]),
    )
    webhook_config = canonical_json(
        {
            "identities": [
                {"namespace": e["namespace"], "serviceAccount": e["serviceAccount"]}
                for e in entries
            ]
        }
    )
    digest = _content_hash(cluster.arn, entries)
    return AssociationMap(cluster.name, cluster.arn, webhook_config, tuple(entries), digest)


def parse_full_map(text: str) -> dict[str, Any]:
    """Read a pushed full map back (node agent, CLI), checking its hash."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("schemaVersion") != MAP_SCHEMA_VERSION:
        raise ValueError(
            f"unsupported association map (schemaVersion {MAP_SCHEMA_VERSION} expected)"
        )
    digest = _content_hash(document["clusterArn"], document["associations"])
    if digest != document.get("sha256"):
        raise ValueError("association map hash does not match its content")
    return document
