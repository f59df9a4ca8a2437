"""What each principal may do to the table, and what each function's IAM role
may do, evaluated on the synthesized template (tests/infra/iam_eval.py)."""

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import ACCOUNT, CLUSTER_ENROLLER, DECLARATION_WRITER, template_of
from tests.infra.iam_eval import ADMIN, Request, decide, resolve
from tests.infra.test_stack import as_list

STACK = "PodIdentityControlPlane"
TABLE_ARN = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/podid-state"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
WRITES = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
READS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
MAP_ATTRIBUTES = ["pk", "sk", "cluster", "sha256", "generation", "pushedAt", "version"]
CLUSTER_ATTRIBUTES = ["pk", "sk", "name", "arn", "endpoint", "webhook", "enrolled", "version"]


def function_role_arn(handler: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{STACK}-{handler.replace('_', '-')}"


def table_logical_id(template: Template) -> str:
    (logical,) = template.find_resources("AWS::DynamoDB::GlobalTable")
    return str(logical)


def resolved(template: Template, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = resolve(
        statements, ACCOUNT, {table_logical_id(template): TABLE_ARN}
    )
    return found


def table_policy(template: Template) -> list[dict[str, Any]]:
    (table,) = template.find_resources("AWS::DynamoDB::GlobalTable").values()
    (replica,) = table["Properties"]["Replicas"]
    document = (replica.get("ResourcePolicy") or {}).get("PolicyDocument", {"Statement": []})
    return resolved(template, document["Statement"])


def on_items(
    action: str,
    principal: str,
    *keys: str,
    attributes: list[str] | None = None,
    resource: str = TABLE_ARN,
) -> Request:
    context: dict[str, Any] = {"dynamodb:LeadingKeys": list(keys)} if keys else {}
    if attributes is not None:
        context["dynamodb:Attributes"] = attributes
    return Request(action, resource, principal, context)


def role_statements(template: Template, handler: str) -> list[dict[str, Any]]:
    """Every identity-policy statement of the role the function `handler` runs as."""
    functions = template.find_resources("AWS::Lambda::Function")
    (role,) = [
        f["Properties"]["Role"]["Fn::GetAtt"][0]
        for f in functions.values()
        if f["Properties"]["Handler"] == f"functions.handlers.{handler}.handler"
    ]
    found: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def actions_of(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"]) if a.startswith(prefix)}


def test_the_push_asks_eks_where_each_cluster_is_and_changes_nothing_in_aws(
    template: Template,
) -> None:
    push = role_statements(template, "webhook_push")
    (describe,) = [s for s in push if "eks:DescribeCluster" in as_list(s["Action"])]
    assert as_list(describe["Action"]) == ["eks:DescribeCluster"]
    assert ":cluster/*" in str(describe["Resource"])
    assert actions_of(push, "eks:") == {"eks:DescribeCluster"}
    assert actions_of(push, "iam:") == set()


def test_only_the_named_writers_write_declarations_and_only_the_control_plane_its_state(
    template: Template,
) -> None:
    policy = table_policy(template)
    sync = resolved(template, role_statements(template, "sync"))
    reconcile = resolved(template, role_statements(template, "reconcile"))
    for action in WRITES:
        # an account admin (AdministratorAccess) cannot write a declaration...
        assert not decide(on_items(action, ADMIN_ARN, "DECL#breakglass"), ADMIN, policy), action
        # ...a named writer can, with no identity policy of its own...
        assert decide(on_items(action, DECLARATION_WRITER, "DECL#payments"), [], policy), action
        # ...but not the control plane's own records (clusters, ownership, findings)
        for key in ("CLUSTER#blue", "ROLE#arn:aws:iam::1:role/r", "IDEMPOTENCY#trust_guard"):
            assert not decide(on_items(action, DECLARATION_WRITER, key), ADMIN, policy), key
            assert not decide(on_items(action, ADMIN_ARN, key), ADMIN, policy), key
        # enrollers record clusters (podid cluster enroll) and nothing else
        assert decide(on_items(action, CLUSTER_ENROLLER, "CLUSTER#blue"), ADMIN, policy)
        assert not decide(on_items(action, CLUSTER_ENROLLER, "DECL#x"), ADMIN, policy)
        assert not decide(on_items(action, CLUSTER_ENROLLER, "ROLE#r"), ADMIN, policy)
    # a batch hiding one declaration among other items, and PartiQL, are refused too
    batch = on_items("dynamodb:BatchWriteItem", ADMIN_ARN, "CLUSTER#blue", "DECL#x")
    assert not decide(batch, ADMIN, policy)
    for action in ("dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"):
        assert not decide(Request(action, TABLE_ARN, ADMIN_ARN), ADMIN, policy), action
    # the functions still write what they own: a declaration's status, cluster records
    assert decide(on_items("dynamodb:PutItem", function_role_arn("sync"), "DECL#d"), sync, policy)
    reconciler = function_role_arn("reconcile")
    assert decide(on_items("dynamodb:PutItem", reconciler, "CLUSTER#blue"), reconcile, policy)
    # reading stays IAM's business
    assert decide(on_items("dynamodb:GetItem", ADMIN_ARN, "DECL#x"), ADMIN, policy)


def test_with_no_writers_named_nobody_outside_the_control_plane_writes_declarations(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.infra.conftest import synth

    template = template_of(synth(tmp_path_factory.mktemp("nowriters"), declarationWriters=[]))
    policy = table_policy(template)
    for principal in (ADMIN_ARN, DECLARATION_WRITER):
        assert not decide(on_items("dynamodb:PutItem", principal, "DECL#x"), ADMIN, policy)


# what each function reads and writes (functions/dal/repository.py, core/records.py)
ITEM_ACCESS = {
    "sync": ({"DECL#d", "CLUSTER#c", "SPOKE#a#r"}, {"DECL#d", "CLUSTER#c"}),
    "reconcile": ({"DECL#d", "CLUSTER#c", "SPOKE#a#r"}, {"DECL#d", "CLUSTER#c", "SPOKE#a#r"}),
    "trust_guard": (
        {"DECL#d", "CLUSTER#c", "ROLE#r", "IDEMPOTENCY#trust_guard", "SPOKE#a#r"},
        {"ROLE#r", "IDEMPOTENCY#trust_guard"},
    ),
    "webhook_push": ({"CLUSTER#c"}, set()),
}
ANY_KEY = {
    "DECL#d",
    "CLUSTER#c",
    "ROLE#r",
    "SPOKE#a#r",
    "IDEMPOTENCY#trust_guard",
    "IDEMPOTENCY#other",
    "X",
}


@pytest.mark.parametrize("handler", sorted(ITEM_ACCESS))
def test_each_function_reads_and_writes_only_its_own_item_keys(
    template: Template, handler: str
) -> None:
    policy = table_policy(template)
    identity = resolved(template, role_statements(template, handler))
    principal = function_role_arn(handler)
    reads, writes = ITEM_ACCESS[handler]
    for key in sorted(ANY_KEY):
        readable = {a for a in READS if decide(on_items(a, principal, key), identity, policy)}
        if key in reads:
            assert "dynamodb:GetItem" in readable, (handler, key)
        else:
            assert readable == set(), (handler, key)
        # a write names the item's attributes (any item: not only the push's map)
        writable = {
            a
            for a in (*WRITES, "dynamodb:BatchWriteItem")
            if decide(on_items(a, principal, key, attributes=["pk", "sk", "x"]), identity, policy)
        }
        if key in writes:
            assert "dynamodb:PutItem" in writable, (handler, key)
        else:
            assert writable == set(), (handler, key)
    # no function may scan (LeadingKeys cannot limit a scan) nor use PartiQL
    for action in ("dynamodb:Scan", "dynamodb:PartiQLSelect", "dynamodb:PartiQLInsert"):
        assert not decide(Request(action, TABLE_ARN, principal), identity, policy), action


def test_the_push_reads_its_cluster_and_records_only_the_map_it_pushed(template: Template) -> None:
    policy = table_policy(template)
    identity = resolved(template, role_statements(template, "webhook_push"))
    push = function_role_arn("webhook_push")

    def put(attributes: list[str]) -> bool:
        request = on_items("dynamodb:PutItem", push, "CLUSTER#blue", attributes=attributes)
        return decide(request, identity, policy)

    assert put(MAP_ATTRIBUTES)
    assert not put(CLUSTER_ATTRIBUTES)  # it cannot rewrite a cluster record
    assert not put(["pk", "sk", "key", "associationId", "state"])  # nor an association status
    index = f"{TABLE_ARN}/index/byKind"
    assert not decide(on_items("dynamodb:Query", push, resource=index), identity, policy)
