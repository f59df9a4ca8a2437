"""The credentials endpoint: a small HTTP/1.1 server on asyncio + httptools.

The hot path (a cached identity) is: parse, hash the token, one dict lookup,
write pre-serialized bytes. Everything else (misses, errors) goes through a
task, with reading paused so pipelined requests are answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httptools

from node_agent.backends import Backend
from node_agent.cache import CredentialCache, Entry
from node_agent.credentials import Credentials
from node_agent.errors import AgentError, bad_request
from node_agent.tokens import TokenClaims, read_claims, token_key

if TYPE_CHECKING:  # PyJWT and cryptography cost ~9 MiB: loaded only for --local-validation
    from node_agent.jwks import JwksVerifier

log = logging.getLogger("podid.agent")
PATH = b"/v1/credentials"
MAX_HEADER_BYTES = 32 * 1024
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def http_response(status: int, body: bytes, *, keep_alive: bool = True) -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status,
        _REASONS.get(status, b"Error"),
        len(body),
    )
    return head + (b"\r\n" if keep_alive else b"Connection: close\r\n\r\n") + body


def render_credentials(credentials: Credentials) -> bytes:
    return http_response(200, credentials.body())


@dataclass
class RequestStats:
    served: int = 0  # 200s: a plain int, the hot path only increments it
    errors: dict[int, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        if status == 200:
            self.served += 1
        else:
            self.errors[status] = self.errors.get(status, 0) + 1

    @property
    def by_status(self) -> dict[int, int]:
        return {200: self.served, **self.errors} if self.served else dict(self.errors)


class CredentialsApp:
    def __init__(
        self,
        backend: Backend,
        cache: CredentialCache,
        *,
        upstream_concurrency: int = 16,
        observe_latency: Callable[[float], None] | None = None,
        verifier: JwksVerifier | None = None,
    ) -> None:
        self.verifier = verifier
        self.backend = backend
        self.cache = cache
        self.requests = RequestStats()
        self._upstream = asyncio.Semaphore(upstream_concurrency)
        self.observe_latency = observe_latency or (lambda _: None)
        self.inflight = 0

    def fast(self, token: bytes | None) -> bytes | None:
        """The answer for a cached identity, or None when the slow path is needed."""
        if not token:
            return None
        key = token_key(token)
        entry, refresh = self.cache.lookup_for_serving(key)
        if entry is None:
            return None
        if refresh:
            self._refresh(key, token, entry)
        self.requests.served += 1
        return entry.response

    def _refresh(self, key: bytes, token: bytes, entry: Entry) -> None:
        try:
            claims = read_claims(token)
        except AgentError:
            return
        self.cache.refresh(key, entry, self._fetcher(token, claims), claims.expires_at)

    async def slow(self, method: bytes, path: bytes, token: bytes | None) -> bytes:
        try:
            if path.split(b"?", 1)[0] != PATH:
                raise AgentError(404, "NotFound", "only GET /v1/credentials is served here")
            if method != b"GET":
                raise AgentError(405, "MethodNotAllowed", "use GET")
            if not token:
                raise bad_request("the Authorization header must carry the service account token")
            claims = read_claims(token)
            if claims.expires_at <= self.cache.clock():
                raise AgentError(401, "ExpiredToken", "the service account token has expired")
            key = token_key(token)
            entry = await self._reuse(key, token, claims) or await self.cache.get(
                key, self._fetcher(token, claims), claims.expires_at, pod_uid=claims.pod_uid
            )
        except AgentError as error:
            self.requests.count(error.status)
            if error.status >= 500:
                log.warning(
                    "credentials request failed", extra={"code": error.code, "status": error.status}
                )
            return http_response(error.status, error.body())
        except Exception:  # never a traceback (or a token) to the caller
            log.exception("unexpected failure serving credentials")
            self.requests.count(500)
            return http_response(500, AgentError(500, "InternalError", "internal error").body())
        self.requests.count(200)
        return entry.response

    async def _reuse(self, key: bytes, token: bytes, claims: TokenClaims) -> Entry | None:
        """A rotated token of a pod already served: verify locally, skip EKS Auth."""
        if self.verifier is None or not claims.pod_uid or self.cache.lookup(key) is not None:
            return None
        verified = await asyncio.to_thread(
            self.verifier.verify, token.decode("ascii", "replace"), self.cache.clock()
        )
        if verified is None or verified.get("sub") != claims.subject:
            return None
        return self.cache.reuse_for_pod(key, claims, claims.expires_at)

    def _fetcher(self, token: bytes, claims: Any) -> Callable[[], Any]:
        text = token.decode("ascii", errors="replace")

        async def fetch() -> Credentials:
            async with self._upstream:
                started = time.perf_counter()
                try:
                    return await asyncio.to_thread(self.backend.fetch, text, claims)
                finally:
                    self.observe_latency(time.perf_counter() - started)

        return fetch


class CredentialsProtocol(asyncio.Protocol):
    __slots__ = (
        "_app",
        "_auth",
        "_busy",
        "_fast",
        "_header_bytes",
        "_parser",
        "_pending",
        "_transport",
        "_url",
    )

    def __init__(self, app: CredentialsApp) -> None:
        self._app = app
        self._fast = app.fast
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._auth: bytes | None = None
        self._header_bytes = 0
        self._busy = False
        self._pending: list[tuple[bytes, bytes, bytes | None, bool]] = []

    # asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_with(400, "upgrades are not supported")
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadersTooLarge):
                self._close_with(431, "request headers too large")
            else:
                self._close_with(400, "malformed HTTP request")
        except httptools.HttpParserError:
            self._close_with(400, "malformed HTTP request")
        except _HeadersTooLarge:
            self._close_with(431, "request headers too large")

    # httptools callbacks -------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _HeadersTooLarge
        if len(name) == 13 and name.lower() == b"authorization":
            self._auth = value.strip()

    def on_message_complete(self) -> None:
        parser, url, auth = self._parser, self._url, self._auth
        self._url, self._auth, self._header_bytes = b"", None, 0
        method = parser.get_method()
        keep_alive = parser.should_keep_alive()
        if self._busy:
            self._pending.append((method, url, auth, keep_alive))
            return
        if url == PATH and method == b"GET":
            answer = self._fast(auth)
            if answer is not None:
                if keep_alive and self._transport is not None:
                    self._transport.write(answer)
                else:
                    self._reply(answer, keep_alive)
                return
        self._start(method, url, auth, keep_alive)

    # internals -----------------------------------------------------------------------------
    def _close_with(self, status: int, message: str) -> None:
        self._app.requests.count(status)
        error = AgentError(status, "InvalidRequest", message)
        self._reply(http_response(status, error.body(), keep_alive=False), False)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _HeadersTooLarge

    def _start(self, method: bytes, url: bytes, auth: bytes | None, keep_alive: bool) -> None:
        self._busy = True
        if self._transport is not None:
            self._transport.pause_reading()
        self._app.inflight += 1
        task = asyncio.get_running_loop().create_task(self._app.slow(method, url, auth))
        task.add_done_callback(lambda done: self._finish(done, keep_alive))

    def _finish(self, task: asyncio.Task[bytes], keep_alive: bool) -> None:
        self._app.inflight -= 1
        self._busy = False
        if task.cancelled():
            return
        self._reply(task.result(), keep_alive)
        if self._transport is None:
            return
        while self._pending and not self._busy:
            method, url, auth, alive = self._pending.pop(0)
            answer = self._app.fast(auth) if method == b"GET" and url == PATH else None
            if answer is not None:
                self._reply(answer, alive)
            else:
                self._start(method, url, auth, alive)
        if not self._busy and self._transport is not None:
            self._transport.resume_reading()

    def _reply(self, response: bytes, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        if not keep_alive and b"\r\nConnection: close\r\n" not in response:
            head, _, body = response.partition(b"\r\n\r\n")
            response = head + b"\r\nConnection: close\r\n\r\n" + body
        transport.write(response)
        if not keep_alive:
            transport.close()
            self._transport = None


class _HeadersTooLarge(Exception):
    pass
