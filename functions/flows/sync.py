"""Declarations changed (DynamoDB stream) -> bring the touched clusters in line.

One `SyncBatch` serves one stream batch: declarations and clusters are read
once, each touched cluster is synced once, and a record fails (and is retried
by the event source) only when a cluster it touches failed. A record whose
body is invalid is answered with an Invalid status naming field, value and
rule, and is not retried: fixing the record is the only cure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core import records
from functions.core.fleet import DesiredState, expand, targets_of
from functions.core.models import Cluster, Declaration, DeclarationState, DeclarationStatus
from functions.dal.repository import DeclarationSet, parse_declaration
from functions.flows.cluster_sync import ClusterResult, sync_cluster
from functions.flows.discovery import Discovery, refresh_cluster
from functions.flows.services import Services
from functions.observability import logger, metrics


class ClusterSyncFailed(Exception):
    """A cluster touched by the record could not be brought in line (retried)."""


@dataclass
class SyncBatch:
    svc: Services
    _declarations: DeclarationSet | None = None
    _clusters: dict[str, Cluster] | None = None
    _desired: DesiredState | None = None
    results: dict[str, ClusterResult] = field(default_factory=dict)
    pushes: set[str] = field(default_factory=set)

    # shared reads --------------------------------------------------------------
    @property
    def declarations(self) -> DeclarationSet:
        if self._declarations is None:
            self._declarations = self.svc.repo.load_declarations()
        return self._declarations

    @property
    def clusters(self) -> dict[str, Cluster]:
        if self._clusters is None:
            self._clusters = {c.name: c for c in self.svc.repo.list_clusters() if c.enrolled}
            self._enroll_named()
        return self._clusters

    @property
    def desired(self) -> DesiredState:
        if self._desired is None:
            self._desired = expand(
                self.declarations.valid, self.clusters.values(), managed_by=self.svc.settings.owner
            )
        return self._desired

    def _enroll_named(self) -> None:
        """A declaration naming a cluster not enrolled yet enrolls it, if it exists."""
        if self._clusters is None:
            return
        named = {n for d in self.declarations.valid for n in d.target.clusters}
        known = {c.name: c for c in self.svc.repo.list_clusters()}
        for name in sorted(named - set(self._clusters)):
            refreshed = refresh_cluster(self.svc, name, named, known.get(name), Discovery())
            if refreshed is not None and refreshed.enrolled:
                self._clusters[name] = refreshed

    # one record --------------------------------------------------------------------
    def handle(
        self, keys: Mapping[str, Any], new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
    ) -> None:
        if not records.is_declaration(keys):
            return  # status, cluster and finding items also flow through the stream
        declaration_id = records.declaration_id_of(keys) or "?"
        parsed_new = parse_declaration(dict(new)) if new else None
        parsed_old = parse_declaration(dict(old)) if old else None
        if isinstance(parsed_new, list):
            self._invalid(declaration_id, parsed_new)
            return
        touched = self._touched(parsed_new, parsed_old)
        failures = [name for name in touched if not self._sync(name).ok]
        if parsed_new is None:
            self.svc.repo.delete_declaration_status(declaration_id)
        else:
            self._accepted(parsed_new)
        if failures:
            raise ClusterSyncFailed(
                f"declaration {declaration_id}: clusters {', '.join(failures)} not in sync: "
                + "; ".join(
                    f"{key}: {reason}"
                    for name in failures
                    for key, reason in self.results[name].failed.items()
                )
            )

    def _touched(self, new: Declaration | None, old: Declaration | list[str] | None) -> list[str]:
        if isinstance(old, list):
            # what an invalid record held is unknown: look at every cluster once
            return sorted(self.clusters)
        wanted = [d for d in (new, old) if isinstance(d, Declaration)]
        return sorted({c.name for d in wanted for c in targets_of(d, self.clusters.values())})

    def _sync(self, name: str) -> ClusterResult:
        if name not in self.results:
            result = sync_cluster(self.svc, self.clusters[name], self.declarations, self.desired)
            self.results[name] = result
            if result.push_needed and name not in self.pushes:
                self.enqueue_push(name, "declaration changed")
        return self.results[name]

    def enqueue_push(self, cluster: str, reason: str) -> None:
        queue = self.svc.settings.push_queue_url
        if queue:
            self.svc.messenger.enqueue_per_cluster(queue, [{"cluster": cluster, "reason": reason}])
        self.pushes.add(cluster)

    # declaration status ---------------------------------------------------------------
    def _invalid(self, declaration_id: str, problems: list[str]) -> None:
        logger.warning("invalid declaration", declaration=declaration_id, problems=problems)
        metrics.add_metric(name="InvalidDeclarations", unit="Count", value=1)
        self.svc.repo.save_declaration_status(
            DeclarationStatus(
                declaration_id=declaration_id,
                state=DeclarationState.INVALID,
                errors=tuple(problems),
                observed_at=self.svc.clock(),
            )
        )

    def _accepted(self, declaration: Declaration) -> None:
        warnings = [
            c.message for c in self.desired.conflicts if declaration.id in c.declaration_ids
        ]
        warnings += [
            r.reason for r in self.desired.rejections if r.declaration_id == declaration.id
        ]
        self.svc.repo.save_declaration_status(
            DeclarationStatus(
                declaration_id=declaration.id,
                state=DeclarationState.ACCEPTED,
                warnings=tuple(sorted(set(warnings))),
                observed_at=self.svc.clock(),
            )
        )
