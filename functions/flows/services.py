"""Everything a flow talks to, built once per Lambda container."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from functions.aws import clients
from functions.aws.eks import EksAdapter
from functions.aws.eks_token import EksTokenBuilder
from functions.aws.iam import IamAdapter
from functions.aws.messaging import Messenger
from functions.aws.tagging import TaggingAdapter
from functions.core.models import Cluster
from functions.dal.repository import Repository
from functions.settings import Settings, get_settings

if TYPE_CHECKING:
    # only webhook_push talks to Kubernetes: sync, reconcile and trust_guard never
    # load the client (their packages do not even hold it, see infra/bundling.py)
    from functions.kube.configmap import ClusterEndpoint, ConfigMapWriter


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    repo: Repository
    eks: EksAdapter
    iam: IamAdapter
    messenger: Messenger
    tokens: EksTokenBuilder
    clock: Callable[[], datetime] = field(default=utc_now)
    # None: discovery cannot see tag changes without DescribeCluster (today's fallback)
    tagging: TaggingAdapter | None = None

    def endpoint(self, cluster: Cluster) -> ClusterEndpoint | None:
        """Where the push may send a signed token. An EKS cluster: what EKS says
        now, never the table (a table writer could point it at a listener); None
        when EKS has no such cluster any more. A self-managed cluster: the record
        a cluster enroller wrote (nothing else knows where it is), refused when
        EKS has a cluster of that name (a record cannot redirect an EKS
        cluster's token by claiming to be self-managed)."""
        from functions.kube.configmap import ClusterEndpoint, UntrustedEndpoint

        info = self.eks.describe_cluster(cluster.name)
        if cluster.self_managed:
            if info is not None:
                raise UntrustedEndpoint(
                    f"cluster {cluster.name} is recorded as self-managed but EKS has a cluster "
                    f"of that name ({info.arn}): the recorded endpoint is not used; remove the "
                    "record or enrol the self-managed cluster under another name"
                )
            if not cluster.endpoint:
                raise UntrustedEndpoint(f"self-managed cluster {cluster.name} has no endpoint")
            return ClusterEndpoint(
                cluster.name, cluster.endpoint, cluster.certificate_authority, self_managed=True
            )
        if info is None:
            return None
        template = self.settings.kube_endpoint_template
        url = template.format(cluster=cluster.name) if template else info.endpoint
        if not url:
            raise ValueError(
                f"cluster {cluster.name} has no API endpoint yet (EKS status {info.status}); "
                "the push is retried"
            )
        return ClusterEndpoint(cluster.name, url, info.certificate_authority)

    def configmap_writer(self, endpoint: ClusterEndpoint) -> ConfigMapWriter:
        from functions.kube.configmap import ConfigMapWriter, api_client

        token = self.tokens.token(endpoint.name, self.settings.kube_token_seconds)
        return ConfigMapWriter(api_client(endpoint, token), endpoint)


def build_services(settings: Settings, access: clients.Access | None = None) -> Services:
    """`access`: how to reach AWS when not as the process environment says."""
    region = settings.aws_region
    return Services(
        settings=settings,
        repo=Repository(clients.table(settings.table_name, region, access)),
        eks=EksAdapter(clients.eks(region, access)),
        iam=IamAdapter(clients.iam(region, access)),
        messenger=Messenger(
            clients.sqs(region, access), clients.events(region, access), clients.sns(region, access)
        ),
        tokens=EksTokenBuilder(clients.sts(region, access)),
        tagging=TaggingAdapter(clients.tagging(region, access)),
    )


@cache
def services() -> Services:
    return build_services(get_settings())


def reset() -> None:
    services.cache_clear()
    get_settings.cache_clear()
    clients.reset()
