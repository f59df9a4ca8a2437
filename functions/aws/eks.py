"""EKS adapter: clusters and pod identity associations, as domain models."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.core.association_map import canonical_json
from functions.core.models import (
    FLEET_TAG,
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
)
from functions.core.places import ClusterRef, Place

if TYPE_CHECKING:
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_eks.type_defs import PodIdentityAssociationTypeDef


class ClusterNotFound(Exception):
    pass


class WrongPlace(ValueError):
    """A call for a cluster in another account or region than this client's: a
    bug, refused before it reaches EKS (the same name may exist in both)."""


class AssociationExists(Exception):
    """CreatePodIdentityAssociation refused: one already exists for the key."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    name: str
    arn: str
    status: str
    endpoint: str | None
    certificate_authority: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def fleet(self) -> str | None:
        return self.tags.get(FLEET_TAG)


@dataclass(frozen=True, slots=True)
class AssociationSummary:
    key: AssociationKey
    association_id: str
    association_arn: str


def request_token(*parts: object) -> str:
    """Deterministic clientRequestToken: a retried call is the same call to EKS."""
    return hashlib.sha256(canonical_json([str(p) for p in parts]).encode()).hexdigest()[:64]


def _actual(cluster: ClusterRef, raw: PodIdentityAssociationTypeDef) -> ActualAssociation:
    return ActualAssociation(
        key=AssociationKey(cluster, raw["namespace"], raw["serviceAccount"]),
        association_id=raw["associationId"],
        association_arn=raw.get("associationArn"),
        spec=AssociationSpec(
            role_arn=raw["roleArn"],
            target_role_arn=raw.get("targetRoleArn") or None,
            disable_session_tags=bool(raw.get("disableSessionTags", False)),
            policy=raw.get("policy") or None,
            tags=dict(raw.get("tags") or {}),
        ),
        external_id=raw.get("externalId") or None,
    )


class EksAdapter:
    """EKS in one account and region (`place`): every call names a cluster there."""

    def __init__(self, eks_client: EKSClient, place: Place | Callable[[], Place]) -> None:
        """`place`, or how to learn it when first needed (the hub asks STS once
        when its account is not configured)."""
        self._eks = eks_client
        self._place = place

    @property
    def place(self) -> Place:
        if not isinstance(self._place, Place):
            self._place = self._place()
        return self._place

    def _name(self, cluster: ClusterRef) -> str:
        if cluster.place != self.place:
            raise WrongPlace(f"cluster {cluster} is not in {self.place}, where this client calls")
        return cluster.name

    # clusters ------------------------------------------------------------------
    def list_clusters(self) -> list[ClusterRef]:
        names: list[str] = []
        for page in self._eks.get_paginator("list_clusters").paginate():
            names.extend(page["clusters"])
        return [ClusterRef.at(self.place, name) for name in sorted(names)]

    def describe_cluster(self, cluster: ClusterRef) -> ClusterInfo | None:
        try:
            raw = self._eks.describe_cluster(name=self._name(cluster))["cluster"]
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise
        return ClusterInfo(
            name=raw["name"],
            arn=raw["arn"],
            status=raw.get("status", "ACTIVE"),
            endpoint=raw.get("endpoint"),
            certificate_authority=(raw.get("certificateAuthority") or {}).get("data"),
            tags=dict(raw.get("tags") or {}),
        )

    # associations ----------------------------------------------------------------
    def list_associations(self, cluster: ClusterRef) -> list[AssociationSummary]:
        found = []
        try:
            for page in self._eks.get_paginator("list_pod_identity_associations").paginate(
                clusterName=self._name(cluster)
            ):
                for raw in page["associations"]:
                    found.append(
                        AssociationSummary(
                            AssociationKey(cluster, raw["namespace"], raw["serviceAccount"]),
                            raw["associationId"],
                            raw["associationArn"],
                        )
                    )
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                raise ClusterNotFound(str(cluster)) from error
            raise
        return found

    def find_association(self, key: AssociationKey) -> ActualAssociation | None:
        response = self._eks.list_pod_identity_associations(
            clusterName=self._name(key.cluster),
            namespace=key.namespace,
            serviceAccount=key.service_account,
        )
        for raw in response["associations"]:
            return self.describe_association(key.cluster, raw["associationId"])
        return None

    def describe_association(
        self, cluster: ClusterRef, association_id: str
    ) -> ActualAssociation | None:
        try:
            raw = self._eks.describe_pod_identity_association(
                clusterName=self._name(cluster), associationId=association_id
            )["association"]
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise
        return _actual(cluster, raw)

    def create_association(
        self, key: AssociationKey, spec: AssociationSpec, token: str
    ) -> ActualAssociation:
        params: dict[str, Any] = {
            "clusterName": self._name(key.cluster),
            "namespace": key.namespace,
            "serviceAccount": key.service_account,
            "roleArn": spec.role_arn,
            "disableSessionTags": spec.disable_session_tags,
            "clientRequestToken": token,
        }
        if spec.tags:
            params["tags"] = spec.tags
        if spec.target_role_arn:
            params["targetRoleArn"] = spec.target_role_arn
        if spec.policy:
            params["policy"] = spec.policy
        try:
            raw = self._eks.create_pod_identity_association(**params)["association"]
        except ClientError as error:
            if error_code(error) == "ResourceInUseException":
                raise AssociationExists(str(key)) from error
            raise
        return _actual(key.cluster, raw)

    def update_association(
        self, key: AssociationKey, association_id: str, spec: AssociationSpec, token: str
    ) -> ActualAssociation | None:
        """None when the association vanished in the meantime."""
        params: dict[str, Any] = {
            "clusterName": self._name(key.cluster),
            "associationId": association_id,
            "roleArn": spec.role_arn,
            "disableSessionTags": spec.disable_session_tags,
            # EKS clears these when sent empty, so the declared state is exact.
            "targetRoleArn": spec.target_role_arn or "",
            "policy": spec.policy or "",
            "clientRequestToken": token,
        }
        try:
            raw = self._eks.update_pod_identity_association(**params)["association"]
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise
        return _actual(key.cluster, raw)

    def delete_association(self, cluster: ClusterRef, association_id: str) -> bool:
        """False when it was already gone (a retried delete is not an error)."""
        try:
            self._eks.delete_pod_identity_association(
                clusterName=self._name(cluster), associationId=association_id
            )
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return False
            raise
        return True

    def set_tags(self, arn: str, to_set: dict[str, str], to_remove: list[str]) -> None:
        if to_set:
            self._eks.tag_resource(resourceArn=arn, tags=to_set)
        if to_remove:
            self._eks.untag_resource(resourceArn=arn, tagKeys=to_remove)
