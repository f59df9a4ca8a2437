"""Errors as EKS and EKS Auth send them: rest-json, x-amzn-ErrorType + a JSON
message, with the HTTP status botocore's models give each error shape."""

from __future__ import annotations

import json
from typing import Any

from moto.core.exceptions import AWSError


class EmulatedError(AWSError):
    def __init__(self, code: str, status: int, message: str) -> None:
        super(AWSError, self).__init__(error_type=code, message=message)
        self.code = status
        self.error_code = code
        self.description = json.dumps({"message": message})
        self.headers = {
            "status": status,
            "x-amzn-ErrorType": code,
            "content-type": "application/json",
        }

    def response(self) -> tuple[int, dict[str, Any], str]:  # type: ignore[override]
        return self.code, self.headers, self.description

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return self.description

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in self.headers.items()]


def not_found(message: str) -> EmulatedError:
    return EmulatedError("ResourceNotFoundException", 404, message)


def invalid_parameter(message: str) -> EmulatedError:
    return EmulatedError("InvalidParameterException", 400, message)


def invalid_request(message: str) -> EmulatedError:
    return EmulatedError("InvalidRequestException", 400, message)


def access_denied(message: str) -> EmulatedError:
    return EmulatedError("AccessDeniedException", 400, message)
