"""A local account for the handlers: moto in server mode (with the EKS pod
identity emulation), the table with its stream, the queues, and one local
Kubernetes API per cluster. Events are delivered by sandbox.transport, the
same code the sandbox uses."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.core.models import FLEET_TAG
from sandbox import eks_cluster_endpoint, eks_emulation, sqs_fifo, sts_gate
from sandbox.cluster_identity import REGISTRY
from sandbox.eks_token_verifier import AwsCredential
from sandbox.kube_api import ClusterAPI, LocalKubernetes
from sandbox.push_access import grant_push_access
from sandbox.shapes import described_associations
from sandbox.stack import POD_TRUST, provision
from sandbox.transport import LambdaContext, SqsPoller, StreamTailer

ACCOUNT = "123456789012"  # moto's account
REGION = "eu-west-1"
TABLE = "podid-test"
PUSH_ROLE = f"arn:aws:iam::{ACCOUNT}:role/podid-webhook-push"
GUARD_ROLE = f"arn:aws:iam::{ACCOUNT}:role/podid-trust-guard"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "events"


def cluster_id(name: str, account: str = ACCOUNT, region: str = REGION) -> str:
    """How podid names a cluster: account/region/name."""
    return f"{account}/{region}/{name}"


def cluster_pk(name: str, account: str = ACCOUNT, region: str = REGION) -> str:
    """The partition key of a cluster's items in the table."""
    return f"CLUSTER#{account}#{region}#{name}"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    eks_emulation.install()
    sqs_fifo.install()
    sts_gate.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_MAX_ATTEMPTS": "3",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_METRICS_NAMESPACE": "PodIdentityControlPlane",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "TABLE_NAME": TABLE,
            "MAX_RECEIVE_COUNT": "5",
        }.items():
            patch.setenv(key, value)
        yield url
    server.stop()


@pytest.fixture(scope="session")
def kube() -> Iterator[LocalKubernetes]:
    with LocalKubernetes() as server:
        yield server


def fixture_event(name: str, **values: str) -> dict[str, Any]:
    text = (FIXTURES / f"{name}.json").read_text()
    values = {"ACCOUNT": ACCOUNT, "REGION": REGION, "EVENT_ID": str(uuid.uuid4()), **values}
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text, f"unfilled placeholder in {name}"
    event: dict[str, Any] = json.loads(text)
    return event


@dataclass
class World:
    endpoint: str
    kube: LocalKubernetes
    clients: dict[str, Any] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    apis: dict[str, ClusterAPI] = field(default_factory=dict)
    stream: StreamTailer | None = None
    reconcile_handler: Any = None  # a wrapper of the reconcile handler, to watch deliveries
    saved_environment: dict[str, str | None] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            make: Callable[..., Any] = boto3.client  # any service, named at run time
            self.clients[service] = make(service, region_name=REGION)
        return self.clients[service]

    @property
    def table(self) -> Any:
        return boto3.resource("dynamodb", region_name=REGION).Table(TABLE)

    def configure(self, **settings: str) -> None:
        """Change the functions' environment (as a redeploy would)."""
        from functions.flows import services

        for key, value in settings.items():
            self.saved_environment.setdefault(key.upper(), os.environ.get(key.upper()))
            os.environ[key.upper()] = value
        services.reset()

    def restore_environment(self) -> None:
        from functions.flows import services

        for key, value in self.saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        services.reset()

    # --- AWS side ---------------------------------------------------------------------
    def create_cluster(self, name: str, fleet: str | None = "prod") -> ClusterAPI:
        tags = {FLEET_TAG: fleet} if fleet else {}
        cluster = self.client("eks").create_cluster(
            name=name,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-cluster",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]},
            tags=tags,
        )["cluster"]
        identity = REGISTRY.for_cluster(cluster["arn"])
        host = self.endpoint.removeprefix("http://")
        api = self.kube.add_cluster(
            name,
            aws_credentials={"testing": AwsCredential("testing", PUSH_ROLE)},
            identity=identity,
            sts_hosts=[host],
        )
        grant_push_access(api, PUSH_ROLE)  # as deploy/webhook-push-rbac.yaml, no more
        eks_cluster_endpoint.publish(ACCOUNT, REGION, name, api.url, self.kube.ca_data)
        self.apis[name] = api
        return api

    def enroll(self, *clusters: str, fleet: str | None = "prod") -> None:
        """Create clusters and let the scheduled pass enroll them."""
        for name in clusters:
            self.create_cluster(name, fleet=fleet)
        self.reconcile_event(fixture_event("scheduled_event"))
        self.settle()

    def create_role(
        self, name: str, trust: dict[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> str:
        response = self.client("iam").create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust or POD_TRUST),
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        )
        return str(response["Role"]["Arn"])

    def given_payments_api(
        self,
        *clusters: str,
        tags: dict[str, str] | None = None,
        trust: dict[str, Any] | None = None,
    ) -> None:
        """The common given: role payments-api, clusters of fleet prod enrolled,
        payments/api declared fleet-wide and synced."""
        self.create_role("payments-api", trust=trust, tags=tags)
        self.enroll(*clusters)
        self.declare_in_payments("payments-api", "api")
        self.settle()

    def declare_in_payments(
        self, declaration_id: str, service_account: str, **fields: Any
    ) -> dict[str, Any]:
        """payments/<service_account> -> role payments-api, fleet prod."""
        return self.declare(
            declaration_id,
            namespace="payments",
            serviceAccount=service_account,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/payments-api",
            target={"fleet": "prod"},
            **fields,
        )

    def trust_policy(self, name: str) -> dict[str, Any]:
        document = self.client("iam").get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        found: dict[str, Any] = json.loads(document) if isinstance(document, str) else document
        return found

    def associations(self, cluster: str) -> dict[tuple[str, str], dict[str, Any]]:
        return described_associations(self.client("eks"), cluster)

    # --- table side ---------------------------------------------------------------------
    def declare(self, declaration_id: str, **fields: Any) -> dict[str, Any]:
        """Write a declaration item straight into the table, as users do: in the
        README's shape, nothing more."""
        item = {"pk": f"DECL#{declaration_id}", "sk": "DECL", **fields}
        self.table.put_item(Item=item)
        return item

    def undeclare(self, declaration_id: str) -> None:
        self.table.delete_item(Key={"pk": f"DECL#{declaration_id}", "sk": "DECL"})

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.table.get_item(Key={"pk": pk, "sk": sk}).get("Item")
        return found

    def configmap(self, cluster: str, namespace: str, name: str) -> dict[str, Any]:
        """A config map the test expects on this cluster's API."""
        found = self.apis[cluster].configmap(namespace, name)
        assert found is not None, f"no config map {namespace}/{name} on {cluster}"
        return found

    def record(self, pk: str, sk: str) -> dict[str, Any]:
        """The item, which the test expects to be there."""
        found = self.item(pk, sk)
        assert found is not None, f"no item {pk} {sk}"
        return found

    # --- delivery ------------------------------------------------------------------------
    def run_sync(self) -> int:
        from functions.handlers import sync

        assert self.stream is not None
        return self.stream.drain(sync.handler)

    def run_push(self) -> int:
        from functions.handlers import webhook_push

        return SqsPoller(self.client("sqs"), self.urls["push"], REGION).drain(webhook_push.handler)

    def run_reconcile_queue(self) -> int:
        from functions.handlers import reconcile

        return SqsPoller(self.client("sqs"), self.urls["reconcile"], REGION).drain(
            self.reconcile_handler or reconcile.handler
        )

    def reconcile_event(self, event: dict[str, Any], *, settle: bool = True) -> Any:
        """EventBridge invokes reconcile; the reconciles it queues are delivered too."""
        from functions.handlers import reconcile

        response = reconcile.handler(event, LambdaContext())
        if settle:
            self.settle()
        return response

    def guard_event(self, event: dict[str, Any]) -> Any:
        from functions.handlers import trust_guard

        return trust_guard.handler(event, LambdaContext())

    def pollers(self) -> list[SqsPoller]:
        sqs = self.client("sqs")
        return [SqsPoller(sqs, self.urls[name], REGION) for name in ("reconcile", "push")]

    def settle(self, *, timeout: float = 20.0) -> None:
        """Deliver everything pending (stream, reconciles, pushes) until the
        queues are empty, waiting out the visibility timeout of failed messages."""
        deadline = time.monotonic() + timeout
        while True:
            moved = self.run_sync() + self.run_reconcile_queue() + self.run_push()
            if moved:
                continue
            if not any(p.in_flight() for p in self.pollers()):
                return
            assert time.monotonic() < deadline, "queues did not drain"
            time.sleep(0.2)

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = (
            self.client("sqs")
            .receive_message(
                QueueUrl=self.urls["dlq"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            )
            .get("Messages", [])
        )
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def world(moto_endpoint: str, kube: LocalKubernetes) -> Iterator[World]:
    reset = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset).read()  # the loopback moto server
    eks_emulation.FAULTS.clear()
    sqs_fifo.reset()
    kube.clusters.clear()
    found = World(moto_endpoint, kube)
    resources = provision(found.client, REGION, TABLE, visibility_seconds=1)
    found.stream, found.urls = resources.stream, resources.urls
    found.configure(
        push_queue_url=found.urls["push"],
        reconcile_queue_url=found.urls["reconcile"],
        dead_letter_queue_url=found.urls["dlq"],
        findings_topic_arn=resources.topic_arn,
        kube_endpoint_template=kube.endpoint_template,
        self_role_arns=f"{GUARD_ROLE},{PUSH_ROLE}",
        mode="audit",
        aws_region=REGION,
    )
    yield found
    found.restore_environment()
