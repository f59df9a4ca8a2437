"""Health, readiness and Prometheus metrics, on their own port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from node_agent.cache import CredentialCache
from node_agent.server import CredentialsApp, http_response


class AgentCollector(Collector):
    """Reads the agent's plain counters at scrape time: nothing on the hot path."""

    def __init__(self, cache: CredentialCache) -> None:
        self.app: CredentialsApp | None = None
        self.cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        requests = CounterMetricFamily(
            "podid_agent_requests", "Credential requests", labels=["status"]
        )
        by_status = self.app.requests.by_status if self.app else {}
        for status, count in sorted(by_status.items()):
            requests.add_metric([str(status)], count)
        yield requests
        stats = self.cache.stats
        for name, value, help_text in (
            ("cache_hits", stats.hits, "Requests answered from the cache"),
            ("cache_misses", stats.misses, "Requests that needed an upstream call"),
            ("coalesced_waits", stats.coalesced, "Requests that waited on another's upstream call"),
            ("cache_refreshes", stats.refreshes, "Background refreshes started"),
            ("cache_refreshed", stats.refreshed, "Background refreshes that renewed the entry"),
            (
                "cache_refresh_failures",
                stats.refresh_failures,
                "Refreshes that failed (stale served)",
            ),
            ("cache_evictions", stats.evictions, "Entries evicted by the size bound"),
            ("upstream_calls", stats.upstream_calls, "Calls to the credentials backend"),
            ("upstream_errors", stats.upstream_errors, "Failed calls to the credentials backend"),
            ("revocations", stats.revocations, "Cached identities dropped: upstream refused them"),
        ):
            yield CounterMetricFamily(f"podid_agent_{name}", help_text, value=value)
        if self.app is None:
            return
        limited = CounterMetricFamily(
            "podid_agent_rate_limited",
            "New identities refused by the rate limit",
            labels=["scope"],
        )
        for scope, count in sorted(self.app.limiter.refused.items()):
            limited.add_metric([scope], count)
        yield limited
        connections = self.app.connections
        closed = CounterMetricFamily(
            "podid_agent_connections_limited",
            "Connections refused or closed by a cap or a timeout",
            labels=["reason"],
        )
        for reason, count in sorted(connections.closed.items()):
            closed.add_metric([reason], count)
        yield closed
        yield GaugeMetricFamily(
            "podid_agent_connections", "Open credentials connections", value=len(connections)
        )
        yield GaugeMetricFamily(
            "podid_agent_cache_entries", "Cached identities", value=len(self.cache)
        )
        yield GaugeMetricFamily(
            "podid_agent_inflight",
            "Requests waiting on upstream",
            value=self.app.inflight if self.app else 0,
        )


class Ops:
    def __init__(self, cache: CredentialCache) -> None:
        self.registry = CollectorRegistry()
        self._collector = AgentCollector(cache)
        self.registry.register(self._collector)
        self.latency = Histogram(
            "podid_agent_upstream_seconds",
            "Latency of backend calls",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
        self.ready = False
        self.draining = False

    def attach(self, app: CredentialsApp) -> None:
        self._collector.app = app

    def answer(self, path: bytes) -> bytes:
        if path == b"/healthz":
            return http_response(200, b'{"status":"ok"}')
        if path == b"/readyz":
            ok = self.ready and not self.draining
            return http_response(
                200 if ok else 503, b'{"ready":%s}' % (b"true" if ok else b"false")
            )
        if path == b"/metrics":
            body = generate_latest(self.registry)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        return http_response(404, b'{"Code":"NotFound"}')

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
            writer.write(self.answer(path.split(b"?", 1)[0]))
            await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ConnectionError,
        ):
            pass
        finally:
            writer.close()
