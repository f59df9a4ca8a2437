"""`make demo`: the whole control plane, locally, narrated. Exits 0 only if
every step's outcome was checked."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from functions.core.models import Declaration
from functions.core.places import Place
from node_agent.backends.eks_auth import EksAuthBackend, client_config
from node_agent.runtime import Agent
from node_agent.settings import AgentSettings
from sandbox.cluster_identity import REGISTRY
from sandbox.shapes import described_associations, target_trust
from sandbox.stack import ACCOUNT, POD_TRUST, ROLE_PATH, TABLE, Sandbox, quiet

console = Console()
ROLE = "payments-api"
SPOKE_ACCOUNT = "payments-prod"  # a member account of the hub's organization
SPOKE_REGION = "us-west-2"  # not the hub's region
SPOKE_CLUSTER = "amber"
CENTRAL_ROLE = "central-ledger"  # a target role in the hub account


class DemoFailed(Exception):
    pass


class Steps:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float]] = []

    def run(self, title: str, action: Callable[[], str]) -> None:
        console.rule(f"[bold]{len(self.rows) + 1}. {title}")
        started = time.perf_counter()
        try:
            outcome = action()
        except Exception as error:
            self.rows.append((title, f"FAILED: {error}", time.perf_counter() - started))
            raise DemoFailed(f"{title}: {error}") from error
        self.rows.append((title, outcome, time.perf_counter() - started))
        console.print(f"[green]✔[/green] {outcome}")

    def summary(self) -> Table:
        table = Table(title="podid sandbox demo", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("step")
        table.add_column("checked outcome")
        table.add_column("s", justify="right")
        for index, (title, outcome, seconds) in enumerate(self.rows, 1):
            style = "red" if outcome.startswith("FAILED") else "green"
            table.add_row(str(index), title, f"[{style}]{outcome}[/{style}]", f"{seconds:.1f}")
        return table


T = TypeVar("T")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)


def present(value: T | None, message: str) -> T:
    """The value, or the demo fails saying what was missing."""
    if value is None:
        raise DemoFailed(message)
    return value


def associations(sandbox: Sandbox, cluster: str) -> dict[tuple[str, str], dict[str, Any]]:
    return described_associations(sandbox.client("eks"), cluster)


def identities(sandbox: Sandbox, cluster: str) -> list[dict[str, str]]:
    configmap = sandbox.apis[cluster].configmap("kube-system", "pod-identity-associations")
    pushed = present(configmap, f"no association map pushed to {cluster}")
    return list(json.loads(pushed["data"]["identities.json"])["identities"])


def associations_in(
    sandbox: Sandbox, place: Place, cluster: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """A cluster's associations as its own account's EKS shows them (its admin)."""
    return described_associations(sandbox.client_in(place, "eks"), cluster)


def create_role_in(sandbox: Sandbox, place: Place, name: str, trust: dict[str, Any]) -> str:
    """A role its account's owner creates there (in the role scope)."""
    role = sandbox.client_in(place, "iam").create_role(
        RoleName=name, Path=ROLE_PATH, AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]
    return str(role["Arn"])


def podid_status(cluster: str) -> list[dict[str, Any]]:
    """`podid status --cluster <account/region/name> -o json`, as an operator runs it."""
    from cli.main import app

    result = CliRunner().invoke(
        app, ["status", "--cluster", cluster, "--output", "json", "--table", TABLE]
    )
    check(result.exit_code == 0, f"podid status failed: {result.output}")
    return list(json.loads(result.output))


def pod_role(sandbox: Sandbox, place: Place, cluster: str, namespace: str, sa: str) -> str | None:
    """The role a pod of namespace/sa on the cluster gets from EKS Auth (asked in the
    cluster's account, as its node agent does); None when EKS Auth refuses it."""
    arn = f"arn:aws:eks:{place.region}:{place.account}:cluster/{cluster}"
    token = REGISTRY.for_cluster(arn).issue(namespace, sa, pod_name=f"{sa}-demo")
    try:
        answer = sandbox.client_in(place, "eks-auth").assume_role_for_pod_identity(
            clusterName=cluster, token=token
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "AccessDeniedException":
            return None
        raise
    return str(answer["assumedRoleUser"]["arn"])


def scenario(sandbox: Sandbox, steps: Steps, workdir: str) -> None:
    from functions.flows.services import services

    iam = sandbox.client("iam")
    role_arn = ""

    def setup() -> str:
        nonlocal role_arn
        for name in ("blue", "green"):
            sandbox.add_cluster(name, fleet="prod")
        role_arn = sandbox.add_role(ROLE)
        sandbox.pump()
        sandbox.schedule()
        sandbox.pump()
        enrolled = [c.name for c in services().repo.list_clusters() if c.enrolled]
        check(enrolled == ["blue", "green"], f"enrolled {enrolled}")
        return "clusters blue and green (fleet prod) enrolled; role payments-api created"

    def declare() -> str:
        services().repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "payments-api",
                    "namespace": "payments",
                    "serviceAccount": "api",
                    "roleArn": role_arn,
                    "target": {"fleet": "prod"},
                    "tags": {"team": "payments"},
                }
            )
        )
        sandbox.pump()
        for cluster in ("blue", "green"):
            found = associations(sandbox, cluster)
            check(list(found) == [("payments", "api")], f"{cluster} has {list(found)}")
            check(found[("payments", "api")]["roleArn"] == role_arn, "wrong role")
        return (
            "declared payments/api -> payments-api for fleet prod: associations on blue and green"
        )

    def refused() -> str:
        # a table writer asks for an admin role outside the deployment's role scope,
        # one its owner lets only the account itself assume
        account_only = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{sandbox.partition}:iam::{ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        admin = iam.create_role(
            RoleName="breakglass-admin", AssumeRolePolicyDocument=json.dumps(account_only)
        )["Role"]["Arn"]
        services().repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "escalation",
                    "namespace": "attacker",
                    "serviceAccount": "default",
                    "roleArn": admin,
                    "target": {"fleet": "prod"},
                }
            )
        )
        sandbox.pump()
        status = services().repo.get_declaration_status("escalation")
        why = " ".join(status.warnings) if status else ""
        check("outside this deployment's role scope" in why, f"escalation status: {why!r}")
        for cluster in ("blue", "green"):
            check(("attacker", "default") not in associations(sandbox, cluster), "bound!")
        trust = iam.get_role(RoleName="breakglass-admin")["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        check(trust == account_only, "the admin role's trust policy was changed")
        return (
            "declaration binding breakglass-admin (outside the role scope /pod-identity/) "
            "-> refused, status says why, nothing bound"
        )

    def maps() -> str:
        for cluster in ("blue", "green"):
            check(
                identities(sandbox, cluster)
                == [{"namespace": "payments", "serviceAccount": "api"}],
                f"map of {cluster}",
            )
        return "association maps pushed to both clusters' webhook ConfigMaps"

    def tamper() -> str:
        iam.update_assume_role_policy(
            RoleName=ROLE,
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        sandbox.pump()
        latest = present(services().repo.latest_finding(role_arn), "no finding recorded")
        check(latest.action.value == "repaired", f"finding {latest}")
        codes = sorted({f.code for f in latest.findings})
        policy = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
        policy = json.loads(policy) if isinstance(policy, str) else policy
        principals = [s["Principal"] for s in policy["Statement"]]
        check({"Service": "pods.eks.amazonaws.com"} in principals, "pod principal not restored")
        check({"Service": "ec2.amazonaws.com"} in principals, "unrelated principal lost")
        return (
            f"trust policy tampered -> findings {', '.join(codes)} -> repaired (ec2 principal kept)"
        )

    def drift() -> str:
        before = associations(sandbox, "blue")[("payments", "api")]
        sandbox.client("eks").delete_pod_identity_association(
            clusterName="blue", associationId=before["associationId"]
        )
        sandbox.pump()
        after = present(
            associations(sandbox, "blue").get(("payments", "api")), "association not healed"
        )
        check(after["associationId"] != before["associationId"], "same association?")
        return f"association deleted by hand -> healed as {after['associationId']}"

    def join() -> str:
        sandbox.add_cluster("teal", fleet="prod")
        sandbox.pump()
        check(list(associations(sandbox, "teal")) == [("payments", "api")], "teal not enrolled")
        check(
            identities(sandbox, "teal") == [{"namespace": "payments", "serviceAccount": "api"}],
            "teal map",
        )
        # podid's repair admits declared clusters only: the next trust sweep adds teal
        sandbox.schedule()
        sandbox.pump()
        policy = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
        policy = json.loads(policy) if isinstance(policy, str) else policy
        check("cluster/teal" in json.dumps(policy), "teal not admitted by the trust policy")
        return (
            "cluster teal created with tag pod-identity/fleet=prod -> enrolled, "
            "association + map, zero edits; the trust sweep admits teal in podid's grant"
        )

    spoke: list[Place] = []

    def second_place() -> str:
        # a member account's owner, in another region: a cluster of fleet prod and
        # the role ledger-writer (one of that name in each account, the hub's too)
        place = Place(sandbox.member_account(SPOKE_ACCOUNT), SPOKE_REGION)
        sandbox.add_cluster(SPOKE_CLUSTER, fleet="prod", place=place)
        theirs = create_role_in(sandbox, place, "ledger-writer", POD_TRUST)
        ours = sandbox.add_role("ledger-writer")
        services().repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "ledger-writer",
                    "namespace": "ledger",
                    "serviceAccount": "writer",
                    "roleName": "pod-identity/ledger-writer",
                    "target": {"fleet": "prod"},
                }
            )
        )
        sandbox.pump()
        check(
            not any(c.name == SPOKE_CLUSTER for c in services().repo.list_clusters()),
            "amber known before its account's spoke was deployed",
        )
        # the member account deploys the spoke stack; its heartbeat reaches the hub
        joined = sandbox.add_spoke(SPOKE_ACCOUNT, SPOKE_REGION)
        check(joined == place, f"spoke at {joined}")
        spoke.append(place)
        sandbox.pump()
        enrolled = {str(c.ref) for c in services().repo.list_clusters() if c.enrolled}
        ref = f"{place.account}/{place.region}/{SPOKE_CLUSTER}"
        check(ref in enrolled, f"{ref} not enrolled: {sorted(enrolled)}")
        found = associations_in(sandbox, place, SPOKE_CLUSTER)
        check(list(found) == [("ledger", "writer")], f"{SPOKE_CLUSTER} has {list(found)}")
        check(found[("ledger", "writer")]["roleArn"] == theirs, "not the account's own role")
        for cluster in ("blue", "green", "teal"):
            bound = associations(sandbox, cluster)[("ledger", "writer")]["roleArn"]
            check(bound == ours, f"{cluster} bound {bound}")
        check(
            identities(sandbox, SPOKE_CLUSTER)
            == [{"namespace": "ledger", "serviceAccount": "writer"}],
            f"map of {SPOKE_CLUSTER}",
        )
        # payments-api names one role by ARN, in the hub account: EKS cannot use it
        # there, and podid status says so on that cluster
        rows = {r["serviceAccount"]: r for r in podid_status(ref)}
        payments = rows.get("api") or {}
        check(
            payments.get("state") == "Error"
            and "use roleName for a role per account" in str(payments.get("reason")),
            f"payments/api on {SPOKE_CLUSTER}: {payments}",
        )
        check(rows.get("writer", {}).get("state") == "InSync", f"ledger/writer: {rows}")
        return (
            f"spoke in {SPOKE_ACCOUNT} ({place.account}) {SPOKE_REGION}: heartbeat -> "
            f"{SPOKE_CLUSTER} enrolled, zero edits in the hub; roleName ledger-writer bound "
            "to each account's own role (checked in that account's EKS), map pushed "
            "through the spoke role; payments-api (one roleArn) says why not there"
        )

    def central_target() -> str:
        place = spoke[0] if spoke else Place(sandbox.member_account(SPOKE_ACCOUNT), SPOKE_REGION)
        association_role = create_role_in(sandbox, place, "ledger-reports", POD_TRUST)
        # the hub account's owner lets that role in, but with no externalId condition
        central = str(
            iam.create_role(
                RoleName=CENTRAL_ROLE,
                Path=ROLE_PATH,
                AssumeRolePolicyDocument=json.dumps(target_trust(association_role, None)),
            )["Role"]["Arn"]
        )
        services().repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "ledger-reports",
                    "namespace": "ledger",
                    "serviceAccount": "reports",
                    "roleName": "pod-identity/ledger-reports",
                    "targetRoleArn": central,
                    "target": {"fleet": "prod", "accounts": [place.account]},
                }
            )
        )
        sandbox.pump()
        cluster = f"{place.account}/{place.region}/{SPOKE_CLUSTER}"
        (row,) = [r for r in podid_status(cluster) if r["serviceAccount"] == "reports"]
        external_id = present(row["externalId"], "podid status shows no externalId")
        association = associations_in(sandbox, place, SPOKE_CLUSTER)[("ledger", "reports")]
        check(association["externalId"] == external_id, "status and EKS disagree")
        check(association["targetRoleArn"] == central, "no target role on the association")

        def guarded() -> list[str]:
            sandbox.pump()
            latest = present(services().repo.latest_finding(central), "target never checked")
            check(latest.action.value == "reported", f"the target role was acted on: {latest}")
            return sorted(f.code for f in latest.findings)

        def trust(external: str | None) -> None:
            iam.update_assume_role_policy(
                RoleName=CENTRAL_ROLE,
                PolicyDocument=json.dumps(target_trust(association_role, external)),
            )

        sandbox.schedule()  # the sweep: no IAM event says the declaration arrived
        no_condition = guarded()
        check(no_condition == ["PI071"], f"no externalId condition: {no_condition}")
        reaches = pod_role(sandbox, place, SPOKE_CLUSTER, "ledger", "reports")
        check(reaches is not None and f"/{CENTRAL_ROLE}/" in reaches, f"pod got {reaches}")
        trust("another-association's-id")
        wrong = guarded()
        check(wrong == ["PI070"], f"wrong externalId: {wrong}")
        refused = pod_role(sandbox, place, SPOKE_CLUSTER, "ledger", "reports")
        check(refused is None, f"EKS Auth let the pod in with a wrong trust: {refused}")
        trust(external_id)
        right = guarded()
        check(right == [], f"correct trust still has findings: {right}")
        granted = present(
            pod_role(sandbox, place, SPOKE_CLUSTER, "ledger", "reports"), "pod refused"
        )
        check(f"/{CENTRAL_ROLE}/" in granted, f"pod got {granted}")
        written = iam.get_role(RoleName=CENTRAL_ROLE)["Role"]["AssumeRolePolicyDocument"]
        written = json.loads(written) if isinstance(written, str) else written
        check(written == target_trust(association_role, external_id), "target role edited")
        return (
            f"target role {CENTRAL_ROLE} (hub account) for ledger/reports on {SPOKE_CLUSTER}: "
            "no externalId -> PI071, wrong externalId -> PI070 (EKS Auth refuses the pod), "
            f"externalId {external_id[:8]}… from podid status -> no finding, pod gets "
            f"{CENTRAL_ROLE}; never edited"
        )

    def credentials() -> str:
        settings = AgentSettings.create(
            binds=("127.0.0.1:0",),
            ops_bind="127.0.0.1:0",
            cluster_name="teal",
            region=sandbox.region,
        )
        backend = EksAuthBackend(
            boto3.client(
                "eks-auth",
                region_name=sandbox.region,
                endpoint_url=sandbox.endpoint,
                config=client_config(1.0),
            ),
            "teal",
        )
        agent = Agent(settings, backend).start_in_thread()
        try:
            with sandbox.pod_environment("teal", "payments", "api", agent.ports[0], workdir):
                session = boto3.Session(region_name=sandbox.region)
                method = getattr(session.get_credentials(), "method", None)
                caller = session.client("sts", endpoint_url=sandbox.endpoint).get_caller_identity()
        finally:
            agent.stop_thread()
        check(method == "container-role", f"credentials came from {method}")
        check(f":assumed-role/{ROLE}/" in caller["Arn"], f"caller {caller['Arn']}")
        return f"a pod on teal got credentials through the node agent: {caller['Arn']}"

    for title, action in (
        ("Start clusters and a role", setup),
        ("Declare a fleet-wide association", declare),
        ("A declaration asks for a role outside the scope", refused),
        ("Maps pushed to the webhook", maps),
        ("Tamper with the trust policy (enforce mode)", tamper),
        ("Delete an association by hand", drift),
        ("A new cluster joins the fleet", join),
        ("A second account and region join", second_place),
        ("A cross-account target role's trust is validated", central_target),
        ("A pod fetches credentials and calls STS", credentials),
    ):
        steps.run(title, action)


def main() -> int:
    quiet()
    console.print(
        "[bold]podid[/bold]: EKS Pod Identity control plane, "
        "on an embedded local AWS (no account needed)\n"
    )
    steps = Steps()
    started = time.perf_counter()
    status = 0
    with (
        tempfile.TemporaryDirectory(prefix="podid-demo-") as workdir,
        Sandbox(mode="enforce") as sandbox,
    ):
        console.print(
            f"moto (AWS) on {sandbox.endpoint}, "
            f"Kubernetes APIs on {sandbox.kube.url if sandbox.kube else '?'}"
        )
        try:
            scenario(sandbox, steps, workdir)
        except DemoFailed as error:
            console.print(f"[red]✘ {error}[/red]")
            status = 1
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: cleaning up[/yellow]")
            status = 130
        handled = len(sandbox.handled)
    console.print(steps.summary())
    console.print(
        f"{len(steps.rows)} steps, {handled} events routed to the functions, account {ACCOUNT}, "
        f"{time.perf_counter() - started:.1f} s. "
        + ("[green]All checks passed.[/green]" if status == 0 else "[red]Failed.[/red]")
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
