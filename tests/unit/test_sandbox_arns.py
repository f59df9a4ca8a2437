"""The sandbox's own ARN reader and partition lookup (botocore's partition data):
CloudTrail events and emulated ARNs carry the partition of the region, not `aws`."""

from __future__ import annotations

import pytest

from sandbox import arns
from sandbox.eks_emulation import limits
from sandbox.transport import cloudtrail_event


@pytest.mark.parametrize(
    ("region", "partition", "iam_region"),
    [
        ("eu-west-1", "aws", "us-east-1"),
        ("cn-northwest-1", "aws-cn", "cn-north-1"),
        ("us-gov-east-1", "aws-us-gov", "us-gov-west-1"),
        ("us-isob-east-1", "aws-iso-b", "us-isob-east-1"),
    ],
)
def test_partition_of_a_region_and_where_its_iam_events_are_recorded(
    region: str, partition: str, iam_region: str
) -> None:
    assert arns.partition_of(region) == partition
    assert arns.global_region("iam", partition) == iam_region


def test_every_partition_is_known_to_the_emulated_role_arn_check() -> None:
    assert {"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-eusc"} <= set(
        arns.partitions()
    )
    for partition in arns.partitions():
        assert limits.ROLE_ARN.match(f"arn:{partition}:iam::111122223333:role/app")
    assert not limits.ROLE_ARN.match("arn:aws-mars:iam::111122223333:role/app")


def test_an_unknown_partition_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown partition 'aws-mars'"):
        arns.global_region("iam", "aws-mars")


def test_parse_and_sessions() -> None:
    arn = arns.parse("arn:aws-cn:eks:cn-north-1:111122223333:cluster/blue")
    assert (arn.partition, arn.region, arn.account, arn.resource_name) == (
        "aws-cn",
        "cn-north-1",
        "111122223333",
        "blue",
    )
    assert str(arn) == "arn:aws-cn:eks:cn-north-1:111122223333:cluster/blue"
    assert arns.session_of("arn:aws:sts::111122223333:assumed-role/app/s-1") == ("app", "s-1")
    for bad in ("arn:aws:iam::111122223333:role/app", "arn:aws:sts::111122223333:assumed-role/x"):
        with pytest.raises(ValueError, match="not an STS assumed-role ARN"):
            arns.session_of(bad)
    with pytest.raises(ValueError, match="is not an ARN"):
        arns.parse("cluster/blue")


def test_a_cloudtrail_event_of_a_china_role_session_stays_in_its_partition() -> None:
    caller = "arn:aws-cn:sts::111122223333:assumed-role/podid-trust-guard/session-1"
    event = cloudtrail_event(
        "iam",
        "UpdateAssumeRolePolicy",
        request_parameters={"roleName": "app"},
        response_elements=None,
        caller_arn=caller,
        account="111122223333",
        region="cn-northwest-1",
    )
    identity = event["detail"]["userIdentity"]
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == (
        "arn:aws-cn:iam::111122223333:role/podid-trust-guard"
    )
    assert identity["principalId"].endswith(":session-1")
    # IAM is global: its events are recorded in the partition's IAM region
    assert event["region"] == event["detail"]["awsRegion"] == "cn-north-1"
