"""Where EKS (moto, in this process) says a cluster's API server is: its local
API's URL and the sandbox CA, as DescribeCluster's endpoint and
certificateAuthority.data. The push verifies the server with that CA, exactly
as against EKS (moto's default is a random string, which no TLS client accepts)."""

from __future__ import annotations

from moto.eks.models import eks_backends


def publish(account: str, region: str, cluster: str, url: str, ca_data: str) -> None:
    record = eks_backends[account][region].clusters[cluster]
    record.endpoint = url
    record.certificate_authority = {"data": ca_data}
