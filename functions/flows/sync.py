"""Declarations changed (DynamoDB stream) -> status, and a reconcile request
for each cluster the change touches.

The stream does not change clusters itself: every change to a cluster's
associations goes through that cluster's FIFO message group (one writer per
cluster). Here each record gets its declaration status (Accepted, Conflict or
Invalid with field, value and rule) and the touched clusters are queued with
the declaration's id, so the reconcile reads it from the table itself rather
than from an index that may lag. A record fails (and the event source retries
it) only when the queue refused the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core import records
from functions.core.fleet import DesiredState, expand, targets_of
from functions.core.models import (
    Cluster,
    Declaration,
    DeclarationState,
    DeclarationStatus,
    unmatched,
)
from functions.core.places import ClusterRef, Unreachable, named_by
from functions.dal.repository import DeclarationSet, parse_declaration
from functions.events import ClusterMessage
from functions.flows.discovery import Discovery, named_clusters, places, refresh_cluster
from functions.flows.reconcile import migrate_table, request_reconcile
from functions.flows.services import Services
from functions.observability import logger, metrics


@dataclass
class SyncBatch:
    svc: Services
    _declarations: DeclarationSet | None = None
    _clusters: dict[ClusterRef, Cluster] | None = None

    # shared reads --------------------------------------------------------------
    @property
    def declarations(self) -> DeclarationSet:
        if self._declarations is None:
            self._declarations = self.svc.repo.load_declarations()
        return self._declarations

    @property
    def clusters(self) -> dict[ClusterRef, Cluster]:
        if self._clusters is None:
            migrate_table(self.svc)
            self._clusters = {c.ref: c for c in self.svc.repo.list_clusters() if c.enrolled}
            self._enroll_named()
        return self._clusters

    def desired_for(self, declaration: Declaration) -> DesiredState:
        """Conflicts only arise between declarations of one namespace and service
        account: expanding those alone is exact for them, and cheap per record."""
        same_key = [
            d
            for d in self.declarations.valid
            if (d.namespace, d.service_account)
            == (declaration.namespace, declaration.service_account)
        ]
        return expand(
            same_key,
            self.clusters.values(),
            managed_by=self.svc.settings.owner,
            scope=self.svc.settings.scope,
        )

    def _enroll_named(self) -> None:
        """A declaration naming a cluster not enrolled yet enrolls it, if it exists."""
        if self._clusters is None:
            return
        named = named_clusters(self.svc, self.declarations.valid)
        missing = unmatched(named, self._clusters.values())
        if not missing:
            return  # the usual case, run for every record: no table listing
        recorded = self.svc.repo.list_clusters()
        known = {c.ref: c for c in recorded}
        everywhere = places(self.svc, recorded)
        for selector in missing:
            for ref in named_by(selector, everywhere):
                try:
                    refreshed = refresh_cluster(self.svc, ref, named, known.get(ref), Discovery())
                except Unreachable as error:
                    logger.warning(
                        "cannot enrol a named cluster", cluster=str(ref), reason=error.reason
                    )
                    continue
                if refreshed is not None and refreshed.enrolled:
                    self._clusters[ref] = refreshed

    def _now_holds(self, declaration_id: str, current: Declaration | list[str] | None) -> None:
        """The record as this stream record has it (the index may not show it yet)."""
        fresh = DeclarationSet()
        if isinstance(current, Declaration):
            fresh.valid.append(current)
        elif isinstance(current, list):
            fresh.invalid[declaration_id] = current
        self._declarations = self.declarations.replacing([declaration_id], fresh)
        if self._clusters is not None:
            self._enroll_named()

    # one record --------------------------------------------------------------------
    def handle(
        self, keys: Mapping[str, Any], new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
    ) -> None:
        if not records.is_declaration(keys):
            return  # status, cluster and finding items also flow through the stream
        declaration_id = records.declaration_id_of(keys) or "?"
        parsed_new = parse_declaration(dict(new)) if new else None
        parsed_old = parse_declaration(dict(old)) if old else None
        # who it conflicted with as the old image had it (the table may be newer)
        self._now_holds(declaration_id, parsed_old)
        peers_before = self._conflict_peers(parsed_old)
        self._now_holds(declaration_id, parsed_new)
        if isinstance(parsed_new, list):
            # held: an invalid record keeps what it had, nothing to reconcile
            self._invalid(declaration_id, parsed_new)
            self._restate(peers_before)
            return
        touched = self._touched(parsed_new, parsed_old)
        if parsed_new is None:
            self.svc.repo.delete_declaration_status(declaration_id)
        else:
            self._accepted(parsed_new)
        messages = [
            ClusterMessage(
                cluster=str(ref),
                reason=f"declaration {declaration_id}",
                declarations=(declaration_id,),
            )
            for ref in touched
        ]
        request_reconcile(self.svc, messages)
        self._restate(peers_before | self._conflict_peers(parsed_new))

    def _touched(
        self, new: Declaration | None, old: Declaration | list[str] | None
    ) -> list[ClusterRef]:
        if isinstance(old, list):
            # what an invalid record held is unknown: look at every cluster once
            return sorted(self.clusters)
        wanted = [d for d in (new, old) if isinstance(d, Declaration)]
        return sorted({c.ref for d in wanted for c in targets_of(d, self.clusters.values())})

    def _conflict_peers(self, declaration: Declaration | list[str] | None) -> set[str]:
        """The declarations in conflict with this one on some cluster."""
        if not isinstance(declaration, Declaration):
            return set()
        return {
            other
            for conflict in self.desired_for(declaration).conflicts
            if declaration.id in conflict.declaration_ids
            for other in conflict.declaration_ids
            if other != declaration.id
        }

    def _restate(self, declaration_ids: set[str]) -> None:
        """A conflict begins or ends for the other side too: its state follows."""
        by_id = {d.id: d for d in self.declarations.valid}
        for other in sorted(declaration_ids):
            if other in by_id:
                self._accepted(by_id[other])

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
        desired = self.desired_for(declaration)
        conflicts = [c.message for c in desired.conflicts if declaration.id in c.declaration_ids]
        warnings = conflicts + [
            r.reason for r in desired.rejections if r.declaration_id == declaration.id
        ]
        self.svc.repo.save_declaration_status(
            DeclarationStatus(
                declaration_id=declaration.id,
                state=DeclarationState.CONFLICT if conflicts else DeclarationState.ACCEPTED,
                warnings=tuple(sorted(set(warnings))),
                observed_at=self.svc.clock(),
            )
        )
