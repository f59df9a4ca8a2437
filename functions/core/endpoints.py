"""Checks on where a self-managed cluster's API server is: an https URL with a
host and no user info, and the CA bundle that proves it (base64 PEM, as EKS
DescribeCluster gives certificateAuthority.data), so a bad enrolment fails
with the rule instead of at the first push."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

MAX_ENDPOINT_CHARS = 2048
MAX_CA_BYTES = 64 * 1024  # a bundle of a few certificates, not a file someone pointed at by mistake
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----"
)


def check_self_managed_endpoint(url: str | None) -> str:
    if not url:
        raise ValueError("endpoint is required for a self-managed cluster (its API server URL)")
    if len(url) > MAX_ENDPOINT_CHARS:
        raise ValueError(f"endpoint is {len(url)} characters, at most {MAX_ENDPOINT_CHARS}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"endpoint {url!r} is not a URL: {error}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"endpoint {url!r} must be https://<host>[:<port>]: the push sends a signed token "
            "there, so only over TLS verified against the cluster's CA"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"endpoint {url!r} must not carry user info, a query or a fragment")
    if port == 0:
        raise ValueError(f"endpoint {url!r} has port 0")
    return url


def certificate_pem(certificate_authority: str) -> bytes:
    """The PEM bytes of a base64 CA bundle; ValueError naming the rule."""
    if len(certificate_authority) > MAX_CA_BYTES * 2:
        raise ValueError(f"certificateAuthority is larger than {MAX_CA_BYTES} bytes")
    try:
        pem = base64.b64decode(certificate_authority, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "certificateAuthority must be the base64 of a PEM CA bundle (as EKS "
            "DescribeCluster returns certificateAuthority.data)"
        ) from None
    if not _PEM_CERTIFICATE.search(pem):
        raise ValueError(
            "certificateAuthority holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )
    return pem


def check_certificate_authority(certificate_authority: str | None) -> str:
    if not certificate_authority:
        raise ValueError(
            "certificateAuthority is required for a self-managed cluster: the push verifies "
            "its API server against it"
        )
    certificate_pem(certificate_authority)
    return certificate_authority
