import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from functions.core.errors import describe_validation_error
from functions.core.models import Cluster, Declaration, Target
from tests.builders import ACCOUNT, OTHER_ACCOUNT, cluster, declaration, role_arn


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        declaration(**overrides)
    return describe_validation_error(caught.value)


def test_a_minimal_declaration_is_accepted_with_safe_defaults() -> None:
    decl = declaration()
    assert decl.disable_session_tags is False
    assert decl.target == Target(fleet="prod")
    assert decl.role_account == ACCOUNT


def test_bad_role_arn_names_field_value_and_expected_shape() -> None:
    (line,) = problems(roleArn="arn:aws:iam::123:role/app")
    assert line.startswith("roleArn: 'arn:aws:iam::123:role/app' is not an IAM role ARN")
    assert "12-digit account" in line


def test_bad_namespace_and_service_account_are_both_reported() -> None:
    lines = problems(namespace="Payments", serviceAccount="api_v2")
    assert any(line.startswith("namespace: 'Payments'") for line in lines)
    assert any(line.startswith("serviceAccount: 'api_v2'") for line in lines)


def test_empty_target_is_rejected_with_guidance() -> None:
    (line,) = problems(target={})
    assert "target is empty" in line
    assert "pod-identity/fleet" in line


def test_unknown_fields_are_rejected_so_typos_do_not_pass_silently() -> None:
    (line,) = problems(serviceaccount="api")
    assert line == "serviceaccount: unknown field (check spelling; fields are camelCase)"


def test_missing_field_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        Declaration.model_validate(
            {"id": "x", "namespace": "a", "roleArn": role_arn(), "target": {"fleet": "f"}}
        )
    assert describe_validation_error(caught.value) == ["serviceAccount: required field is missing"]


def test_session_policy_requires_disabled_session_tags() -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    (line,) = problems(policy=policy)
    assert "disableSessionTags" in line
    assert declaration(policy=policy, disableSessionTags=True).policy == policy


def test_session_policy_limits() -> None:
    too_long = json.dumps({"Statement": [], "pad": "x" * 2048})
    assert "at most 2048" in problems(policy=too_long, disableSessionTags=True)[0]
    assert "not valid JSON" in problems(policy="{", disableSessionTags=True)[0]


def test_tag_limits_and_reserved_prefixes() -> None:
    assert "at most 50" in problems(tags={f"k{i}": "v" for i in range(51)})[0]
    assert "reserved prefix" in problems(tags={"aws:owner": "x"})[0]
    assert "reserved prefix" in problems(tags={"pod-identity/managed-by": "me"})[0]
    assert declaration(tags={"team": "payments"}).tags == {"team": "payments"}


def test_target_role_rules() -> None:
    assert "omit targetRoleArn" in problems(targetRoleArn=role_arn())[0]
    cross_partition = "arn:aws-cn:iam::444455556666:role/x"
    assert "cannot cross partitions" in problems(targetRoleArn=cross_partition)[0]
    chained = declaration(targetRoleArn=role_arn("data", OTHER_ACCOUNT))
    assert chained.target_role_arn is not None
    assert chained.target_role_arn.endswith(":role/data")


def test_spec_carries_ownership_tags() -> None:
    spec = declaration(tags={"team": "a"}).spec("podid", cluster())
    assert spec.tags == {
        "team": "a",
        "pod-identity/managed-by": "podid",
        "pod-identity/declaration": "app",
    }


def test_cluster_arn_must_name_the_cluster() -> None:
    with pytest.raises(ValidationError, match="does not name cluster"):
        Cluster(name="blue", arn="arn:aws:eks:eu-west-1:111122223333:cluster/green")
    assert cluster("blue").account == ACCOUNT


def test_target_matching() -> None:
    target = Target(clusters=("a",), fleet="prod")
    assert target.matches(cluster("a", fleet=None))
    assert target.matches(cluster("b", fleet="prod"))
    assert not target.matches(cluster("c", fleet="dev"))
    with pytest.raises(ValidationError, match="more than once"):
        Target(clusters=("a", "a"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    [
        "id",
        "namespace",
        "serviceAccount",
        "roleArn",
        "roleName",
        "targetRoleArn",
        "disableSessionTags",
        "policy",
        "tags",
        "target",
        "mode",
        "x",
    ]
)


@given(st.dictionaries(field_names, json_values))
def test_any_record_gives_a_declaration_or_a_readable_validation_error(
    record: dict[str, Any],
) -> None:
    try:
        Declaration.model_validate(record)
    except ValidationError as error:
        lines = describe_validation_error(error)
        assert lines
        assert all(":" in line for line in lines)
