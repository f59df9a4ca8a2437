"""Association maps reach the webhook's ConfigMap: skip when unchanged,
resourceVersion conflicts retried, access problems parked with the reason."""

import json
import os

from functions.core.association_map import FULL_MAP_KEY, parse_full_map
from sandbox import eks_cluster_endpoint
from sandbox.kube_api import LocalKubernetes
from sandbox.localkube.tls import CertificateAuthority
from tests.integration.conftest import ACCOUNT, REGION, World, cluster_pk, fixture_event

ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
CONFIGMAP = ("kube-system", "pod-identity-associations")


def push_message(world: World, cluster: str = "blue") -> None:
    world.client("sqs").send_message(
        QueueUrl=world.urls["push"],
        MessageBody=json.dumps({"cluster": cluster, "reason": "test"}),
        MessageGroupId=cluster,
        MessageDeduplicationId=f"{cluster}-{len(world.apis[cluster].requests)}",
    )


def test_the_full_map_carries_generation_and_a_verifiable_hash(world: World) -> None:
    world.given_payments_api("blue")
    configmap = world.configmap("blue", *CONFIGMAP)
    document = parse_full_map(configmap["data"][FULL_MAP_KEY])
    # the empty map of the freshly enrolled cluster, then the declared one
    assert document["generation"] == 2
    assert document["associations"][0]["roleArn"] == ROLE
    assert (
        configmap["metadata"]["annotations"]["podid.io/association-map-sha256"]
        == document["sha256"]
    )
    assert world.record(cluster_pk("blue"), "MAP")["sha256"] == document["sha256"]


def test_an_unchanged_map_is_not_pushed_again(world: World) -> None:
    world.given_payments_api("blue")
    before = len(world.apis["blue"].requests)
    generation = world.record(cluster_pk("blue"), "MAP")["generation"]
    push_message(world)
    world.run_push()
    assert len(world.apis["blue"].requests) == before  # not even a read
    assert world.record(cluster_pk("blue"), "MAP")["generation"] == generation


def test_a_conflicting_write_is_retried_with_the_new_resource_version(world: World) -> None:
    world.given_payments_api("blue")
    api = world.apis["blue"]
    generation = world.record(cluster_pk("blue"), "MAP")["generation"]
    api.inject(409, reason="Conflict", method="PUT")
    world.declare_in_payments("worker", "worker")
    world.settle()
    identities = json.loads(world.configmap("blue", *CONFIGMAP)["data"]["identities.json"])[
        "identities"
    ]
    assert [i["serviceAccount"] for i in identities] == ["api", "worker"]
    puts = [code for method, _, code in api.requests if method == "PUT"]
    assert api.faults_fired == 1
    assert puts[-2:] == [409, 200]
    assert world.record(cluster_pk("blue"), "MAP")["generation"] == generation + 1


def test_someone_elses_edit_is_overwritten_by_the_next_push(world: World) -> None:
    world.given_payments_api("blue")
    api = world.apis["blue"]
    api.put_configmap_directly(*CONFIGMAP, {"identities.json": '{"identities":[]}'})
    world.declare_in_payments("worker", "worker")
    world.settle()
    identities = json.loads(world.configmap("blue", *CONFIGMAP)["data"]["identities.json"])[
        "identities"
    ]
    assert len(identities) == 2


def test_missing_rbac_is_parked_with_an_actionable_reason(world: World) -> None:
    world.create_cluster("blue", fleet="prod")
    # access entry, but the manifest's RoleBinding is gone: no RBAC
    world.apis["blue"].remove("rolebindings", "kube-system", "podid-webhook-push")
    world.create_role("payments-api")
    world.reconcile_event(fixture_event("scheduled_event"))
    world.declare_in_payments("payments-api", "api")
    world.settle()
    parked = world.dead_letters()
    assert parked  # one per push attempt (cluster enrolled, then declaration)
    for message in parked:
        assert message["source"] == "webhook_push"
        assert "forbids the push (403) in namespace kube-system" in message["reason"]
        assert 'cannot get resource "configmaps"' in message["reason"]
    assert world.item(cluster_pk("blue"), "MAP") is None  # nothing recorded as pushed


def test_missing_access_entry_is_parked_with_an_actionable_reason(world: World) -> None:
    world.create_cluster("blue", fleet="prod")
    world.apis["blue"].access_entries.clear()
    world.create_role("payments-api")
    world.reconcile_event(fixture_event("scheduled_event"))
    world.declare_in_payments("payments-api", "api")
    world.settle()
    parked = world.dead_letters()
    assert parked
    assert all("has no EKS access entry" in message["reason"] for message in parked)


def test_a_server_error_is_retried_until_it_lands(world: World) -> None:
    world.given_payments_api("blue")
    api = world.apis["blue"]
    api.inject(503, reason="ServiceUnavailable", method="PUT", times=2)
    world.declare_in_payments("worker", "worker")
    world.settle()
    identities = json.loads(world.configmap("blue", *CONFIGMAP)["data"]["identities.json"])[
        "identities"
    ]
    assert len(identities) == 2
    assert api.faults_fired == 2
    assert world.dead_letters() == []


def test_garbage_is_parked_and_a_push_for_a_deleted_cluster_is_dropped_quietly(
    world: World,
) -> None:
    world.given_payments_api("blue")
    sqs = world.client("sqs")
    sqs.send_message(
        QueueUrl=world.urls["push"],
        MessageBody='{"cluster": "ghost"}',
        MessageGroupId="ghost",
        MessageDeduplicationId="1",
    )
    sqs.send_message(
        QueueUrl=world.urls["push"],
        MessageBody="not json",
        MessageGroupId="x",
        MessageDeduplicationId="2",
    )
    world.run_push()
    (parked,) = world.dead_letters()
    assert "malformed push message" in parked["reason"]
    assert "Invalid JSON" in parked["reason"]
    assert world.pollers()[1].in_flight() == 0  # the deleted cluster's push is gone, not retried


def eks_reports_endpoint(cluster: str, url: str) -> None:
    """EKS (the emulation in this process) says where the cluster's API server is."""
    from moto.eks.models import eks_backends

    eks_backends[ACCOUNT][REGION].clusters[cluster].endpoint = url


def test_a_tampered_cluster_record_never_receives_the_push_or_its_token(world: World) -> None:
    # Given a cluster EKS places at its real API server, with no endpoint override
    world.given_payments_api("blue")
    api = world.apis["blue"]
    eks_reports_endpoint("blue", api.url)
    os.environ.pop("KUBE_ENDPOINT_TEMPLATE")
    world.configure()
    # And a table writer who points its record at a listener of theirs and at aws-auth
    with LocalKubernetes() as attacker:
        trap = attacker.add_cluster("blue")
        item = world.record(cluster_pk("blue"), "CLUSTER")
        item["endpoint"] = trap.url
        item["webhook"] = {"namespace": "kube-system", "name": "aws-auth"}
        world.table.put_item(Item=item)
        # When a change is pushed
        world.declare_in_payments("worker", "worker")
        world.settle()
        # Then the token went only where EKS says the cluster is, to the deployment's ConfigMap
        assert trap.requests == []
    identities = json.loads(world.configmap("blue", *CONFIGMAP)["data"]["identities.json"])[
        "identities"
    ]
    assert [i["serviceAccount"] for i in identities] == ["api", "worker"]
    assert api.configmap("kube-system", "aws-auth") is None
    assert world.dead_letters() == []


def test_a_missing_configmap_is_parked_telling_to_apply_the_manifest_never_created(
    world: World,
) -> None:
    # Given a cluster whose map ConfigMap was deleted (or the manifest never applied)
    world.given_payments_api("blue")
    api = world.apis["blue"]
    api.remove("configmaps", *CONFIGMAP)
    # When a change is pushed
    world.declare_in_payments("worker", "worker")
    world.settle()
    # Then the push parks with what to do, and created nothing
    parked = world.dead_letters()
    assert parked
    for message in parked:
        assert message["source"] == "webhook_push"
        assert "kube-system/pod-identity-associations does not exist on blue" in message["reason"]
        assert "kubectl apply -f deploy/webhook-push-rbac.yaml" in message["reason"]
    assert not [r for r in api.requests if r[0] == "POST"]
    assert api.configmap(*CONFIGMAP) is None


def test_the_push_verifies_the_server_with_the_clusters_ca_and_never_skips_it(world: World) -> None:
    # Given a cluster whose DescribeCluster CA is not the CA that signed the server it reaches
    world.given_payments_api("blue")
    api = world.apis["blue"]
    eks_cluster_endpoint.publish(ACCOUNT, REGION, "blue", api.url, CertificateAuthority().data)
    before = len(api.requests)
    # When a change is pushed
    world.declare_in_payments("worker", "worker")
    world.settle(timeout=60)
    # Then the handshake failed: no request (no token) reached that server, the map is as it was
    assert len(api.requests) == before
    identities = json.loads(world.configmap("blue", *CONFIGMAP)["data"]["identities.json"])[
        "identities"
    ]
    assert [i["serviceAccount"] for i in identities] == ["api"]
    parked = world.dead_letters()
    assert parked
    assert all("CERTIFICATE_VERIFY_FAILED" in m["reason"] for m in parked)
