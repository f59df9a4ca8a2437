"""A per-sandbox certificate authority: the local API's serving certificate
(127.0.0.1, ::1, localhost) and client certificates for admin kubeconfigs.

Clients verify the server against this CA (the push gets it from the cluster's
DescribeCluster certificateAuthority, as from EKS); nothing skips verification.
Keys live in memory and in files the owner alone can read."""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LIFETIME = timedelta(days=7)  # a sandbox lives for a session, not a year
# what a serving certificate answers to: loopback, and the names in-cluster clients use
SERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
SERVER_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class KeyFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class KeyPair:
    certificate_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> KeyFiles:
        """PEM files `<stem>.crt` and `<stem>.key` (for binaries that read files)."""
        files = KeyFiles(directory / f"{stem}.crt", directory / f"{stem}.key")
        write_private(files.cert, self.certificate_pem)
        write_private(files.key, self.key_pem)
        return files


def write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read (keys; certificates alike, for simplicity)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def private_key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class CertificateAuthority:
    """One CA per sandbox or test session; `directory` holds its files (a private
    temporary directory unless given)."""

    def __init__(
        self,
        common_name: str = "podid-sandbox-ca",
        *,
        lifetime: timedelta = LIFETIME,
        directory: Path | None = None,
    ) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._lifetime = lifetime
        now = datetime.now(UTC)
        self._name = _name(common_name)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            # key identifiers: Python 3.13 verifies strictly (VERIFY_X509_STRICT) and
            # refuses a chain without them, as the agent image's Python does
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self.directory = directory or Path(tempfile.mkdtemp(prefix="podid-kube-tls-"))
        self.ca_file = self.directory / "ca.crt"
        write_private(self.ca_file, self.pem)

    @property
    def data(self) -> str:
        """base64 PEM, as EKS DescribeCluster and kubeconfig certificate-authority-data carry it."""
        return base64.b64encode(self.pem).decode()

    def issue(
        self,
        common_name: str,
        organizations: tuple[str, ...] = (),
        *,
        server: bool = False,
        client: bool = False,
    ) -> KeyPair:
        """A leaf certificate: CN the user (or service), O its groups, as
        kube-apiserver reads client certificates; a server one names SERVER_NAMES."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [
            ExtendedKeyUsageOID.CLIENT_AUTH
        ] * client
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organizations))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + self._lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if server:
            names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
            names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), private_key_pem(key))

    def issue_files(
        self,
        stem: str,
        common_name: str,
        organizations: tuple[str, ...] = (),
        *,
        server: bool = False,
        client: bool = False,
    ) -> KeyFiles:
        pair = self.issue(common_name, organizations, server=server, client=client)
        return pair.write(self.directory, stem)

    def serving(self) -> KeyPair:
        return self.issue("podid-local-kube-apiserver", server=True)

    def client(self, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate as kube-apiserver reads it: CN is the user, O the groups."""
        return self.issue(user, groups, client=True)

    def server_context(self) -> ssl.SSLContext:
        files = self.serving().write(self.directory, "server")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(files.cert, files.key)
        # client certificates are optional (tokens are the other way in), verified when sent
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=self.pem.decode())
        return context
