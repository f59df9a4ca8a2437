"""Node agent vs nginx, measured side by side in one run (not a test).

* warm-cache requests/s and p50/p99 of the agent (1 process) against nginx
  (1 worker) serving a static JSON of the same size, with wrk -t1 at 64 and
  256 connections, on loopback;
* RSS of the agent holding 10,000 cached identities against a bare Python
  process that only imported botocore and created the eks-auth client;
* upstream calls and waiter latency for 1,000 concurrent first requests.

Installs nginx and wrk from Debian's packages when missing (needs root).
Run: .venv/bin/python -m benchmarks.agent_bench [--seconds 10] [--identities 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_tools() -> None:
    missing = [
        tool
        for tool in ("nginx", "wrk")
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if missing:
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light", "wrk"], check=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wrk(url: str, connections: int, seconds: int, header: str | None) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if header:
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": percentile("50"),
        "p99": percentile("99"),
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def start_nginx(body: bytes, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
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
    process = subprocess.Popen([nginx, "-c", str(config), "-e", str(workdir / "error.log")])
    time.sleep(0.5)
    return process, port


def start_agent(moto_url: str, cache_size: int) -> tuple[subprocess.Popen[bytes], int, int]:
    port, ops = free_port(), free_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "PODID_AGENT_LOG_LEVEL": "WARNING",
        "PODID_AGENT_CACHE_SIZE": str(cache_size),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node_agent",
            "--bind",
            f"127.0.0.1:{port}",
            "--ops-bind",
            f"127.0.0.1:{ops}",
            "--cluster-name",
            "blue",
            "--region",
            REGION,
        ],
        env=env,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ops}/readyz", timeout=0.2)
            break
        except OSError:
            time.sleep(0.1)
    return process, port, ops


def get(port: int, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/credentials", headers={"Authorization": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def metric(ops: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{ops}/metrics", timeout=2).read().decode()
    match = re.search(rf"^{name} ([\d.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def baseline_rss() -> float:
    code = (
        "import botocore.session, os;"
        "c = botocore.session.get_session().create_client('eks-auth', region_name='eu-west-1',"
        " aws_access_key_id='x', aws_secret_access_key='y');"
        "print(open('/proc/self/status').read())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return int(re.search(r"VmRSS:\s+(\d+)", out).group(1)) / 1024  # type: ignore[union-attr]


async def burst(port: int, token: str, count: int) -> list[float]:
    async def one() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n".encode()
        )
        await writer.drain()
        await reader.readline()
        done = time.perf_counter()
        writer.close()
        return done

    return await asyncio.gather(*(one() for _ in range(count)))


def throughput(port: int, token: str, body: bytes, workdir: Path, seconds: int) -> None:
    nginx, nginx_port = start_nginx(body, workdir)
    try:
        print(f"response body: {len(body)} bytes (same file served by nginx)")
        results: dict[str, dict[str, float]] = {}
        for connections in (64, 256):
            results[f"nginx@{connections}"] = wrk(
                f"http://127.0.0.1:{nginx_port}/v1/credentials", connections, seconds, None
            )
            results[f"agent@{connections}"] = wrk(
                f"http://127.0.0.1:{port}/v1/credentials",
                connections,
                seconds,
                f"Authorization: {token}",
            )
    finally:
        nginx.terminate()
    print(f"{'server':12s} {'req/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}")
    for name, row in results.items():
        print(
            f"{name:12s} {row['rps']:10.0f} {row['p50']:8.2f} {row['p99']:8.2f} {row['non2xx']:8.0f}"
        )
    for connections in (64, 256):
        agent_row, nginx_row = results[f"agent@{connections}"], results[f"nginx@{connections}"]
        print(
            f"ratio @{connections}: throughput {agent_row['rps'] / nginx_row['rps']:.2f}x nginx "
            f"(target >= 1.0), p99 {agent_row['p99'] / nginx_row['p99']:.2f}x nginx (target <= 1.5)"
        )


def coalescing(port: int, ops: int, identity: Any, faults: Any) -> None:
    """1,000 concurrent first requests for a new identity."""
    delay = 0.3
    faults.slow_down("AssumeRoleForPodIdentity", delay)
    fresh = identity.issue("bench", "api", pod_name="api-burst")
    before = metric(ops, "podid_agent_upstream_calls_total")
    started = time.perf_counter()
    finished = sorted(asyncio.run(burst(port, fresh, 1000)))
    calls = metric(ops, "podid_agent_upstream_calls_total") - before
    print(
        f"coalescing: 1000 concurrent first requests -> {calls:.0f} upstream call(s); "
        f"first answer after {1000 * (finished[0] - started):.0f} ms (upstream {delay * 1000:.0f} ms + moto), "
        f"last waiter {1000 * (finished[-1] - finished[0]):.1f} ms after the first (the reference agent polls every 200 ms)"
    )


def memory(pid: int, port: int, ops: int, identity: Any, count: int) -> None:
    started = time.perf_counter()
    for index in range(count):
        status, _ = get(port, identity.issue("bench", "api", pod_name=f"api-{index + 1}"))
        assert status == 200
    cached = metric(ops, "podid_agent_cache_entries")
    agent_rss, base = rss_mib(pid), baseline_rss()
    print(
        f"memory: {cached:.0f} cached identities (filled in {time.perf_counter() - started:.0f} s): "
        f"agent RSS {agent_rss:.1f} MiB vs bare botocore + eks-auth client {base:.1f} MiB = "
        f"{agent_rss / base:.2f}x (target <= 1.5)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--identities", type=int, default=10_000)
    args = parser.parse_args()
    ensure_tools()
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
    from sandbox.stack import POD_TRUST

    eks_emulation.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, moto_port = server.get_host_and_port()
    moto_url = f"http://{host}:{moto_port}"
    eks = boto3.client("eks", region_name=REGION, endpoint_url=moto_url)
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_url)
    cluster = eks.create_cluster(
        name="blue", roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={}
    )["cluster"]
    role = iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(POD_TRUST))["Role"][
        "Arn"
    ]
    eks.create_pod_identity_association(
        clusterName="blue", namespace="bench", serviceAccount="api", roleArn=role
    )
    identity = REGISTRY.for_cluster(cluster["arn"])
    token = identity.issue("bench", "api", pod_name="api-0")

    with tempfile.TemporaryDirectory() as tmp:
        agent, port, ops = start_agent(moto_url, args.identities + 100)
        try:
            status, body = get(port, token)
            assert status == 200, body
            throughput(port, token, body, Path(tmp), args.seconds)
            coalescing(port, ops, identity, eks_emulation.FAULTS)
            print(f"(after the load phases: agent RSS {rss_mib(agent.pid):.1f} MiB)")
        finally:
            agent.terminate()
            agent.wait(10)
        # a fresh agent: the cache's cost, not the buffers of 256 wrk connections
        agent, port, ops = start_agent(moto_url, args.identities + 100)
        try:
            memory(agent.pid, port, ops, identity, args.identities)
        finally:
            agent.terminate()
            agent.wait(10)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
