"""The synthesized control plane: wiring, least privilege, safety, lint."""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from moto.events.models import EventPattern

if TYPE_CHECKING:
    from moto.events.utils import EventMessageType

from tests.infra.conftest import ACCOUNT, CHOICES, cfn_lint, template_of
from tests.integration.conftest import fixture_event

SNAPSHOT = Path(__file__).parent / "snapshots" / "resources.json"


def rule_pattern(template: Template, description_start: str) -> EventPattern:
    rules = template.find_resources("AWS::Events::Rule")
    (rule,) = [
        r
        for r in rules.values()
        if r["Properties"].get("Description", "").startswith(description_start)
    ]
    return EventPattern.load(json.dumps(rule["Properties"]["EventPattern"]))


def matches(pattern: EventPattern, event: dict[str, Any]) -> bool:
    """Does EventBridge (as moto implements it) route this CloudTrail event?"""
    return pattern.matches_event(cast("EventMessageType", event))


def test_event_patterns_match_the_real_cloudtrail_samples(template: Template) -> None:
    iam = rule_pattern(template, "CloudTrail IAM role changes")
    eks = rule_pattern(template, "CloudTrail EKS")
    iam_events = [
        fixture_event(
            "iam_update_assume_role_policy", ROLE_NAME="r", CALLER_ROLE="Admin", ACCOUNT=ACCOUNT
        ),
        fixture_event("iam_delete_role", ROLE_NAME="r", ACCOUNT=ACCOUNT),
    ]
    eks_events = [
        fixture_event(
            "eks_delete_pod_identity_association",
            CLUSTER="c",
            ASSOCIATION_ID="a-1",
            CALLER_ROLE="Admin",
            ACCOUNT=ACCOUNT,
        ),
        fixture_event(
            "eks_create_cluster", CLUSTER="c", FLEET="prod", CALLER_ROLE="Admin", ACCOUNT=ACCOUNT
        ),
        fixture_event("eks_untag_resource", CLUSTER="c", ACCOUNT=ACCOUNT),
    ]
    for event in iam_events:
        assert matches(iam, event)
        assert not matches(eks, event)
    for event in eks_events:
        assert matches(eks, event)
        assert not matches(iam, event)
    read_only = fixture_event("iam_delete_role", ROLE_NAME="r", ACCOUNT=ACCOUNT)
    read_only["detail"]["eventName"] = "GetRole"
    assert not matches(iam, read_only)


def test_the_schedule_drives_the_reconcile_pass_and_the_trust_sweep(template: Template) -> None:
    (rule,) = [
        r
        for r in template.find_resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    targets = json.dumps(rule["Properties"]["Targets"])
    functions = template.find_resources("AWS::Lambda::Function")
    handlers = {logical: props["Properties"]["Handler"] for logical, props in functions.items()}
    assert sorted(h for logical, h in handlers.items() if f'"{logical}"' in targets) == [
        "functions.handlers.reconcile.handler",
        "functions.handlers.trust_guard.handler",
    ]


def test_every_asynchronous_path_ends_in_a_dead_letter_queue(template: Template) -> None:
    for rule in template.find_resources("AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            if "lambda" in json.dumps(target["Arn"]).lower():
                assert "DeadLetterConfig" in target
                assert target["RetryPolicy"]["MaximumRetryAttempts"] == 4
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "StartingPosition": "TRIM_HORIZON",
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}},
            "FilterCriteria": {
                "Filters": [
                    {
                        "Pattern": json.dumps(
                            {"dynamodb": {"Keys": {"sk": {"S": ["DECL"]}}}}, separators=(",", ":")
                        )
                    }
                ]
            },
        },
    )
    work_queues = [
        q
        for q in template.find_resources("AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    ]
    assert len(work_queues) == 2  # push (FIFO) and reconcile
    for queue in template.find_resources("AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_functions_run_arm64_with_the_settings_they_parse(template: Template) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    assert len(functions) == 4
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Architectures"] == ["arm64"]
        assert properties["Runtime"].startswith("python3.1")
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["ReservedConcurrentExecutions"] == 5
        env = properties["Environment"]["Variables"]
        for name in (
            "TABLE_NAME",
            "PUSH_QUEUE_URL",
            "RECONCILE_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
            "MODE",
            "SELF_ROLE_ARNS",
        ):
            assert name in env
        assert env["MODE"] == "audit"


def statements(template: Template) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_resource_where_one_can_be_named(template: Template) -> None:
    no_resource_level = {
        "eks:ListClusters",
        "tag:GetResources",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    for statement in statements(template):
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= no_resource_level, statement


def test_only_the_reconcile_function_lists_cluster_tags(template: Template) -> None:
    holders = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "tag:GetResources" in as_list(statement["Action"]):
                assert as_list(statement["Action"]) == ["tag:GetResources"], statement
                holders += [role["Ref"] for role in policy["Properties"]["Roles"]]
    assert len(holders) == 1
    assert "reconcile" in holders[0].lower()


def test_pass_role_only_to_eks_pods_and_no_trust_writes_in_audit_mode(template: Template) -> None:
    passes = [s for s in statements(template) if "iam:PassRole" in as_list(s["Action"])]
    assert passes
    for statement in passes:
        assert statement["Condition"] == {
            "StringEquals": {"iam:PassedToService": "pods.eks.amazonaws.com"}
        }
    assert not [
        s for s in statements(template) if "iam:UpdateAssumeRolePolicy" in as_list(s["Action"])
    ]


def test_enforce_mode_may_edit_only_roles_tagged_for_it(enforce: dict[str, Any]) -> None:
    template = template_of(enforce)
    (update,) = [
        s for s in statements(template) if "iam:UpdateAssumeRolePolicy" in as_list(s["Action"])
    ]
    assert update["Condition"] == {
        "StringEquals": {"iam:ResourceTag/pod-identity/managed-trust": ["true", "harden"]}
    }
    assert "role/pod-identity/*" in json.dumps(update["Resource"])


def test_association_writes_need_this_stacks_owner_tag_unique_per_stack(template: Template) -> None:
    owner = "PodIdentityControlPlane"  # the stack's name, unless the operator picks one
    writes = {"eks:UpdatePodIdentityAssociation", "eks:DeletePodIdentityAssociation"}
    found = [s for s in statements(template) if writes & set(as_list(s["Action"]))]
    assert found
    for statement in found:
        assert statement["Condition"] == {
            "StringEquals": {"aws:ResourceTag/pod-identity/managed-by": owner}
        }
    tagging = [s for s in statements(template) if "eks:TagResource" in as_list(s["Action"])]
    assert {json.dumps(s["Condition"], sort_keys=True) for s in tagging} == {
        json.dumps({"StringEquals": {"aws:ResourceTag/pod-identity/managed-by": owner}}),
        json.dumps({"StringEquals": {"aws:RequestTag/pod-identity/managed-by": owner}}),
    }
    functions = template.find_resources("AWS::Lambda::Function")
    owners = {f["Properties"]["Environment"]["Variables"]["OWNER"] for f in functions.values()}
    assert owners == {owner}


def test_topics_are_encrypted_and_alarms_watch_every_dead_letter_queue(template: Template) -> None:
    for topic in template.find_resources("AWS::SNS::Topic").values():
        assert "KmsMasterKeyId" in topic["Properties"]
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    depth_alarms = [
        a
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    assert len(depth_alarms) == 5
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_iam_events_are_forwarded_from_us_east_1_when_home_is_elsewhere(
    audit: dict[str, Any],
) -> None:
    forwarder = template_of(audit, "PodIdentityControlPlane-IamEvents")
    (rule,) = forwarder.find_resources("AWS::Events::Rule").values()
    assert rule["Properties"]["EventPattern"]["source"] == ["aws.iam"]
    assert "eu-west-1" in json.dumps(rule["Properties"]["Targets"][0]["Arn"])
    assert audit["stacks"]["PodIdentityControlPlane-IamEvents"].environment.region == "us-east-1"


def acknowledgements(app: cdk.App) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for node in app.node.find_all():
        for entry in node.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found += [
                    (node.node.path, rule.removeprefix("Annotation::"), reason)
                    for rule, reason in entry.data.items()
                ]
    return found


def test_cdk_nag_passes_and_every_acknowledgement_has_a_written_reason(
    audit: dict[str, Any],
) -> None:
    # the synth in the fixture raised if any violation were unacknowledged
    assert audit["report"]["pluginReports"] == []
    found = acknowledgements(audit["app"])
    assert found
    for path, rule, reason in found:
        assert rule.startswith("AwsSolutions-"), path
        assert len(reason) >= 20, (path, rule)


def test_cdk_nag_really_runs_on_the_app(tmp_path: Path) -> None:
    from aws_cdk import aws_sqs as sqs

    from app import build_app

    app = build_app(dict(CHOICES))
    stack = app.node.find_child("PodIdentityControlPlane")
    assert isinstance(stack, cdk.Stack)
    sqs.Queue(stack, "Careless", encryption=sqs.QueueEncryption.UNENCRYPTED)
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS4"):
        app.synth()


def test_cfn_lint_finds_nothing(audit: dict[str, Any]) -> None:
    for stack in audit["stacks"].values():
        assert cfn_lint(stack.template_full_path) == ""


def test_resource_list_snapshot(template: Template) -> None:
    resources = {
        logical: resource["Type"]
        for logical, resource in sorted(template.to_json()["Resources"].items())
    }
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(resources, indent=2, sort_keys=True) + "\n")
    # a missing snapshot is a failure, never a new baseline written silently
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: run with UPDATE_SNAPSHOTS=1 and commit it"
    assert resources == json.loads(SNAPSHOT.read_text()), (
        "run with UPDATE_SNAPSHOTS=1 after a deliberate change"
    )


def test_the_shipped_manifest_creates_the_map_and_lets_the_push_get_and_update_only_it() -> None:
    import yaml

    from tests.kube_models import as_model

    documents = {
        d["kind"]: d
        for d in yaml.safe_load_all(
            (Path(__file__).parents[2] / "deploy" / "webhook-push-rbac.yaml").read_text()
        )
    }
    assert set(documents) == {"ConfigMap", "Role", "RoleBinding"}
    configmap = as_model(documents["ConfigMap"], "V1ConfigMap")
    role = as_model(documents["Role"], "V1Role")
    binding = as_model(documents["RoleBinding"], "V1RoleBinding")
    namespace, name = "kube-system", "pod-identity-associations"
    # the manifest creates the map (with no data: re-applying it never clears a pushed map)
    assert (configmap.metadata.namespace, configmap.metadata.name) == (namespace, name)
    assert configmap.data is None
    assert role.metadata.namespace == binding.metadata.namespace == namespace
    # one rule: get and update of that one name; no create (RBAC cannot limit it by name)
    assert [(r.api_groups, r.resources, r.resource_names, sorted(r.verbs)) for r in role.rules] == [
        ([""], ["configmaps"], [name], ["get", "update"])
    ]
    assert binding.role_ref.name == role.metadata.name
    assert binding.subjects[0].name == "podid:webhook-push"


def test_outputs_give_the_cli_its_table_and_reconcile_queue(audit: dict[str, Any]) -> None:
    stack = audit["stacks"]["PodIdentityControlPlane"].template
    outputs = stack["Outputs"]
    assert {"TableName", "ReconcileQueueUrl"} <= set(outputs)
    queue = outputs["ReconcileQueueUrl"]["Value"]["Ref"]
    # the reconcile FIFO queue itself, not its dead-letter queue
    assert stack["Resources"][queue]["Properties"]["FifoQueue"] is True
    assert queue.startswith("QueuesReconcile")
    assert not queue.startswith("QueuesReconcileDlq")


def test_the_node_agent_images_are_arm64_assets_built_at_publish_time(
    audit: dict[str, Any],
) -> None:
    from tests.agent.image import ROOT, Dockerfile

    stack = audit["stacks"]["PodIdentityControlPlane"]
    assert {"NodeAgentImageUri", "MapSyncImageUri"} <= set(stack.template["Outputs"])
    manifest = json.loads(Path(audit["dir"], "PodIdentityControlPlane.assets.json").read_text())
    images = {i["source"].get("dockerBuildTarget"): i for i in manifest["dockerImages"].values()}
    # the agent is the Dockerfile's default (last) target; map-sync is named
    assert set(images) == {None, "map-sync"}
    # the build context holds exactly the files the Dockerfile copies in, nothing else
    copied = set()
    for stage in Dockerfile.parse().stages.values():
        for rest in stage.all("COPY"):
            if not rest.startswith("--from="):
                for source in rest.split()[:-1]:
                    copied |= {p.relative_to(ROOT) for p in ROOT.glob(source)}
    for image in images.values():
        assert image["source"]["dockerFile"] == "node_agent/Dockerfile"
        assert image["source"]["platform"] == "linux/arm64"
        context = Path(audit["dir"], image["source"]["directory"])
        staged = {
            p.relative_to(context)
            for p in context.rglob("*")
            if p.is_file() and p.name not in (".dockerignore", "Dockerfile")
        }
        assert staged == copied


def test_service_principals_use_the_key_only_for_this_stack(template: Template) -> None:
    (key,) = template.find_resources("AWS::KMS::Key").values()
    services = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if "Service" in (s.get("Principal") or {})
    ]
    # CloudWatch alarms publish to the alarms topic; nothing EventBridge-delivers to an
    # encrypted topic here, so events.amazonaws.com gets no grant at all
    assert [s["Principal"]["Service"] for s in services] == ["cloudwatch.amazonaws.com"]
    (cloudwatch,) = services
    assert cloudwatch["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    source = json.dumps(cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"])
    assert f":cloudwatch:eu-west-1:{ACCOUNT}:alarm:PodIdentityControlPlane-*" in source
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmName"].startswith("PodIdentityControlPlane-")


def test_event_rules_match_only_this_accounts_events(audit: dict[str, Any]) -> None:
    for stack in audit["stacks"].values():
        for rule in stack.template["Resources"].values():
            if rule["Type"] == "AWS::Events::Rule" and "EventPattern" in rule["Properties"]:
                assert rule["Properties"]["EventPattern"]["account"] == [ACCOUNT]
    iam = rule_pattern(template_of(audit), "CloudTrail IAM role changes")
    foreign = fixture_event("iam_delete_role", ROLE_NAME="r", ACCOUNT="999999999999")
    assert not matches(iam, foreign)


def test_the_us_east_1_forwarder_retries_and_keeps_what_it_could_not_deliver(
    audit: dict[str, Any],
) -> None:
    forwarder = template_of(audit, "PodIdentityControlPlane-IamEvents")
    (rule,) = forwarder.find_resources("AWS::Events::Rule").values()
    (target,) = rule["Properties"]["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 8}
    (queue,) = forwarder.find_resources("AWS::SQS::Queue")
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}


def test_eventbridge_invoked_functions_keep_events_that_failed_after_lambda_retries(
    template: Template,
) -> None:
    configs = template.find_resources("AWS::Lambda::EventInvokeConfig")
    functions = template.find_resources("AWS::Lambda::Function")
    invoked = sorted(
        functions[c["Properties"]["FunctionName"]["Ref"]]["Properties"]["Handler"]
        for c in configs.values()
    )
    assert invoked == [
        "functions.handlers.reconcile.handler",
        "functions.handlers.trust_guard.handler",
    ]
    queues = template.find_resources("AWS::SQS::Queue")
    for config in configs.values():
        destination = config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        assert destination["Fn::GetAtt"][0].startswith("QueuesEventFailures")
        assert destination["Fn::GetAtt"][0] in queues
        assert config["Properties"]["MaximumRetryAttempts"] == 2
