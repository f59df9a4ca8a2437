"""Scale: 100 clusters x 1,000 declarations through the real flows on moto.

Prints the AWS calls of (1) the first full pass, which must create exactly the
needed associations, and (2) a second pass over an unchanged world, which
must make zero write calls and read EKS only with list pages (describes only
where state is unknown). Then (3) the quota scenario: a cluster at EKS's
5,000-association limit, all made by hand, and one declaration for it:
every attempt fails with the quota, the declaration's status says so per
cluster, and no association podid neither declares nor owns is described.
Then (4) the multi-account scenario (benchmarks/multi_account.py): a hub and
its spokes over 20 accounts x 3 regions x 5 clusters (SCALE_ACCOUNTS,
SCALE_REGIONS, SCALE_CLUSTERS_PER_PLACE; the issue's 10 per place takes over
7 minutes on moto), AssumeRole per place and EKS calls per account for a first
and a second pass.
Run: .venv/bin/python -m benchmarks.scale_reconcile [scale|quota|multi]
"""

from __future__ import annotations

import json
import os
import sys
import time

CLUSTERS = int(os.environ.get("SCALE_CLUSTERS", "100"))
DECLARATIONS = int(os.environ.get("SCALE_DECLARATIONS", "1000"))
FLEETS = int(os.environ.get("SCALE_FLEETS", "10"))
REGION = "eu-west-1"
ACCOUNT = "123456789012"


ATTEMPTS = 4  # a failed reconcile message is received again, as SQS redelivers it


def _environment() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "TABLE_NAME": "podid-scale",
            "AWS_REGION": REGION,
            "MODE": "enforce",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)


def main() -> int:
    scenarios = sys.argv[1:] or ["scale", "quota", "multi"]
    unknown = sorted(set(scenarios) - {"scale", "quota", "multi"})
    if unknown:
        print(f"unknown scenario(s) {unknown}: choose from scale, quota, multi")
        return 2
    ok = True
    if "scale" in scenarios:
        ok = scale() and ok
    if "quota" in scenarios:
        ok = quota() and ok
    if "multi" in scenarios:
        from benchmarks import multi_account

        ok = multi_account.run() and ok
    print("RESULT:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def scale() -> bool:
    _environment()
    import boto3
    from moto import mock_aws

    from benchmarks.call_counter import CallCounter
    from functions.aws import clients
    from functions.core.models import FLEET_TAG, Declaration
    from functions.dal.schema import create_table_params
    from functions.flows import services as services_module
    from functions.flows.reconcile import scheduled_pass
    from functions.observability import metrics
    from sandbox import eks_emulation
    from sandbox.stack import POD_TRUST

    metrics.add_metric = lambda **_: None  # type: ignore[method-assign]  # quiet: counts are printed below
    eks_emulation.install()
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            **create_table_params("podid-scale")
        )
        eks = boto3.client("eks", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        roles = [
            iam.create_role(RoleName=f"app-{i}", AssumeRolePolicyDocument=json.dumps(POD_TRUST))[
                "Role"
            ]["Arn"]
            for i in range(50)
        ]
        for c in range(CLUSTERS):
            eks.create_cluster(
                name=f"cluster-{c:03d}",
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                resourcesVpcConfig={},
                tags={FLEET_TAG: f"fleet-{c % FLEETS}"},
            )
        services_module.reset()
        svc = services_module.services()
        for d in range(DECLARATIONS):
            svc.repo.put_declaration(
                Declaration.model_validate(
                    {
                        "id": f"decl-{d:04d}",
                        "namespace": f"team-{d % 40}",
                        "serviceAccount": f"app-{d}",
                        "roleArn": roles[d % len(roles)],
                        "target": {"fleet": f"fleet-{d % FLEETS}"},
                    }
                )
            )
        fleet_sizes = [sum(1 for c in range(CLUSTERS) if c % FLEETS == f) for f in range(FLEETS)]
        expected = sum(fleet_sizes[d % FLEETS] for d in range(DECLARATIONS))
        counter = CallCounter()
        for service in ("eks", "sqs", "iam", "sts"):
            counter.attach(clients.client(service, REGION))
        counter.attach(clients.table("podid-scale", REGION).meta.client)

        started = time.perf_counter()
        first = scheduled_pass(svc)
        first_seconds = time.perf_counter() - started
        first_calls = counter.reset()
        started = time.perf_counter()
        second = scheduled_pass(svc)
        second_seconds = time.perf_counter() - started
        second_calls = counter.reset()

    created = first_calls.get("eks:CreatePodIdentityAssociation", 0)
    print(
        f"world: {CLUSTERS} clusters in {FLEETS} fleets, {DECLARATIONS} declarations -> {expected} associations"
    )
    print(
        f"pass 1 ({first_seconds:.1f} s): enrolled {len(first.discovery.enrolled)} clusters, created {created} associations"
    )
    for name, count in sorted(first_calls.items()):
        print(f"  {name:45s} {count:7d}")
    writes = CallCounter.writes(second_calls)
    print(f"pass 2 ({second_seconds:.1f} s): write calls {sum(writes.values())}")
    for name, count in sorted(second_calls.items()):
        print(f"  {name:45s} {count:7d}")
    eks_reads = CallCounter.reads(second_calls, "eks")
    print(
        f"pass 2 EKS reads: {sum(eks_reads.values())} = {dict(eks_reads)} (list pages per cluster: "
        f"{eks_reads.get('eks:ListPodIdentityAssociations', 0) / CLUSTERS:.1f})"
    )
    ok = (
        created == expected
        and not CallCounter.writes(first_calls).get("eks:DeletePodIdentityAssociation")
        and not writes
    )
    ok = (
        ok
        and not eks_reads.get("eks:DescribePodIdentityAssociation")
        and len(second.clusters) == CLUSTERS
    )
    print("scale:", "OK" if ok else "FAILED")
    return ok


def quota() -> bool:
    _environment()
    import boto3
    from moto import mock_aws

    from benchmarks.call_counter import CallCounter
    from functions.aws import clients
    from functions.core.models import (
        FLEET_TAG,
        MAX_ASSOCIATIONS_PER_CLUSTER,
        Declaration,
        DeclarationState,
        DeclarationStatus,
    )
    from functions.dal.schema import create_table_params
    from functions.events import ClusterMessage
    from functions.flows import services as services_module
    from functions.flows.reconcile import reconcile_cluster, scheduled_pass
    from functions.observability import metrics
    from sandbox import eks_emulation
    from sandbox.stack import POD_TRUST

    metrics.add_metric = lambda **_: None  # type: ignore[method-assign]
    eks_emulation.install()
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            **create_table_params("podid-scale")
        )
        eks = boto3.client("eks", region_name=REGION)
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="app", AssumeRolePolicyDocument=json.dumps(POD_TRUST)
        )["Role"]["Arn"]
        eks.create_cluster(
            name="full",
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
            resourcesVpcConfig={},
            tags={FLEET_TAG: "prod"},
        )
        started = time.perf_counter()
        for index in range(MAX_ASSOCIATIONS_PER_CLUSTER):
            eks.create_pod_identity_association(
                clusterName="full", namespace="handmade", serviceAccount=f"sa-{index}", roleArn=role
            )
        made = time.perf_counter() - started
        services_module.reset()
        svc = services_module.services()
        scheduled_pass(svc)  # enrol the cluster
        declaration = svc.repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "orders-worker",
                    "namespace": "orders",
                    "serviceAccount": "worker",
                    "roleArn": role,
                    "target": {"fleet": "prod"},
                }
            )
        )
        svc.repo.save_declaration_status(  # what the stream records for it
            DeclarationStatus(
                declaration_id=declaration.id,
                state=DeclarationState.ACCEPTED,
                observed_at=svc.clock(),
            )
        )
        counter = CallCounter()
        counter.attach(clients.client("eks", REGION))
        failures = []
        for _ in range(ATTEMPTS):
            result = reconcile_cluster(
                svc, ClusterMessage(cluster="full", reason="bench", declarations=(declaration.id,))
            )
            failures.append(result.failed if result else {})
        calls = counter.reset()
        status = svc.repo.get_declaration_status(declaration.id)
    describes = calls.get("eks:DescribePodIdentityAssociation", 0)
    print(
        f"quota: cluster 'full' with {MAX_ASSOCIATIONS_PER_CLUSTER} hand-made associations "
        f"(made in {made:.1f} s), 1 declaration, {ATTEMPTS} attempts"
    )
    for name, count in sorted(calls.items()):
        print(f"  {name:45s} {count:7d}")
    # a declaration status names clusters as account/region/name
    problem = (status.clusters if status else {}).get(f"{ACCOUNT}/{REGION}/full", "(none)")
    print(f"  declaration status: {status.state.value if status else '-'}; full: {problem}")
    ok = (
        describes == 0
        and calls.get("eks:CreatePodIdentityAssociation", 0) == ATTEMPTS
        and all("ResourceLimitExceededException" in str(f) for f in failures)
        and "ResourceLimitExceededException" in problem
    )
    print(
        f"quota: {describes} describes of associations podid neither declares nor owns:",
        "OK" if ok else "FAILED",
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
