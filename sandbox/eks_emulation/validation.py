"""Check a Create/UpdatePodIdentityAssociation request the way EKS documents
it (sandbox.eks_emulation.limits). Every refusal names the field, the value
and the rule, as InvalidParameterException."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sandbox import arns
from sandbox.eks_emulation import limits
from sandbox.eks_emulation.errors import invalid_parameter


def names(namespace: Any, service_account: Any) -> None:
    _name(
        "namespace",
        namespace,
        limits.DNS_LABEL,
        limits.MAX_NAMESPACE_CHARS,
        "DNS-1123 label: lower-case letters, digits and '-'",
    )
    _name(
        "serviceAccount",
        service_account,
        limits.DNS_SUBDOMAIN,
        limits.MAX_SERVICE_ACCOUNT_CHARS,
        "DNS-1123 subdomain: dot-separated lower-case letters, digits and '-'",
    )


def _name(field: str, value: Any, pattern: Any, longest: int, rule: str) -> None:
    if not isinstance(value, str) or not value:
        raise invalid_parameter(f"{field} must not be empty.")
    if len(value) > longest:
        raise invalid_parameter(
            f"{field} {value!r} is {len(value)} characters long; at most {longest} are allowed."
        )
    if not pattern.match(value):
        raise invalid_parameter(
            f"{field} {value!r} is not a valid Kubernetes name ({rule}, each part "
            "starting and ending with a letter or digit)."
        )


def tags(found: Any) -> None:
    if found is None:
        return
    if not isinstance(found, Mapping):
        raise invalid_parameter("tags must be a map of strings.")
    if len(found) > limits.MAX_TAGS:
        raise invalid_parameter(f"{len(found)} tags given; at most {limits.MAX_TAGS} are allowed.")
    for key, value in found.items():
        if not isinstance(key, str) or not 1 <= len(key) <= limits.MAX_TAG_KEY_CHARS:
            raise invalid_parameter(
                f"Tag key {key!r} must be 1 to {limits.MAX_TAG_KEY_CHARS} characters long."
            )
        if not isinstance(value, str) or len(value) > limits.MAX_TAG_VALUE_CHARS:
            raise invalid_parameter(
                f"Tag value for {key!r} must be at most {limits.MAX_TAG_VALUE_CHARS} characters."
            )
        if key.lower().startswith("aws:"):
            raise invalid_parameter(f"Tag key {key!r}: the aws: prefix is reserved for AWS use.")


def settings(
    cluster_arn: str,
    *,
    role_arn: str,
    target_role_arn: str | None,
    disable_session_tags: bool,
    policy: str | None,
    role_exists: Callable[[str], bool],
) -> None:
    cluster_account = arns.account_of(cluster_arn)
    for field, arn in (("roleArn", role_arn), ("targetRoleArn", target_role_arn)):
        if arn is not None and not limits.ROLE_ARN.match(arn):
            raise invalid_parameter(
                f"{field} {arn!r} is not an IAM role ARN "
                "(arn:<partition>:iam::<account>:role/<name>)."
            )
    if arns.account_of(role_arn) != cluster_account:
        raise invalid_parameter(
            f"Role {role_arn} must be in the same account as the cluster ({cluster_account}); "
            "a role in another account is reached through targetRoleArn."
        )
    if not role_exists(role_arn):
        raise invalid_parameter("Role provided in the request does not exist")
    if policy is not None:
        _session_policy(policy, disable_session_tags=disable_session_tags)


def _session_policy(policy: str, *, disable_session_tags: bool) -> None:
    if not disable_session_tags:
        raise invalid_parameter("A session policy requires disableSessionTags set to true.")
    if len(policy) > limits.MAX_SESSION_POLICY_CHARS:
        raise invalid_parameter(
            f"policy is {len(policy)} characters long; at most "
            f"{limits.MAX_SESSION_POLICY_CHARS} are allowed."
        )
    try:
        parsed = json.loads(policy)
    except json.JSONDecodeError as exc:
        raise invalid_parameter(f"policy is not valid JSON: {exc.msg} at char {exc.pos}.") from exc
    if not isinstance(parsed, dict):
        raise invalid_parameter("policy must be a JSON object (an IAM policy document).")
