"""One HTTP request and its answer, independent of the server that carries them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from sandbox.localkube import protobuf
from sandbox.localkube.errors import ApiError, bad_request

MAX_BODY_BYTES = 3 * 1024 * 1024  # the apiserver's request body limit
_BODY_TYPES = frozenset(
    {
        "",
        "application/json",
        "application/yaml",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        protobuf.MEDIA_TYPE,
    }
)
_JSON_ACCEPTED = ("application/json", "application/*", "*/*")


def accepts_json(accept: str) -> bool:
    """Every answer here is JSON: a client that takes only protobuf gets a 406."""
    if not accept.strip():
        return True
    return any(part.split(";")[0].strip() in _JSON_ACCEPTED for part in accept.split(","))


@dataclass
class Request:
    method: str
    target: str  # path and query after the cluster prefix
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    raw_body: bytes = b""
    peer_certificate: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.target).path.rstrip("/") or "/"

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.target).query).items()}

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def media_type(self) -> str:
        return self.header("content-type").split(";", 1)[0].strip().lower()

    def body(self) -> Any:
        if not self.raw_body:
            return None
        if self.media_type not in _BODY_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(sorted(_BODY_TYPES - {''}))}",
            )
        if self.media_type == protobuf.MEDIA_TYPE:
            return protobuf.decode(self.raw_body)
        try:
            if self.media_type in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(self.raw_body)
            return json.loads(self.raw_body)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc


@dataclass
class Response:
    code: int
    body: Any  # a JSON-able value, or bytes sent as they are
    warnings: list[str] = field(default_factory=list)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def error_response(error: ApiError) -> Response:
    return Response(error.code, error.status())
