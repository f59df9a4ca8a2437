import contextlib

import pytest
from botocore.loaders import create_loader
from hypothesis import given
from hypothesis import strategies as st

from functions.core.arns import (
    PARTITIONS,
    AssociationArn,
    ClusterArn,
    arn_parts,
    check_cluster_name,
    check_namespace,
    check_service_account,
    parse_arn,
    parse_association_arn,
    parse_assumed_role_arn,
    parse_cluster_arn,
    parse_role_arn,
)


@pytest.mark.parametrize(
    ("arn", "partition", "path", "name"),
    [
        ("arn:aws:iam::111122223333:role/app", "aws", "/", "app"),
        (
            "arn:aws-cn:iam::111122223333:role/team/a/app+x=y,z.w@v-1",
            "aws-cn",
            "/team/a/",
            "app+x=y,z.w@v-1",
        ),
        ("arn:aws-us-gov:iam::111122223333:role/app_1", "aws-us-gov", "/", "app_1"),
        ("arn:aws-iso:iam::111122223333:role/app", "aws-iso", "/", "app"),
        ("arn:aws-iso-b:iam::111122223333:role/x/app", "aws-iso-b", "/x/", "app"),
        ("arn:aws-iso-e:iam::111122223333:role/app", "aws-iso-e", "/", "app"),
        ("arn:aws-iso-f:iam::111122223333:role/app", "aws-iso-f", "/", "app"),
        ("arn:aws-eusc:iam::111122223333:role/app", "aws-eusc", "/", "app"),
    ],
)
def test_role_arn_accepts_every_partition_and_paths(
    arn: str, partition: str, path: str, name: str
) -> None:
    parsed = parse_role_arn(arn)
    assert (parsed.partition, parsed.path, parsed.name) == (partition, path, name)
    assert str(parsed) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::11112222333:role/app",  # 11 digits
        "arn:aws:iam::111122223333:user/app",  # not a role
        "arn:aws:iam:eu-west-1:111122223333:role/app",  # IAM ARNs have no region
        "arn:aws-mars:iam::111122223333:role/app",  # no such partition
        "arn:aws:iam::111122223333:role/",  # no name
        "arn:aws:iam::111122223333:role/" + "a" * 65,  # name too long
        "arn:aws:iam::111122223333:role/app\n",  # trailing newline must not slip through
        "arn:aws:iam::111122223333:role/bad name",
    ],
)
def test_role_arn_rejects_wrong_shapes_with_the_expected_shape(arn: str) -> None:
    with pytest.raises(ValueError, match="is not an IAM role ARN") as raised:
        parse_role_arn(arn)
    assert "expected arn:<partition>:iam::<12-digit account>:role/" in str(
        raised.value
    ) or "unknown partition 'aws-mars' (one of aws, aws-cn, aws-us-gov, aws-iso" in str(
        raised.value
    )


def test_cluster_arn_round_trips() -> None:
    arn = "arn:aws:eks:eu-west-1:111122223333:cluster/blue-1"
    parsed = parse_cluster_arn(arn)
    assert (parsed.region, parsed.account, parsed.name) == ("eu-west-1", "111122223333", "blue-1")
    assert str(parsed) == arn
    with pytest.raises(ValueError, match="not an EKS cluster ARN"):
        parse_cluster_arn("arn:aws:eks:eu-west-1:111122223333:nodegroup/blue")


@pytest.mark.parametrize("good", ["default", "a", "kube-system", "a" * 63, "0abc"])
def test_namespace_accepts_dns1123_labels(good: str) -> None:
    assert check_namespace(good) == good


@pytest.mark.parametrize("bad", ["", "Default", "a_b", "-a", "a-", "a.b", "a" * 64])
def test_namespace_rejects_non_labels(bad: str) -> None:
    with pytest.raises(ValueError, match="DNS-1123 label"):
        check_namespace(bad)


@pytest.mark.parametrize("good", ["api", "my.sa", "a-b.c-d", "a" * 253])
def test_service_account_accepts_subdomains(good: str) -> None:
    assert check_service_account(good) == good


@pytest.mark.parametrize("bad", ["", "API", "a..b", ".a", "a.", "a_b", "a" * 254])
def test_service_account_rejects_non_subdomains(bad: str) -> None:
    with pytest.raises(ValueError, match="DNS-1123 subdomain"):
        check_service_account(bad)


@pytest.mark.parametrize("bad", ["", "-x", "a" * 101, "a.b"])
def test_cluster_name_rules(bad: str) -> None:
    assert check_cluster_name("Blue_1-x") == "Blue_1-x"
    with pytest.raises(ValueError, match="EKS cluster name"):
        check_cluster_name(bad)


@given(st.text(max_size=300))
def test_validators_never_crash_only_reject(text: str) -> None:
    for check in (
        parse_arn,
        parse_role_arn,
        parse_assumed_role_arn,
        parse_association_arn,
        parse_cluster_arn,
        check_namespace,
        check_service_account,
        check_cluster_name,
    ):
        with contextlib.suppress(ValueError):
            check(text)


def test_an_unknown_partition_is_named_with_the_ones_there_are() -> None:
    with pytest.raises(ValueError, match="unknown partition") as raised:
        parse_cluster_arn("arn:aws-mars:eks:us-east-1:111122223333:cluster/blue")
    assert str(raised.value) == (
        "'arn:aws-mars:eks:us-east-1:111122223333:cluster/blue' is not an EKS cluster ARN: "
        "unknown partition 'aws-mars' (one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, "
        "aws-iso-e, aws-iso-f, aws-eusc)"
    )


@pytest.mark.parametrize(
    ("arn", "partition", "region"),
    [
        ("arn:aws:eks:us-east-1:111122223333:cluster/blue", "aws", "us-east-1"),
        ("arn:aws-cn:eks:cn-northwest-1:111122223333:cluster/blue", "aws-cn", "cn-northwest-1"),
        ("arn:aws-us-gov:eks:us-gov-west-1:111122223333:cluster/b", "aws-us-gov", "us-gov-west-1"),
        ("arn:aws-iso:eks:us-iso-east-1:111122223333:cluster/blue", "aws-iso", "us-iso-east-1"),
        ("arn:aws-iso-b:eks:us-isob-east-1:111122223333:cluster/b", "aws-iso-b", "us-isob-east-1"),
        ("arn:aws-iso-e:eks:eu-isoe-west-1:111122223333:cluster/b", "aws-iso-e", "eu-isoe-west-1"),
        ("arn:aws-eusc:eks:eusc-de-east-1:111122223333:cluster/b", "aws-eusc", "eusc-de-east-1"),
    ],
)
def test_cluster_arns_of_every_partition(arn: str, partition: str, region: str) -> None:
    parsed = parse_cluster_arn(arn)
    assert (parsed.partition, parsed.region) == (partition, region)
    assert str(parsed) == arn


def test_association_arn_names_its_cluster_and_id() -> None:
    arn = "arn:aws-cn:eks:cn-north-1:111122223333:podidentityassociation/blue/a-0123456789abcdef0"
    parsed = parse_association_arn(arn)
    assert parsed.cluster == ClusterArn("aws-cn", "cn-north-1", "111122223333", "blue")
    assert parsed.association_id == "a-0123456789abcdef0"
    assert str(parsed) == arn
    with pytest.raises(ValueError, match="not a pod identity association ARN"):
        parse_association_arn("arn:aws:eks:eu-west-1:111122223333:cluster/blue")


@pytest.mark.parametrize(
    ("arn", "account", "role", "session"),
    [
        (
            "arn:aws:sts::111122223333:assumed-role/app/botocore-1",
            "111122223333",
            "app",
            "botocore-1",
        ),
        ("arn:aws-us-gov:sts::111122223333:assumed-role/a.b@c/s=1", "111122223333", "a.b@c", "s=1"),
    ],
)
def test_assumed_role_arns(arn: str, account: str, role: str, session: str) -> None:
    parsed = parse_assumed_role_arn(arn)
    assert (parsed.account, parsed.role_name, parsed.session) == (account, role, session)
    assert str(parsed) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111122223333:role/app",  # the role, not a session of it
        "arn:aws:sts::111122223333:assumed-role/app",  # no session
        "arn:aws:sts:eu-west-1:111122223333:assumed-role/app/s1",  # STS ARNs have no region
        "arn:aws:sts::111122223333:federated-user/bob",
    ],
)
def test_assumed_role_arn_rejects_other_principals(arn: str) -> None:
    with pytest.raises(ValueError, match="is not an STS assumed-role ARN"):
        parse_assumed_role_arn(arn)


def test_any_arn_splits_into_six_parts_keeping_colons_in_the_resource() -> None:
    parsed = parse_arn("arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/x:*")
    assert (parsed.service, parsed.region, parsed.account) == ("logs", "eu-west-1", "111122223333")
    assert parsed.resource == "log-group:/aws/lambda/x:*"
    assert parse_arn("arn:aws:s3:::bucket/key").account == ""
    assert parse_arn("arn:aws:iam::aws:policy/ReadOnlyAccess").account == "aws"
    for bad in ("arn:aws:s3", "not-an-arn", "arn:aws:iam::1:role/x", "arn:aws::eu-west-1:1:x"):
        with pytest.raises(ValueError, match="is not an ARN"):
            parse_arn(bad)


def test_arn_parts_for_arnlike_matching() -> None:
    assert arn_parts("arn:aws:eks:*:*:cluster/*") == ("arn", "aws", "eks", "*", "*", "cluster/*")
    assert arn_parts("arn:aws:x:y:z:a:b") == ("arn", "aws", "x", "y", "z", "a:b")
    assert arn_parts("arn:aws:x") is None


_accounts = st.from_regex(r"\A[0-9]{12}\Z")
_partitions = st.sampled_from(PARTITIONS)
_names = st.from_regex(r"\A[A-Za-z0-9+=,.@_-]{1,64}\Z")
_paths = st.lists(st.from_regex(r"\A[A-Za-z0-9_.-]{1,20}\Z"), max_size=4).map(
    lambda parts: "/" + "".join(f"{p}/" for p in parts)
)
_regions = st.sampled_from(
    [
        "us-east-1",
        "eu-west-3",
        "ap-southeast-12",
        "cn-north-1",
        "us-gov-east-1",
        "us-iso-west-1",
        "us-isof-south-1",
        "eusc-de-east-1",
    ]
)
_clusters = st.from_regex(r"\A[0-9A-Za-z][A-Za-z0-9_-]{0,99}\Z")


@given(_partitions, _accounts, _paths, _names)
def test_role_arns_round_trip(partition: str, account: str, path: str, name: str) -> None:
    text = f"arn:{partition}:iam::{account}:role{path}{name}"
    role = parse_role_arn(text)
    assert (role.partition, role.account, role.path, role.name) == (partition, account, path, name)
    assert str(role) == text
    assert role.account_root == f"arn:{partition}:iam::{account}:root"
    assert parse_arn(text).account == account


@given(_partitions, _regions, _accounts, _clusters, st.from_regex(r"\Aa-[a-z0-9]{17}\Z"))
def test_cluster_and_association_arns_round_trip(
    partition: str, region: str, account: str, name: str, ident: str
) -> None:
    cluster = ClusterArn(partition, region, account, name)
    assert parse_cluster_arn(str(cluster)) == cluster
    association = AssociationArn(cluster, ident)
    assert parse_association_arn(str(association)) == association
    generic = parse_arn(str(association))
    assert (generic.partition, generic.service, generic.region) == (partition, "eks", region)


def test_partitions_and_regions_are_the_ones_botocore_knows() -> None:
    # the product cannot load botocore's data in core, so the two are compared here
    endpoints = create_loader().load_data("endpoints")
    assert set(PARTITIONS) == {p["partition"] for p in endpoints["partitions"]}
    for partition in endpoints["partitions"]:
        for region in partition["regions"]:
            arn = f"arn:{partition['partition']}:eks:{region}:111122223333:cluster/blue"
            assert parse_cluster_arn(arn).region == region
