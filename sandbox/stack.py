"""The embedded local control plane: what `make demo` and `podid sandbox up` run.

* moto in server mode plays the account (DynamoDB with its stream, IAM, EKS
  with the pod identity emulation, EKS Auth, STS, SQS, SNS, EventBridge);
* a local router feeds the same handler functions the Lambdas run, with the
  same event shapes: it tails the table's stream with shard iterators, turns
  the IAM and EKS API calls made here into CloudTrail-via-EventBridge events
  (matched against the deployed rules' patterns), runs the schedule and
  drains the queues;
* one local Kubernetes API per cluster receives the pushed maps;
* it is the hub of an organization: `add_spoke` deploys a spoke in a member
  account and region, whose CloudTrail events and heartbeats reach the hub's
  functions as the spoke stack's rules forward them;
* the node agent serves real credentials from the sandbox's EKS Auth.
Only the transport differs from AWS.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.events.models import EventPattern
from moto.server import ThreadedMotoServer

from functions.core.models import FLEET_TAG
from functions.core.places import Place
from functions.dal.schema import create_table_params
from functions.event_patterns import (
    EKS_CHANGES,
    IAM_CHANGES,
    heartbeat_rule_name,
    spoke_heartbeats,
)
from sandbox import arns, cloudtrail, eks_cluster_endpoint, eks_emulation, sqs_fifo, sts_gate
from sandbox.accounts import admin_access
from sandbox.cluster_identity import REGISTRY
from sandbox.eks_token_verifier import AwsCredential
from sandbox.kube_api import ClusterAPI, LocalKubernetes
from sandbox.localkube import kubeconfig
from sandbox.push_access import grant_push_access
from sandbox.session_keys import RoleSessionKeys
from sandbox.spokes import deploy_spoke
from sandbox.transport import (
    LambdaContext,
    SqsPoller,
    StreamTailer,
    scheduled_event,
)

ACCOUNT = "123456789012"  # moto's account
TABLE = "podid-sandbox"
HUB_STACK = "podid"  # the hub stack's name: its spokes' role and heartbeat rule names
# what the spoke roles require of the hub besides its role names and organization
SPOKE_EXTERNAL_ID = "podid-sandbox-hub"
# the functions' roles, by function (their ARNs are in the region's partition)
ROLE_NAMES = {
    "sync": "podid-sync",
    "trust_guard": "podid-trust-guard",
    "reconcile": "podid-reconcile",
    "webhook_push": "podid-webhook-push",
}
# the trust policy a Pod Identity role starts with
POD_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ],
}
# the deployment's role scope: podid binds only roles under this IAM path
ROLE_PATH = "/pod-identity/"
# access keys (moto accepts any): the functions' and everyone else's
FUNCTIONS_KEY = "sandbox"
OPERATOR_KEY = "operator"


@dataclass(frozen=True)
class StackResources:
    stream: StreamTailer
    urls: dict[str, str]  # push, reconcile, dlq
    topic_arn: str


MAX_RECEIVE_COUNT = 5  # as the CDK app's queues


def provision(
    client: Callable[[str], Any], region: str, table: str, *, visibility_seconds: int = 5
) -> StackResources:
    """The stack's table (with its stream), queues and findings topic, as the
    CDK app creates them, for the sandbox and the integration tests. A failed
    message comes back after the visibility timeout (shorter than in AWS) and
    moves to its dead-letter queue after MAX_RECEIVE_COUNT receives."""
    stream = client("dynamodb").create_table(**create_table_params(table))["TableDescription"][
        "LatestStreamArn"
    ]
    sqs = client("sqs")

    def fifo(name: str, dead_letters: str | None = None) -> str:
        attributes = {"FifoQueue": "true", "VisibilityTimeout": str(visibility_seconds)}
        if dead_letters:
            target = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": target["Attributes"]["QueueArn"],
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                }
            )
        return str(sqs.create_queue(QueueName=f"{name}.fifo", Attributes=attributes)["QueueUrl"])

    return StackResources(
        stream=StreamTailer(client("dynamodbstreams"), stream, region),
        urls={
            "push": fifo("podid-push", fifo("podid-push-dlq")),
            "reconcile": fifo("podid-reconcile", fifo("podid-reconcile-dlq")),
            "dlq": sqs.create_queue(QueueName="podid-dlq")["QueueUrl"],
        },
        topic_arn=client("sns").create_topic(Name="podid-findings")["TopicArn"],
    )


@dataclass
class Sandbox:
    region: str = "eu-west-1"
    mode: str = "enforce"
    moto: ThreadedMotoServer | None = None
    kube: LocalKubernetes | None = None
    stream: StreamTailer | None = None
    urls: dict[str, str] = field(default_factory=dict)
    apis: dict[str, ClusterAPI] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    handled: list[tuple[str, str]] = field(default_factory=list)  # (function, event name)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _detach_trail: Callable[[], None] | None = None
    organization_id: str = ""
    accounts: dict[str, str] = field(default_factory=dict)  # member account name -> id
    spokes: set[Place] = field(default_factory=set)  # where a spoke is deployed
    # where each cluster's admin kubeconfig is written (None: not written)
    kubeconfig_dir: Path | None = None

    @property
    def partition(self) -> str:
        return arns.partition_of(self.region)

    @property
    def home(self) -> Place:
        return Place(ACCOUNT, self.region)

    def role_arn(self, function: str) -> str:
        return arns.role_arn(self.partition, ACCOUNT, ROLE_NAMES[function])

    def spoke_role_arn(self, place: Place) -> str:
        """The role the spoke stack makes in `place` for the hub's functions."""
        name = f"{HUB_STACK}-spoke-{place.region}"
        return arns.role_arn(arns.partition_of(place.region), place.account, name)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> Sandbox:
        eks_emulation.install()
        sqs_fifo.install()
        sts_gate.install()
        # the four functions sign with one key: STS sees it as the sync function's
        # session (a spoke trusts all four alike)
        sts_gate.PRINCIPALS.register(
            FUNCTIONS_KEY, sts_gate.Principal.session(self.role_arn("sync"), ROLE_NAMES["sync"])
        )
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.kube = LocalKubernetes().start()
        self._env(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=FUNCTIONS_KEY,
            AWS_SECRET_ACCESS_KEY=FUNCTIONS_KEY,
            AWS_SESSION_TOKEN=None,
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
            AWS_MAX_ATTEMPTS="3",
            POWERTOOLS_TRACE_DISABLED="1",
            POWERTOOLS_LOG_LEVEL="ERROR",
            POWERTOOLS_METRICS_DISABLED="true",
            TABLE_NAME=TABLE,
        )
        self._organization()
        self._account()
        return self

    def stop(self) -> None:
        if self._detach_trail is not None:
            self._detach_trail()
        if self.kube is not None:
            self.kube.stop()
        if self.moto is not None:
            self.moto.stop()
        sts_gate.PRINCIPALS.forget(FUNCTIONS_KEY)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from functions.flows import services

        services.reset()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _env(self, **values: str | None) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _organization(self) -> None:
        """The hub account manages an organization; its spokes are members."""
        organization = self.client("organizations").create_organization(FeatureSet="ALL")
        self.organization_id = organization["Organization"]["Id"]
        # the hub's spoke settings, as infra/functions.py sets them
        self._env(
            ACCOUNT_ID=ACCOUNT,
            ORGANIZATION_ID=self.organization_id,
            SPOKE_ROLE_NAME=f"{HUB_STACK}-spoke-{{region}}",
            SPOKE_EXTERNAL_ID=SPOKE_EXTERNAL_ID,
            SPOKE_HEARTBEAT_RULE=heartbeat_rule_name(HUB_STACK),
            # target roles may be in the hub account (a central account) for any cluster
            TARGET_ROLE_ACCOUNTS=ACCOUNT,
        )

    def _account(self) -> None:
        resources = provision(self.client, self.region, TABLE)
        self.stream, self.urls = resources.stream, resources.urls
        self._env(
            PUSH_QUEUE_URL=self.urls["push"],
            RECONCILE_QUEUE_URL=self.urls["reconcile"],
            DEAD_LETTER_QUEUE_URL=self.urls["dlq"],
            MAX_RECEIVE_COUNT=str(MAX_RECEIVE_COUNT),
            ROLE_PATH=ROLE_PATH,
            FINDINGS_TOPIC_ARN=resources.topic_arn,
            KUBE_ENDPOINT_TEMPLATE=self._kube().endpoint_template,
            SELF_ROLE_ARNS=",".join(self.role_arn(f) for f in ROLE_NAMES),
            MODE=self.mode,
        )
        from functions.flows import services

        services.reset()
        # the functions sign with the sandbox key: their writes are recorded as their
        # roles (and ignored by them); any other key is a person at the console
        self._detach_trail = cloudtrail.attach(
            cloudtrail.Trail(
                account=ACCOUNT,
                region=self.region,
                callers={
                    (FUNCTIONS_KEY, "iam"): self.role_arn("trust_guard"),
                    (FUNCTIONS_KEY, "eks"): self.role_arn("sync"),
                },
                default_caller=f"arn:{self.partition}:iam::{ACCOUNT}:user/operator",
                deliver=self._deliver,
                identify=self._session_caller,
            )
        )

    def _deliver(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._follow_clusters(event["detail"])
            self.events.append(event)

    def _session_caller(self, access_key: str) -> str | None:
        """The role behind a session key moto issued (an admin's, a spoke role's)."""
        if sts_gate.PRINCIPALS.get(access_key) is not None:
            return None
        principal = sts_gate.caller_of(access_key, self.partition)
        return principal.role_arn or None

    def _follow_clusters(self, detail: dict[str, Any]) -> None:
        """Clusters created or deleted by any client (boto3, the aws CLI, Terraform)
        get or lose their local Kubernetes API, before the functions hear of them."""
        if detail["eventSource"] != "eks.amazonaws.com" or detail.get("errorCode"):
            return
        if detail["eventName"] == "CreateCluster":
            cluster = (detail.get("responseElements") or {}).get("cluster") or {}
            if cluster.get("name") and cluster.get("arn"):
                self._cluster_api(cluster["name"], cluster["arn"])
        elif detail["eventName"] == "DeleteCluster":
            name = (detail.get("requestParameters") or {}).get("name")
            if name and self.apis.pop(name, None) is not None:
                self._kube().remove_cluster(name)
                if self.kubeconfig_dir is not None:
                    (self.kubeconfig_dir / f"{name}.kubeconfig").unlink(missing_ok=True)

    # --- clients ------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """A client for a person at the console (its writes are the operator's)."""
        operator: Any = self.operator()  # boto3's stubs type clients by literal name
        return operator.client(service, region_name=self.region, endpoint_url=self.endpoint)

    def operator(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=OPERATOR_KEY, aws_secret_access_key=OPERATOR_KEY
        )

    def client_in(self, place: Place, service: str) -> Any:
        """A client for the operator in `place`, through that account's admin role
        (the hub's own place: the operator's console)."""
        if place == self.home:
            return self.client(service)
        session: Any = admin_access(
            self.endpoint, place.account, operator=self.operator(), region=place.region
        )
        return session.client(service, region_name=place.region, endpoint_url=self.endpoint)

    # --- the router -------------------------------------------------------------------------
    def pump(self, *, rounds: int = 10) -> int:
        """Deliver everything pending (stream, events, queues) until quiet."""
        from functions.handlers import reconcile, sync, trust_guard, webhook_push

        if self.stream is None:
            raise RuntimeError("the sandbox is not started")
        sqs = self.client("sqs")
        total = 0
        for _ in range(rounds):
            moved = self.stream.drain(sync.handler)
            moved += self._deliver_events(trust_guard.handler, reconcile.handler)
            moved += SqsPoller(sqs, self.urls["reconcile"], self.region).drain(reconcile.handler)
            moved += SqsPoller(sqs, self.urls["push"], self.region).drain(webhook_push.handler)
            total += moved
            if not moved:
                break
        return total

    def _deliver_events(self, guard: Callable[..., Any], reconcile: Callable[..., Any]) -> int:
        with self._lock:
            pending, self.events = self.events, []
        iam, eks, heartbeats = (
            EventPattern.load(json.dumps(IAM_CHANGES)),
            EventPattern.load(json.dumps(EKS_CHANGES)),
            EventPattern.load(json.dumps(spoke_heartbeats(HUB_STACK))),
        )
        for event in pending:
            if not self._on_hub_bus(event):
                continue
            name = event["detail"].get("eventName") or event["detail-type"]
            if iam.matches_event(event):  # type: ignore[arg-type]
                guard(event, LambdaContext(function_name="podid-trust-guard"))
                self.handled.append(("trust_guard", name))
            if eks.matches_event(event) or heartbeats.matches_event(event):  # type: ignore[arg-type]
                reconcile(event, LambdaContext(function_name="podid-reconcile"))
                self.handled.append(("reconcile", name))
        return len(pending)

    def _on_hub_bus(self, event: dict[str, Any]) -> bool:
        """Whether an event reaches the hub's bus: the hub's own place's, or one a
        deployed spoke forwards (its account's IAM events, its region's EKS events,
        its heartbeats). Anything else stays on another account's bus."""
        account = event["account"]
        if account == ACCOUNT and event["source"] != "aws.events":
            return True
        if event["source"] == "aws.iam":
            return any(p.account == account for p in self.spokes)
        return Place(account, event["region"]) in self.spokes

    def schedule(self) -> None:
        """The schedule rule's two targets: the reconcile pass and the trust sweep."""
        from functions.handlers import reconcile, trust_guard

        rule = f"arn:{self.partition}:events:{self.region}:{ACCOUNT}:rule/podid-schedule"
        event = scheduled_event(rule, account=ACCOUNT, region=self.region)
        reconcile.handler(event, LambdaContext(function_name="podid-reconcile"))
        trust_guard.handler(event, LambdaContext(function_name="podid-trust-guard"))
        self.handled += [("reconcile", "Scheduled Event"), ("trust_guard", "Scheduled Event")]
        # each spoke's heartbeat rule ticks too (through the router, as its rule routes it)
        for place in sorted(self.spokes):
            self.heartbeat(place)

    # --- hub and spokes -------------------------------------------------------------------------
    def member_account(self, name: str) -> str:
        """The id of the organization's member account called `name` (created if new)."""
        if name not in self.accounts:
            status = self.client("organizations").create_account(
                AccountName=name, Email=f"{name}@example.com"
            )["CreateAccountStatus"]
            self.accounts[name] = str(status["AccountId"])
        return self.accounts[name]

    def add_spoke(self, account_name: str, region: str) -> Place:
        """Deploy the spoke stack in a member account (created if new) and region,
        as the CDK app's spoke stack does, and deliver its first heartbeat."""
        place = Place(self.member_account(account_name), region)
        deploy_spoke(
            self.endpoint,
            place.account,
            place.region,
            hub_account=ACCOUNT,
            hub_stack_name=HUB_STACK,
            function_role_names=tuple(ROLE_NAMES.values()),
            external_id=SPOKE_EXTERNAL_ID,
            organization_id=self.organization_id,
            mode=self.mode,
            role_path=ROLE_PATH,
            operator=self.operator(),
        )
        with self._lock:
            self.spokes.add(place)
        self.heartbeat(place)
        return place

    def heartbeat(self, place: Place) -> None:
        """The spoke's heartbeat rule fires: its event goes on the hub's bus."""
        partition = arns.partition_of(place.region)
        rule = (
            f"arn:{partition}:events:{place.region}:{place.account}:rule/"
            f"{heartbeat_rule_name(HUB_STACK)}"
        )
        with self._lock:
            self.events.append(scheduled_event(rule, account=place.account, region=place.region))

    # --- the world ------------------------------------------------------------------------------
    def _kube(self) -> LocalKubernetes:
        if self.kube is None:
            raise RuntimeError("the sandbox is not started")
        return self.kube

    def add_cluster(
        self, name: str, fleet: str | None, *, place: Place | None = None
    ) -> ClusterAPI:
        """Seed an EKS cluster (in the hub's place unless another is given, through
        that account's admin credentials); its local API is set up as for any
        other client's. Cluster names are unique across places here: each has a
        local API by name."""
        place = place or self.home
        tags = {FLEET_TAG: fleet} if fleet else {}
        cluster = self.client_in(place, "eks").create_cluster(
            name=name,
            roleArn=arns.role_arn(arns.partition_of(place.region), place.account, "eks-cluster"),
            resourcesVpcConfig={"subnetIds": ["subnet-sandbox"]},
            tags=tags,
        )["cluster"]
        return self._cluster_api(name, cluster["arn"])

    def _cluster_api(self, name: str, arn: str) -> ClusterAPI:
        """The cluster's local Kubernetes API (created once): the push role has an
        access entry and deploy/webhook-push-rbac.yaml is applied (the map ConfigMap,
        get/update of it only). In a spoke's place the push signs as the spoke role
        (the hub reaches that account only through it), so the cluster's owner maps
        that role instead, and its authenticator knows the role's session keys."""
        cluster = arns.parse(arn)
        place = Place(cluster.account, cluster.region)
        with self._lock:
            api = self.apis.get(name)
            if api is not None:
                return api
            pusher = (
                self.role_arn("webhook_push") if place == self.home else self.spoke_role_arn(place)
            )
            api = self._kube().add_cluster(
                name,
                aws_credentials=RoleSessionKeys(
                    pusher,
                    {FUNCTIONS_KEY: AwsCredential(FUNCTIONS_KEY, pusher)}
                    if place == self.home
                    else {},
                ),
                identity=REGISTRY.for_cluster(arn),
                sts_hosts=[self.endpoint.removeprefix("http://")],
            )
            grant_push_access(api, pusher)
            eks_cluster_endpoint.publish(
                place.account, place.region, name, api.url, self._kube().ca_data
            )
            self.apis[name] = api
            if self.kubeconfig_dir is not None:
                kubeconfig.write(self._kube(), name, self.kubeconfig_dir)
            return api

    def add_role(self, name: str, *, path: str = ROLE_PATH) -> str:
        """A Pod Identity role whose trust policy the guard may repair (tagged),
        in the role scope unless another path is given."""
        role: dict[str, Any] = self.client("iam").create_role(
            RoleName=name,
            Path=path,
            AssumeRolePolicyDocument=json.dumps(POD_TRUST),
            Tags=[{"Key": "pod-identity/managed-trust", "Value": "true"}],
        )["Role"]
        return str(role["Arn"])

    @contextmanager
    def pod_environment(
        self, cluster: str, namespace: str, service_account: str, agent_port: int, workdir: str
    ) -> Iterator[None]:
        """Environment variables as the webhook injects them into a pod."""
        arn = f"arn:{self.partition}:eks:{self.region}:{ACCOUNT}:cluster/{cluster}"
        token_file = os.path.join(workdir, "eks-pod-identity-token")
        with open(token_file, "w", encoding="utf-8") as handle:
            handle.write(
                REGISTRY.for_cluster(arn).issue(
                    namespace, service_account, pod_name=f"{service_account}-demo"
                )
            )
        saved = {
            k: os.environ.get(k)
            for k in (
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            )
        }
        os.environ.pop("AWS_ACCESS_KEY_ID", None)
        os.environ.pop("AWS_SECRET_ACCESS_KEY", None)
        os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = (
            f"http://127.0.0.1:{agent_port}/v1/credentials"
        )
        os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def quiet(*, functions: bool = True) -> None:
    """Servers (and the functions, unless asked to keep them) log only problems."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    names = ["werkzeug", "botocore", "urllib3"] + (["podid", "podid.agent"] if functions else [])
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
