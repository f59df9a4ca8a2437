"""Errors the agent answers with: an HTTP status and a JSON body without secrets."""

from __future__ import annotations

import json


class AgentError(Exception):
    def __init__(self, status: int, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable

    def body(self) -> bytes:
        return json.dumps({"Code": self.code, "Message": self.message}).encode()


def bad_request(message: str) -> AgentError:
    return AgentError(400, "InvalidRequest", message)


# EKS Auth error code -> (HTTP status the agent answers, retryable upstream)
UPSTREAM_ERRORS: dict[str, tuple[int, bool]] = {
    "InvalidTokenException": (401, False),
    "ExpiredTokenException": (401, False),
    "InvalidParameterException": (400, False),
    "InvalidRequestException": (400, False),
    "AccessDeniedException": (403, False),
    "ResourceNotFoundException": (404, False),
    "ThrottlingException": (429, True),
    "ServiceUnavailableException": (503, True),
    "InternalServerException": (503, True),
}


def upstream_error(code: str, message: str) -> AgentError:
    status, retryable = UPSTREAM_ERRORS.get(code, (502, True))
    return AgentError(
        status, code.removesuffix("Exception") or "UpstreamError", message, retryable=retryable
    )
