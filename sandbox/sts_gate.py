"""sts:AssumeRole decided as STS does, for moto in server mode.

moto (5.2.x) answers AssumeRole into any account, for a role that does not
exist, without reading its trust policy or sts:ExternalId. The gate decides
each call first, from the STS API Reference (AssumeRole) and the IAM User
Guide, with the sandbox's own trust evaluator (sandbox.iam_policy):

- the role must exist in the target account (moto keys IAM by account); a
  missing role and a refused caller get the same AccessDenied, as from STS;
- the trust policy must allow the caller sts:AssumeRole (and sts:TagSession
  when Tags are sent, sts:SetSourceIdentity with a SourceIdentity); an
  explicit Deny wins, no Allow denies;
- DurationSeconds above the role's MaxSessionDuration, or above one hour for
  a role session chaining to another role, is a ValidationError.

Who calls is read from the signing access key (`caller_of`). Organizations
membership (aws:PrincipalOrgID) comes from moto's Organizations backend:
accounts join an organization through the Organizations API there, as they
do in AWS, so the gate reads the same truth the clients wrote, not a second
registry. Not emulated: the caller's own identity-based policies (moto's
callers carry none; the hub's grant is checked in tests/infra), SCPs and
condition keys other than those `requests` sets (they are absent).

Call `install()` once before starting a moto server; it is idempotent. It
gates the moto server only: in-process `mock_aws` keeps moto's answers.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from moto.iam.models import get_account_id_from, iam_backends
from moto.organizations.models import organizations_backends
from moto.sts.models import sts_backends
from moto.sts.responses import TokenResponse
from werkzeug.exceptions import HTTPException

from sandbox import arns, iam_policy

ASSUME_ROLE = "sts:AssumeRole"
TAG_SESSION = "sts:TagSession"
SET_SOURCE_IDENTITY = "sts:SetSourceIdentity"
CHAINED_MAX_SECONDS = 3600  # STS: a role session assuming a role gets at most one hour
DEFAULT_SECONDS = 3600
MIN_SECONDS = 900
_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
# any key as signed (moto itself only recognises 20-character AKIA/ASIA-style keys)
_SIGNING_KEY = re.compile(r"Credential=([^/,\s]+)/")


class StsError(HTTPException):
    """An error as STS sends it (awsQuery): an XML ErrorResponse and its status."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__()
        self.code = status
        self.error_code = code
        self.message = message
        self.description = (
            f'<ErrorResponse xmlns="{_XMLNS}"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            "<RequestId>0</RequestId></ErrorResponse>"
        )

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", "text/xml")]

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return str(self.description)


def access_denied(caller_arn: str, role_arn: str) -> StsError:
    return StsError(
        "AccessDenied",
        403,
        f"User: {caller_arn} is not authorized to perform: {ASSUME_ROLE} on resource: {role_arn}",
    )


def validation_error(message: str) -> StsError:
    return StsError("ValidationError", 400, message)


@dataclass(frozen=True, slots=True)
class Principal:
    """An IAM principal as STS sees it: `arn` is what error messages name (a
    session's ARN for an assumed role); `role_arn` the role behind a session."""

    arn: str
    account: str
    role_arn: str = ""
    service: str = ""  # a service principal (e.g. lambda.amazonaws.com) calls for itself

    @classmethod
    def of_service(cls, name: str) -> Principal:
        return cls(name, "", service=name)

    @classmethod
    def session(cls, role_arn: str, session_name: str) -> Principal:
        role = arns.parse(role_arn)
        return cls(
            f"arn:{role.partition}:sts::{role.account}:assumed-role/"
            f"{role.resource_name}/{session_name}",
            role.account,
            role_arn,
        )

    @property
    def principal_arn(self) -> str:
        """aws:PrincipalArn: the role's ARN for a session, else the principal's."""
        return self.role_arn or self.arn


class Principals:
    """Access keys the sandbox hands out itself (moto accepts any key) -> who they are."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Principal] = {}

    def register(self, access_key: str, principal: Principal) -> None:
        with self._lock:
            self._by_key[access_key] = principal

    def forget(self, access_key: str) -> None:
        with self._lock:
            self._by_key.pop(access_key, None)

    def get(self, access_key: str) -> Principal | None:
        with self._lock:
            return self._by_key.get(access_key)


PRINCIPALS = Principals()
# (caller ARN, role ARN, outcome) of the latest calls, for tests to see
DECISIONS: deque[tuple[str, str, str]] = deque(maxlen=1000)


def caller_of(access_key: str, partition: str) -> Principal:
    """The principal behind an access key: one the sandbox registered; else a key
    moto issued (an assumed-role session, or an IAM user's key); else moto's own
    answer for any other key, a user of its default account."""
    registered = PRINCIPALS.get(access_key)
    if registered is not None:
        return registered
    account = get_account_id_from(access_key)
    iam = iam_backends[account][partition]
    key = iam.access_keys.get(access_key)
    if key is not None and key.role_arn:
        assumed = sts_backends[account][partition].get_assumed_role_from_access_key(access_key)
        session = assumed.session_name if assumed is not None else access_key
        return Principal.session(key.role_arn, session)
    user = iam.get_user_from_access_key_id(access_key)
    if user is not None:
        return Principal(user.arn, account)
    return Principal(f"arn:{partition}:iam::{account}:user/moto", account)


def organization_of(account: str, partition: str) -> str | None:
    """The id of the organization `account` belongs to, per moto's Organizations."""
    own = organizations_backends[account][partition].org
    if own is not None:
        return str(own.id)  # the management account
    management = organizations_backends.master_accounts.get(account)
    if management is None:
        return None
    backend = organizations_backends[management[0]][management[1]]
    if backend.org is None or all(a.id != account for a in backend.accounts):
        return None
    return str(backend.org.id)


@dataclass(frozen=True, slots=True)
class Call:
    """One AssumeRole request, as its parameters arrived."""

    role_arn: str
    session_name: str
    duration: int
    external_id: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    source_identity: str | None = None


def requests(
    caller: Principal, call: Call, partition: str, now: datetime
) -> list[iam_policy.Request]:
    """What STS authorizes for the call, with the request's condition keys."""
    context: dict[str, str | tuple[str, ...]] = {
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
        "sts:RoleSessionName": call.session_name,
    }
    if caller.service:
        context["aws:PrincipalServiceName"] = caller.service
        context["aws:PrincipalIsAWSService"] = "true"
    else:
        context["aws:PrincipalArn"] = caller.principal_arn
        context["aws:PrincipalAccount"] = caller.account
        organization = organization_of(caller.account, partition)
        if organization:
            context["aws:PrincipalOrgID"] = organization
    if call.external_id is not None:
        context["sts:ExternalId"] = call.external_id
    actions = [ASSUME_ROLE]
    if call.tags:
        context |= {f"aws:RequestTag/{key}": value for key, value in call.tags}
        context["aws:TagKeys"] = tuple(key for key, _ in call.tags)
        actions.append(TAG_SESSION)
    if call.source_identity is not None:
        context["sts:SourceIdentity"] = call.source_identity
        actions.append(SET_SOURCE_IDENTITY)
    who = (
        iam_policy.Caller.service(caller.service)
        if caller.service
        else iam_policy.Caller.aws(caller.arn, role_arn=caller.role_arn)
    )
    return [iam_policy.Request(who, action, context) for action in actions]


def decide(caller: Principal, call: Call, partition: str) -> None:
    """Raise the error STS would answer, or return when it would mint credentials."""
    try:
        target = arns.parse(call.role_arn)
        role = iam_backends[target.account][partition].get_role_by_arn(call.role_arn)
    except Exception as exc:  # not an ARN, or moto's own IAMNotFoundException
        raise access_denied(caller.arn, call.role_arn) from exc
    try:
        policy = iam_policy.load(role.assume_role_policy_document)
        decisions = iam_policy.decide_all(
            policy, requests(caller, call, partition, datetime.now(UTC))
        )
    except iam_policy.PolicyInvalid as exc:
        raise access_denied(caller.arn, call.role_arn) from exc
    except iam_policy.NotEvaluable as exc:
        # never guess an answer the IAM documentation does not give
        raise StsError(
            "EmulationCannotDecide", 501, f"the sandbox cannot evaluate {call.role_arn}: {exc}"
        ) from exc
    if not all(d.allowed for d in decisions):
        raise access_denied(caller.arn, call.role_arn)
    if call.duration > int(role.max_session_duration or DEFAULT_SECONDS):
        raise validation_error(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    if caller.role_arn and call.duration > CHAINED_MAX_SECONDS:
        raise validation_error(
            "The requested DurationSeconds exceeds the 1 hour session limit "
            "for roles assumed by role chaining."
        )


def _call(response: TokenResponse) -> Call:
    duration = response._get_int_param("DurationSeconds", DEFAULT_SECONDS)
    if duration < MIN_SECONDS:
        raise validation_error(
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed "
            f"to satisfy constraint: Member must have value greater than or equal to {MIN_SECONDS}"
        )
    tags = response._get_param("Tags") or []
    return Call(
        role_arn=str(response._get_param("RoleArn") or ""),
        session_name=str(response._get_param("RoleSessionName") or ""),
        duration=duration,
        external_id=response._get_param("ExternalId"),
        tags=tuple((str(t["Key"]), str(t["Value"])) for t in tags),
        source_identity=response._get_param("SourceIdentity"),
    )


_install_lock = threading.Lock()
_original: list[Callable[[TokenResponse], Any]] = []


def install() -> None:
    """Put the gate in front of the moto server's AssumeRole."""
    with _install_lock:
        if _original:
            return
        original = TokenResponse.assume_role
        _original.append(original)

        def assume_role(self: TokenResponse) -> Any:
            if not self.is_werkzeug_request:
                # in-process mock_aws stays moto's: whether a test was gated must not
                # depend on whether some other test installed the gate first
                return original(self)
            call = _call(self)
            signed = _SIGNING_KEY.search(self.headers.get("Authorization", ""))
            caller = caller_of(signed.group(1) if signed else "", self.partition)
            try:
                decide(caller, call, self.partition)
            except StsError as exc:
                DECISIONS.append((caller.arn, call.role_arn, exc.error_code))
                raise
            DECISIONS.append((caller.arn, call.role_arn, "Allow"))
            return original(self)

        TokenResponse.assume_role = assume_role  # type: ignore[method-assign]
