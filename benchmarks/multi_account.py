"""Multi-account scale (issue 16 item 5): a hub and the spokes of an
organization, SCALE_ACCOUNTS x SCALE_REGIONS x SCALE_CLUSTERS_PER_PLACE clusters
(the hub's own account and region is one of the places), through the real flows
(reconcile handler, its FIFO queue, the stream to sync) on moto in server mode
behind the STS gate.

Default size: 20 x 3 x 5 = 300 clusters (about 3.5 min on 2 shared cores). The
issue's 20 x 3 x 10 = 600 (SCALE_CLUSTERS_PER_PLACE=10) took 7.6 min there: the
time is moto's (one Python process serving every call; its EKS CreateCluster
reloads botocore's partition data per call, its DynamoDB index queries and SQS
queue attributes walk every item), so the wall times grow faster than the call
counts, which are exactly linear in the clusters.

Phases, all in one Lambda container (credentials live for the whole run):
join (each spoke's heartbeat, before the teams built clusters), declare (the
clusters are created, one declaration with roleName is written and the stream
delivers it), pass 1 (the hub's schedule over the fleet: enrols every cluster
and creates its association) and pass 2 (the schedule again over an unchanged
world). Calls are counted per place on the clients the functions use
(benchmarks.place_calls); the outcome is checked in moto with the operator's
own clients, never with the product's code."""

from __future__ import annotations

import os
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.fleet_world import (
    FUNCTIONS_KEY,
    NAMESPACE,
    REGION_NAMES,
    ROLE_NAME,
    SERVICE_ACCOUNT,
    TABLE,
    Fleet,
    hub_principal,
    moto_world,
    spoke_place_of,
)
from benchmarks.multi_report import (
    Phase,
    print_assume_roles,
    print_eks_per_account,
    print_summary,
)
from benchmarks.place_calls import PlaceCounter
from functions.core.places import Place
from sandbox import sts_gate

DEFAULT_CLUSTERS_PER_PLACE = 5  # the 10 takes over 7 minutes here (see above)


@dataclass(frozen=True)
class Sizes:
    accounts: int
    regions: int
    clusters_per_place: int

    @classmethod
    def from_environment(cls) -> Sizes:
        return cls(
            _size("SCALE_ACCOUNTS", 20, 200),
            _size("SCALE_REGIONS", 3, len(REGION_NAMES)),
            _size("SCALE_CLUSTERS_PER_PLACE", DEFAULT_CLUSTERS_PER_PLACE, 100),
        )

    @property
    def clusters(self) -> int:
        return self.accounts * self.regions * self.clusters_per_place


def _size(name: str, default: int, most: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise SystemExit(f"{name}={raw!r}: give a whole number from 1 to {most}")
    return int(raw)


def _environment() -> None:
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": FUNCTIONS_KEY,
            "AWS_SECRET_ACCESS_KEY": FUNCTIONS_KEY,
            "AWS_DEFAULT_REGION": REGION_NAMES[0],
            "AWS_REGION": REGION_NAMES[0],
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_MAX_ATTEMPTS": "3",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "PodIdentityControlPlane",
            "MAX_RECEIVE_COUNT": "5",
        }
    )


def run() -> bool:
    sizes = Sizes.from_environment()
    saved = dict(os.environ)
    from functions.flows import services as services_module

    try:
        _environment()
        with moto_world(sizes.regions) as fleet:
            return _measure(fleet, sizes)
    except Exception as error:  # a phase that fails or times out is a result, reported as such
        traceback.print_exc()
        print(f"multi: FAILED: {type(error).__name__}: {error}")
        return False
    finally:
        os.environ.clear()
        os.environ.update(saved)
        services_module.reset()


def _measure(fleet: Fleet, sizes: Sizes) -> bool:
    from functions.flows import services as services_module
    from functions.observability import metrics

    started = time.perf_counter()
    fleet.clusters_per_place = sizes.clusters_per_place
    fleet.build_organization(sizes.accounts)
    fleet.deploy_spokes_and_roles()
    os.environ.update(fleet.settings())
    metrics.add_metric = lambda **_: None  # type: ignore[method-assign]  # counts are printed below
    services_module.reset()
    sts_gate.DECISIONS.clear()  # from here on: the hub's AssumeRole calls, as STS saw them
    setup_seconds = time.perf_counter() - started
    counter = PlaceCounter(fleet.hub)
    with counter.watch(TABLE):
        spokes = services_module.services().spokes
        assert spokes is not None, "SPOKE_ROLE_NAME is set: the services hold a SpokeAccess"

        def phase(name: str, work: Callable[[], Any]) -> Phase:
            counter.reset()
            before = Counter(spokes.assume_calls)
            began = time.perf_counter()
            response = work()
            fleet.settle()
            done = Phase(name, time.perf_counter() - began, counter.reset(), response=response)
            done.assumed = Counter(spokes.assume_calls)
            done.assumed.subtract(before)
            done.assumed = +done.assumed
            return done

        join = phase("join", lambda: [fleet.heartbeat(p) for p in fleet.spokes])
        began = time.perf_counter()
        fleet.create_clusters()
        setup_seconds += time.perf_counter() - began
        declare = phase("declare", fleet.declare)
        first = phase("pass 1", fleet.schedule)
        second = phase("pass 2", fleet.schedule)
        assumed_in_run = Counter(spokes.assume_calls)
    phases = [join, declare, first, second]
    print(
        f"multi: {sizes.accounts} accounts x {sizes.regions} regions x "
        f"{sizes.clusters_per_place} clusters = {sizes.clusters} clusters in "
        f"{len(fleet.places)} places ({len(fleet.spokes)} spokes); set-up {setup_seconds:.1f} s"
    )
    if sizes.clusters_per_place < 10:
        print("  (the issue's 10 clusters per place: SCALE_CLUSTERS_PER_PLACE=10, over 7 min)")
    print_assume_roles(fleet, phases)
    print_eks_per_account(fleet, first, second)
    print_summary(sizes.clusters, phases)
    checks = _checks(fleet, sizes, phases, assumed_in_run)
    for description, ok in checks:
        if not ok:
            print(f"  FAILED: {description}")
    ok = all(ok for _, ok in checks)
    print(f"multi: {len(checks)} checks,", "OK" if ok else "FAILED")
    return ok


# --- report ---------------------------------------------------------------------------
# --- checks (in moto, with the operator's clients) --------------------------------------
def _checks(
    fleet: Fleet, sizes: Sizes, phases: list[Phase], assumed_in_run: Counter[Place]
) -> list[tuple[str, bool]]:
    join, _, first, second = phases
    spokes = set(fleet.spokes)
    gate = Counter(
        spoke_place_of(role)
        for caller, role, outcome in sts_gate.DECISIONS
        if caller == hub_principal().arn and outcome == "Allow"
    )
    refused = [d for d in sts_gate.DECISIONS if d[0] == hub_principal().arn and d[2] != "Allow"]
    associations, bound_elsewhere = _associations(fleet)
    in_sync = _statuses_in_sync(fleet)
    per_account_creates = [
        first.eks_of(a)["eks:CreatePodIdentityAssociation"] for a in fleet.accounts
    ]
    places = len(fleet.places)  # one page of clusters each (at most 100 per place here)
    hooked_assume = sum(p.operations()["sts:AssumeRole"] for p in phases)
    return [
        (
            f"one AssumeRole per spoke place for the whole run (product's count): "
            f"{_off(assumed_in_run, spokes)}",
            assumed_in_run == Counter(dict.fromkeys(spokes, 1)),
        ),
        (
            f"one AssumeRole per spoke role, as the STS gate saw them: {_off(gate, spokes)}",
            gate == Counter(dict.fromkeys(spokes, 1)) and not refused,
        ),
        (
            f"sts:AssumeRole on the functions' clients = spokes ({hooked_assume} vs {len(spokes)})",
            hooked_assume == len(spokes),
        ),
        (
            "every heartbeat was taken as one",
            all(r["status"] == "heartbeat" for r in join.response),
        ),
        (
            f"pass 1 fanned out every cluster ({first.response.get('fannedOut')})",
            first.response.get("fannedOut") == sizes.clusters,
        ),
        (
            f"pass 1 created one association per cluster, in its account: {per_account_creates}",
            per_account_creates == [sizes.regions * sizes.clusters_per_place] * sizes.accounts,
        ),
        (
            f"pass 2 made no EKS write ({second.eks_writes()})",
            second.eks_writes() == 0 and second.total("iam") == 0,
        ),
        (
            f"pass 1 made the fewest EKS calls: per place 1 ListClusters, per cluster 1 "
            f"DescribeCluster, 1 ListPodIdentityAssociations, 1 Create ({first.total('eks')} "
            f"for {places + 3 * sizes.clusters})",
            first.total("eks") == places + 3 * sizes.clusters,
        ),
        (
            f"pass 2 made the fewest EKS calls: 1 ListClusters per place, 1 "
            f"ListPodIdentityAssociations per cluster ({second.total('eks')} for "
            f"{places + sizes.clusters})",
            second.total("eks") == places + sizes.clusters,
        ),
        (
            f"each cluster holds exactly its association ({associations} of {sizes.clusters}), "
            f"bound to the role in its own account ({bound_elsewhere} elsewhere)",
            associations == sizes.clusters and bound_elsewhere == 0,
        ),
        (f"every status InSync ({in_sync} of {sizes.clusters})", in_sync == sizes.clusters),
        ("no dead letters", fleet.dead_letters() == 0),
    ]


def _off(counts: Counter[Place], spokes: set[Place]) -> str:
    wrong = {str(p): counts[p] for p in sorted(spokes | set(counts)) if counts[p] != 1}
    return f"{len(spokes)} places, not once: {wrong or 'none'}"


def _associations(fleet: Fleet) -> tuple[int, int]:
    """(clusters holding exactly the declared association, those bound to a role
    in another account than the cluster's)."""
    exact = elsewhere = 0
    for place in fleet.places:
        eks = fleet.eks(place)
        for name in fleet.cluster_names():
            found = eks.list_pod_identity_associations(clusterName=name)["associations"]
            if len(found) != 1:
                continue
            described = eks.describe_pod_identity_association(
                clusterName=name, associationId=found[0]["associationId"]
            )["association"]
            if (described["namespace"], described["serviceAccount"]) != (
                NAMESPACE,
                SERVICE_ACCOUNT,
            ):
                continue
            exact += 1
            if described["roleArn"] != f"arn:aws:iam::{place.account}:role/{ROLE_NAME}":
                elsewhere += 1
    return exact, elsewhere


def _statuses_in_sync(fleet: Fleet) -> int:
    table = fleet.operator.resource("dynamodb", endpoint_url=fleet.endpoint).Table(TABLE)
    wanted = {f"CLUSTER#{c.account}#{c.region}#{c.name}" for c in fleet.clusters()}
    found = 0
    for pk in wanted:
        item = table.get_item(Key={"pk": pk, "sk": f"ASSOC#{NAMESPACE}#{SERVICE_ACCOUNT}"})
        found += item.get("Item", {}).get("state") == "InSync"
    return found
