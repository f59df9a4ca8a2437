"""The HTTPS server hosting one API per cluster under /<cluster>/..., so one
endpoint template (https://127.0.0.1:PORT/{cluster}) reaches them all, with a
serving certificate from the sandbox's CA. Bounded: request bodies (3 MiB, as
the apiserver), header count and idle connections (a timeout per socket)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.localkube.api import ClusterAPI
from sandbox.localkube.errors import ApiError
from sandbox.localkube.requests import MAX_BODY_BYTES, Request, Response, error_response
from sandbox.localkube.tls import CertificateAuthority, KeyPair

SOCKET_TIMEOUT_SECONDS = 30


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        # the handshake runs in the request's thread (do_handshake_on_connect=False),
        # so a client that never completes it cannot stall the accept loop
        connection, address = super().get_request()
        connection.settimeout(SOCKET_TIMEOUT_SECONDS)
        wrapped = self.context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address


class LocalKubernetes:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.clusters: dict[str, ClusterAPI] = {}
        self.ca = CertificateAuthority()
        self._server = _TLSServer((host, port), self._handler_class())
        self._server.context = self.ca.server_context()
        self._thread: threading.Thread | None = None
        self._clients: dict[tuple[str, tuple[str, ...]], KeyPair] = {}

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host!s}:{port}"

    @property
    def endpoint_template(self) -> str:
        return self.url + "/{cluster}"

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def ca_data(self) -> str:
        """base64 PEM: DescribeCluster's certificateAuthority.data for these clusters."""
        return self.ca.data

    def admin_credentials(self, user: str, groups: tuple[str, ...]) -> KeyPair:
        """One client certificate per (user, groups) for this server's lifetime."""
        key = (user, groups)
        if key not in self._clients:
            self._clients[key] = self.ca.client(user, groups)
        return self._clients[key]

    def add_cluster(self, name: str, **options: Any) -> ClusterAPI:
        api = ClusterAPI(name, **options)
        api.url = f"{self.url}/{name}"
        self.clusters[name] = api
        return api

    def remove_cluster(self, name: str) -> None:
        self.clusters.pop(name, None)

    def start(self) -> LocalKubernetes:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-kubernetes", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        shutil.rmtree(self.ca.directory, ignore_errors=True)

    def __enter__(self) -> LocalKubernetes:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # quiet: tests read `api.requests`
                return

            def setup(self) -> None:
                try:
                    self.request.do_handshake()
                except (OSError, ssl.SSLError):
                    with contextlib.suppress(OSError):
                        self.request.close()
                    raise
                super().setup()

            def handle(self) -> None:
                with contextlib.suppress(OSError, ssl.SSLError):
                    super().handle()

            def _send(self, response: Response) -> None:
                payload = response.payload()
                self.send_response(response.code)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for warning in response.warnings:
                    escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
                    self.send_header("Warning", f'299 - "{escaped}"')
                self.end_headers()
                self.wfile.write(payload)

            def _serve(self) -> None:
                name, _, rest = self.path.lstrip("/").partition("/")
                api = server.clusters.get(name)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._send(error_response(ApiError(
                        413, "RequestEntityTooLarge",
                        f"the request body is larger than {MAX_BODY_BYTES} bytes")))  # fmt: skip
                    return
                body = self.rfile.read(length) if length > 0 else b""
                if api is None:
                    self._send(
                        error_response(ApiError(404, "NotFound", f"no cluster {name!r} here"))
                    )
                    return
                peer = (
                    self.connection.getpeercert()
                    if isinstance(self.connection, ssl.SSLSocket)
                    else None
                )
                request = Request(
                    self.command,
                    "/" + rest,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    peer or None,
                )
                self._send(api.handle(request))

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler
