"""Every table call the functions make, in flows run end to end on moto (which
enforces no IAM), is one their synthesized IAM and the table's resource policy
allow: item keys narrowed in infra/ and the keys the code really uses cannot
drift apart unseen."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import botocore.client
import pytest
from aws_cdk.assertions import Template
from botocore.model import OperationModel

from tests.builders import OPT_IN
from tests.infra.iam_eval import Request, decide
from tests.infra.test_least_privilege import (
    TABLE_ARN,
    function_role_arn,
    resolved,
    role_statements,
    table_policy,
)
from tests.integration.conftest import (  # noqa: F401 - fixtures
    ACCOUNT,
    World,
    fixture_event,
    kube,
    moto_endpoint,
    world,
)

HANDLERS = ("sync", "reconcile", "trust_guard", "webhook_push")
# (handler, operation, body) of each DynamoDB call made inside a handler
Recorded = list[tuple[str, str, dict[str, Any]]]
NO_TAG_SESSION = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _pk(key: dict[str, Any]) -> str:
    return str(key["pk"]["S"])


def _query_pk(body: dict[str, Any]) -> str | None:
    names = body.get("ExpressionAttributeNames", {})
    values = body.get("ExpressionAttributeValues", {})
    for name, value in re.findall(r"(#?\w+)\s*=\s*(:\w+)", body["KeyConditionExpression"]):
        if names.get(name, name) == "pk":
            return str(values[value]["S"])
    return None


def as_request(operation: str, body: dict[str, Any], principal: str) -> Request:
    """The IAM request a DynamoDB call makes: action, resource and the keys
    dynamodb:LeadingKeys / dynamodb:Attributes carry."""
    resource, context = TABLE_ARN, {}
    keys: list[str] = []
    if "Key" in body:
        keys = [_pk(body["Key"])]
    elif "Item" in body:
        keys = [_pk(body["Item"])]
        names = set(body["Item"]) | set(body.get("ExpressionAttributeNames", {}).values())
        context["dynamodb:Attributes"] = sorted(names)
    elif operation == "BatchGetItem":
        keys = [_pk(k) for table in body["RequestItems"].values() for k in table["Keys"]]
    elif operation == "BatchWriteItem":
        for table in body["RequestItems"].values():
            for write in table:
                request = write.get("PutRequest") or write["DeleteRequest"]
                keys.append(_pk(request.get("Item") or request["Key"]))
    elif operation == "Query":
        if "IndexName" in body:
            resource = f"{TABLE_ARN}/index/{body['IndexName']}"
        else:
            keys = [k for k in [_query_pk(body)] if k]
    if keys:
        context["dynamodb:LeadingKeys"] = sorted(set(keys))
    return Request(f"dynamodb:{operation}", resource, principal, context)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """(handler, operation, body) of every DynamoDB call made inside a handler."""
    from functions.handlers import reconcile, sync, trust_guard, webhook_push

    calls: Recorded = []
    running: list[str] = []
    original = getattr(botocore.client.BaseClient, "_make_request")  # noqa: B009 (private, not in the stubs)

    def make_request(
        client: Any,
        operation_model: OperationModel,
        request_dict: dict[str, Any],
        request_context: dict[str, Any],
    ) -> Any:
        if running and client.meta.service_model.service_name == "dynamodb":
            body = json.loads(request_dict["body"] or b"{}")
            calls.append((running[-1], operation_model.name, body))
        return original(client, operation_model, request_dict, request_context)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_request", make_request)
    for name, module in zip(HANDLERS, (sync, reconcile, trust_guard, webhook_push), strict=True):

        def tagged(
            event: dict[str, Any],
            context: Any,
            _name: str = name,
            _handler: Callable[..., Any] = module.handler,
        ) -> Any:
            running.append(_name)
            try:
                return _handler(event, context)
            finally:
                running.pop()

        monkeypatch.setattr(module, "handler", tagged)
    return calls


def test_every_table_call_of_every_flow_is_allowed_by_the_functions_iam(
    template: Template,
    world: World,  # noqa: F811 - the integration fixture
    recorded: Recorded,
) -> None:
    # Given the flows the functions run: declare, enroll, push, guard (enforce: repair),
    # a hand-deleted cluster forgotten, a declaration removed, the schedule
    world.configure(mode="enforce")
    world.given_payments_api("blue", "green", tags=OPT_IN, trust=NO_TAG_SESSION)
    world.declare_in_payments("worker", "worker")
    world.settle()
    world.guard_event(fixture_event("scheduled_event"))
    world.guard_event(
        fixture_event("iam_update_assume_role_policy", ROLE_NAME="payments-api", CALLER_ROLE="A")
    )
    world.client("eks").delete_cluster(name="green")
    world.reconcile_event(fixture_event("scheduled_event"))
    world.undeclare("worker")
    world.settle()
    assert {handler for handler, _, _ in recorded} == set(HANDLERS)
    # Then IAM (as synthesized) would have allowed each of them
    policy = table_policy(template)
    identities = {h: resolved(template, role_statements(template, h)) for h in HANDLERS}
    denied: list[tuple[str, str, str, dict[str, Any]]] = []
    for handler, operation, body in recorded:
        request = as_request(operation, body, function_role_arn(handler))
        if not decide(request, identities[handler], policy):
            denied.append((handler, request.action, request.resource, request.context))
    assert denied == [], "calls the deployed IAM would refuse:\n" + "\n".join(map(str, denied))
