"""Everything a flow talks to, built once per Lambda container."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from functions.aws import clients
from functions.aws.eks import EksAdapter
from functions.aws.eks_token import EksTokenBuilder
from functions.aws.iam import IamAdapter
from functions.aws.messaging import Messenger
from functions.aws.organizations import OrganizationsAdapter
from functions.aws.spokes import SpokeAccess
from functions.aws.tagging import TaggingAdapter
from functions.core.models import Cluster
from functions.core.places import Place, Unreachable
from functions.dal.repository import Repository
from functions.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

    # only webhook_push talks to Kubernetes: sync, reconcile and trust_guard never
    # load the client (their packages do not even hold it, see infra/bundling.py)
    from functions.kube.configmap import ClusterEndpoint, ConfigMapWriter


# IAM is global; its CloudTrail events (and the spoke that forwards them) are here
IAM_REGION = "us-east-1"


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
    # how to act in another account or region (a spoke); None: here only
    spokes: SpokeAccess | None = None
    # each account's OU path (target.organizationalUnits); None: not known
    organizations: OrganizationsAdapter | None = None

    @property
    def home(self) -> Place:
        """The hub's own account and region."""
        return self.eks.place

    def access_in(self, place: Place) -> clients.Access | None:
        """None: the process's own credentials (at home). Raises when the place
        cannot be reached (functions.aws.spokes.SpokeUnreachable)."""
        if place == self.home:
            return None
        if self.spokes is None:
            raise Unreachable(
                place,
                f"not this deployment's account and region ({self.home}), and it manages no "
                "spokes (deploy it as a hub: -c organizationId=...)",
            )
        return self.spokes.access(place)

    def eks_in(self, place: Place) -> EksAdapter:
        if place == self.home:
            return self.eks
        return EksAdapter(clients.eks(place.region, self.access_in(place)), place)

    def tokens_in(self, place: Place) -> EksTokenBuilder:
        if place == self.home:
            return self.tokens
        return EksTokenBuilder(clients.sts(place.region, self.access_in(place)))

    def iam_in(self, account: str, near: Iterable[Place] = ()) -> IamAdapter:
        """IAM of an account: at home the hub's own, else through a spoke role of that
        account (IAM is global: any of its spokes will do; us-east-1 first, where the
        spoke that forwards IAM events is)."""
        if account == self.home.account:
            return self.iam
        known = {p for p in near if p.account == account}
        known |= {s.place for s in self.repo.list_spokes() if s.account == account}
        if not known:
            raise Unreachable(
                Place(account, IAM_REGION), "no spoke of that account has announced itself"
            )
        ordered = sorted(known, key=lambda p: (p.region != IAM_REGION, p.region))
        for place in ordered[:-1]:
            try:
                return IamAdapter(clients.iam(place.region, self.access_in(place)))
            except Unreachable:
                continue  # another of its spokes may answer
        last = ordered[-1]
        return IamAdapter(clients.iam(last.region, self.access_in(last)))

    def tagging_in(self, place: Place) -> TaggingAdapter | None:
        if place == self.home:
            return self.tagging
        return TaggingAdapter(clients.tagging(place.region, self.access_in(place)))

    def endpoint(self, cluster: Cluster) -> ClusterEndpoint | None:
        """Where the push may send a signed token. An EKS cluster: what EKS says
        now, never the table (a table writer could point it at a listener); None
        when EKS has no such cluster any more. A self-managed cluster: the record
        a cluster enroller wrote (nothing else knows where it is), refused when
        EKS has a cluster of that name (a record cannot redirect an EKS
        cluster's token by claiming to be self-managed)."""
        from functions.kube.configmap import ClusterEndpoint, UntrustedEndpoint

        info = self.eks_in(cluster.place).describe_cluster(cluster.ref)
        if cluster.self_managed:
            if info is not None:
                raise UntrustedEndpoint(
                    f"cluster {cluster.ref} is recorded as self-managed but EKS has a cluster "
                    f"of that name ({info.arn}): the recorded endpoint is not used; remove the "
                    "record or enrol the self-managed cluster under another name"
                )
            if not cluster.endpoint:
                raise UntrustedEndpoint(f"self-managed cluster {cluster.ref} has no endpoint")
            return ClusterEndpoint(
                cluster.name,
                cluster.endpoint,
                cluster.certificate_authority,
                self_managed=True,
                place=cluster.place,
            )
        if info is None:
            return None
        template = self.settings.kube_endpoint_template
        ref = cluster.ref
        url = (
            template.format(cluster=ref.name, account=ref.account, region=ref.region)
            if template
            else info.endpoint
        )
        if not url:
            raise ValueError(
                f"cluster {cluster.ref} has no API endpoint yet (EKS status {info.status}); "
                "the push is retried"
            )
        return ClusterEndpoint(cluster.name, url, info.certificate_authority, place=cluster.place)

    def configmap_writer(self, endpoint: ClusterEndpoint) -> ConfigMapWriter:
        from functions.kube.configmap import ConfigMapWriter, api_client

        token = self.tokens_in(endpoint.place or self.home).token(
            endpoint.name, self.settings.kube_token_seconds
        )
        return ConfigMapWriter(api_client(endpoint, token), endpoint)


def build_services(settings: Settings, access: clients.Access | None = None) -> Services:
    """`access`: how to reach AWS when not as the process environment says."""
    region = settings.aws_region

    @cache
    def home() -> Place:  # asked when first needed, by the adapters and the spokes alike
        account = settings.account_id or _caller_account(clients.sts(region, access))
        return Place(account, region)

    spokes = (
        SpokeAccess(
            clients.sts(region, access),
            settings,
            home=home,
            function_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "podid-cli"),
            base=access or clients.Access(),
        )
        if settings.spoke_role_name
        else None
    )
    return Services(
        settings=settings,
        repo=Repository(clients.table(settings.table_name, region, access)),
        eks=EksAdapter(clients.eks(region, access), home),
        iam=IamAdapter(clients.iam(region, access)),
        messenger=Messenger(
            clients.sqs(region, access), clients.events(region, access), clients.sns(region, access)
        ),
        tokens=EksTokenBuilder(clients.sts(region, access)),
        tagging=TaggingAdapter(clients.tagging(region, access)),
        organizations=OrganizationsAdapter(clients.organizations(region, access)),
        spokes=spokes,
    )


def _caller_account(sts: STSClient) -> str:
    """Where a deployment without ACCOUNT_ID runs (the stack sets it; tests and the
    CLI on a sandbox ask STS once)."""
    return sts.get_caller_identity()["Account"]


@cache
def services() -> Services:
    return build_services(get_settings())


def reset() -> None:
    services.cache_clear()
    get_settings.cache_clear()
    clients.reset()
