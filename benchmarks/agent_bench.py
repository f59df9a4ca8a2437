"""podid's node agent beside nginx and (when it can be built) the reference
agent, measured side by side in one run (not a test). Each server is pinned to
core 0 (taskset), wrk and this script (moto, the clients) to core 1.

* warm-cache req/s, p50/p99 at 64 and 256 connections (wrk -t1), and CPU
  seconds per 100k requests; nginx (1 worker) serves a static file of the
  same bytes;
* RSS idle and holding 10,000 identities (filled from 50 pod addresses,
  retrying 429s like an SDK would);
* 1,000 concurrent first requests for one new identity: upstream calls (counted
  at the EKS Auth emulation, so any agent is measured alike) and how long after
  the first answer the last waiter got its own;
* EKS Auth hanging: time until the client gets an answer (SDKs give up at 2 s).

The reference agent (aws/eks-pod-identity-agent) is built from the Go module
proxy into ~/.cache/podid-bench when the proxy serves it; otherwise the run says
why and nginx stays the anchor.

Needs wrk and nginx (Debian: apt-get install -y wrk nginx).
Run: .venv/bin/python -m benchmarks.agent_bench [--seconds 10] [--identities 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SERVER_CORE, CLIENT_CORE = "0", "1"
REFERENCE_MODULES = (
    "go.amzn.com/eks/eks-pod-identity-agent",
    "github.com/aws/eks-pod-identity-agent",
)
REFERENCE_VERSION = "v0.1.37"  # the newest release tag of aws/eks-pod-identity-agent
CACHE = Path.home() / ".cache" / "podid-bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_tools() -> list[str]:
    wanted = ("nginx", "wrk", "taskset")
    return [t for t in wanted if not shutil.which(t) and not Path(f"/usr/sbin/{t}").exists()]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str) -> None:
    for _ in range(150):
        try:
            urllib.request.urlopen(url, timeout=0.2)  # noqa: S310 - loopback
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    header: str | None = None  # what wrk sends (the agents need a token)
    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_nginx(body: bytes, workdir: Path) -> Server:
    port = free_port()
    workdir.chmod(0o755)  # nginx workers run as www-data
    (workdir / "credentials.json").write_bytes(body)
    (workdir / "credentials.json").chmod(0o644)
    config = workdir / "nginx.conf"
    config.write_text(
        f"""worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /v1/credentials {{ alias {workdir}/credentials.json; }}
  }}
}}
"""
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    command = ["taskset", "-c", SERVER_CORE, nginx, "-c", str(config), "-e", f"{workdir}/e.log"]
    process = subprocess.Popen(command)
    time.sleep(0.5)
    # the worker serves: measure it, not the master
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    server = Server("nginx", process, port)
    server.rows["_pid"] = {"pid": float(children[0]) if children else float(process.pid)}
    return server


def agent_env(moto_url: str, **settings: object) -> dict[str, str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "PODID_AGENT_LOG_LEVEL": "ERROR",
    }
    env.update({f"PODID_AGENT_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def start_podid(moto_url: str, token: str, **settings: object) -> Server:
    port, ops = free_port(), free_port()
    command = [
        *("taskset", "-c", SERVER_CORE, sys.executable, "-m", "node_agent"),
        *("--bind", f"127.0.0.1:{port}", "--ops-bind", f"127.0.0.1:{ops}"),
        *("--cluster-name", "blue", "--region", REGION),
    ]
    process = subprocess.Popen(command, env=agent_env(moto_url, **settings))
    wait_ready(f"http://127.0.0.1:{ops}/readyz")
    server = Server("podid", process, port, f"Authorization: {token}")
    server.rows["_pid"] = {"pid": float(process.pid)}
    return server


def reference_binary() -> tuple[Path | None, str]:
    """Build the reference agent from the Go module proxy (cached); or say why not."""
    binary = CACHE / "eks-pod-identity-agent"
    if binary.exists():
        return binary, "cached build"
    if not shutil.which("go"):
        return None, "no Go toolchain"
    CACHE.mkdir(parents=True, exist_ok=True)
    errors = []
    for module in REFERENCE_MODULES:
        command = ["go", "install", f"{module}@{REFERENCE_VERSION}"]
        env = {**os.environ, "GOBIN": str(CACHE), "GOFLAGS": "-mod=mod"}
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, env=env, timeout=600
        )
        if done.returncode == 0 and binary.exists():
            return binary, f"built {module}@{REFERENCE_VERSION}"
        errors.append(f"`{' '.join(command)}`: {done.stderr.strip().splitlines()[-1:]}")
    return None, "; ".join(errors)


def start_reference(binary: Path, moto_url: str, token: str) -> Server:
    port, probe, metrics = free_port(), free_port(), free_port()
    command = [
        *("taskset", "-c", SERVER_CORE, str(binary), "server", "--cluster-name", "blue"),
        *("--port", str(port), "--probe-port", str(probe), "--metrics-port", str(metrics)),
        *("--bind-hosts", "127.0.0.1", "--metrics-address", "127.0.0.1"),
        *("--endpoint", moto_url, "--max-cache-size", "20000"),
    ]
    env = {**agent_env(moto_url), "AWS_REGION": REGION}
    process = subprocess.Popen(command, env=env)
    wait_ready(f"http://127.0.0.1:{probe}/healthz")
    server = Server("reference", process, port, f"Authorization: {token}")
    server.rows["_pid"] = {"pid": float(process.pid)}
    return server


def wrk(server: Server, connections: int, seconds: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{server.port}/v1/credentials"
    command = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += (
        ["--latency", url] if server.header is None else ["--latency", "-H", server.header, url]
    )
    pid = int(server.rows["_pid"]["pid"])
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": percentile("50"),
        "p99": percentile("99"),
        "cpu_per_100k": 100_000 * cpu / total if total else 0.0,
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def get(port: int, token: str, source: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/v1/credentials", headers={"Authorization": token})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


async def burst(port: int, token: str, count: int) -> list[float]:
    async def one(index: int) -> float:
        source = (f"127.0.2.{1 + index % 8}", 0)  # 8 pod addresses: under the per-address cap
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
        writer.write(
            f"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n".encode()
        )
        await writer.drain()
        await reader.readline()
        done = time.perf_counter()
        writer.close()
        return done

    return await asyncio.gather(*(one(i) for i in range(count)))


class UpstreamCounter:
    """Counts AssumeRoleForPodIdentity calls at the emulation, whichever agent makes them."""

    def __init__(self, emulation: Any) -> None:
        self.calls = 0
        original: Callable[..., Any] = emulation.assume_role_for_pod_identity

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        emulation.assume_role_for_pod_identity = counted


def coalescing(server: Server, identity: Any, faults: Any, upstream: UpstreamCounter) -> None:
    faults.slow_down("AssumeRoleForPodIdentity", 0.3)
    fresh = identity.issue("bench", "api", pod_name=f"burst-{server.name}")
    before = upstream.calls
    pid = int(server.rows["_pid"]["pid"])
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    finished = sorted(asyncio.run(burst(server.port, fresh, 1000)))
    server.rows["coalescing"] = {
        "calls": float(upstream.calls - before),
        "cpu_ms": 1000 * (cpu_seconds(pid) - cpu_before),
        "first_ms": 1000 * (finished[0] - started),
        "last_after_first_ms": 1000 * (finished[-1] - finished[0]),
    }


def hanging(server: Server, identity: Any, faults: Any) -> None:
    faults.slow_down("AssumeRoleForPodIdentity", 5.0, times=5)
    token = identity.issue("bench", "api", pod_name=f"hang-{server.name}")
    started = time.perf_counter()
    try:
        status, _ = get(server.port, token)
    except OSError:
        status = 0  # no answer within 5 s
    server.rows["hang"] = {"status": float(status), "ms": 1000 * (time.perf_counter() - started)}
    faults.clear()


def fill(port: int, identity: Any, count: int) -> int:
    """Ask for `count` new identities from 50 pod addresses, retrying 429 answers after a
    jittered pause like an SDK; the number of 429s met."""

    def worker(index: int) -> int:
        met = 0
        source = f"127.0.1.{1 + index}"
        for n in range(index, count, 50):
            token = identity.issue("bench", "api", pod_name=f"api-{n + 1}")
            while True:
                status, body = get(port, token, source)
                if status != 429:
                    break
                met += 1
                time.sleep(random.uniform(0.05, 0.2))  # noqa: S311
            if status != 200:
                raise RuntimeError(f"identity {n + 1}: {status} {body[:200]!r}")
        return met

    with ThreadPoolExecutor(50) as pool:
        return sum(pool.map(worker, range(50)))


def memory(pid: int, port: int, ops: int, identity: Any, count: int) -> dict[str, float]:
    idle = rss_mib(pid)
    started = time.perf_counter()
    throttled = fill(port, identity, count)
    row = {
        "idle": idle,
        "full": rss_mib(pid),
        "seconds": time.perf_counter() - started,
        "throttled": float(throttled),
    }
    print(
        f"memory: {count} identities cached in {row['seconds']:.0f} s ({throttled} answers "
        f"429, retried): RSS idle {idle:.1f} MiB, full {row['full']:.1f} MiB"
    )
    return row


def report(servers: list[Server], anchor: str) -> None:
    print(
        f"\n{'server':10s} {'conns':>5s} {'req/s':>9s} {'p50 ms':>7s} {'p99 ms':>7s} "
        f"{'cpu s/100k':>10s} {'non-2xx':>7s}"
    )
    for server in servers:
        for connections in (64, 256):
            row = server.rows[f"wrk{connections}"]
            print(
                f"{server.name:10s} {connections:5d} {row['rps']:9.0f} {row['p50']:7.2f} "
                f"{row['p99']:7.2f} {row['cpu_per_100k']:10.2f} {row['non2xx']:7.0f}"
            )
    by_name = {server.name: server for server in servers}
    pairs = [("podid", "nginx")] + ([("podid", "reference")] if "reference" in by_name else [])
    for ours_name, theirs_name in pairs:
        for connections in (64, 256):
            ours = by_name[ours_name].rows[f"wrk{connections}"]
            theirs = by_name[theirs_name].rows[f"wrk{connections}"]
            target = " (targets: >= 1.0, <= 1.0)" if theirs_name == anchor else ""
            print(
                f"{ours_name} vs {theirs_name} @{connections}: throughput "
                f"{ours['rps'] / theirs['rps']:.2f}x, p99 {ours['p99'] / theirs['p99']:.2f}x{target}"
            )
    for server in servers:
        if "coalescing" in server.rows:
            c, h = server.rows["coalescing"], server.rows["hang"]
            print(
                f"{server.name}: 1000 concurrent first requests -> {c['calls']:.0f} upstream "
                f"call(s), first answer {c['first_ms']:.0f} ms (upstream 300 ms), last waiter "
                f"{c['last_after_first_ms']:.1f} ms after the first (target <= 25; the "
                f"server's CPU for the 1000 connections: {c['cpu_ms']:.0f} ms); EKS Auth "
                f"hanging -> {h['status']:.0f} after {h['ms']:.0f} ms (target < 2000)"
            )
        if "memory" in server.rows:
            m = server.rows["memory"]
            print(
                f"{server.name}: RSS idle {m['idle']:.1f} MiB, with the identities "
                f"{m['full']:.1f} MiB"
            )


def emulated_account() -> tuple[Any, str, Any, UpstreamCounter, Any]:
    """moto with the EKS Auth emulation: cluster blue, role app, bench/api associated."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    import boto3
    from moto.server import ThreadedMotoServer

    from sandbox import eks_emulation
    from sandbox.cluster_identity import REGISTRY
    from sandbox.eks_emulation import auth as eks_auth
    from sandbox.stack import POD_TRUST

    eks_emulation.install()
    upstream = UpstreamCounter(eks_auth)  # the wire layer calls auth's function
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, moto_port = moto.get_host_and_port()
    moto_url = f"http://{host}:{moto_port}"
    eks = boto3.client("eks", region_name=REGION, endpoint_url=moto_url)
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_url)
    cluster = eks.create_cluster(
        name="blue", roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={}
    )["cluster"]
    role = iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    eks.create_pod_identity_association(
        clusterName="blue", namespace="bench", serviceAccount="api", roleArn=role["Role"]["Arn"]
    )
    return moto, moto_url, REGISTRY.for_cluster(cluster["arn"]), upstream, eks_emulation


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--identities", type=int, default=10_000)
    parser.add_argument("--no-reference", action="store_true", help="skip the Go build")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install -y wrk nginx util-linux")
        return 2
    os.sched_setaffinity(0, {int(CLIENT_CORE)})  # moto and the clients: off the servers' core
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    moto, moto_url, identity, upstream, emulation = emulated_account()
    token = identity.issue("bench", "api", pod_name="api-0")
    binary, how = (None, "skipped (--no-reference)") if args.no_reference else reference_binary()
    print(f"reference agent: {how}")
    anchor = "reference" if binary else "nginx"

    servers: list[Server] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            agents = [start_podid(moto_url, token)]
            if binary is not None:
                agents.append(start_reference(binary, moto_url, token))
            for agent in agents:
                status, body = get(agent.port, token)
                assert status == 200, body
            servers = [start_nginx(body, Path(tmp)), *agents]
            print(f"response body: {len(body)} bytes (the same bytes served by nginx)")
            for server in servers:
                for connections in (64, 256):
                    server.rows[f"wrk{connections}"] = wrk(server, connections, args.seconds)
            for agent in agents:
                coalescing(agent, identity, emulation.FAULTS, upstream)
                hanging(agent, identity, emulation.FAULTS)
            for server in servers:
                server.stop()
        # fresh agents: the cost of the cache, not of 256 wrk connections' buffers
        fresh = [start_podid(moto_url, token)]
        if binary is not None:
            fresh.append(start_reference(binary, moto_url, token))
        for agent, measured in zip(fresh, agents, strict=True):
            pid = int(agent.rows["_pid"]["pid"])
            measured.rows["memory"] = memory(pid, agent.port, 0, identity, args.identities)
            agent.stop()
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()
        moto.stop()
    report(servers, anchor)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
