"""Hostile clients for the flood test, run as their own process (so they do not
share an interpreter with the well-behaved client or moto):

    python -m tests.agent.flood PORT CLUSTER_ARN SECONDS

* unterminated header lines, streamed as fast as the agent reads (127.0.0.3);
* slow senders, one byte every half second (127.0.0.4);
* 1,100 idle connections from five addresses, reopened when closed (127.0.0.5-9);
* forged tokens (a key the cluster never had) on keep-alive connections (127.0.0.10).

Prints one JSON line of counts when done.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from sandbox.cluster_identity import ClusterIdentity

HEAD = b"GET /v1/credentials HTTP/1.1\r\nHost: x\r\n"


async def opened(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def unterminated(port: int, until: float, counts: Counter[str]) -> None:
    while time.monotonic() < until:
        try:
            _, writer = await opened(port, "127.0.0.3")
            writer.write(HEAD + b"X-Big: ")
            while time.monotonic() < until:
                writer.write(b"a" * 65536)
                await writer.drain()
                counts["unterminated_bytes"] += 65536
        except OSError:
            counts["unterminated_cut"] += 1
            await asyncio.sleep(0.05)


async def slow_sender(port: int, until: float, counts: Counter[str]) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await opened(port, "127.0.0.4")
            for byte in (HEAD + b"X-Slow: " + b"s" * 10_000)[: int((until - time.monotonic()) * 2)]:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.5)
                if reader.at_eof():
                    break
            counts["slow_closed"] += 1
            writer.close()
        except OSError:
            counts["slow_closed"] += 1
            await asyncio.sleep(0.5)


async def idle(port: int, source: str, until: float, counts: Counter[str]) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await opened(port, source)
            counts["idle_open"] += 1
            await asyncio.wait_for(reader.read(), max(0.01, until - time.monotonic()))
            counts["idle_closed_by_agent"] += 1
            writer.close()
        except (OSError, TimeoutError):
            counts["idle_failed"] += 1
        await asyncio.sleep(0.5)


async def forger(port: int, impostor: ClusterIdentity, until: float, counts: Counter[str]) -> None:
    index = 0
    while time.monotonic() < until:
        try:
            reader, writer = await opened(port, "127.0.0.10")
            while time.monotonic() < until:
                index += 1
                token = impostor.issue("payments", "api", pod_name=f"forged-{id(reader)}-{index}")
                writer.write(HEAD + f"Authorization: {token}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                counts[f"forged_{head.split()[1].decode()}"] += 1
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            counts["forged_closed"] += 1
            await asyncio.sleep(0.05)


async def flood(port: int, cluster_arn: str, seconds: float) -> Counter[str]:
    counts: Counter[str] = Counter()
    until = time.monotonic() + seconds
    impostor = ClusterIdentity.create(cluster_arn)
    tasks = [unterminated(port, until, counts) for _ in range(4)]
    tasks += [slow_sender(port, until, counts) for _ in range(100)]
    tasks += [idle(port, f"127.0.0.{5 + i % 5}", until, counts) for i in range(1100)]
    tasks += [forger(port, impostor, until, counts) for _ in range(8)]
    await asyncio.gather(*tasks)
    return counts


if __name__ == "__main__":
    port, arn, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    print(json.dumps(asyncio.run(flood(port, arn, seconds))))
