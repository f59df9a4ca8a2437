"""EKS Pod Identity emulation for moto: the association APIs and EKS Auth.

moto (5.2.x) implements EKS clusters but not Create/Describe/List/Update/
DeletePodIdentityAssociation, nor the `eks-auth` service. This module adds
exactly those, faithful to botocore's service models: request and response
shapes, error codes and HTTP statuses, clientRequestToken idempotency,
pagination, the association ARN/id formats, clusters checked against moto's
EKS backend. EKS Auth verifies the projected service-account token with the
cluster's signing key (sandbox.cluster_identity), checks the role's trust
policy the way STS would for pods.eks.amazonaws.com, and mints credentials
through moto STS with the six session tags EKS sets.

Call `install()` once before starting `mock_aws` or a moto server; it is
idempotent. Faults (throttling, 5xx) are injected with `FAULTS.inject(...)`.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import sys
import threading
import time
import types
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.session
from moto import backend_index
from moto.core.base_backend import BackendDict, BaseBackend
from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult, BaseResponse
from moto.eks import urls as eks_urls
from moto.eks.models import EKSBackend, eks_backends
from moto.eks.responses import EKSResponse
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from functions.core.arns import parse_role_arn
from functions.core.models import MAX_ASSOCIATIONS_PER_CLUSTER, MAX_SESSION_POLICY_CHARS
from functions.core.trust.analysis import verdicts
from functions.core.trust.conditions import Tri, Usage
from functions.core.trust.document import parse_policy, views
from sandbox import eks_cluster_tagging
from sandbox.cluster_identity import POD_IDENTITY_AUDIENCE, REGISTRY, TokenRejected

CREDENTIAL_SECONDS = 6 * 3600
MAX_PAGE = 100
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


# --- errors -------------------------------------------------------------------


class EmulatedError(AWSError):
    """A rest-json error as EKS and EKS Auth send it (x-amzn-ErrorType + JSON)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super(AWSError, self).__init__(error_type=code, message=message)
        self.code = status
        self.error_code = code
        self.description = json.dumps({"message": message})
        self.headers = {
            "status": status,
            "x-amzn-ErrorType": code,
            "content-type": "application/json",
        }

    def response(self) -> tuple[int, dict[str, Any], str]:  # type: ignore[override]
        return self.code, self.headers, self.description

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return self.description

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in self.headers.items()]


def _not_found(message: str) -> EmulatedError:
    return EmulatedError("ResourceNotFoundException", 404, message)


def _invalid_parameter(message: str) -> EmulatedError:
    return EmulatedError("InvalidParameterException", 400, message)


def _invalid_request(message: str) -> EmulatedError:
    return EmulatedError("InvalidRequestException", 400, message)


# --- fault injection ----------------------------------------------------------


@dataclass
class _Fault:
    code: str
    status: int
    remaining: int
    message: str


class FaultInjector:
    """Make the next N calls of an operation fail, e.g. with throttling."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._delays: dict[str, list[float]] = defaultdict(list)
        # how many injected faults each operation raised: a fault test asserts it fired
        self.fired: dict[str, int] = defaultdict(int)

    def inject(
        self,
        operation: str,
        code: str = "ThrottlingException",
        *,
        status: int = 429,
        times: int = 1,
        message: str = "Rate exceeded",
    ) -> None:
        with self._lock:
            self._faults[operation].append(_Fault(code, status, times, message))

    def slow_down(self, operation: str, seconds: float, *, times: int = 1) -> None:
        """Make the next N calls of an operation take `seconds` longer (latency)."""
        with self._lock:
            self._delays[operation].extend([seconds] * times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self.fired.clear()

    def check(self, operation: str) -> None:
        with self._lock:
            delays = self._delays.get(operation)
            delay = delays.pop(0) if delays else 0.0
        if delay:
            time.sleep(delay)
        with self._lock:
            queue = self._faults.get(operation)
            if not queue:
                return
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            self.fired[operation] += 1
        raise EmulatedError(fault.code, fault.status, fault.message)


FAULTS = FaultInjector()


# --- association state --------------------------------------------------------


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


def _cluster(backend: EKSBackend, name: str) -> Any:
    cluster = backend.clusters.get(name)
    if cluster is None:
        raise _not_found(f"No cluster found for name: {name}.")
    return cluster


def _new_id() -> str:
    return "a-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(17))


def _validate_settings(
    cluster: Any,
    *,
    role_arn: str | None,
    target_role_arn: str | None,
    disable_session_tags: bool,
    policy: str | None,
) -> None:
    cluster_account = cluster.arn.split(":")[4]
    for name, arn in (("roleArn", role_arn), ("targetRoleArn", target_role_arn)):
        if arn is None:
            continue
        try:
            parse_role_arn(arn)
        except ValueError as exc:
            raise _invalid_parameter(f"Invalid {name}: {exc}") from exc
    if role_arn is not None and role_arn.split(":")[4] != cluster_account:
        raise _invalid_parameter(
            f"Role {role_arn} must be in the same account as the cluster ({cluster_account})."
        )
    if policy is not None:
        if not disable_session_tags:
            raise _invalid_parameter("A session policy requires disableSessionTags set to true.")
        if len(policy) > MAX_SESSION_POLICY_CHARS:
            raise _invalid_parameter(
                f"Policy exceeds the maximum length of {MAX_SESSION_POLICY_CHARS} characters."
            )


def create_association(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("CreatePodIdentityAssociation")
    state = _state(backend)
    cluster_name = params["clusterName"]
    cluster = _cluster(backend, cluster_name)
    token = params.get("clientRequestToken")
    fingerprint = json.dumps(params, sort_keys=True, default=str)
    with state.lock:
        if token and token in state.tokens:
            previous, association_id = state.tokens[token]
            if previous != fingerprint:
                raise _invalid_request(
                    "The clientRequestToken was already used with different parameters."
                )
            existing = state.by_cluster[cluster_name].get(association_id)
            if existing is not None:
                return existing
        namespace, service_account = params["namespace"], params["serviceAccount"]
        if not namespace or not service_account:
            raise _invalid_parameter("namespace and serviceAccount must not be empty.")
        tags = params.get("tags") or {}
        if len(tags) > 50:
            raise _invalid_parameter("Tags exceed the maximum of 50.")
        disable = bool(params.get("disableSessionTags") or False)
        _validate_settings(
            cluster,
            role_arn=params["roleArn"],
            target_role_arn=params.get("targetRoleArn"),
            disable_session_tags=disable,
            policy=params.get("policy"),
        )
        existing_for_cluster = state.by_cluster[cluster_name]
        for other in existing_for_cluster.values():
            if (other.namespace, other.service_account) == (namespace, service_account):
                raise EmulatedError(
                    "ResourceInUseException",
                    409,
                    f"Association already exists: {other.association_id}",
                )
        if len(existing_for_cluster) >= MAX_ASSOCIATIONS_PER_CLUSTER:
            raise EmulatedError(
                "ResourceLimitExceededException",
                400,
                f"Cluster {cluster_name} has reached the limit of "
                f"{MAX_ASSOCIATIONS_PER_CLUSTER} pod identity associations.",
            )
        association_id = _new_id()
        region, account = cluster.arn.split(":")[3], cluster.arn.split(":")[4]
        partition = cluster.arn.split(":")[1]
        now = datetime.now(UTC)
        association = Association(
            cluster_name=cluster_name,
            namespace=namespace,
            service_account=service_account,
            role_arn=params["roleArn"],
            association_arn=(
                f"arn:{partition}:eks:{region}:{account}:podidentityassociation/"
                f"{cluster_name}/{association_id}"
            ),
            association_id=association_id,
            tags=dict(tags),
            created_at=now,
            modified_at=now,
            disable_session_tags=disable,
            target_role_arn=params.get("targetRoleArn"),
            external_id=str(uuid.uuid4()) if params.get("targetRoleArn") else None,
            policy=params.get("policy"),
        )
        existing_for_cluster[association_id] = association
        if token:
            state.tokens[token] = (fingerprint, association_id)
        return association


def _get(backend: EKSBackend, cluster_name: str, association_id: str) -> Association:
    _cluster(backend, cluster_name)
    found = _state(backend).by_cluster[cluster_name].get(association_id)
    if found is None:
        raise _not_found(f"No Pod Identity Association found for id: {association_id}.")
    return found


def describe_association(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("DescribePodIdentityAssociation")
    return _get(backend, params["clusterName"], params["associationId"])


def update_association(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("UpdatePodIdentityAssociation")
    state = _state(backend)
    with state.lock:
        association = _get(backend, params["clusterName"], params["associationId"])
        token = params.get("clientRequestToken")
        fingerprint = json.dumps(params, sort_keys=True, default=str)
        if token and token in state.tokens:
            previous, _ = state.tokens[token]
            if previous != fingerprint:
                raise _invalid_request(
                    "The clientRequestToken was already used with different parameters."
                )
            return association
        role_arn = params.get("roleArn", association.role_arn)
        target = params.get("targetRoleArn", association.target_role_arn) or None
        disable = params.get("disableSessionTags", association.disable_session_tags)
        policy = params.get("policy", association.policy) or None
        _validate_settings(
            _cluster(backend, association.cluster_name),
            role_arn=role_arn,
            target_role_arn=target,
            disable_session_tags=disable,
            policy=policy,
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


def delete_association(backend: EKSBackend, params: dict[str, Any]) -> Association:
    FAULTS.check("DeletePodIdentityAssociation")
    state = _state(backend)
    with state.lock:
        association = _get(backend, params["clusterName"], params["associationId"])
        del state.by_cluster[params["clusterName"]][association.association_id]
        return association


def list_associations(
    backend: EKSBackend, params: dict[str, Any]
) -> tuple[list[Association], str | None]:
    FAULTS.check("ListPodIdentityAssociations")
    cluster_name = params["clusterName"]
    _cluster(backend, cluster_name)
    limit = int(params.get("maxResults") or MAX_PAGE)
    if not 1 <= limit <= MAX_PAGE:
        raise _invalid_parameter(f"maxResults must be between 1 and {MAX_PAGE}.")
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
        if not re.fullmatch(r"a-[a-z0-9]{17}", after):
            raise _invalid_parameter("The nextToken is not valid.")
        matching = [a for a in matching if a.association_id > after]
    page = matching[:limit]
    next_token = page[-1].association_id if len(matching) > limit else None
    return page, next_token


def _association_by_arn(backend: EKSBackend, arn: str) -> Association | None:
    if ":podidentityassociation/" not in arn:
        return None
    cluster_name, association_id = arn.split(":podidentityassociation/", 1)[1].split("/", 1)
    return _get(backend, cluster_name, association_id)


# --- EKS response methods -------------------------------------------------------


def _request_params(response: BaseResponse, service: str, operation: str) -> dict[str, Any]:
    """Read every input member of `operation` from the URI, query string or JSON body,
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
                raise _invalid_parameter(f"{member} must be an integer.") from exc
        params[member] = value
    return params


@functools.cache
def service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def _eks_params(response: EKSResponse, operation: str) -> dict[str, Any]:
    return _request_params(response, "eks", operation)


def _eks_create(self: EKSResponse) -> ActionResult:
    params = _eks_params(self, "CreatePodIdentityAssociation")
    return ActionResult({"association": create_association(self.eks_backend, params).describe()})


def _eks_describe(self: EKSResponse) -> ActionResult:
    params = _eks_params(self, "DescribePodIdentityAssociation")
    return ActionResult({"association": describe_association(self.eks_backend, params).describe()})


def _eks_update(self: EKSResponse) -> ActionResult:
    params = _eks_params(self, "UpdatePodIdentityAssociation")
    return ActionResult({"association": update_association(self.eks_backend, params).describe()})


def _eks_delete(self: EKSResponse) -> ActionResult:
    params = _eks_params(self, "DeletePodIdentityAssociation")
    return ActionResult({"association": delete_association(self.eks_backend, params).describe()})


def _eks_list(self: EKSResponse) -> ActionResult:
    page, next_token = list_associations(
        self.eks_backend, _eks_params(self, "ListPodIdentityAssociations")
    )
    result: dict[str, Any] = {"associations": [a.summary() for a in page]}
    if next_token:
        result["nextToken"] = next_token
    return ActionResult(result)


def _wrap_tagging(backend_cls: type[EKSBackend]) -> None:
    original_tag = backend_cls.tag_resource
    original_untag = backend_cls.untag_resource
    original_list = backend_cls.list_tags_for_resource
    original_delete_cluster = backend_cls.delete_cluster

    def tag_resource(self: EKSBackend, resource_arn: str, tags: dict[str, str]) -> None:
        association = _association_by_arn(self, resource_arn)
        if association is None:
            return original_tag(self, resource_arn, tags)
        association.tags.update(tags)
        return None

    def untag_resource(self: EKSBackend, resource_arn: str, tag_keys: list[str]) -> None:
        association = _association_by_arn(self, resource_arn)
        if association is None:
            return original_untag(self, resource_arn, tag_keys)
        for key in tag_keys if isinstance(tag_keys, list) else [tag_keys]:
            association.tags.pop(key, None)
        return None

    def list_tags_for_resource(self: EKSBackend, resource_arn: str) -> dict[str, str]:
        association = _association_by_arn(self, resource_arn)
        if association is None:
            return original_list(self, resource_arn)
        return dict(association.tags)

    def delete_cluster(self: EKSBackend, name: str) -> Any:
        deleted = original_delete_cluster(self, name)
        # EKS removes a deleted cluster's associations; its tokens stop verifying.
        _state(self).by_cluster.pop(name, None)
        REGISTRY.forget(deleted.arn)
        return deleted

    backend_cls.tag_resource = tag_resource  # type: ignore[method-assign]
    backend_cls.untag_resource = untag_resource  # type: ignore[method-assign]
    backend_cls.list_tags_for_resource = list_tags_for_resource  # type: ignore[method-assign]
    backend_cls.delete_cluster = delete_cluster  # type: ignore[method-assign]


# --- EKS Auth -------------------------------------------------------------------


def _access_denied(message: str) -> EmulatedError:
    return EmulatedError("AccessDeniedException", 400, message)


def _trust_allows(role_arn: str, trust_policy: Any, usage: Usage) -> str | None:
    """None when STS would let pods.eks.amazonaws.com assume the role, else why not."""
    try:
        document = parse_policy(trust_policy)
    except ValueError as exc:
        return f"trust policy of {role_arn} is unreadable: {exc}"
    for verdict in verdicts(views(document), usage):
        if verdict.allowed is Tri.FALSE or verdict.denied is Tri.TRUE:
            return (
                f"the trust policy of {role_arn} does not allow {verdict.action} for "
                f"pods.eks.amazonaws.com on {usage}"
            )
    return None


def assume_role_for_pod_identity(
    account_id: str, region: str, cluster_name: str, token: str
) -> dict[str, Any]:
    FAULTS.check("AssumeRoleForPodIdentity")
    eks = eks_backends[account_id][region]
    cluster = eks.clusters.get(cluster_name)
    if cluster is None:
        raise _not_found(f"Cluster {cluster_name} not found.")
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
    association = next(
        (
            a
            for a in _state(eks).by_cluster[cluster_name].values()
            if (a.namespace, a.service_account) == (subject.namespace, subject.service_account)
        ),
        None,
    )
    if association is None:
        raise _not_found(
            f"No Pod Identity Association found for service account "
            f"{subject.namespace}/{subject.service_account} in cluster {cluster_name}."
        )
    usage = Usage(
        cluster_name,
        cluster.arn,
        subject.namespace,
        subject.service_account,
        association.disable_session_tags,
    )
    partition = cluster.arn.split(":")[1]
    iam = iam_backends[account_id][partition]
    try:
        role = iam.get_role_by_arn(association.role_arn)
    except Exception as exc:  # moto raises its own IAMNotFoundException
        raise _access_denied(f"Role {association.role_arn} does not exist.") from exc
    refusal = _trust_allows(association.role_arn, role.assume_role_policy_document, usage)
    if refusal:
        raise _access_denied(refusal)
    tags = (
        {}
        if association.disable_session_tags
        else {
            "eks-cluster-arn": cluster.arn,
            "eks-cluster-name": cluster_name,
            "kubernetes-namespace": subject.namespace,
            "kubernetes-service-account": subject.service_account,
            "kubernetes-pod-name": subject.pod_name,
            "kubernetes-pod-uid": subject.pod_uid,
        }
    )
    sts = sts_backends[account_id][partition]
    session = f"eks-{cluster_name}-{subject.pod_name}"[:64]
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
        assumed = sts.assume_role(
            region_name=region,
            role_session_name=session,
            role_arn=association.target_role_arn,
            policy=association.policy or "",
            duration=CREDENTIAL_SECONDS,
            external_id=association.external_id or "",
        )
        assumed.session_tags = tags  # type: ignore[attr-defined]
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


class EksAuthResponse(BaseResponse):
    def __init__(self) -> None:
        super().__init__(service_name="eks-auth")

    def assume_role_for_pod_identity(self) -> ActionResult:
        params = _request_params(self, "eks-auth", "AssumeRoleForPodIdentity")
        return ActionResult(
            assume_role_for_pod_identity(
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

_install_lock = threading.Lock()
_installed: list[bool] = []


def install() -> None:
    """Register the emulation into moto (in-process mock_aws and moto server)."""
    with _install_lock:
        if _installed:
            return
        eks_urls.url_paths.update(
            {
                "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$": EKSResponse.dispatch,
                "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations/"
                "(?P<associationId>[^/]+)$": EKSResponse.dispatch,
            }
        )
        EKSResponse.create_pod_identity_association = _eks_create  # type: ignore[attr-defined]
        EKSResponse.describe_pod_identity_association = _eks_describe  # type: ignore[attr-defined]
        EKSResponse.update_pod_identity_association = _eks_update  # type: ignore[attr-defined]
        EKSResponse.delete_pod_identity_association = _eks_delete  # type: ignore[attr-defined]
        EKSResponse.list_pod_identity_associations = _eks_list  # type: ignore[attr-defined]
        _wrap_tagging(EKSBackend)
        eks_cluster_tagging.install()
        # moto resolves a service "eks-auth" to the module moto.eksauth.
        module = types.ModuleType("moto.eksauth")
        module.eksauth_backends = eksauth_backends  # type: ignore[attr-defined]
        sys.modules["moto.eksauth"] = module
        for base in EKS_AUTH_URL_BASES:
            backend_index.backend_url_patterns.append(("eks-auth", re.compile(base)))
        _installed.append(True)
