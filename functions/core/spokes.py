"""The hub's way into a spoke: the role each spoke stack creates, and the rules for
keeping its credentials (issue 16, hub and spokes). Pure: no I/O."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from functions.core.arns import check_region, parse_role_arn
from functions.core.errors import DomainError
from functions.core.places import Place, Unreachable

REGION_FIELD = "{region}"
# IAM role names: [\w+=,.@-]{1,64}
MAX_ROLE_NAME = 64
# the longest region names (us-isof-south-1): a template must fit every region
LONGEST_REGION = 15
# STS AssumeRole: RoleSessionName [\w+=,.@-]{2,64}, ExternalId [\w+=,.@:/-]{2,1224}
_ROLE_NAME = re.compile(rf"^[\w+=,.@-]{{1,{MAX_ROLE_NAME}}}$", re.ASCII)
_NOT_SESSION_CHAR = re.compile(r"[^\w+=,.@-]", re.ASCII)
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
MIN_SESSION_NAME, MAX_SESSION_NAME = 2, 64
# Organizations: o- then 10-32 lowercase letters or digits
ORGANIZATION_ID = re.compile(r"^o-[a-z0-9]{10,32}$", re.ASCII)

# The spoke role's MaxSessionDuration (infra/spoke.py MAX_SESSION)
SESSION_SECONDS = 3600
# credentials are replaced this long before STS says they expire
REFRESH_MARGIN = timedelta(minutes=5)
# a spoke that refused is not asked again for this long
FAILURE_TTL = timedelta(seconds=60)
# STS error codes saying this place cannot be entered (spoke gone, trust changed,
# region not enabled): reported per cluster, never retried in a loop
UNREACHABLE_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "NoSuchEntity",
        "NoSuchEntityException",
        "RegionDisabledException",
    }
)


class SpokeUnreachable(Unreachable, DomainError):
    """The hub cannot act in this account and region: its spoke role refused."""

    def __init__(self, place: Place, reason: str) -> None:
        super().__init__(place, reason)
        self.args = (reason,)  # the reason already names the place and the role


def spoke_role_template(hub_stack_name: str) -> str:
    # IAM names are per account: one role per region, so each spoke stack has its own
    return f"{hub_stack_name[:40]}-spoke-{REGION_FIELD}"


def spoke_role_name(hub_stack_name: str, region: str) -> str:
    return spoke_role_template(hub_stack_name).replace(REGION_FIELD, region)


def check_spoke_role_template(template: str) -> str:
    """A role name holding {region} once, valid for IAM in every region; else
    ValueError naming the rule."""
    if template.count(REGION_FIELD) != 1:
        raise ValueError(
            f"{template!r} must contain {REGION_FIELD} exactly once (the spoke role is one "
            "per region, e.g. podid-spoke-{region})"
        )
    fixed = template.replace(REGION_FIELD, "")
    if fixed and not _ROLE_NAME.fullmatch(fixed):
        raise ValueError(
            f"{template!r} is not a valid IAM role name around {REGION_FIELD}: only letters, "
            "digits and +=,.@_- are allowed"
        )
    if len(fixed) + LONGEST_REGION > MAX_ROLE_NAME:
        raise ValueError(
            f"{template!r} gives role names longer than {MAX_ROLE_NAME} characters in some "
            f"regions: at most {MAX_ROLE_NAME - LONGEST_REGION} characters besides "
            f"{REGION_FIELD}"
        )
    return template


def is_spoke_role(role_arn: str | None, template: str | None) -> bool:
    """Whether an IAM role ARN is a spoke role of this hub (in any account and
    region): the hub's own writes in a spoke are made as it."""
    if not role_arn or not template:
        return False
    try:
        name = parse_role_arn(role_arn).name
    except ValueError:
        return False
    before, after = template.split(REGION_FIELD)
    region = name.removeprefix(before).removesuffix(after)
    if not (name.startswith(before) and name.endswith(after) and region):
        return False
    try:
        check_region(region)
    except ValueError:
        return False
    return True


def spoke_role_arn(partition: str, place: Place, template: str) -> str:
    name = template.replace(REGION_FIELD, place.region)
    return f"arn:{partition}:iam::{place.account}:role/{name}"


def check_external_id(value: str) -> str:
    if not EXTERNAL_ID.fullmatch(value):
        raise ValueError(
            "the spoke external id must be 2-1224 characters of letters, digits and "
            f"+=,.@:/_- (STS sts:ExternalId); got {len(value)} characters"
        )
    return value


def check_organization_id(value: str) -> str:
    if not ORGANIZATION_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an AWS Organizations id (o- followed by 10-32 lowercase "
            "letters or digits)"
        )
    return value


def session_name(name: str) -> str:
    """A RoleSessionName from a function name: IAM name characters, 2-64 long
    (CloudTrail in the spoke shows which hub function acted)."""
    safe = _NOT_SESSION_CHAR.sub("-", name)[:MAX_SESSION_NAME]
    return safe if len(safe) >= MIN_SESSION_NAME else f"podid-{safe}"[:MAX_SESSION_NAME]


def credentials_until(expiration: datetime) -> datetime:
    """Until when credentials expiring then are handed out (a caller gets at least
    the margin to finish its calls)."""
    return expiration - REFRESH_MARGIN


def failure_until(now: datetime) -> datetime:
    return now + FAILURE_TTL


def unreachable_reason(role_arn: str, place: Place, code: str) -> str:
    question = (
        f"is {place.region} enabled in {place.account}?"
        if code == "RegionDisabledException"
        else f"is the spoke stack deployed in {place.account} {place.region}?"
    )
    return f"spoke role {role_arn} cannot be assumed: {code} — {question}"
