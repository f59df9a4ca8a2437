"""IAM CloudTrail events and the schedule -> trust policy findings, and repairs
in enforce mode."""

import json
from collections.abc import Callable
from typing import Any, cast

import pytest

from sandbox.stack import POD_TRUST
from tests.builders import EC2_ONLY, OPT_IN
from tests.integration.conftest import ACCOUNT, GUARD_ROLE, REGION, World, fixture_event

ROLE_NAME = "payments-api"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


@pytest.fixture
def findings_queue(world: World) -> str:
    """Everything the guard publishes on the default bus, captured by a rule."""
    sqs, events = world.client("sqs"), world.client("events")
    url: str = sqs.create_queue(QueueName="findings-capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="capture", EventPattern=json.dumps({"source": ["podid.trust-guard"]}))
    events.put_targets(Rule="capture", Targets=[{"Id": "q", "Arn": arn}])
    return url


def published(world: World, url: str) -> list[dict[str, Any]]:
    messages = (
        world.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def tamper(world: World, trust: dict[str, Any], *, caller: str = "Admin") -> dict[str, Any]:
    world.client("iam").update_assume_role_policy(
        RoleName=ROLE_NAME, PolicyDocument=json.dumps(trust)
    )
    return fixture_event("iam_update_assume_role_policy", ROLE_NAME=ROLE_NAME, CALLER_ROLE=caller)


def finding_history(world: World) -> list[dict[str, Any]]:
    """The role's recorded checks (sort keys FINDING#<timestamp>), oldest first."""
    found: list[dict[str, Any]] = world.table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :f)",
        ExpressionAttributeValues={":pk": f"ROLE#{ROLE}", ":f": "FINDING#2"},
    )["Items"]
    return found


@pytest.fixture
def notifications(world: World) -> str:
    """What the guard sends to the SNS topic, captured by an SQS subscription."""
    sqs, sns = world.client("sqs"), world.client("sns")
    url: str = sqs.create_queue(QueueName="notifications-capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    (topic,) = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return url


def test_audit_mode_records_and_publishes_findings_without_touching_the_role(
    world: World, findings_queue: str, notifications: str
) -> None:
    world.given_payments_api("blue", tags=OPT_IN)
    # When someone removes the pod principal from the trust policy
    event = tamper(world, EC2_ONLY)
    response = world.guard_event(event)
    # Then the finding is recorded with the causing event, published, and the role untouched
    assert response["action"] == "reported"
    assert "PI010" in response["findings"]
    latest = world.record(f"ROLE#{ROLE}", "FINDING#LATEST")
    assert latest["eventId"] == event["detail"]["eventID"]
    assert latest["mode"] == "audit"
    assert world.trust_policy(ROLE_NAME) == EC2_ONLY
    (message,) = published(world, findings_queue)
    assert message["detail-type"] == "Pod Identity Trust Finding"
    assert message["detail"]["roleArn"] == ROLE
    (notification,) = published(world, notifications)
    assert notification["Subject"] == "podid: reported payments-api"
    assert json.loads(notification["Message"])["findings"][0]["code"] == "PI010"


def test_enforce_mode_repairs_minimally_and_ignores_its_own_change(
    world: World, findings_queue: str
) -> None:
    world.configure(mode="enforce")
    world.given_payments_api("blue", tags=OPT_IN)
    response = world.guard_event(tamper(world, EC2_ONLY))
    assert response["action"] == "repaired"
    repaired = world.trust_policy(ROLE_NAME)
    assert repaired["Statement"][0] == EC2_ONLY["Statement"][0]  # the other principal is kept
    pods = repaired["Statement"][1]
    assert pods["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert pods["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert pods["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    # When CloudTrail reports the guard's own UpdateAssumeRolePolicy
    own = fixture_event(
        "iam_update_assume_role_policy",
        ROLE_NAME=ROLE_NAME,
        CALLER_ROLE=GUARD_ROLE.rsplit("/", 1)[1],
    )
    # Then it is ignored: no loop, no second finding
    assert world.guard_event(own) == {"status": "ignored"}
    assert len(finding_history(world)) == 1


def test_enforce_only_edits_roles_that_opted_in(world: World) -> None:
    world.configure(mode="enforce")
    world.given_payments_api("blue")  # no opt-in tag
    response = world.guard_event(tamper(world, EC2_ONLY))
    assert response["action"] == "repair-skipped"
    assert world.trust_policy(ROLE_NAME) == EC2_ONLY
    assert (
        "pod-identity/managed-trust=true"
        in world.record(f"ROLE#{ROLE}", "FINDING#LATEST")["detail"]
    )


def test_a_declaration_mode_lowers_the_deployments_never_raises_it(world: World) -> None:
    world.given_payments_api("blue", tags=OPT_IN)
    # an audit deployment: a table writer asking for enforce gets no IAM write
    world.declare_in_payments("payments-api", "api", mode="enforce")
    world.settle()
    assert world.guard_event(tamper(world, EC2_ONLY))["action"] == "reported"
    # an enforce deployment: a declaration may still ask for audit only
    world.configure(mode="enforce")
    world.declare_in_payments("payments-api", "api", mode="audit")
    world.settle()
    assert world.guard_event(tamper(world, EC2_ONLY))["action"] == "reported"
    world.declare_in_payments("payments-api", "api")
    world.settle()
    assert world.guard_event(tamper(world, EC2_ONLY))["action"] == "repaired"


def test_repairs_are_capped_per_role_per_window(world: World) -> None:
    world.configure(mode="enforce", repair_limit="2")
    world.given_payments_api("blue", tags=OPT_IN)
    actions = [world.guard_event(tamper(world, EC2_ONLY))["action"] for _ in range(3)]
    assert actions == ["repaired", "repaired", "repair-skipped"]
    assert "repair limit reached" in world.record(f"ROLE#{ROLE}", "FINDING#LATEST")["detail"]


def test_role_deleted_under_a_live_declaration_is_an_error_finding(world: World) -> None:
    world.given_payments_api("blue")
    world.client("iam").delete_role(RoleName=ROLE_NAME)
    response = world.guard_event(fixture_event("iam_delete_role", ROLE_NAME=ROLE_NAME))
    assert response["findings"] == ["PI002"]
    latest = world.record(f"ROLE#{ROLE}", "FINDING#LATEST")
    assert "was deleted" in latest["findings"][0]["message"]


def test_the_same_event_delivered_twice_is_handled_once(world: World) -> None:
    world.given_payments_api("blue")
    event = tamper(world, EC2_ONLY)
    first = world.guard_event(event)
    second = world.guard_event(event)
    assert first == second
    assert len(finding_history(world)) == 1


def test_roles_without_declarations_and_failed_calls_are_ignored(world: World) -> None:
    world.given_payments_api("blue")
    world.create_role("unrelated")
    assert world.guard_event(
        fixture_event("iam_update_assume_role_policy", ROLE_NAME="unrelated", CALLER_ROLE="Admin")
    ) == {"status": "ignored"}
    failed = tamper(world, EC2_ONLY)
    failed["detail"]["errorCode"] = "AccessDenied"
    assert world.guard_event(failed) == {"status": "ignored"}


NO_TAG_SESSION = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ],
}


def schedule(world: World, run: int) -> dict[str, Any]:
    event = fixture_event("scheduled_event")
    event["id"] = f"{event['id'][:-4]}{run:04d}"  # each firing has its own id
    response: dict[str, Any] = world.guard_event(event)
    return response


def test_the_schedule_checks_a_role_declared_with_a_bad_policy_once_then_stays_quiet(
    world: World, findings_queue: str
) -> None:
    # Given a role that was already wrong when it was declared: no IAM event will come
    world.given_payments_api("blue", trust=NO_TAG_SESSION)
    assert world.item(f"ROLE#{ROLE}", "FINDING#LATEST") is None
    # When the schedule fires
    swept = schedule(world, 1)
    # Then the role is analysed, recorded and published
    assert swept == {"status": "swept", "roles": 1, "changed": [ROLE]}
    latest = world.record(f"ROLE#{ROLE}", "FINDING#LATEST")
    assert [f["code"] for f in latest["findings"]] == ["PI012", "PI031", "PI032"]
    assert "eventId" not in latest
    assert len(published(world, findings_queue)) == 1
    # And the next firings find nothing new: nothing recorded or published again
    assert schedule(world, 2) == {"status": "swept", "roles": 1, "changed": []}
    assert published(world, findings_queue) == []
    assert len(finding_history(world)) == 1


def test_the_schedule_repairs_an_opted_in_role_in_enforce_mode(world: World) -> None:
    world.configure(mode="enforce")
    world.given_payments_api("blue", tags=OPT_IN, trust=NO_TAG_SESSION)
    assert schedule(world, 1)["changed"] == [ROLE]
    assert world.record(f"ROLE#{ROLE}", "FINDING#LATEST")["action"] == "repaired"
    owners, added = world.trust_policy(ROLE_NAME)["Statement"]
    assert owners == NO_TAG_SESSION["Statement"][0]  # as its owner wrote it
    assert added["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert added["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-service-account"] == "api"


def test_the_schedule_does_not_renotify_a_role_it_may_not_repair(
    world: World, notifications: str
) -> None:
    # Given enforce mode and a wrong role that did not opt in to repairs
    world.configure(mode="enforce")
    world.given_payments_api("blue", trust=NO_TAG_SESSION)
    # When the schedule fires twice
    assert schedule(world, 1)["changed"] == [ROLE]
    assert schedule(world, 2)["changed"] == []
    # Then the operators were told once, and the role is untouched
    (notification,) = published(world, notifications)
    assert notification["Subject"] == "podid: repair-skipped payments-api"
    assert world.trust_policy(ROLE_NAME) == NO_TAG_SESSION


def test_a_repair_seen_again_by_the_schedule_or_a_late_event_is_not_news(
    world: World, findings_queue: str
) -> None:
    # Given enforce mode and an opted-in role that someone tampers with
    world.configure(mode="enforce")
    world.given_payments_api("blue", tags=OPT_IN)
    late = tamper(world, NO_TAG_SESSION)
    # When the schedule repairs it before CloudTrail delivers the tamper event
    assert schedule(world, 1)["changed"] == [ROLE]
    (repair,) = published(world, findings_queue)
    assert repair["detail"]["action"] == "repaired"
    # Then the late event, and the next firing, find only the repair's outcome
    response = world.guard_event(late)
    assert response["status"] == "unchanged"
    assert response["action"] == "repaired"
    assert schedule(world, 2)["changed"] == []
    # And the role's latest record is still the repair, told once
    assert world.record(f"ROLE#{ROLE}", "FINDING#LATEST")["action"] == "repaired"
    assert published(world, findings_queue) == []


def test_a_garbled_event_is_parked_with_the_reason_and_changes_nothing(world: World) -> None:
    world.given_payments_api("blue")
    garbled = fixture_event(
        "iam_update_assume_role_policy", ROLE_NAME=ROLE_NAME, CALLER_ROLE="Admin"
    )
    del garbled["detail"]["userIdentity"]
    assert world.guard_event(garbled) == {"status": "parked"}
    (parked,) = world.dead_letters()
    assert parked["source"] == "trust_guard"
    assert "userIdentity" in parked["reason"]
    assert world.item(f"ROLE#{ROLE}", "FINDING#LATEST") is None


# --- never widen, breakage vs hardening, refusals recorded, role scope ----------------

HARDEN = {"pod-identity/managed-trust": "harden"}
POD_MINIMAL = POD_TRUST  # what the pod principal needs, nothing more
ONLY_ORDERS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                "StringEquals": {
                    "aws:SourceAccount": ACCOUNT,
                    "aws:RequestTag/kubernetes-namespace": "orders",
                }
            },
        }
    ],
}
SCOPED_ROLE = "orders-worker"
SCOPED_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/pod-identity/{SCOPED_ROLE}"


def latest(world: World, role_arn: str = ROLE) -> dict[str, Any]:
    found = world.item(f"ROLE#{role_arn}", "FINDING#LATEST")
    assert found is not None
    return found


def test_a_namespace_the_role_owner_excluded_is_reported_never_widened(world: World) -> None:
    # Given enforce mode, an opted-in role whose owner admits only namespace orders
    world.configure(mode="enforce")
    world.given_payments_api("blue", tags=OPT_IN, trust=ONLY_ORDERS)
    # When the schedule checks it (the table declares payments/api for it)
    schedule(world, 1)
    # Then nothing is written and the finding says who must act
    assert world.trust_policy(ROLE_NAME) == ONLY_ORDERS
    record = latest(world)
    assert record["action"] == "reported"
    (excluded,) = [f for f in record["findings"] if f["code"] == "PI040"]
    assert "blue/payments/api" in excluded["message"]
    assert "role owner must widen it" in excluded["message"]


def test_enforce_repairs_breakage_only_and_proposes_hardening_with_the_exact_policy(
    world: World,
) -> None:
    # Given a working but unhardened role, opted in to breakage repairs only
    world.configure(mode="enforce")
    world.given_payments_api("blue", tags=OPT_IN, trust=POD_MINIMAL)
    schedule(world, 1)
    # Then it is left as its owner wrote it, with the exact hardened policy proposed
    assert world.trust_policy(ROLE_NAME) == POD_MINIMAL
    record = latest(world)
    assert record["action"] == "reported"
    (proposal,) = [f for f in record["findings"] if f["code"] == "PI032"]
    proposed = json.loads(proposal["proposedPolicy"])
    assert proposed["Statement"][0]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": ACCOUNT,
        "aws:RequestTag/eks-cluster-arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/blue",
        "aws:RequestTag/kubernetes-namespace": "payments",
        "aws:RequestTag/kubernetes-service-account": "api",
    }
    # When the owner opts in to hardening with the distinct tag value
    world.client("iam").tag_role(
        RoleName=ROLE_NAME, Tags=[{"Key": k, "Value": v} for k, v in HARDEN.items()]
    )
    schedule(world, 2)
    # Then exactly the proposed policy is written
    assert latest(world)["action"] == "repaired"
    assert world.trust_policy(ROLE_NAME) == proposed


def test_a_repair_over_the_size_quota_is_refused_and_the_refusal_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an opted-in role with no pod trust, two declared usages and the smallest quota
    monkeypatch.setenv("MAX_TRUST_POLICY_CHARS", "512")  # restored after the test
    world.configure(mode="enforce")
    world.given_payments_api("blue", tags=OPT_IN, trust=EC2_ONLY)
    world.declare_in_payments("payments-worker", "worker")
    world.settle()
    schedule(world, 1)
    # Then nothing is written, and the record says why
    assert world.trust_policy(ROLE_NAME) == EC2_ONLY
    record = latest(world)
    assert record["action"] == "repair-skipped"
    (too_large,) = [f for f in record["findings"] if f["code"] == "PI060"]
    assert too_large["severity"] == "error"
    assert "quota of 512" in too_large["message"]
    assert "quota" in record["detail"]


def watch_iam(world: World, refuse: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Every IAM call the functions make, as (operation, role name); a role named
    in `refuse` gets that error code, as IAM answers outside the function's policy."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from botocore.model import OperationModel

    from functions.flows.services import services

    calls: list[tuple[str, str]] = []

    def before_call(
        model: OperationModel, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        role = (params.get("body") or {}).get("RoleName", "")  # the serialized query
        calls.append((model.name, role))
        code = (refuse or {}).get(role)
        if code is None:
            return None
        error = {"Code": code, "Message": f"not authorized to perform: iam:{model.name}"}
        return AWSResponse("", 403, HTTPHeaders(), None), {"Error": error, "ResponseMetadata": {}}

    # a before-call handler's answer replaces the call (the stubs type handlers as -> None)
    handler = cast("Callable[..., None]", before_call)
    services().iam._iam.meta.events.register("before-call.iam", handler)
    return calls


def given_scoped_role(world: World) -> None:
    """orders/worker -> the role orders-worker under /pod-identity/, opted in."""
    world.client("iam").create_role(
        RoleName=SCOPED_ROLE,
        Path="/pod-identity/",
        AssumeRolePolicyDocument=json.dumps(EC2_ONLY),
        Tags=[{"Key": k, "Value": v} for k, v in OPT_IN.items()],
    )
    world.declare(
        "orders-worker",
        namespace="orders",
        serviceAccount="worker",
        roleArn=SCOPED_ROLE_ARN,
        target={"fleet": "prod"},
    )
    world.settle()


def test_roles_outside_the_role_path_are_skipped_before_any_iam_call(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given enforce mode restricted to /pod-identity/, a broken role inside it and
    # a broken, opted-in role outside it (at /), both declared
    world.given_payments_api("blue", tags=OPT_IN, trust=EC2_ONLY)
    given_scoped_role(world)
    monkeypatch.setenv("ROLE_PATH", "/pod-identity/")  # restored after the test
    world.configure(mode="enforce")
    calls = watch_iam(world)
    # When the schedule sweeps, and an IAM event names the role outside
    assert schedule(world, 1)["roles"] == 2
    event = world.guard_event(tamper(world, EC2_ONLY))
    # Then the role outside was never asked for, and its record says why
    assert [c for c in calls if c[1] == ROLE_NAME] == []
    assert event["findings"] == ["PI003"]
    outside = latest(world)
    assert "/pod-identity/" in outside["findings"][0]["message"]
    assert world.trust_policy(ROLE_NAME) == EC2_ONLY
    # And the role inside was repaired
    assert latest(world, SCOPED_ROLE_ARN)["action"] == "repaired"


@pytest.mark.parametrize("code", ["AccessDenied", "Throttling", "NoSuchEntity"])
def test_an_iam_error_on_one_role_is_a_finding_for_it_and_the_sweep_goes_on(
    world: World, code: str
) -> None:
    # Given two declared roles, IAM refusing every call about one of them
    world.configure(mode="enforce")
    world.given_payments_api("blue", tags=OPT_IN, trust=EC2_ONLY)
    given_scoped_role(world)
    watch_iam(world, refuse={ROLE_NAME: code})
    # When the schedule sweeps, and an IAM event names the refused role
    assert schedule(world, 1)["roles"] == 2
    response = world.guard_event(tamper(world, EC2_ONLY))
    # Then the refused role has a finding naming the call and the error, nothing failed
    assert response["status"] in ("checked", "unchanged")
    (failed,) = latest(world)["findings"]
    assert failed["code"] == ("PI002" if code == "NoSuchEntity" else "PI004")
    if code != "NoSuchEntity":
        assert code in failed["message"]
        assert "GetRole" in failed["message"]
    assert world.dead_letters() == []
    # And the other role was checked and repaired all the same
    assert latest(world, SCOPED_ROLE_ARN)["action"] == "repaired"
