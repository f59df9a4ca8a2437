"""EKS Auth AssumeRoleForPodIdentity: the EKS data path."""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from functions.core.arns import parse_assumed_role_arn
from node_agent.credentials import Credentials
from node_agent.errors import AgentError, upstream_error
from node_agent.tokens import TokenClaims


def client_config(timeout: float) -> Config:
    # the agent retries itself (jittered, within the SDK's 2 s budget)
    return Config(
        retries={"total_max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=32,
        user_agent_extra="podid-node-agent",
    )


class EksAuthBackend:
    name = "eks-auth"

    def __init__(self, client: Any, cluster_name: str) -> None:
        self._client = client
        self._cluster = cluster_name

    def fetch(self, token: str, claims: TokenClaims) -> Credentials:
        try:
            response = self._client.assume_role_for_pod_identity(
                clusterName=self._cluster, token=token
            )
        except ClientError as error:
            detail = error.response.get("Error", {})
            raise upstream_error(
                str(detail.get("Code", "")), str(detail.get("Message", ""))
            ) from None
        except (ConnectTimeoutError, ReadTimeoutError) as error:
            raise AgentError(
                504,
                "UpstreamTimeout",
                f"EKS Auth did not answer in time: {type(error).__name__}",
                retryable=True,
            ) from None
        except BotoCoreError as error:
            raise AgentError(
                503,
                "UpstreamUnavailable",
                f"EKS Auth unreachable: {type(error).__name__}",
                retryable=True,
            ) from None
        credentials = response["credentials"]
        subject = response.get("subject", {})
        return Credentials(
            access_key_id=credentials["accessKeyId"],
            secret_access_key=credentials["secretAccessKey"],
            session_token=credentials["sessionToken"],
            account_id=parse_assumed_role_arn(response["assumedRoleUser"]["arn"]).account,
            expiration=credentials["expiration"],
            namespace=subject.get("namespace", claims.namespace),
            service_account=subject.get("serviceAccount", claims.service_account),
        )
