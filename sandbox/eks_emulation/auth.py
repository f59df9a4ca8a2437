"""EKS Auth AssumeRoleForPodIdentity: verify the pod's projected token, find
its association, and assume the role the way EKS does, deciding the role's
trust policy with the sandbox's own IAM evaluator (sandbox.iam_policy).

The request STS authorizes is built by sandbox.eks_emulation.pod_request.
"""

from __future__ import annotations

from typing import Any

from moto.eks.models import eks_backends
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from sandbox import arns, iam_policy
from sandbox.cluster_identity import POD_IDENTITY_AUDIENCE, REGISTRY, TokenRejected
from sandbox.eks_emulation import store
from sandbox.eks_emulation.errors import EmulatedError, access_denied, not_found
from sandbox.eks_emulation.faults import FAULTS
from sandbox.eks_emulation.pod_request import (
    POD_PRINCIPAL,
    chained_requests,
    session_tags,
    sts_requests,
)

CREDENTIAL_SECONDS = 6 * 3600


def trust_refusal(
    role_arn: str, document: Any, requests: list[iam_policy.Request], who: str = POD_PRINCIPAL
) -> str | None:
    """None when the role's trust policy allows every request, else why not."""
    try:
        policy = iam_policy.load(document)
        decisions = iam_policy.decide_all(policy, requests)
    except iam_policy.PolicyInvalid as exc:
        return f"the trust policy of {role_arn} is not a valid trust policy: {exc}"
    except iam_policy.NotEvaluable as exc:
        # never guess an IAM answer the documentation does not give
        raise EmulatedError(
            "EmulationCannotDecide", 501, f"the sandbox cannot evaluate {role_arn}'s trust: {exc}"
        ) from exc
    refused = [d for d in decisions if not d.allowed]
    if not refused:
        return None
    return f"the trust policy of {role_arn} does not let {who} " + "; ".join(
        str(d) for d in refused
    )


def assume_role_for_pod_identity(
    account_id: str, region: str, cluster_name: str, token: str
) -> dict[str, Any]:
    FAULTS.check("AssumeRoleForPodIdentity")
    eks = eks_backends[account_id][region]
    cluster = eks.clusters.get(cluster_name)
    if cluster is None:
        raise not_found(f"Cluster {cluster_name} not found.")
    if not token:
        raise EmulatedError("InvalidParameterException", 400, "token must not be empty.")
    identity = REGISTRY.known(cluster.arn)
    if identity is None:
        raise EmulatedError(
            "InvalidTokenException", 400, "The token is not valid for this cluster."
        )
    try:
        subject = identity.verify(token, audience=POD_IDENTITY_AUDIENCE)
    except TokenRejected as exc:
        code = "ExpiredTokenException" if exc.expired else "InvalidTokenException"
        raise EmulatedError(code, 400, str(exc)) from exc
    association = store.find(eks, cluster_name, subject.namespace, subject.service_account)
    if association is None:
        raise not_found(
            f"No Pod Identity Association found for service account "
            f"{subject.namespace}/{subject.service_account} in cluster {cluster_name}."
        )
    partition = arns.parse(cluster.arn).partition
    try:
        role = iam_backends[account_id][partition].get_role_by_arn(association.role_arn)
    except Exception as exc:  # moto raises its own IAMNotFoundException
        raise access_denied(f"Role {association.role_arn} does not exist.") from exc
    tags = (
        None
        if association.disable_session_tags
        else session_tags(
            cluster.arn,
            subject.namespace,
            subject.service_account,
            subject.pod_name,
            subject.pod_uid,
        )
    )
    refusal = trust_refusal(
        association.role_arn, role.assume_role_policy_document, sts_requests(cluster.arn, tags)
    )
    if refusal:
        raise access_denied(refusal)
    assumed = _assume(
        account_id=account_id,
        region=region,
        partition=partition,
        session=f"eks-{cluster_name}-{subject.pod_name}"[:64],
        association=association,
        tags=tags or {},
    )
    return {
        "subject": {"namespace": subject.namespace, "serviceAccount": subject.service_account},
        "audience": POD_IDENTITY_AUDIENCE,
        "podIdentityAssociation": {
            "associationArn": association.association_arn,
            "associationId": association.association_id,
        },
        "assumedRoleUser": {"arn": assumed.arn, "assumeRoleId": assumed.user_id},
        "credentials": {
            "sessionToken": assumed.session_token,
            "secretAccessKey": assumed.secret_access_key,
            "accessKeyId": assumed.access_key_id,
            "expiration": assumed.expiration,
        },
    }


def _assume(
    *,
    account_id: str,
    region: str,
    partition: str,
    session: str,
    association: store.Association,
    tags: dict[str, str],
) -> Any:
    """Mint through moto STS; with a target role, EKS chains a second assume
    carrying the association's externalId."""
    sts = sts_backends[account_id][partition]
    assumed = sts.assume_role(
        region_name=region,
        role_session_name=session,
        role_arn=association.role_arn,
        policy=association.policy or "",
        duration=CREDENTIAL_SECONDS,
        external_id="",
    )
    assumed.session_tags = tags  # type: ignore[attr-defined]  # kept for assertions
    if association.target_role_arn:
        target_account = arns.account_of(association.target_role_arn)
        try:
            target = iam_backends[target_account][partition].get_role_by_arn(
                association.target_role_arn
            )
        except Exception as exc:  # moto raises its own IAMNotFoundException
            raise access_denied(f"Role {association.target_role_arn} does not exist.") from exc
        refusal = trust_refusal(
            association.target_role_arn,
            target.assume_role_policy_document,
            chained_requests(
                assumed.arn, association.role_arn, association.external_id or "", tags or None
            ),
            who=association.role_arn,
        )
        if refusal:
            raise access_denied(refusal)
        assumed = sts.assume_role(
            region_name=region,
            role_session_name=session,
            role_arn=association.target_role_arn,
            policy=association.policy or "",
            duration=CREDENTIAL_SECONDS,
            external_id=association.external_id or "",
        )
        assumed.session_tags = tags  # type: ignore[attr-defined]
    return assumed
