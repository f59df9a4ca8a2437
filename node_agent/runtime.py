"""Assemble and run the agent: listeners, ops endpoint, map watcher, draining."""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvloop

from node_agent.backends import Backend
from node_agent.cache import CredentialCache, Entry, RetryPolicy
from node_agent.connections import Connections
from node_agent.limits import SourceLimiter
from node_agent.ops import Ops
from node_agent.server import CredentialsApp, CredentialsProtocol, render_credentials
from node_agent.settings import AgentSettings, split_bind

if TYPE_CHECKING:  # PyJWT and cryptography cost ~9 MiB: loaded only for --local-validation
    from node_agent.jwks import JwksVerifier

log = logging.getLogger("podid.agent")
FD_RESERVE = 128  # upstream pools, ops, logs: the connection cap stays this far below the limit


def connection_ceiling(wanted: int) -> int:
    """Raise the soft fd limit to the hard one; keep the connection cap below it, so
    accept() never fails silently with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - FD_RESERVE))


def _affected_by(changed: set[tuple[str, str]]) -> Callable[[Entry], bool]:
    return lambda entry: (entry.namespace, entry.service_account) in changed


@dataclass
class Agent:
    settings: AgentSettings
    backend: Backend
    clock: Callable[[], float] = time.time
    verifier: JwksVerifier | None = None
    cache: CredentialCache = field(init=False)
    connections: Connections = field(init=False)
    limiter: SourceLimiter = field(init=False)
    app: CredentialsApp = field(init=False)
    ops: Ops = field(init=False)
    ports: list[int] = field(default_factory=list)
    _stop: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        # botocore logs request bodies (the token) at DEBUG: never let it
        for noisy in ("botocore", "boto3", "urllib3", "kubernetes"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.cache = CredentialCache(
            max_entries=self.settings.cache_size,
            render=render_credentials,
            refresh_ahead=self.settings.refresh_ahead_seconds,
            renew_after=self.settings.renew_after_seconds,
            min_remaining=self.settings.min_remaining_seconds,
            clock=self.clock,
            retry=RetryPolicy(
                budget=self.settings.upstream_budget_seconds,
                attempt_timeout=self.settings.upstream_timeout_seconds,
            ),
        )
        settings = self.settings
        self.connections = Connections(
            max_total=connection_ceiling(settings.max_connections),
            max_per_peer=settings.max_connections_per_peer,
            head_timeout=settings.head_timeout_seconds,
            idle_timeout=settings.idle_timeout_seconds,
        )
        self.limiter = SourceLimiter(
            rate=settings.new_identities_per_second,
            burst=settings.new_identity_burst,
            per_source_rate=settings.new_identities_per_source_per_second,
            per_source_burst=settings.new_identity_burst_per_source,
            per_source_calls=settings.upstream_calls_per_source,
        )
        self.ops = Ops(self.cache)
        self.app = CredentialsApp(
            self.backend,
            self.cache,
            limiter=self.limiter,
            connections=self.connections,
            upstream_concurrency=self.settings.upstream_concurrency,
            observe_latency=self.ops.latency.observe,
            verifier=self.verifier,
        )
        self.ops.attach(self.app)

    async def run(self, started: threading.Event | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._stop = loop, asyncio.Event()
        servers = []
        for bind in self.settings.binds:
            host, port = split_bind(bind)
            server = await loop.create_server(
                lambda: CredentialsProtocol(self.app), host, port, backlog=2048
            )
            servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])
        ops_host, ops_port = split_bind(self.settings.ops_bind)
        ops_server = await asyncio.start_server(self.ops.serve, ops_host, ops_port)
        self.ports.append(ops_server.sockets[0].getsockname()[1])
        associations = getattr(self.backend, "associations", None)
        watcher = loop.create_task(self._watch(associations)) if associations is not None else None
        sweeper = loop.create_task(self._sweep())
        self.ops.ready = True
        log.info(
            "serving credentials",
            # the bound ports: a bind to port 0 says here which one it got
            extra={
                "binds": list(self.settings.binds),
                "ports": self.ports[:-1],
                "ops_port": self.ports[-1],
                "backend": self.backend.name,
            },
        )
        if started is not None:
            started.set()
        await self._stop.wait()
        # graceful: stop taking connections, answer what is in flight, then exit
        self.ops.draining = True
        for server in servers:
            server.close()
        deadline = loop.time() + self.settings.drain_seconds
        self.connections.close_all()  # idle keep-alive connections: in-flight ones finish
        while self.app.inflight and loop.time() < deadline:
            await asyncio.sleep(0.02)
        ops_server.close()
        sweeper.cancel()
        self.app.close()
        if watcher is not None:
            watcher.cancel()
        log.info("stopped", extra={"left_inflight": self.app.inflight})

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1)
            self.connections.sweep()

    async def _watch(self, associations: object) -> None:
        """Self-managed backend: a changed association drops exactly its cached identities."""
        while True:
            changed: set[tuple[str, str]] = await asyncio.to_thread(associations.poll)  # type: ignore[attr-defined]
            if changed:
                dropped = self.cache.invalidate(_affected_by(changed))
                log.info(
                    "association map reloaded", extra={"changed": len(changed), "dropped": dropped}
                )
            await asyncio.sleep(self.settings.map_poll_seconds)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)

    # background mode (tests, sandbox) -----------------------------------------------------
    def start_in_thread(self, timeout: float = 10) -> Agent:
        started = threading.Event()
        self._thread = threading.Thread(
            target=lambda: uvloop.run(self.run(started)), name="podid-agent", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("the agent did not start")
        return self

    def stop_thread(self, timeout: float = 10) -> None:
        """Stop, and return once no upstream call of this agent runs any more (bounded by
        `timeout` and the backend's own timeouts): none reaches whatever runs next."""
        deadline = time.monotonic() + timeout
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if not self.app.wait_idle(max(0.0, deadline - time.monotonic())):
            log.warning("stopped with upstream calls still running")
