"""What EKS Auth asks STS for when a pod of a cluster wants its role, from the
Amazon EKS User Guide ("Create IAM role with trust policy required by EKS Pod
Identity", "Enable or disable session tags"): the service principal
pods.eks.amazonaws.com calls sts:AssumeRole and, unless the association
disables session tags, sts:TagSession with six session tags.

The request's condition keys are those IAM documents for a call a service
principal makes on a customer's behalf (aws:SourceAccount, aws:SourceArn,
aws:PrincipalServiceName, aws:PrincipalIsAWSService), the request time, and
aws:RequestTag/<key> and aws:TagKeys for the tags. aws:SourceArn is the
cluster ARN here: AWS does not document it for this principal, and this is
the reading the sandbox uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sandbox import arns, iam_policy

POD_PRINCIPAL = "pods.eks.amazonaws.com"
ASSUME_ROLE = "sts:AssumeRole"
TAG_SESSION = "sts:TagSession"


def session_tags(
    cluster_arn: str, namespace: str, service_account: str, pod_name: str, pod_uid: str
) -> dict[str, str]:
    """The six session tags EKS Pod Identity sets (EKS User Guide, pod-id-abac)."""
    return {
        "eks-cluster-arn": cluster_arn,
        "eks-cluster-name": arns.parse(cluster_arn).resource_name,
        "kubernetes-namespace": namespace,
        "kubernetes-service-account": service_account,
        "kubernetes-pod-name": pod_name,
        "kubernetes-pod-uid": pod_uid,
    }


Context = dict[str, str | tuple[str, ...]]


def _requests(
    caller: iam_policy.Caller, context: Context, tags: dict[str, str] | None, now: datetime | None
) -> list[iam_policy.Request]:
    """sts:AssumeRole, and sts:TagSession when `tags` are sent, with the request
    time and the tags' keys added to `context`."""
    when = now or datetime.now(UTC)
    context = context | {
        "aws:CurrentTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(when.timestamp())),
    }
    actions = [ASSUME_ROLE]
    if tags is not None:
        context |= {f"aws:RequestTag/{key}": value for key, value in tags.items()}
        context["aws:TagKeys"] = tuple(tags)
        actions.append(TAG_SESSION)
    return [iam_policy.Request(caller, action, context) for action in actions]


def sts_requests(
    cluster_arn: str, tags: dict[str, str] | None, *, now: datetime | None = None
) -> list[iam_policy.Request]:
    """What STS authorizes when EKS Auth assumes a role for a pod of `cluster_arn`:
    sts:AssumeRole, and sts:TagSession when `tags` are sent."""
    context: Context = {
        "aws:SourceAccount": arns.account_of(cluster_arn),
        "aws:SourceArn": cluster_arn,
        "aws:PrincipalServiceName": POD_PRINCIPAL,
        "aws:PrincipalIsAWSService": "true",
    }
    return _requests(iam_policy.Caller.service(POD_PRINCIPAL), context, tags, now)


def chained_requests(
    session_arn: str,
    association_role_arn: str,
    external_id: str,
    tags: dict[str, str] | None,
    *,
    now: datetime | None = None,
) -> list[iam_policy.Request]:
    """What STS authorizes when EKS chains to an association's target role: the
    association role's session (an AWS principal, no aws:SourceAccount) calls
    sts:AssumeRole with sts:ExternalId = the association's externalId, and
    sts:TagSession when session tags are sent."""
    context: Context = {
        "sts:ExternalId": external_id,
        "aws:PrincipalArn": association_role_arn,
        "aws:PrincipalAccount": arns.account_of(association_role_arn),
    }
    caller = iam_policy.Caller.aws(session_arn, role_arn=association_role_arn)
    return _requests(caller, context, tags, now)
