"""Planner: desired vs actual associations of one cluster -> minimal operations.

podid touches only what it owns: associations whose ids it recorded when it
created them (a tag proves nothing: anyone with eks:TagResource can set it).
An association made outside podid on a declared key is left alone and
reported (`foreign`), unless its declaration opts into adopting it.
Deletes run first so a cluster near the EKS quota has room for the creates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    DesiredAssociation,
)

_SPEC_FIELDS = ("role_arn", "target_role_arn", "disable_session_tags", "policy", "tags")


class OpKind(StrEnum):
    DELETE = "delete"
    UPDATE = "update"
    CREATE = "create"


_ORDER = {OpKind.DELETE: 0, OpKind.UPDATE: 1, OpKind.CREATE: 2}


@dataclass(frozen=True, slots=True)
class Operation:
    kind: OpKind
    key: AssociationKey
    spec: AssociationSpec | None = None  # desired spec (create / update)
    current: AssociationSpec | None = None  # actual spec (update / delete)
    association_id: str | None = None
    declaration_id: str | None = None
    changes: tuple[str, ...] = ()

    @property
    def tags_to_set(self) -> dict[str, str]:
        current = self.current.tags if self.current else {}
        wanted = self.spec.tags if self.spec else {}
        return {k: v for k, v in wanted.items() if current.get(k) != v}

    @property
    def tags_to_remove(self) -> list[str]:
        current = self.current.tags if self.current else {}
        wanted = self.spec.tags if self.spec else {}
        return sorted(set(current) - set(wanted))

    @property
    def updates_association(self) -> bool:
        """True when UpdatePodIdentityAssociation is needed, not only tagging."""
        return any(change != "tags" for change in self.changes)

    def describe(self) -> str:
        if self.kind is OpKind.UPDATE:
            return f"update {self.key} ({', '.join(self.changes)})"
        return f"{self.kind.value} {self.key}"


def spec_changes(current: AssociationSpec, wanted: AssociationSpec) -> tuple[str, ...]:
    return tuple(name for name in _SPEC_FIELDS if getattr(current, name) != getattr(wanted, name))


def plan(
    desired: Mapping[AssociationKey, DesiredAssociation],
    actual: Mapping[AssociationKey, ActualAssociation],
    *,
    owned: Iterable[str],
    adoptable: Iterable[AssociationKey] = (),
    hold: Iterable[AssociationKey] = (),
) -> list[Operation]:
    """`owned`: association ids podid recorded as its own; `adoptable`: declared
    keys whose declaration asks to adopt what is there."""
    held, mine, adopt = frozenset(hold), frozenset(owned), frozenset(adoptable)
    operations: list[Operation] = []
    for key, existing in actual.items():
        if key in held or key in desired or existing.association_id not in mine:
            continue
        operations.append(
            Operation(
                OpKind.DELETE, key, current=existing.spec, association_id=existing.association_id
            )
        )
    for key, wanted in desired.items():
        if key in held:
            continue
        found = actual.get(key)
        if found is None:
            operations.append(
                Operation(
                    OpKind.CREATE,
                    key,
                    spec=wanted.spec,
                    declaration_id=wanted.declaration_id,
                    changes=_SPEC_FIELDS,
                )
            )
            continue
        if found.association_id not in mine and key not in adopt:
            continue  # someone else's: reported by `foreign`, never changed
        changes = spec_changes(found.spec, wanted.spec)
        if changes:
            operations.append(
                Operation(
                    OpKind.UPDATE,
                    key,
                    spec=wanted.spec,
                    current=found.spec,
                    association_id=found.association_id,
                    declaration_id=wanted.declaration_id,
                    changes=changes,
                )
            )
    operations.sort(key=lambda op: (_ORDER[op.kind], op.key))
    return operations


def foreign(
    desired: Mapping[AssociationKey, DesiredAssociation],
    actual: Mapping[AssociationKey, ActualAssociation],
    *,
    owned: Iterable[str],
    adoptable: Iterable[AssociationKey] = (),
) -> dict[AssociationKey, str]:
    """Declared keys held by an association podid did not create (key -> its id)."""
    mine, adopt = frozenset(owned), frozenset(adoptable)
    return {
        key: found.association_id
        for key in desired
        if (found := actual.get(key)) is not None
        and found.association_id not in mine
        and key not in adopt
    }


def apply_plan(
    actual: Mapping[AssociationKey, ActualAssociation],
    operations: Iterable[Operation],
    *,
    new_id: str = "planned",
) -> dict[AssociationKey, ActualAssociation]:
    """What the actual state becomes once the operations succeed (dry runs, tests)."""
    result = dict(actual)
    for op in operations:
        if op.kind is OpKind.DELETE:
            del result[op.key]
        elif op.spec is None:
            raise ValueError(f"{op.describe()} carries no spec")
        elif op.kind is OpKind.UPDATE:
            result[op.key] = result[op.key].model_copy(update={"spec": op.spec})
        else:
            result[op.key] = ActualAssociation(
                key=op.key, association_id=f"{new_id}-{len(result)}", spec=op.spec
            )
    return result
