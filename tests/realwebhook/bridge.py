"""Byte-for-byte TCP <-> unix-socket forwarding, to reach a server that runs in
its own network namespace (the pod identity webhook binds every interface:
`:port`; in a namespace holding only loopback it is reachable from here only
through these unix sockets, so nothing listens beyond 127.0.0.1).

In the test process: `Bridges` (a thread with its own event loop). In the
namespace: `python -m tests.realwebhook.bridge --tcp-to-unix PORT=PATH
--unix-to-tcp PATH=PORT -- <command>` brings loopback up, forwards, runs the
command and exits with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

CHUNK = 64 * 1024
T = TypeVar("T")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _joiner(open_peer: Callable[[], Awaitable[Streams]]) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer_reader, peer_writer = await open_peer()
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, peer_writer), _pipe(peer_reader, writer))

    return handle


async def tcp_to_unix(port: int, path: str) -> asyncio.Server:
    """Listen on 127.0.0.1:port (0: any free port), forward to the unix socket."""
    return await asyncio.start_server(
        _joiner(lambda: asyncio.open_unix_connection(path)), "127.0.0.1", port
    )


async def unix_to_tcp(path: str, port: int) -> asyncio.Server:
    """Listen on the unix socket, forward to 127.0.0.1:port."""
    return await asyncio.start_unix_server(
        _joiner(lambda: asyncio.open_connection("127.0.0.1", port)), path
    )


class Bridges:
    """Forwarders in a background event loop of the test process."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.AbstractServer] = []

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def tcp_to_unix(self, path: str) -> int:
        server = self._run(tcp_to_unix(0, path))
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def unix_to_tcp(self, path: str, port: int) -> None:
        self._servers.append(self._run(unix_to_tcp(path, port)))

    def close(self) -> None:
        async def shut() -> None:
            for server in self._servers:
                server.close()

        self._run(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _pair(text: str) -> tuple[str, str]:
    left, _, right = text.partition("=")
    return left, right


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp-to-unix", action="append", default=[], type=_pair)
    parser.add_argument("--unix-to-tcp", action="append", default=[], type=_pair)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # noqa: S607
    loop = asyncio.new_event_loop()
    for port, path in args.tcp_to_unix:
        loop.run_until_complete(tcp_to_unix(int(port), path))
    for path, port in args.unix_to_tcp:
        loop.run_until_complete(unix_to_tcp(path, int(port)))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    child = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    code = child.wait()
    for path, _ in args.unix_to_tcp:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return code


if __name__ == "__main__":
    sys.exit(main())
