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

    def endpoint(self, name: str) -> ClusterEndpoint | None:
        """Where the push may send a signed token: what EKS says now, never the
        table (a table writer could point it at a listener). None: EKS has no
        such cluster any more."""
        from functions.kube.configmap import ClusterEndpoint

        info = self.eks.describe_cluster(name)
        if info is None:
            return None
        template = self.settings.kube_endpoint_template
        url = template.format(cluster=name) if template else info.endpoint
        if not url:
            raise ValueError(
                f"cluster {name} has no API endpoint yet (EKS status {info.status}); "
                "the push is retried"
            )
        return ClusterEndpoint(name, url, info.certificate_authority)

    def configmap_writer(self, endpoint: ClusterEndpoint) -> ConfigMapWriter:
        from functions.kube.configmap import ConfigMapWriter, api_client

        token = self.tokens.token(endpoint.name, self.settings.kube_token_seconds)
        return ConfigMapWriter(api_client(endpoint, token), endpoint)


def build_services(settings: Settings) -> Services:
    region = settings.aws_region
    return Services(
        settings=settings,
        repo=Repository(clients.table(settings.table_name, region)),
        eks=EksAdapter(clients.client("eks", region)),
        iam=IamAdapter(clients.client("iam", region)),
        messenger=Messenger(
            clients.client("sqs", region),
            clients.client("events", region),
            clients.client("sns", region),
        ),
        tokens=EksTokenBuilder(clients.client("sts", region)),
        tagging=TaggingAdapter(clients.client("resourcegroupstaggingapi", region)),
    )


@cache
def services() -> Services:
    return build_services(get_settings())


def reset() -> None:
    services.cache_clear()
    get_settings.cache_clear()
    clients.reset()
