"""The wire side: read request members as botocore's models name them, answer
the EKS association operations and EKS Auth, and route their URLs in moto."""

from __future__ import annotations

import functools
import types
from typing import Any

import botocore.session
from moto.core.base_backend import BackendDict, BaseBackend
from moto.core.responses import ActionResult, BaseResponse
from moto.eks.responses import EKSResponse

from sandbox.eks_emulation import auth, store
from sandbox.eks_emulation.errors import invalid_parameter


@functools.cache
def service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def request_params(response: BaseResponse, service: str, operation: str) -> dict[str, Any]:
    """Every input member of `operation` from the URI, query string or JSON body,
    under its botocore member name."""
    shape = service_model(service).operation_model(operation).input_shape
    params: dict[str, Any] = {}
    for member, member_shape in shape.members.items():
        wire_name = member_shape.serialization.get("name", member)
        location = member_shape.serialization.get("location")
        value = response._get_param(wire_name if location else member)
        if value is None:
            continue
        if member_shape.type_name == "integer":
            try:
                value = int(value)
            except (TypeError, ValueError) as exc:
                raise invalid_parameter(f"{member} must be an integer.") from exc
        params[member] = value
    return params


def _eks(self: EKSResponse, operation: str) -> dict[str, Any]:
    return request_params(self, "eks", operation)


def create(self: EKSResponse) -> ActionResult:
    params = _eks(self, "CreatePodIdentityAssociation")
    return ActionResult({"association": store.create(self.eks_backend, params).describe()})


def describe(self: EKSResponse) -> ActionResult:
    params = _eks(self, "DescribePodIdentityAssociation")
    return ActionResult({"association": store.describe(self.eks_backend, params).describe()})


def update(self: EKSResponse) -> ActionResult:
    params = _eks(self, "UpdatePodIdentityAssociation")
    return ActionResult({"association": store.update(self.eks_backend, params).describe()})


def delete(self: EKSResponse) -> ActionResult:
    params = _eks(self, "DeletePodIdentityAssociation")
    return ActionResult({"association": store.delete(self.eks_backend, params).describe()})


def list_(self: EKSResponse) -> ActionResult:
    page, next_token = store.list_page(self.eks_backend, _eks(self, "ListPodIdentityAssociations"))
    result: dict[str, Any] = {"associations": [a.summary() for a in page]}
    if next_token:
        result["nextToken"] = next_token
    return ActionResult(result)


EKS_URL_PATHS = {
    "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$": EKSResponse.dispatch,
    "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations/"
    "(?P<associationId>[^/]+)$": EKSResponse.dispatch,
}
EKS_METHODS = {
    "create_pod_identity_association": create,
    "describe_pod_identity_association": describe,
    "update_pod_identity_association": update,
    "delete_pod_identity_association": delete,
    "list_pod_identity_associations": list_,
}


class EksAuthResponse(BaseResponse):
    def __init__(self) -> None:
        super().__init__(service_name="eks-auth")

    def assume_role_for_pod_identity(self) -> ActionResult:
        params = request_params(self, "eks-auth", "AssumeRoleForPodIdentity")
        return ActionResult(
            auth.assume_role_for_pod_identity(
                self.current_account, self.region, params["clusterName"], params.get("token", "")
            )
        )


EKS_AUTH_URL_BASES = [
    r"https?://eks-auth\.(.+)\.api\.aws",
    r"https?://eks-auth\.(.+)\.amazonaws\.com",
]
EKS_AUTH_URL_PATHS = {
    "{0}/clusters/(?P<clusterName>[^/]+)/assume-role-for-pod-identity$": EksAuthResponse.dispatch,
}


class EksAuthBackend(BaseBackend):
    """Stateless: everything it reads lives in the EKS, IAM and STS backends."""

    @property
    def _url_module(self) -> Any:
        return types.SimpleNamespace(url_bases=EKS_AUTH_URL_BASES, url_paths=EKS_AUTH_URL_PATHS)


eksauth_backends = BackendDict(EksAuthBackend, "eks-auth", additional_regions=["us-east-1"])
