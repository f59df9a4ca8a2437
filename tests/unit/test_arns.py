import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.core.arns import (
    check_cluster_name,
    check_namespace,
    check_service_account,
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
    ],
)
def test_role_arn_accepts_every_partition_and_paths(arn, partition, path, name):
    parsed = parse_role_arn(arn)
    assert (parsed.partition, parsed.path, parsed.name) == (partition, path, name)
    assert str(parsed) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::11112222333:role/app",  # 11 digits
        "arn:aws:iam::111122223333:user/app",  # not a role
        "arn:aws:iam:eu-west-1:111122223333:role/app",  # IAM ARNs have no region
        "arn:aws-iso:iam::111122223333:role/app",  # unsupported partition
        "arn:aws:iam::111122223333:role/",  # no name
        "arn:aws:iam::111122223333:role/" + "a" * 65,  # name too long
        "arn:aws:iam::111122223333:role/app\n",  # trailing newline must not slip through
        "arn:aws:iam::111122223333:role/bad name",
    ],
)
def test_role_arn_rejects_wrong_shapes_with_the_expected_shape(arn):
    with pytest.raises(ValueError, match=re.escape("expected arn:<aws|aws-cn|aws-us-gov>:iam::")):
        parse_role_arn(arn)


def test_cluster_arn_round_trips():
    arn = "arn:aws:eks:eu-west-1:111122223333:cluster/blue-1"
    parsed = parse_cluster_arn(arn)
    assert (parsed.region, parsed.account, parsed.name) == ("eu-west-1", "111122223333", "blue-1")
    assert str(parsed) == arn
    with pytest.raises(ValueError, match="not an EKS cluster ARN"):
        parse_cluster_arn("arn:aws:eks:eu-west-1:111122223333:nodegroup/blue")


@pytest.mark.parametrize("good", ["default", "a", "kube-system", "a" * 63, "0abc"])
def test_namespace_accepts_dns1123_labels(good):
    assert check_namespace(good) == good


@pytest.mark.parametrize("bad", ["", "Default", "a_b", "-a", "a-", "a.b", "a" * 64])
def test_namespace_rejects_non_labels(bad):
    with pytest.raises(ValueError, match="DNS-1123 label"):
        check_namespace(bad)


@pytest.mark.parametrize("good", ["api", "my.sa", "a-b.c-d", "a" * 253])
def test_service_account_accepts_subdomains(good):
    assert check_service_account(good) == good


@pytest.mark.parametrize("bad", ["", "API", "a..b", ".a", "a.", "a_b", "a" * 254])
def test_service_account_rejects_non_subdomains(bad):
    with pytest.raises(ValueError, match="DNS-1123 subdomain"):
        check_service_account(bad)


@pytest.mark.parametrize("bad", ["", "-x", "a" * 101, "a.b"])
def test_cluster_name_rules(bad):
    assert check_cluster_name("Blue_1-x") == "Blue_1-x"
    with pytest.raises(ValueError, match="EKS cluster name"):
        check_cluster_name(bad)


@given(st.text(max_size=300))
def test_validators_never_crash_only_reject(text):
    for check in (
        parse_role_arn,
        parse_cluster_arn,
        check_namespace,
        check_service_account,
        check_cluster_name,
    ):
        with contextlib.suppress(ValueError):
            check(text)
