"""The multi-account benchmark's figures: what one phase called where, and the
tables printed side by side (AssumeRole per place, EKS calls per account, the
summary with pass 2 / pass 1 ratios, every operation by phase)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.call_counter import CallCounter
from benchmarks.fleet_world import Fleet
from functions.core.places import Place

EKS_OPERATIONS = {  # column -> EKS operation
    "ListClusters": "eks:ListClusters",
    "DescribeCluster": "eks:DescribeCluster",
    "ListAssoc": "eks:ListPodIdentityAssociations",
    "DescribeAssoc": "eks:DescribePodIdentityAssociation",
    "CreateAssoc": "eks:CreatePodIdentityAssociation",
}


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    calls: dict[Place, Counter[str]] = field(default_factory=dict)
    assumed: Counter[Place] = field(default_factory=Counter)  # SpokeAccess.assume_calls
    response: Any = None

    def total(self, service: str | None = None) -> int:
        return sum(
            n
            for c in self.calls.values()
            for k, n in c.items()
            if service is None or k.startswith(service + ":")
        )

    def operations(self) -> Counter[str]:
        merged: Counter[str] = Counter()
        for calls in self.calls.values():
            merged.update(calls)
        return merged

    def eks_of(self, account: str) -> Counter[str]:
        merged: Counter[str] = Counter()
        for place, calls in self.calls.items():
            if place.account == account:
                merged.update({k: n for k, n in calls.items() if k.startswith("eks:")})
        return merged

    def eks_writes(self) -> int:
        eks = Counter({k: n for k, n in self.operations().items() if k.startswith("eks:")})
        return sum(CallCounter.writes(eks).values())


def print_assume_roles(fleet: Fleet, phases: list[Phase]) -> None:
    names = "/".join(p.name for p in phases)
    print(f"AssumeRole per place ({names}; the hub's own place needs none)")
    print(f"  {'account':14s}" + "".join(f"{r:>16s}" for r in fleet.regions))
    for account in fleet.accounts:
        cells = []
        for region in fleet.regions:
            place = Place(account, region)
            cell = "hub" if place == fleet.hub else "/".join(str(p.assumed[place]) for p in phases)
            cells.append(f"{cell:>16s}")
        print(f"  {account:14s}" + "".join(cells))


def print_eks_per_account(fleet: Fleet, first: Phase, second: Phase) -> None:
    columns = [*EKS_OPERATIONS, "other", "EKS"]
    print(f"EKS calls per account ({first.name}/{second.name})")
    print(f"  {'account':14s}{'clusters':>9s}" + "".join(f"{c:>16s}" for c in columns))
    per_account = fleet.clusters_per_place * len(fleet.regions)
    for account in fleet.accounts:
        cells = [_eks_cells(first.eks_of(account)), _eks_cells(second.eks_of(account))]
        row = "".join(f"{a}/{b}".rjust(16) for a, b in zip(*cells, strict=True))
        print(f"  {account:14s}{per_account:9d}{row}")


def _eks_cells(calls: Counter[str]) -> list[int]:
    named = [calls.get(op, 0) for op in EKS_OPERATIONS.values()]
    total = sum(calls.values())
    return [*named, total - sum(named), total]


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def print_summary(clusters: int, phases: list[Phase]) -> None:
    first, second = phases[2], phases[3]
    n = clusters
    rows: list[tuple[str, Callable[[Phase], float], str]] = [
        ("wall time (s)", lambda p: p.seconds, "{:.1f}"),
        ("AssumeRole", lambda p: p.operations()["sts:AssumeRole"], "{:.0f}"),
        ("EKS calls", lambda p: p.total("eks"), "{:.0f}"),
        ("EKS writes", lambda p: p.eks_writes(), "{:.0f}"),
        ("EKS calls per cluster", lambda p: p.total("eks") / n, "{:.2f}"),
        ("all AWS calls", lambda p: p.total(), "{:.0f}"),
        ("all AWS calls per cluster", lambda p: p.total() / n, "{:.2f}"),
    ]
    print(f"summary ({n} clusters; wall time is mostly moto's, serving every call in one process)")
    print(f"  {'':28s}" + "".join(f"{p.name:>10s}" for p in phases) + f"{'pass 2/pass 1':>15s}")
    for label, value, shape in rows:
        cells = "".join(f"{shape.format(value(p)):>10s}" for p in phases)
        print(f"  {label:28s}{cells}{_ratio(value(second), value(first)):>15s}")
    print("calls by operation")
    operations = sorted(set().union(*(p.operations() for p in phases)))
    for name in operations:
        cells = "".join(f"{p.operations()[name]:10d}" for p in phases)
        print(f"  {name:45s}{cells}")
