"""The credentials endpoint: a small HTTP/1.1 server on asyncio + httptools.

The hot path (a cached identity) is: parse, hash the token, one dict lookup,
write pre-serialized bytes. Everything else (misses, errors) goes through a
task, with reading paused so pipelined requests are answered in order.

Whatever a client sends costs bounded memory and time: every limit (bytes per
line, per request head, header count) is enforced on the bytes as they arrive,
before the parser buffers them; a client that stops reading is not read from;
timeouts and connection caps live in `connections`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httptools

from node_agent.backends import Backend
from node_agent.cache import CredentialCache, Entry
from node_agent.connections import Connections
from node_agent.credentials import Credentials
from node_agent.errors import AgentError, bad_request
from node_agent.limits import SourceLimiter
from node_agent.tokens import AUDIENCE, MAX_TOKEN_BYTES, TokenClaims, read_claims, token_key

if TYPE_CHECKING:  # PyJWT and cryptography cost ~9 MiB: loaded only for --local-validation
    from node_agent.jwks import JwksVerifier

log = logging.getLogger("podid.agent")
PATH = b"/v1/credentials"
MAX_HEAD_BYTES = 32 * 1024  # a whole request head
MAX_LINE_BYTES = MAX_TOKEN_BYTES + 1024  # one line: the Authorization header is the longest
MAX_HEADERS = 64
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
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
        limiter: SourceLimiter,
        connections: Connections,
        upstream_concurrency: int = 16,
        observe_latency: Callable[[float], None] | None = None,
        verifier: JwksVerifier | None = None,
    ) -> None:
        self.verifier = verifier
        self.backend = backend
        self.cache = cache
        self.limiter = limiter
        self.connections = connections
        self.requests = RequestStats()
        # its own threads: a hung upstream call holds one of these, never the loop's
        self._executor = ThreadPoolExecutor(upstream_concurrency, "podid-upstream")
        self._running = 0  # backend calls in those threads (a stop waits for them)
        self._idle = threading.Condition()
        self.observe_latency = observe_latency or (lambda _: None)
        self.inflight = 0

    def fast(self, token: bytes | None) -> bytes | None:
        """The answer for a cached identity, or None when the slow path is needed."""
        if not token:
            return None
        key = token_key(token)
        entry, refresh = self.cache.lookup(key)
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

    async def slow(self, method: bytes, path: bytes, token: bytes | None, peer: str) -> bytes:
        try:
            entry = await self._serve(method, path, token, peer)
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

    async def _serve(self, method: bytes, path: bytes, token: bytes | None, peer: str) -> Entry:
        if path.split(b"?", 1)[0] != PATH:
            raise AgentError(404, "NotFound", "only GET /v1/credentials is served here")
        if method != b"GET":
            raise AgentError(405, "MethodNotAllowed", "use GET")
        if not token:
            raise bad_request("the Authorization header must carry the service account token")
        # local checks first: a request failing them costs no upstream call and no rate token
        claims = read_claims(token)
        if claims.expires_at <= self.cache.clock():
            raise AgentError(401, "ExpiredToken", "the service account token has expired")
        if AUDIENCE not in claims.audiences:
            raise AgentError(401, "InvalidToken", f"the token's audience must be {AUDIENCE}")
        key = token_key(token)
        entry, _ = self.cache.lookup(key)
        if entry is not None:
            return entry
        pending = self.cache.join(key)  # the same token, already verified and in flight
        if pending is not None:
            return await asyncio.shield(pending)
        if self.verifier is not None:
            entry = await self._verified(key, token, claims)
            if entry is not None:
                return entry
        return await self.cache.get(
            key,
            self._fetcher(token, claims),
            claims.expires_at,
            pod_uid=claims.pod_uid,
            admit=lambda: self._admit(peer),
        )

    def join(self, method: bytes, path: bytes, token: bytes | None) -> asyncio.Future[Entry] | None:
        """The call in flight for this request's token, once the local checks pass; None
        sends the request down the slow path. Joining costs no task: a thousand waiters
        are answered in one pass of callbacks when the call ends."""
        if method != b"GET" or path != PATH or not token:
            return None
        key = token_key(token)
        if key not in self.cache.inflight_keys:
            return None
        try:
            claims = read_claims(token)
        except AgentError:
            return None
        if claims.expires_at <= self.cache.clock() or AUDIENCE not in claims.audiences:
            return None
        return self.cache.join(key)

    def answer_joined(self, joined: asyncio.Future[Entry]) -> bytes:
        error = joined.exception()
        if error is None:
            self.requests.count(200)
            return joined.result().response
        status, body = (
            (error.status, error.body())
            if isinstance(error, AgentError)
            else (500, AgentError(500, "InternalError", "internal error").body())
        )
        self.requests.count(status)
        return http_response(status, body)

    def _admit(self, peer: str) -> Callable[[], None]:
        refused = self.limiter.admit(peer)
        if refused is not None:
            raise AgentError(
                429,
                "SlowDown",
                "too many new identities at once; retry shortly"
                if refused == "overall"
                else "too many new identities from this address; retry shortly",
                retryable=True,
            )
        return lambda: self.limiter.done(peer)

    async def _verified(self, key: bytes, token: bytes, claims: TokenClaims) -> Entry | None:
        """Local validation: a forged token is refused here; a rotated token of a pod
        already served reuses its credential without asking EKS Auth."""
        verifier = self.verifier
        if verifier is None:
            return None
        genuine, verified = await asyncio.to_thread(
            verifier.check, token.decode("ascii", "replace"), self.cache.clock()
        )
        if genuine is False or (genuine and verified.get("sub") != claims.subject):
            raise AgentError(401, "InvalidToken", "the service account token is not genuine")
        if not genuine or not claims.pod_uid:
            return None  # keys unavailable: upstream decides
        return self.cache.reuse_for_pod(key, claims, claims.expires_at)

    def _fetcher(self, token: bytes, claims: Any) -> Callable[[], Any]:
        text = token.decode("ascii", errors="replace")
        loop = asyncio.get_running_loop()

        async def fetch() -> Credentials:
            started = time.perf_counter()
            try:
                return await loop.run_in_executor(self._executor, self._call_backend, text, claims)
            finally:
                self.observe_latency(time.perf_counter() - started)

        return fetch

    def _call_backend(self, token: str, claims: Any) -> Credentials:
        with self._idle:
            self._running += 1
        try:
            return self.backend.fetch(token, claims)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no backend call runs (a call outlives a stop: its await was cancelled
        or it was a background refresh); False if one still runs after `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)


class CredentialsProtocol(asyncio.Protocol):
    __slots__ = (
        "_app",
        "_auth",
        "_connections",
        "_fast",
        "_head_bytes",
        "_head_total",
        "_headers",
        "_in_message",
        "_line_bytes",
        "_parser",
        "_pending",
        "_tail",
        "_transport",
        "_url",
        "_write_paused",
        "answered",
        "busy",
        "head_tick",
        "last_tick",
        "peer",
    )

    def __init__(self, app: CredentialsApp) -> None:
        self._app = app
        self._fast = app.fast
        self._connections = app.connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._auth: bytes | None = None
        self._headers = 0
        self._head_total = 0  # bytes of the completed headers of this request
        self._head_bytes = 0  # bytes of the unfinished request head (0: none)
        self._line_bytes = 0  # bytes of the unfinished line
        self._tail = b""  # the last bytes seen: a CRLFCRLF split across reads
        self._in_message = False
        self._write_paused = False
        self._pending: list[tuple[bytes, bytes, bytes | None, bool]] = []
        self.peer = ""
        self.busy = False
        self.answered = 0
        self.last_tick = self._connections.tick
        self.head_tick = -1

    # asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else ""
        if not self._connections.admit(self):
            error = AgentError(503, "TooManyConnections", "too many connections from this address")
            self._app.requests.count(503)
            self._reply(http_response(503, error.body(), keep_alive=False), False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._connections.release(self)

    def pause_writing(self) -> None:
        # the client is not reading its answers: stop reading its requests
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None and not self.busy:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_tick = self._connections.tick
        if data.endswith(b"\r\n\r\n"):  # a whole head (the usual case)
            self._head_bytes = self._line_bytes = 0
            self._tail = b""
        elif not self._within_limits(data):
            self._connections.bit("head_too_large")
            self._close_with(431, "request line, header or head too large")
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_with(400, "upgrades are not supported")
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadersTooLarge):
                self._connections.bit("head_too_large")
                self._close_with(431, "request line, header or head too large")
            else:
                self._close_with(400, "malformed HTTP request")
        except httptools.HttpParserError:
            self._close_with(400, "malformed HTTP request")
        if not self._in_message:
            self._head_bytes = self._line_bytes = 0
        if self._head_bytes == 0:
            self.head_tick = -1
        elif self.head_tick < 0:
            self.head_tick = self._connections.tick

    # httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE_BYTES:
            raise _HeadersTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        # exact checks on what the parser completed (one read can hold a whole oversized head)
        self._headers += 1
        self._head_total += len(name) + len(value) + 4
        if (
            self._headers > MAX_HEADERS
            or len(name) + len(value) > MAX_LINE_BYTES
            or self._head_total > MAX_HEAD_BYTES
        ):
            raise _HeadersTooLarge
        if len(name) == 13 and name.lower() == b"authorization":
            self._auth = value.strip()

    def on_message_complete(self) -> None:
        parser, url, auth = self._parser, self._url, self._auth
        self._url, self._auth, self._in_message = b"", None, False
        self._headers = self._head_total = 0
        method = parser.get_method()
        keep_alive = parser.should_keep_alive()
        if self.busy:
            self._pending.append((method, url, auth, keep_alive))
            return
        if url == PATH and method == b"GET":
            answer = self._fast(auth)
            if answer is not None:
                self.answered += 1
                if keep_alive and self._transport is not None:
                    self._transport.write(answer)
                else:
                    self._reply(answer, keep_alive)
                return
        self._start(method, url, auth, keep_alive)

    # internals -----------------------------------------------------------------------------
    def _within_limits(self, data: bytes) -> bool:
        """Account bytes of an unfinished head before the parser buffers them."""
        end = data.rfind(b"\r\n\r\n")
        if end < 0 and self._tail:
            joined = self._tail + data[:3]
            split = joined.find(b"\r\n\r\n")
            if split >= 0:
                end = split + 4 - len(self._tail) - 4
        self._head_bytes = self._head_bytes + len(data) if end < 0 else len(data) - end - 4
        newline = data.rfind(b"\n")
        self._line_bytes = self._line_bytes + len(data) if newline < 0 else len(data) - newline - 1
        self._tail = data[-3:]
        return self._head_bytes <= MAX_HEAD_BYTES and self._line_bytes <= MAX_LINE_BYTES

    def close_for(self, reason: str) -> None:
        """Called by the connection sweeper (timeouts) or the cap (eviction)."""
        if reason == "head_timeout" and self._head_bytes:
            self._close_with(408, "the request head did not arrive in time")
        elif self._transport is not None:
            self._transport.close()
            self._transport = None
            self._connections.release(self)

    def _close_with(self, status: int, message: str) -> None:
        self._app.requests.count(status)
        error = AgentError(status, "InvalidRequest", message)
        self._reply(http_response(status, error.body(), keep_alive=False), False)

    def _start(self, method: bytes, url: bytes, auth: bytes | None, keep_alive: bool) -> None:
        self.busy = True
        if self._transport is not None:
            self._transport.pause_reading()
        self._app.inflight += 1
        joined = self._app.join(method, url, auth)
        if joined is not None:
            joined.add_done_callback(
                lambda done: self._finish(
                    None if done.cancelled() else self._app.answer_joined(done), keep_alive
                )
            )
            return
        task = asyncio.get_running_loop().create_task(self._app.slow(method, url, auth, self.peer))
        task.add_done_callback(
            lambda done: self._finish(None if done.cancelled() else done.result(), keep_alive)
        )

    def _finish(self, answer: bytes | None, keep_alive: bool) -> None:
        self._app.inflight -= 1
        self.busy = False
        self.answered += 1
        self.last_tick = self._connections.tick
        if answer is None:
            return
        self._reply(answer, keep_alive)
        if self._transport is None:
            return
        while self._pending and not self.busy:
            method, url, auth, alive = self._pending.pop(0)
            answer = self._app.fast(auth) if method == b"GET" and url == PATH else None
            if answer is not None:
                self._reply(answer, alive)
            else:
                self._start(method, url, auth, alive)
        if not self.busy and not self._write_paused and self._transport is not None:
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
            self._connections.release(self)


class _HeadersTooLarge(Exception):
    pass
