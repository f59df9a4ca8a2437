"""What each function's IAM role may do, read from the synthesized template."""

from tests.infra.test_stack import as_list


def role_statements(template, handler):
    """Every identity-policy statement of the role the function `handler` runs as."""
    functions = template.find_resources("AWS::Lambda::Function")
    (role,) = [
        f["Properties"]["Role"]["Fn::GetAtt"][0]
        for f in functions.values()
        if f["Properties"]["Handler"] == f"functions.handlers.{handler}.handler"
    ]
    found = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def actions_of(statements, prefix):
    return {a for s in statements for a in as_list(s["Action"]) if a.startswith(prefix)}


def test_the_push_asks_eks_where_each_cluster_is_and_changes_nothing_in_aws(template):
    push = role_statements(template, "webhook_push")
    (describe,) = [s for s in push if "eks:DescribeCluster" in as_list(s["Action"])]
    assert as_list(describe["Action"]) == ["eks:DescribeCluster"]
    assert ":cluster/*" in str(describe["Resource"])
    assert actions_of(push, "eks:") == {"eks:DescribeCluster"}
    assert actions_of(push, "iam:") == set()
