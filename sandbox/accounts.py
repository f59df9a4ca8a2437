"""The sandbox operator's way into any account: an account-admin role, as AWS
Organizations creates `OrganizationAccountAccessRole` in each new member
account, trusting the management account.

With the STS gate (sandbox.sts_gate) moto no longer hands out credentials in
an account to whoever asks, so setting up a second account needs an explicit
path. `admin_access` is that path and the only one: it creates the role in
the target account with moto's account header (the stand-in for
Organizations' CreateAccount, which makes the role) and assumes it through
the gate, which admits it because the trust names the operator's account.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3

from sandbox import arns

ADMIN_ROLE = "OrganizationAccountAccessRole"
_ACCOUNT = re.compile(r"^\d{12}$")
_ACCOUNT_HEADER = "x-moto-account-id"  # moto: act in this account, whatever the key


def _check_account(account: str) -> None:
    if not _ACCOUNT.match(account):
        raise ValueError(f"account {account!r} is not a 12-digit AWS account id")


def admin_trust(partition: str, management_account: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{management_account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def _iam_in(operator: boto3.session.Session, endpoint: str, account: str) -> Any:
    """An IAM client whose requests moto serves in `account` (setup only)."""
    client = operator.client("iam", endpoint_url=endpoint)

    def in_account(request: Any, **_: Any) -> None:
        request.headers[_ACCOUNT_HEADER] = account

    client.meta.events.register("before-sign.iam.*", in_account)
    return client


def ensure_admin_role(
    endpoint: str, account: str, *, operator: boto3.session.Session, region: str
) -> str:
    """`OrganizationAccountAccessRole` in `account`, trusting the operator's account."""
    _check_account(account)
    who = operator.client("sts", endpoint_url=endpoint, region_name=region).get_caller_identity()
    partition = arns.partition_of(region)
    iam = _iam_in(operator, endpoint, account)
    try:
        found = iam.get_role(RoleName=ADMIN_ROLE)["Role"]
    except iam.exceptions.NoSuchEntityException:
        found = iam.create_role(
            RoleName=ADMIN_ROLE,
            AssumeRolePolicyDocument=json.dumps(admin_trust(partition, who["Account"])),
            Description="Sandbox operator's administrator access (as AWS Organizations')",
        )["Role"]
        iam.put_role_policy(
            RoleName=ADMIN_ROLE,
            PolicyName="AdministratorAccess",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
    return str(found["Arn"])


def admin_access(
    endpoint: str,
    account: str,
    *,
    operator: boto3.session.Session | None = None,
    region: str = "us-east-1",
) -> boto3.session.Session:
    """A session with administrator credentials in `account` for the operator
    (default: the environment's credentials), through the STS gate."""
    _check_account(account)
    operator = operator or boto3.session.Session()
    sts = operator.client("sts", endpoint_url=endpoint, region_name=region)
    if sts.get_caller_identity()["Account"] == account:
        return operator
    role_arn = ensure_admin_role(endpoint, account, operator=operator, region=region)
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="sandbox-operator")[
        "Credentials"
    ]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )
