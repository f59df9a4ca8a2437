"""The token webhook the real API server asks (--authentication-token-webhook-config-file)
to authenticate a bearer token, answering as EKS's authenticator does:

- the token is `k8s-aws-v1.` + a presigned STS GetCallerIdentity URL, for an
  STS host (or the local AWS's endpoint), with only STS's query parameters,
  the x-k8s-aws-id header (this cluster's name) signed, not expired;
- who signed it is whoever STS would answer for: here the local AWS (moto,
  in this process) says which principal owns the access key and its secret,
  the signature is recomputed with that secret (moto's server would route a
  GET of the URL to S3), and a session token must be the key's own;
- the principal (an assumed role canonicalised to its role ARN, as EKS does)
  must have an access entry: its Kubernetes username and groups. No entry:
  not authenticated (401), however valid the signature.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sandbox import arns
from sandbox.eks_token_verifier import (
    AwsCredential,
    EksTokenVerifier,
    TokenInvalid,
    presigned_url,
)
from sandbox.localkube.tls import KeyFiles

MAX_REVIEW_BYTES = 64 * 1024  # a TokenReview holds one token; EKS tokens are ~1.5 KB
# the query parameters STS's presigned GetCallerIdentity carries, nothing else
_ALLOWED_PARAMETERS = {
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
}
_STS_HOST = re.compile(r"sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")


@dataclass(frozen=True, slots=True)
class AwsPrincipal:
    """What STS GetCallerIdentity answers for an access key, and the key's secret."""

    secret_access_key: str
    arn: str
    account: str
    user_id: str
    session_token: str | None = None


@dataclass(frozen=True, slots=True)
class AccessEntry:
    username: str
    groups: tuple[str, ...]


def canonical_arn(arn: str) -> str:
    """An assumed-role session and a role ARN with a path both name the role
    `arn:<partition>:iam::<account>:role/<name>`, as EKS matches access entries."""
    try:
        parsed = arns.parse(arn)
    except ValueError:
        return arn
    if parsed.service == "sts" and parsed.resource.startswith("assumed-role/"):
        role, _session = arns.session_of(arn)
        return arns.role_arn(parsed.partition, parsed.account, role)
    if parsed.service == "iam" and parsed.resource.startswith("role/"):
        return arns.role_arn(parsed.partition, parsed.account, parsed.resource_name)
    return arn


def _moto_principal(access_key: str) -> AwsPrincipal | None:
    """The local AWS's answer: a role session from AssumeRole, or an IAM user's key."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # moto keeps naive UTC
    for account in list(sts_backends.keys()):
        for backend in list(sts_backends[account].values()):
            role = backend.get_assumed_role_from_access_key(access_key)
            if role is not None:
                if role.expiration <= now:
                    return None
                return AwsPrincipal(
                    role.secret_access_key, role.arn, role.account_id, role.user_id,
                    role.session_token,
                )  # fmt: skip
    for account in list(iam_backends.keys()):
        for iam in list(iam_backends[account].values()):
            for user in list(iam.users.values()):
                for key in user.access_keys:
                    if key.access_key_id == access_key and key.status == "Active":
                        return AwsPrincipal(key.secret_access_key, user.arn, account, user.id)
    return None


class _Credentials(Mapping[str, AwsCredential]):
    """Access key -> secret and caller ARN, asked of the local AWS at each review."""

    def __init__(self, lookup: Any) -> None:
        self._lookup = lookup

    def __getitem__(self, access_key: str) -> AwsCredential:
        found: AwsPrincipal | None = self._lookup(access_key)
        if found is None:
            raise KeyError(access_key)
        return AwsCredential(found.secret_access_key, found.arn)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class EksAuthenticator:
    """The webhook server: TLS on a loopback port, the API server its only client
    (it must present a certificate from the session's CA)."""

    def __init__(self, cluster_name: str, serving: KeyFiles, ca_file: Path) -> None:
        self.cluster_name = cluster_name
        self._entries: dict[str, AccessEntry] = {}
        self._static: dict[str, AwsPrincipal] = {}
        self._sts_hosts: set[str] = set()
        self._lock = threading.Lock()
        self.reviews: list[tuple[bool, str]] = []  # (authenticated, username or reason)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(serving.cert, serving.key)
        context.load_verify_locations(ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/authenticate"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- configuration (the access entries, and keys the local AWS does not hold) ---
    def map(self, principal_arn: str, username: str, groups: list[str]) -> None:
        with self._lock:
            self._entries[canonical_arn(principal_arn)] = AccessEntry(username, tuple(groups))

    def unmap(self, principal_arn: str) -> None:
        with self._lock:
            self._entries.pop(canonical_arn(principal_arn), None)

    def add_aws_credential(self, access_key: str, secret: str, principal_arn: str) -> None:
        """A long-lived key outside moto (e.g. an IAM user's key of another test double)."""
        account = principal_arn.split(":")[4]
        with self._lock:
            self._static[access_key] = AwsPrincipal(secret, principal_arn, account, access_key)

    def trust_sts_endpoint(self, url: str) -> None:
        """A local STS endpoint (scheme://host:port) whose presigned URLs are accepted."""
        with self._lock:
            self._sts_hosts.add(urlsplit(url).netloc)

    # --- the review --------------------------------------------------------------------
    def _principal(self, access_key: str) -> AwsPrincipal | None:
        with self._lock:
            static = self._static.get(access_key)
        return static or _moto_principal(access_key)

    def _local_sts_hosts(self) -> set[str]:
        """The local AWS this process talks to, as its SDK clients are configured."""
        hosts = set(self._sts_hosts)
        for variable in ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"):
            if value := os.environ.get(variable):
                hosts.add(urlsplit(value).netloc)
        return hosts

    def review(self, token: str) -> dict[str, Any]:
        """The TokenReview status for a bearer token."""
        try:
            user = self._authenticate(token)
        except TokenInvalid as rejected:
            reason = str(rejected) or "invalid token"
            self._record(False, reason)
            return {"authenticated": False, "error": reason}
        self._record(True, user["username"])
        return {"authenticated": True, "user": user}

    def _record(self, authenticated: bool, what: str) -> None:
        with self._lock:
            self.reviews.append((authenticated, what))

    def _authenticate(self, token: str) -> dict[str, Any]:
        try:
            url = urlsplit(presigned_url(token))
            pairs = parse_qsl(url.query, keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            raise TokenInvalid("not an EKS token") from None
        names = [name.lower() for name, _ in pairs]
        if len(set(names)) != len(names) or not set(names) <= _ALLOWED_PARAMETERS:
            raise TokenInvalid("unexpected query parameters")
        local = self._local_sts_hosts()
        if url.netloc in local:
            scheme_ok = url.scheme in ("http", "https")
        else:
            scheme_ok = url.scheme == "https" and bool(_STS_HOST.fullmatch(url.hostname or ""))
        if not scheme_ok or url.path not in ("", "/"):
            raise TokenInvalid("not an STS endpoint")
        query = dict(pairs)
        access_key = query.get("X-Amz-Credential", "").split("/")[0]
        found = self._principal(access_key)
        if found is None:
            raise TokenInvalid("unknown access key")
        if query.get("X-Amz-Security-Token") != found.session_token:
            raise TokenInvalid("session token does not belong to the access key")
        verifier = EksTokenVerifier(
            self.cluster_name, _Credentials(self._principal), extra_hosts=local
        )
        arn = verifier.principal(token)  # signature, expiry, x-k8s-aws-id, action
        canonical = canonical_arn(arn)
        with self._lock:
            entry = self._entries.get(canonical)
        if entry is None:
            raise TokenInvalid("no access entry for the principal")
        session = _session_name(arn)
        username = entry.username.replace("{{SessionName}}", session)
        username = username.replace("{{AccountID}}", found.account)
        return {
            "username": username,
            "uid": f"aws-iam-authenticator:{found.account}:{found.user_id}",
            "groups": list(entry.groups),
            "extra": {
                "arn": [arn],
                "canonicalArn": [canonical],
                "sessionName": [session],
                "accessKeyId": [access_key],
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        authenticator = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # seconds a client may take to send its request

            def log_message(self, *_: Any) -> None:  # never log a request: it carries a token
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if (
                    urlsplit(self.path).path != "/authenticate"
                    or not 0 < length <= MAX_REVIEW_BYTES
                ):
                    self._answer(400, {"error": "POST a TokenReview to /authenticate"})
                    return
                try:
                    review = json.loads(self.rfile.read(length))
                    token = review["spec"]["token"]
                    if not isinstance(token, str):
                        raise TypeError("token")
                except (ValueError, KeyError, TypeError):
                    self._answer(400, {"error": "not a TokenReview"})
                    return
                status = authenticator.review(token)
                if status["authenticated"]:
                    # valid for exactly the audiences the API server asked about
                    status["audiences"] = review["spec"].get("audiences") or []
                self._answer(
                    200,
                    {
                        "apiVersion": review.get("apiVersion", "authentication.k8s.io/v1"),
                        "kind": "TokenReview",
                        "status": status,
                    },
                )

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _session_name(arn: str) -> str:
    """The session name of an assumed-role ARN; an IAM user has none."""
    try:
        return arns.session_of(arn)[1]
    except ValueError:
        return ""
