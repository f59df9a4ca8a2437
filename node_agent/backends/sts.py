"""Pod Identity where EKS has none: self-managed Kubernetes on EC2.

The token is verified by the cluster (TokenReview, audience
pods.eks.amazonaws.com); the role comes from the association map the control
plane pushes into the cluster (mounted from the ConfigMap, hash-checked,
reloaded when it changes); credentials come from sts:AssumeRole with the same
session tags EKS sets, honouring disableSessionTags, the session policy and
targetRoleArn chaining.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from functions.core.arns import parse_role_arn
from functions.core.association_map import parse_full_map
from node_agent.backends.token_review import TokenReviewer
from node_agent.credentials import Credentials
from node_agent.errors import AgentError
from node_agent.tokens import TokenClaims

log = logging.getLogger("podid.agent")
CREDENTIAL_SECONDS = 6 * 3600  # what EKS Pod Identity gives, where the role allows it
# every role allows 1 h (its MaxSessionDuration's default and minimum)
SHORT_SESSION_SECONDS = 3600
MAP_CHECK_SECONDS = 5.0
_STS_ERRORS = {
    "AccessDenied": (403, False),
    "ExpiredToken": (401, False),
    "RegionDisabledException": (403, False),
    "Throttling": (429, True),
    "ThrottlingException": (429, True),
    "ServiceUnavailable": (503, True),
    "InternalFailure": (503, True),
}


class AssociationMap:
    """The pushed full map, reloaded when the mounted file changes."""

    def __init__(self, path: str, check_seconds: float = MAP_CHECK_SECONDS) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._checked = 0.0
        # the file's inode too: a swap (rename, kubelet ..data) always brings a new one, while
        # two pushes inside one mtime tick (a few ms) can have the same mtime and size
        self._stamp: tuple[int, int, int] | None = None
        self.cluster_arn = ""
        self.cluster_name = ""
        self.generation = 0
        self.rejected = 0
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        # changed identities not yet handed to poll(): a lookup that reloads first must
        # not swallow them, or the agent keeps serving their cached credentials
        self._unreported: set[tuple[str, str]] = set()

    def lookup(self, namespace: str, service_account: str) -> dict[str, Any] | None:
        with self._lock:
            self._reload()
        return self._entries.get((namespace, service_account))

    def poll(self) -> set[tuple[str, str]]:
        """Reload if the file changed; returns the identities whose entry changed since
        the last poll, including changes a lookup loaded in between."""
        with self._lock:
            self._reload()
            changed, self._unreported = self._unreported, set()
            return changed

    def _reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.check_seconds and self._stamp is not None:
            return
        self._checked = now
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as handle:
                document = parse_full_map(handle.read())
        except (OSError, ValueError, KeyError) as error:
            # keep serving the last good map; a later push replaces the bad one
            self._stamp = stamp
            self.rejected += 1
            log.error("association map rejected, keeping the previous one: %s", error)
            return
        entries = {(e["namespace"], e["serviceAccount"]): e for e in document["associations"]}
        self._unreported |= {
            k for k in set(entries) | set(self._entries) if entries.get(k) != self._entries.get(k)
        }
        self._entries, self._stamp = entries, stamp
        self.cluster_arn, self.cluster_name = document["clusterArn"], document["cluster"]
        self.generation = int(document["generation"])


class StsBackend:
    name = "sts"

    def __init__(self, reviewer: TokenReviewer, associations: AssociationMap, sts: Any) -> None:
        self._reviewer = reviewer
        self.associations = associations
        self._sts = sts
        self._session = botocore.session.get_session()  # for chained clients, not boto3's
        # roles whose MaxSessionDuration refused 6 h: asked for 1 h from then on
        self._short_roles: set[str] = set()
        # load its STS model now: parsed on the first chained fetch it took ~150 ms of that
        # request's 1.5 s budget (a 504 on a loaded node); later clients reuse it (~4 ms)
        self._chained_client("warm-up", "warm-up", "warm-up")

    @classmethod
    def from_settings(cls, settings: Any, sts: Any) -> StsBackend:
        if not settings.association_map:
            raise ValueError("the sts backend needs --association-map (the mounted full map)")
        reviewer = TokenReviewer(settings.kube_api, settings.kube_token_file, settings.kube_ca_file)
        return cls(reviewer, AssociationMap(settings.association_map), sts)

    def fetch(self, token: str, claims: TokenClaims) -> Credentials:
        identity = self._reviewer.review(token)
        entry = self.associations.lookup(identity.namespace, identity.service_account)
        if entry is None:
            raise AgentError(
                404,
                "ResourceNotFound",
                f"no pod identity association for {identity.namespace}/{identity.service_account}",
            )
        session = f"eks-{self.associations.cluster_name}-{identity.pod_name}"[:64]
        params: dict[str, Any] = {
            "RoleArn": entry["roleArn"],
            "RoleSessionName": session,
            "DurationSeconds": CREDENTIAL_SECONDS,
        }
        if not entry.get("disableSessionTags"):
            params["Tags"] = [
                {"Key": key, "Value": value}
                for key, value in (
                    ("eks-cluster-arn", self.associations.cluster_arn),
                    ("eks-cluster-name", self.associations.cluster_name),
                    ("kubernetes-namespace", identity.namespace),
                    ("kubernetes-service-account", identity.service_account),
                    ("kubernetes-pod-name", identity.pod_name),
                    ("kubernetes-pod-uid", identity.pod_uid),
                )
            ]
        if entry.get("policy"):
            params["Policy"] = entry["policy"]
        raw = self._assume_role(params)
        if entry.get("targetRoleArn"):
            chained = self._chained_client(
                raw["AccessKeyId"], raw["SecretAccessKey"], raw["SessionToken"]
            )
            raw = self._assume(
                chained,
                {
                    "RoleArn": entry["targetRoleArn"],
                    "RoleSessionName": session,
                    "DurationSeconds": 3600,
                },
            )
        return Credentials(
            access_key_id=raw["AccessKeyId"],
            secret_access_key=raw["SecretAccessKey"],
            session_token=raw["SessionToken"],
            account_id=parse_role_arn(entry.get("targetRoleArn") or entry["roleArn"]).account,
            expiration=raw["Expiration"],
            namespace=identity.namespace,
            service_account=identity.service_account,
        )

    def _assume_role(self, params: dict[str, Any]) -> dict[str, Any]:
        """6 h credentials, or 1 h where the role's MaxSessionDuration is shorter (STS
        refuses the longer request with a ValidationError; remembered per role)."""
        role = params["RoleArn"]
        if role in self._short_roles:
            return self._assume(self._sts, {**params, "DurationSeconds": SHORT_SESSION_SECONDS})
        try:
            return self._assume(self._sts, params)
        except AgentError as error:
            if error.code != "ValidationError" or "DurationSeconds" not in error.message:
                raise
        log.info("role allows sessions shorter than 6 h: asking for 1 h", extra={"role": role})
        self._short_roles.add(role)
        return self._assume(self._sts, {**params, "DurationSeconds": SHORT_SESSION_SECONDS})

    def _chained_client(self, key_id: str, secret: str, token: str) -> Any:
        return self._session.create_client(
            "sts",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
            region_name=self._sts.meta.region_name,
            config=self._sts.meta.config,
        )

    @staticmethod
    def _assume(client: Any, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(client.assume_role(**params)["Credentials"])
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status, retryable = _STS_ERRORS.get(code, (502, True))
            raise AgentError(
                status,
                code or "StsError",
                str(error.response.get("Error", {}).get("Message", "")),
                retryable=retryable,
            ) from None
        except BotoCoreError as error:
            raise AgentError(
                503,
                "UpstreamUnavailable",
                f"STS unreachable: {type(error).__name__}",
                retryable=True,
            ) from None
