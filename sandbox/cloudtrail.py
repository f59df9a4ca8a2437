"""CloudTrail for the sandbox: every IAM and EKS write that moto serves, from
any client in any process (the functions, `podid`, boto3, the aws CLI,
Terraform), becomes a management event in the shape EventBridge delivers.

It hooks moto's request dispatch, reads the request with moto's own
protocol parsers and the response with botocore's, and tells callers apart
by the access key that signed the request."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.parsers
from moto.core.responses import BaseResponse

from sandbox import arns
from sandbox.eks_emulation import service_model
from sandbox.transport import cloudtrail_event

RECORDED = frozenset({"iam", "eks"})
WRITES = ("Create", "Update", "Delete", "Tag", "Untag", "Put")
_SIGNING_KEY = re.compile(r"Credential=([^/,\s]+)/")
_log = logging.getLogger("podid.sandbox")


@dataclass(frozen=True)
class Trail:
    """Where events go, and who signed: (access key, service) -> caller ARN;
    any other key is `default_caller` (a person at the console)."""

    account: str
    region: str
    callers: Mapping[tuple[str, str], str]
    default_caller: str
    deliver: Callable[[dict[str, Any]], None]
    # any other key: the role behind it, when it is a role session (None: not one)
    identify: Callable[[str], str | None] = lambda _key: None

    def record(self, response: BaseResponse, result: tuple[int, Any, Any]) -> None:
        service = response.boto3_service_name
        if service not in RECORDED:
            return
        operation = response._get_action()
        if not operation.startswith(WRITES):
            return
        model = service_model(service).operation_model(operation)
        if not response.automated_parameter_parsing:
            response.parse_parameters(response.normalized_request)
        status, headers, body = result
        parsed = _parse_response(model, int(status), dict(headers), body)
        error = parsed.get("Error", {}).get("Code") if int(status) >= 300 else None
        elements = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        signed = _SIGNING_KEY.search(response.headers.get("Authorization", ""))
        key = signed.group(1) if signed else ""
        caller = self.callers.get((key, service)) or self.identify(key) or self.default_caller
        # the account the request acted in (moto: the signing key's, or an admin
        # role session's); EKS events in the region the request was signed for
        account = getattr(response, "current_account", None) or self.account
        region = self.region if service == "iam" else (response.region or self.region)
        self.deliver(
            cloudtrail_event(
                service,
                operation,
                request_parameters=_lower_first(_plain(dict(response.params))),
                response_elements=None if error else _plain(elements) or None,
                caller_arn=_as_session(caller),
                account=account,
                region=region,
                error_code=error,
            )
        )


_trails: list[Trail] = []
_lock = threading.Lock()
_original: list[Callable[[BaseResponse], Any]] = []


def attach(trail: Trail) -> Callable[[], None]:
    """Start recording into `trail`; returns the function that stops it."""
    with _lock:
        if not _original:
            _original.append(BaseResponse.call_action)
            BaseResponse.call_action = _recording_call_action  # type: ignore[method-assign]
        _trails.append(trail)

    def detach() -> None:
        with _lock:
            if trail in _trails:
                _trails.remove(trail)

    return detach


def _recording_call_action(self: BaseResponse) -> Any:
    result = _original[0](self)
    for trail in list(_trails):
        try:
            trail.record(self, result)
        except Exception:  # a trail never breaks the API call it watches
            _log.exception("could not record a CloudTrail event")
    return result


def _parse_response(model: Any, status: int, headers: dict[str, Any], body: Any) -> Any:
    protocol = model.metadata["protocol"]
    raw = body.encode() if isinstance(body, str) else (body or b"")
    parser = botocore.parsers.create_parser(protocol)
    return parser.parse(
        {"status_code": status, "headers": headers, "body": raw}, model.output_shape
    )


def _plain(value: Any) -> Any:
    """JSON types only, as CloudTrail records them (timestamps as strings)."""
    return json.loads(json.dumps(value, default=str))


def _lower_first(params: dict[str, Any]) -> dict[str, Any]:
    """CloudTrail requestParameters use the API's camelCase member names."""
    return {key[:1].lower() + key[1:]: value for key, value in params.items()}


def _as_session(caller: str) -> str:
    """A role signs as a session of itself; any other principal as itself."""
    arn = arns.parse(caller)
    if arn.service == "iam" and arn.resource.startswith("role/"):
        name = arn.resource_name
        return f"arn:{arn.partition}:sts::{arn.account}:assumed-role/{name}/{name}"
    return caller
