"""The world of the multi-account benchmark, built as an operator would: moto in
server mode (EKS pod identity emulation, FIFO de-duplication, the STS gate), an
organization whose member accounts and the hub's own other regions hold
spokes, a role of one name in every account, and clusters of one fleet in every
place. Events reach the handlers through sandbox.transport, as in the tests.

The functions sign with FUNCTIONS_KEY, which the gate knows as the hub's
reconcile role; the operator signs with its own key, so the gate's decisions
tell the hub's AssumeRole calls apart from the operator's set-up."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from functions.core.models import FLEET_TAG
from functions.core.places import ClusterRef, Place
from functions.event_patterns import heartbeat_rule_name
from sandbox import eks_emulation, sqs_fifo, sts_gate
from sandbox.accounts import admin_access
from sandbox.spokes import deploy_spoke
from sandbox.stack import POD_TRUST, StackResources, provision, quiet
from sandbox.transport import LambdaContext, SqsPoller, scheduled_event

HUB_ACCOUNT = "123456789012"  # moto's default account: the operator's and the hub's
REGION_NAMES = ("eu-west-1", "us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1")
HUB_STACK = "podid-bench"
FUNCTION_ROLES = tuple(f"{HUB_STACK}-{name}" for name in ("sync", "reconcile", "trust-guard"))
EXTERNAL_ID = "podid-bench-3Fq9"
FUNCTIONS_KEY = "podid-bench-functions"
OPERATOR_KEY = "podid-bench-operator"
TABLE = "podid-bench"
FLEET = "prod"
ROLE_NAME = "fleet-api"  # exists in every account; the declaration names it
NAMESPACE, SERVICE_ACCOUNT = "payments", "api"
SETTLE_SECONDS = 600.0  # a phase that has not drained by then is a failure, not a wait


def hub_principal() -> sts_gate.Principal:
    return sts_gate.Principal.session(
        f"arn:aws:iam::{HUB_ACCOUNT}:role/{HUB_STACK}-reconcile", "podid"
    )


def spoke_place_of(role_arn: str) -> Place:
    """The place a spoke role serves: its account, and the region its name ends in."""
    account = role_arn.split(":")[4]
    return Place(account, role_arn.rsplit("-spoke-", 1)[1])


@dataclass
class Fleet:
    endpoint: str
    operator: boto3.session.Session
    resources: StackResources
    organization_id: str = ""
    accounts: list[str] = field(default_factory=list)  # the hub's first
    regions: list[str] = field(default_factory=list)  # the hub's first
    clusters_per_place: int = 0
    admins: dict[str, boto3.session.Session] = field(default_factory=dict)

    @property
    def hub(self) -> Place:
        return Place(HUB_ACCOUNT, self.regions[0])

    @property
    def places(self) -> list[Place]:
        return [Place(a, r) for a in self.accounts for r in self.regions]

    @property
    def spokes(self) -> list[Place]:
        return [p for p in self.places if p != self.hub]

    def cluster_names(self) -> list[str]:
        # the same names in every place: a cluster is (account, region, name)
        return [f"{FLEET}-{i:03d}" for i in range(self.clusters_per_place)]

    def clusters(self) -> list[ClusterRef]:
        return [ClusterRef(*p, n) for p in self.places for n in self.cluster_names()]

    def admin(self, account: str) -> boto3.session.Session:
        if account not in self.admins:
            self.admins[account] = admin_access(
                self.endpoint, account, operator=self.operator, region=self.hub.region
            )
        return self.admins[account]

    def eks(self, place: Place) -> Any:
        return self.admin(place.account).client(
            "eks", endpoint_url=self.endpoint, region_name=place.region
        )

    def client(self, service: str) -> Any:
        make: Callable[..., Any] = self.operator.client  # any service, named at run time
        return make(service, endpoint_url=self.endpoint)

    def settings(self) -> dict[str, str]:
        """The hub functions' environment, as the hub stack sets it."""
        urls = self.resources.urls
        return {
            "TABLE_NAME": TABLE,
            "RECONCILE_QUEUE_URL": urls["reconcile"],
            "DEAD_LETTER_QUEUE_URL": urls["dlq"],
            "PUSH_QUEUE_URL": "",  # the sandbox maps no spoke role into a cluster's API
            "FINDINGS_TOPIC_ARN": self.resources.topic_arn,
            "MODE": "audit",
            "ACCOUNT_ID": HUB_ACCOUNT,
            "SPOKE_ROLE_NAME": f"{HUB_STACK}-spoke-{{region}}",
            "SPOKE_EXTERNAL_ID": EXTERNAL_ID,
            "ORGANIZATION_ID": self.organization_id,
            "SPOKE_HEARTBEAT_RULE": heartbeat_rule_name(HUB_STACK),
            "SELF_ROLE_ARNS": ",".join(
                f"arn:aws:iam::{HUB_ACCOUNT}:role/{n}" for n in FUNCTION_ROLES
            ),
        }

    # --- set-up, as the operator -------------------------------------------------------
    def build_organization(self, accounts: int) -> None:
        organizations = self.client("organizations")
        self.organization_id = organizations.create_organization(FeatureSet="ALL")["Organization"][
            "Id"
        ]
        self.accounts = [HUB_ACCOUNT] + [
            organizations.create_account(AccountName=f"team-{i:02d}", Email=f"t{i}@example.com")[
                "CreateAccountStatus"
            ]["AccountId"]
            for i in range(1, accounts)
        ]

    def deploy_spokes_and_roles(self) -> None:
        for account in self.accounts:
            self.admin(account).client("iam", endpoint_url=self.endpoint).create_role(
                RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(POD_TRUST)
            )
        for place in self.spokes:
            deploy_spoke(
                self.endpoint,
                place.account,
                place.region,
                hub_account=HUB_ACCOUNT,
                hub_stack_name=HUB_STACK,
                function_role_names=FUNCTION_ROLES,
                external_id=EXTERNAL_ID,
                organization_id=self.organization_id,
                role_path="/",
                operator=self.operator,
            )

    def create_clusters(self) -> None:
        for place in self.places:
            eks = self.eks(place)
            for name in self.cluster_names():
                eks.create_cluster(
                    name=name,
                    roleArn=f"arn:aws:iam::{place.account}:role/eks",
                    resourcesVpcConfig={"subnetIds": ["subnet-1"]},
                    tags={FLEET_TAG: FLEET},
                )

    def declare(self) -> None:
        """One declaration, in the README's shape: a role per account, fleet-wide."""
        self.operator.resource("dynamodb", endpoint_url=self.endpoint).Table(TABLE).put_item(
            Item={
                "pk": "DECL#fleet-api",
                "sk": "DECL",
                "namespace": NAMESPACE,
                "serviceAccount": SERVICE_ACCOUNT,
                "roleName": ROLE_NAME,
                "target": {"fleet": FLEET},
            }
        )

    # --- events and delivery -----------------------------------------------------------
    def heartbeat(self, place: Place) -> Any:
        rule = (
            f"arn:aws:events:{place.region}:{place.account}:rule/{heartbeat_rule_name(HUB_STACK)}"
        )
        return self._invoke(scheduled_event(rule, account=place.account, region=place.region))

    def schedule(self) -> Any:
        hub = self.hub
        rule = f"arn:aws:events:{hub.region}:{hub.account}:rule/{HUB_STACK}-schedule"
        return self._invoke(scheduled_event(rule, account=hub.account, region=hub.region))

    def _invoke(self, event: dict[str, Any]) -> Any:
        from functions.handlers import reconcile

        return reconcile.handler(event, LambdaContext())

    def settle(self) -> None:
        """Deliver the stream (sync) and the reconcile queue until both are empty,
        waiting out the visibility timeout of failed messages."""
        from functions.handlers import reconcile, sync

        poller = SqsPoller(self.client("sqs"), self.resources.urls["reconcile"], self.hub.region)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            moved = self.resources.stream.drain(sync.handler) + poller.drain(reconcile.handler)
            if moved:
                continue
            if not poller.in_flight():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the reconcile queue did not drain in {SETTLE_SECONDS:.0f} s")
            time.sleep(0.2)

    def dead_letters(self) -> int:
        sqs, urls = self.client("sqs"), self.resources.urls
        queues = [urls["dlq"], sqs.get_queue_url(QueueName="podid-reconcile-dlq.fifo")["QueueUrl"]]
        return sum(
            int(
                sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]["ApproximateNumberOfMessages"]
            )
            for url in queues
        )


@contextmanager
def moto_world(regions: int) -> Iterator[Fleet]:
    """A loopback moto server and the hub's stack resources in it."""
    eks_emulation.install()
    sqs_fifo.install()
    sts_gate.install()
    quiet()  # moto's request log and the functions' own: the figures are the output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    sts_gate.PRINCIPALS.register(FUNCTIONS_KEY, hub_principal())
    try:
        operator = boto3.session.Session(
            aws_access_key_id=OPERATOR_KEY,
            aws_secret_access_key=OPERATOR_KEY,
            region_name=REGION_NAMES[0],
        )

        def client(service: str) -> Any:
            make: Callable[..., Any] = operator.client
            return make(service, endpoint_url=endpoint)

        resources = provision(client, REGION_NAMES[0], TABLE, visibility_seconds=1)
        yield Fleet(endpoint, operator, resources, regions=list(REGION_NAMES[:regions]))
    finally:
        sts_gate.PRINCIPALS.forget(FUNCTIONS_KEY)
        server.stop()
