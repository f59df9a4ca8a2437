"""The sts backend: Pod Identity on self-managed Kubernetes (TokenReview, the
pushed association map, sts:AssumeRole with the EKS session tags)."""

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from functions.core.association_map import build_association_map
from functions.core.models import AssociationKey, AssociationSpec, Cluster, DesiredAssociation
from node_agent.backends.sts import AssociationMap, StsBackend
from node_agent.backends.token_review import TokenReviewer
from node_agent.errors import AgentError
from node_agent.runtime import Agent
from node_agent.settings import AgentSettings
from sandbox.cluster_identity import ClusterIdentity
from sandbox.kube_api import ClusterAPI, LocalKubernetes
from tests.agent.conftest import get_credentials
from tests.builders import sts_as
from tests.integration.conftest import ACCOUNT, REGION, World

CLUSTER_ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/onprem"
AGENT_TOKEN = "agent-service-account-token"
# self-managed roles trust the nodes (here: the account the agent's key belongs to)
# with the session tags the agent sets, not pods.eks.amazonaws.com
NODE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": ACCOUNT},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ],
}


def write_map(path: Path, entries: dict[tuple[str, str], dict[str, Any]]) -> None:
    cluster = Cluster(name="onprem", arn=CLUSTER_ARN)
    associations = [
        DesiredAssociation(
            key=AssociationKey(cluster.ref, ns, sa),
            spec=AssociationSpec(**spec),
            declaration_id="d",
        )
        for (ns, sa), spec in entries.items()
    ]
    replace_file(
        path, build_association_map(cluster, associations).full_map(generation=int(time.time()))
    )


def replace_file(path: Path, text: str, mtime_ahead: float = 1) -> None:
    """Swap the whole file in at once, as map-sync and the kubelet do: the agent's
    watcher polls every 0.1 s and must never see a half-written or re-stamped file."""
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(text)
    os.utime(staged, (time.time() + mtime_ahead, time.time() + mtime_ahead))
    os.replace(staged, path)


@dataclass
class SelfManaged:
    """An agent with the sts backend in front of one self-managed cluster."""

    agent: Agent
    backend: StsBackend
    identity: ClusterIdentity
    path: Path
    calls: list[dict[str, Any]]  # the AssumeRole parameters sent, in order
    roles: tuple[str, str]  # app (mapped), other
    sts: Any
    api: ClusterAPI
    token_file: Path
    ca_file: str


def push_api_to_other(self_managed: SelfManaged) -> None:
    """The control plane pushes a map where payments/api has the other role."""
    app, other = self_managed.roles
    write_map(
        self_managed.path,
        {
            ("payments", "api"): {"role_arn": other},
            ("batch", "job"): {"role_arn": app, "disable_session_tags": True},
        },
    )


def push_api_chained_to_other(self_managed: SelfManaged) -> None:
    """payments/api maps to app, which chains on to the target role `other`."""
    app, other = self_managed.roles
    write_map(self_managed.path, {("payments", "api"): {"role_arn": app, "target_role_arn": other}})


def self_managed_role(world: World, name: str) -> str:
    """A role the nodes assume; it allows the 6 h sessions the agent asks STS for
    (STS refuses DurationSeconds above a role's MaxSessionDuration, 1 h by default)."""
    role = world.client("iam").create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(NODE_TRUST),
        MaxSessionDuration=6 * 3600,
    )
    return str(role["Role"]["Arn"])


@pytest.fixture
def self_managed(world: World, kube: LocalKubernetes, tmp_path: Path) -> Iterator[SelfManaged]:
    identity = ClusterIdentity.create(CLUSTER_ARN)
    api = kube.add_cluster("onprem", identity=identity)
    api.add_static_token(AGENT_TOKEN, "system:serviceaccount:kube-system:podid-node-agent")
    api.grant("system:serviceaccount:kube-system:podid-node-agent", ["create"], "tokenreviews")
    app, other = (self_managed_role(world, name) for name in ("app", "other"))
    path = tmp_path / "associations.json"
    write_map(
        path,
        {
            ("payments", "api"): {"role_arn": app},
            ("batch", "job"): {"role_arn": app, "disable_session_tags": True},
        },
    )
    token_file = tmp_path / "agent-token"
    token_file.write_text(AGENT_TOKEN + "\n")
    reviewer = TokenReviewer(api.url, str(token_file), str(kube.ca_file))
    sts = botocore.session.get_session().create_client("sts", region_name=REGION)
    calls: list[dict[str, Any]] = []
    sts.meta.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: calls.append(dict(params))
    )
    backend = StsBackend(reviewer, AssociationMap(str(path), check_seconds=0), sts)
    settings = AgentSettings.create(
        binds=("127.0.0.1:0",),
        ops_bind="127.0.0.1:0",
        cluster_name="onprem",
        backend="sts",
        association_map=str(path),
        map_poll_seconds=0.1,
    )
    agent = Agent(settings, backend).start_in_thread()
    yield SelfManaged(
        agent=agent,
        backend=backend,
        identity=identity,
        path=path,
        calls=calls,
        roles=(app, other),
        sts=sts,
        api=api,
        token_file=token_file,
        ca_file=str(kube.ca_file),
    )
    agent.stop_thread()


def test_a_pod_gets_its_mapped_role_with_the_eks_session_tags(self_managed: SelfManaged) -> None:
    agent, identity = self_managed.agent, self_managed.identity
    status, body = get_credentials(
        agent.ports[0], identity.issue("payments", "api", pod_name="api-1")
    )
    assert status == 200
    assert body["AccountId"] == ACCOUNT
    (call,) = self_managed.calls
    assert call["RoleArn"] == self_managed.roles[0]
    assert call["RoleSessionName"] == "eks-onprem-api-1"
    tags = {t["Key"]: t["Value"] for t in call["Tags"]}
    assert tags["eks-cluster-arn"] == CLUSTER_ARN
    assert tags["eks-cluster-name"] == "onprem"
    assert (
        tags["kubernetes-namespace"],
        tags["kubernetes-service-account"],
        tags["kubernetes-pod-name"],
    ) == ("payments", "api", "api-1")
    assert len(tags["kubernetes-pod-uid"]) == 36


def test_disabled_session_tags_are_honoured(self_managed: SelfManaged) -> None:
    agent, identity = self_managed.agent, self_managed.identity
    assert get_credentials(agent.ports[0], identity.issue("batch", "job"))[0] == 200
    (call,) = self_managed.calls
    assert "Tags" not in call


def test_unknown_service_accounts_and_forged_tokens_are_refused(self_managed: SelfManaged) -> None:
    agent, identity = self_managed.agent, self_managed.identity
    status, body = get_credentials(agent.ports[0], identity.issue("payments", "nobody"))
    assert (status, body["Code"]) == (404, "ResourceNotFound")
    forged = ClusterIdentity.create(CLUSTER_ARN).issue("payments", "api")
    status, body = get_credentials(agent.ports[0], forged)
    assert (status, body["Code"]) == (401, "InvalidToken")
    assert self_managed.calls == []


def test_a_changed_map_drops_exactly_the_affected_cached_identities(
    self_managed: SelfManaged,
) -> None:
    agent, identity = self_managed.agent, self_managed.identity
    api_token, job_token = identity.issue("payments", "api"), identity.issue("batch", "job")
    _, api_before = get_credentials(agent.ports[0], api_token)
    _, job_before = get_credentials(agent.ports[0], job_token)
    other = self_managed.roles[1]
    # When the control plane pushes a map where payments/api has another role
    push_api_to_other(self_managed)
    deadline = time.time() + 5
    while len(agent.cache) == 2 and time.time() < deadline:
        time.sleep(0.05)
    # Then payments/api is fetched again with the new role; batch/job stays cached
    _, api_after = get_credentials(agent.ports[0], api_token)
    _, job_after = get_credentials(agent.ports[0], job_token)
    assert api_after["AccessKeyId"] != api_before["AccessKeyId"]
    assert job_after["AccessKeyId"] == job_before["AccessKeyId"]
    assert self_managed.calls[-1]["RoleArn"] == other


def test_a_map_change_first_read_by_a_fetch_still_drops_the_cached_identity(
    self_managed: SelfManaged,
) -> None:
    agent, identity = self_managed.agent, self_managed.identity
    api_token = identity.issue("payments", "api")
    _, api_before = get_credentials(agent.ports[0], api_token)
    other = self_managed.roles[1]
    push_api_to_other(self_managed)
    # When a fetch for another identity reads the new map before the watcher's next poll
    assert self_managed.backend.associations.lookup("batch", "job") is not None
    # Then the watcher still learns that payments/api changed and drops its credential
    deadline = time.monotonic() + 5
    while len(agent.cache) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(agent.cache) == 0, "the cached payments/api credential outlived its map entry"
    _, api_after = get_credentials(agent.ports[0], api_token)
    assert api_after["AccessKeyId"] != api_before["AccessKeyId"]
    assert self_managed.calls[-1]["RoleArn"] == other


def test_a_map_swapped_in_within_one_mtime_tick_at_the_same_size_is_reloaded(
    tmp_path: Path,
) -> None:
    # Given a map read by the agent
    path = tmp_path / "associations.json"
    write_map(path, {("payments", "api"): {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/abc"}})
    associations = AssociationMap(str(path), check_seconds=0)
    associations.poll()
    before = path.stat()
    # When the next push is swapped in within the file system's timestamp tick (a few ms),
    # at the same size
    write_map(path, {("payments", "api"): {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/xyz"}})
    os.utime(path, ns=(before.st_mtime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    # Then it is still seen as a new map
    assert associations.poll() == {("payments", "api")}
    entry = associations.lookup("payments", "api")
    assert entry is not None
    assert entry["roleArn"].endswith(":role/xyz")


def test_a_tampered_map_is_refused_and_the_last_good_one_kept(self_managed: SelfManaged) -> None:
    agent, identity, path = self_managed.agent, self_managed.identity, self_managed.path
    associations = self_managed.backend.associations
    associations.poll()
    replace_file(path, path.read_text().replace("role/app", "role/evil"), mtime_ahead=5)
    # the agent's watcher may see the file first; either way it is refused once
    assert associations.poll() == set()
    assert associations.rejected == 1
    time.sleep(0.3)
    assert associations.rejected == 1
    assert get_credentials(agent.ports[0], identity.issue("payments", "api"))[0] == 200
    assert self_managed.calls[-1]["RoleArn"] == self_managed.roles[0]


class _AudienceBlindApiServer:
    """An API server whose token authenticator ignores audiences (a webhook
    authenticator does): it answers authenticated, with its own audience only."""

    def __init__(self, username: str) -> None:
        import http.server
        import threading

        status = {
            "authenticated": True,
            "audiences": ["https://kubernetes.default.svc"],
            "user": {"username": username, "extra": {}},
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = json.dumps({**review, "status": status}).encode()  # spec echoed
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_token_review_that_does_not_confirm_the_pod_audience_is_refused(
    self_managed: SelfManaged,
) -> None:
    identity, calls = self_managed.identity, self_managed.calls
    blind = _AudienceBlindApiServer("system:serviceaccount:payments:api")
    try:
        reviewer = TokenReviewer(blind.url)
        backend = StsBackend(reviewer, self_managed.backend.associations, self_managed.sts)
        settings = AgentSettings.create(
            binds=("127.0.0.1:0",),
            ops_bind="127.0.0.1:0",
            cluster_name="onprem",
            backend="sts",
            association_map=str(self_managed.path),
        )
        agent = Agent(settings, backend).start_in_thread()
        try:
            status, body = get_credentials(agent.ports[0], identity.issue("payments", "api"))
        finally:
            agent.stop_thread()
    finally:
        blind.close()
    assert (status, body["Code"]) == (401, "InvalidToken")
    assert calls == []


def test_a_target_role_is_reached_by_chaining_from_the_mapped_role(
    self_managed: SelfManaged,
) -> None:
    agent, identity = self_managed.agent, self_managed.identity
    app = self_managed.roles[0]
    # Given payments/api maps to app, which chains on to the target role `other`
    push_api_chained_to_other(self_managed)
    # When a pod asks for credentials
    status, body = get_credentials(agent.ports[0], identity.issue("payments", "api"))
    # Then it gets the target role's, assumed with the mapped role's credentials
    assert status == 200
    assert [c["RoleArn"] for c in self_managed.calls] == [app]
    sts = sts_as(body["AccessKeyId"], body["SecretAccessKey"], body["Token"])
    assert ":assumed-role/other/" in sts.get_caller_identity()["Arn"]


def test_a_chained_fetch_reads_no_sdk_model_file_on_the_request_path(
    self_managed: SelfManaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.loaders import JSONFileLoader

    agent, identity = self_managed.agent, self_managed.identity
    push_api_chained_to_other(self_managed)
    loaded: list[str] = []
    load_file = JSONFileLoader.load_file

    def counting(self: JSONFileLoader, file_path: str, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith("podid-upstream"):  # not moto's threads
            loaded.append(file_path)
        return load_file(self, file_path, *args, **kwargs)

    monkeypatch.setattr(JSONFileLoader, "load_file", counting)
    # When the first pod of a chained identity asks (its budget is 1.5 s)
    status, _ = get_credentials(agent.ports[0], identity.issue("payments", "api"))
    # Then no SDK model was parsed meanwhile (~150 ms of CPU: on a loaded node, a 504)
    assert status == 200
    assert loaded == []


def test_the_reviewer_reads_a_rotated_agent_token(self_managed: SelfManaged) -> None:
    # Given the agent's own token file was rotated to a token the cluster does not know
    identity, token_file = self_managed.identity, self_managed.token_file
    reviewer = TokenReviewer(self_managed.api.url, str(token_file), self_managed.ca_file)
    assert reviewer.review(identity.issue("payments", "api")).service_account == "api"
    token_file.write_text("rotated-unknown-token\n")
    # Then the next review is sent with it (and the cluster's 401 is a clear 503)
    with pytest.raises(AgentError) as refused:
        reviewer.review(identity.issue("payments", "api"))
    assert (refused.value.status, refused.value.code) == (503, "TokenReviewFailed")
    assert "(401)" in refused.value.message
    assert not refused.value.retryable


def test_an_unreachable_api_server_is_a_retryable_503(
    self_managed: SelfManaged, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    reviewer = TokenReviewer(f"https://127.0.0.1:{port}", None, self_managed.ca_file)
    with pytest.raises(AgentError) as failed:
        reviewer.review(self_managed.identity.issue("payments", "api"))
    assert (failed.value.status, failed.value.code, failed.value.retryable) == (
        503,
        "TokenReviewFailed",
        True,
    )


def test_a_role_allowing_only_one_hour_sessions_gets_one_hour_credentials(
    self_managed: SelfManaged, world: World
) -> None:
    # Given a mapped role left at IAM's default MaxSessionDuration (1 h): STS refuses
    # the 6 h the agent asks for first
    short = world.client("iam").create_role(
        RoleName="short-sessions", AssumeRolePolicyDocument=json.dumps(NODE_TRUST)
    )["Role"]["Arn"]
    write_map(self_managed.path, {("payments", "api"): {"role_arn": short}})
    # When two pods of the service account ask for credentials
    for pod in ("api-1", "api-2"):
        status, body = get_credentials(
            self_managed.agent.ports[0],
            self_managed.identity.issue("payments", "api", pod_name=pod),
        )
        # Then each gets credentials of that role
        assert status == 200, body
    # asking 6 h once, then 1 h, and 1 h straight away for the next pod
    durations = [(c["RoleArn"], c["DurationSeconds"]) for c in self_managed.calls]
    assert durations == [(short, 6 * 3600), (short, 3600), (short, 3600)]
