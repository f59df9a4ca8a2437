"""Who may write declarations or enrol clusters: roles or users of one account,
in any partition (the ARN partitions come from functions.core.arns)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.config import DeployConfig


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111122223333:role/platform-*",
        "arn:aws-cn:iam::111122223333:user/ops/alice",
        "arn:aws-us-gov:iam::111122223333:role/writer",
        "arn:aws-iso-b:iam::111122223333:role/writer",
        "arn:aws-eusc:iam::111122223333:role/writer",
    ],
)
def test_principals_of_every_partition_are_accepted(arn: str) -> None:
    config = DeployConfig(role_path="/pod-identity/", declaration_writers=(arn,))
    assert config.declaration_writers == (arn,)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111122223333:root",  # every principal of the account
        "arn:aws:iam::*:role/writer",  # any account
        "arn:aws-mars:iam::111122223333:role/writer",
        "arn:aws:sts::111122223333:assumed-role/writer/s",
    ],
)
def test_anything_broader_or_foreign_is_refused(arn: str) -> None:
    with pytest.raises(ValidationError, match="is not an IAM role or user ARN of one account"):
        DeployConfig(role_path="/pod-identity/", cluster_enrollers=(arn,))
