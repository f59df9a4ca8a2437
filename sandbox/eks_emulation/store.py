"""Pod identity associations held next to moto's EKS backend, and the five
association operations on them: clientRequestToken idempotency, one
association per (namespace, service account), the per-cluster limit,
pagination ordered by id."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.eks.models import EKSBackend
from moto.iam.models import iam_backends

from sandbox import arns
from sandbox.eks_emulation import limits, validation
from sandbox.eks_emulation.errors import (
    EmulatedError,
    invalid_parameter,
    invalid_request,
    not_found,
)
from sandbox.eks_emulation.faults import FAULTS

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass
class Association:
    cluster_name: str
    namespace: str
    service_account: str
    role_arn: str
    association_arn: str
    association_id: str
    tags: dict[str, str]
    created_at: datetime
    modified_at: datetime
    disable_session_tags: bool = False
    target_role_arn: str | None = None
    external_id: str | None = None
    policy: str | None = None

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "clusterName": self.cluster_name,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "roleArn": self.role_arn,
            "associationArn": self.association_arn,
            "associationId": self.association_id,
            "tags": dict(self.tags),
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "disableSessionTags": self.disable_session_tags,
        }
        for key, value in (
            ("targetRoleArn", self.target_role_arn),
            ("externalId", self.external_id),
            ("policy", self.policy),
        ):
            if value is not None:
                found[key] = value
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "clusterName": self.cluster_name,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "associationArn": self.association_arn,
            "associationId": self.association_id,
        }


@dataclass
class _State:
    by_cluster: dict[str, dict[str, Association]] = field(default_factory=lambda: defaultdict(dict))
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (fingerprint, id)
    lock: threading.RLock = field(default_factory=threading.RLock)


def _state(backend: EKSBackend) -> _State:
    # moto's reset() re-runs __init__ and so drops this attribute: state resets with moto.
    found = backend.__dict__.get("_pod_identity")
    if found is None:
        found = backend.__dict__["_pod_identity"] = _State()
    return found


def associations_of(backend: EKSBackend, cluster_name: str) -> dict[str, Association]:
    return _state(backend).by_cluster[cluster_name]


def forget_cluster(backend: EKSBackend, cluster_name: str) -> None:
    _state(backend).by_cluster.pop(cluster_name, None)


def find(backend: EKSBackend, cluster_name: str, namespace: str, sa: str) -> Association | None:
    return next(
        (
            a
            for a in _state(backend).by_cluster[cluster_name].values()
            if (a.namespace, a.service_account) == (namespace, sa)
        ),
        None,
    )


def cluster(backend: EKSBackend, name: str) -> Any:
    found = backend.clusters.get(name)
    if found is None:
        raise not_found(f"No cluster found for name: {name}.")
    return found


def role_exists(backend: EKSBackend, role_arn: str) -> bool:
    try:
        partition = arns.parse(role_arn).partition
    except ValueError:
        return False
    try:
        iam_backends[backend.account_id][partition].get_role_by_arn(role_arn)
    except Exception:  # moto raises its own IAMNotFoundException
        return False
    return True


def _new_id() -> str:
    return "a-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(17))


def _check_token(state: _State, token: str | None, fingerprint: str) -> str | None:
    """The association id a repeated clientRequestToken already made, if any."""
    if not token or token not in state.tokens:
        return None
    previous, association_id = state.tokens[token]
    if previous != fingerprint:
        raise invalid_request("The clientRequestToken was already used with different parameters.")
    return association_id


def create(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("CreatePodIdentityAssociation")
    state = _state(backend)
    cluster_name = params["clusterName"]
    found = cluster(backend, cluster_name)
    token = params.get("clientRequestToken")
    fingerprint = json.dumps(params, sort_keys=True, default=str)
    with state.lock:
        repeated = _check_token(state, token, fingerprint)
        if repeated and repeated in state.by_cluster[cluster_name]:
            return state.by_cluster[cluster_name][repeated]
        namespace = str(params.get("namespace") or "")
        service_account = str(params.get("serviceAccount") or "")
        validation.names(namespace, service_account)
        validation.tags(params.get("tags"))
        disable = bool(params.get("disableSessionTags") or False)
        validation.settings(
            found.arn,
            role_arn=params["roleArn"],
            target_role_arn=params.get("targetRoleArn"),
            disable_session_tags=disable,
            policy=params.get("policy"),
            role_exists=lambda arn: role_exists(backend, arn),
        )
        existing = state.by_cluster[cluster_name]
        other = find(backend, cluster_name, namespace, service_account)
        if other is not None:
            raise EmulatedError(
                "ResourceInUseException", 409, f"Association already exists: {other.association_id}"
            )
        if len(existing) >= limits.MAX_ASSOCIATIONS_PER_CLUSTER:
            raise EmulatedError(
                "ResourceLimitExceededException",
                400,
                f"Cluster {cluster_name} has reached the limit of "
                f"{limits.MAX_ASSOCIATIONS_PER_CLUSTER} pod identity associations.",
            )
        association = _new(found, params, namespace, service_account, disable)
        existing[association.association_id] = association
        if token:
            state.tokens[token] = (fingerprint, association.association_id)
        return association


def _new(
    found: Any, params: dict[str, Any], namespace: str, service_account: str, disable: bool
) -> Association:
    association_id = _new_id()
    cluster_arn = arns.parse(found.arn)
    now = datetime.now(UTC)
    return Association(
        cluster_name=found.name,
        namespace=namespace,
        service_account=service_account,
        role_arn=params["roleArn"],
        association_arn=(
            f"arn:{cluster_arn.partition}:eks:{cluster_arn.region}:{cluster_arn.account}:"
            "podidentityassociation/"
            f"{found.name}/{association_id}"
        ),
        association_id=association_id,
        tags=dict(params.get("tags") or {}),
        created_at=now,
        modified_at=now,
        disable_session_tags=disable,
        target_role_arn=params.get("targetRoleArn"),
        external_id=str(uuid.uuid4()) if params.get("targetRoleArn") else None,
        policy=params.get("policy"),
    )


def get(backend: EKSBackend, cluster_name: str, association_id: str) -> Association:
    cluster(backend, cluster_name)
    found = _state(backend).by_cluster[cluster_name].get(association_id)
    if found is None:
        raise not_found(f"No Pod Identity Association found for id: {association_id}.")
    return found


def describe(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("DescribePodIdentityAssociation")
    return get(backend, params["clusterName"], params["associationId"])


def update(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("UpdatePodIdentityAssociation")
    state = _state(backend)
    with state.lock:
        association = get(backend, params["clusterName"], params["associationId"])
        token = params.get("clientRequestToken")
        fingerprint = json.dumps(params, sort_keys=True, default=str)
        if _check_token(state, token, fingerprint):
            return association
        role_arn = params.get("roleArn", association.role_arn)
        target = params.get("targetRoleArn", association.target_role_arn) or None
        disable = params.get("disableSessionTags", association.disable_session_tags)
        policy = params.get("policy", association.policy) or None
        validation.settings(
            cluster(backend, association.cluster_name).arn,
            role_arn=role_arn,
            target_role_arn=target,
            disable_session_tags=disable,
            policy=policy,
            role_exists=lambda arn: role_exists(backend, arn),
        )
        if target != association.target_role_arn:
            association.external_id = str(uuid.uuid4()) if target else None
        association.role_arn = role_arn
        association.target_role_arn = target
        association.disable_session_tags = disable
        association.policy = policy
        association.modified_at = datetime.now(UTC)
        if token:
            state.tokens[token] = (fingerprint, association.association_id)
        return association


def delete(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("DeletePodIdentityAssociation")
    state = _state(backend)
    with state.lock:
        association = get(backend, params["clusterName"], params["associationId"])
        del state.by_cluster[params["clusterName"]][association.association_id]
        return association


def list_page(backend: EKSBackend, params: dict[str, Any]) -> tuple[list[Association], str | None]:
    FAULTS.check("ListPodIdentityAssociations")
    cluster_name = params["clusterName"]
    cluster(backend, cluster_name)
    limit = int(params.get("maxResults") or limits.MAX_PAGE)
    if not 1 <= limit <= limits.MAX_PAGE:
        raise invalid_parameter(f"maxResults must be between 1 and {limits.MAX_PAGE}.")
    with _state(backend).lock:
        matching = sorted(
            (
                a
                for a in _state(backend).by_cluster[cluster_name].values()
                if params.get("namespace") in (None, a.namespace)
                and params.get("serviceAccount") in (None, a.service_account)
            ),
            key=lambda a: a.association_id,
        )
    after = params.get("nextToken")
    if after:
        if not limits.ASSOCIATION_ID.match(after):
            raise invalid_parameter("The nextToken is not valid.")
        matching = [a for a in matching if a.association_id > after]
    page = matching[:limit]
    next_token = page[-1].association_id if len(matching) > limit else None
    return page, next_token


def by_arn(backend: EKSBackend, arn: str) -> Association | None:
    try:
        kind, cluster_name, association_id = arns.parse(arn).resource.split("/")
    except ValueError:
        return None
    if kind != "podidentityassociation":
        return None
    return get(backend, cluster_name, association_id)
