"""STS adapter: the hub's credentials in each spoke account and region (issue 16,
item 5). One AssumeRole per place while its credentials live, however many
clusters and threads ask; a refusal is remembered briefly, so a pass over the
clusters of a departed account asks STS once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from functions.aws.clients import Access
from functions.aws.eks import error_code
from functions.core.places import Place
from functions.core.spokes import (
    SESSION_SECONDS,
    UNREACHABLE_CODES,
    SpokeUnreachable,
    credentials_until,
    failure_until,
    session_name,
    spoke_role_arn,
    unreachable_reason,
)
from functions.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import AssumeRoleRequestTypeDef

    from functions.settings import Settings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Entry:
    """What is known of a place until a moment: its credentials, or why not."""

    until: datetime
    access: Access | None = None
    refused: str | None = None  # why the spoke role could not be assumed


class SpokeAccess:
    """Credentials of the spoke role in each place; the hub's own place is the
    hub's own access (no AssumeRole at home). Give it clients.sts(): its retries
    (clients.RETRIES) absorb throttling before an error reaches here; and `home`,
    the hub's own place as the services know it (one answer for both)."""

    def __init__(
        self,
        sts_client: STSClient,
        settings: Settings,
        *,
        home: Callable[[], Place],
        function_name: str,
        clock: Clock = utc_now,
        base: Access | None = None,
    ) -> None:
        self._sts = sts_client
        self._home = home
        # the hub's partition is its spokes' (a role ARN cannot cross partitions)
        self._partition: str = sts_client.meta.partition
        self._template = settings.spoke_role_name
        self._external_id = settings.spoke_external_id
        self._session_name = session_name(function_name)
        self._clock = clock
        self._base = base or Access()  # the endpoint (sandbox) spokes are reached through too
        self._known: dict[Place, _Entry] = {}
        self._entering: dict[Place, threading.Lock] = {}
        self._guard = threading.Lock()  # the maps and counters, never held over a call
        # AssumeRole calls made per place (benchmarks, tests)
        self.assume_calls: Counter[Place] = Counter()

    @property
    def home(self) -> Place:
        return self._home()

    def access(self, place: Place) -> Access:
        """How to call AWS in this place; SpokeUnreachable when the spoke role
        cannot be assumed there (remembered for a minute)."""
        home = self._home()
        if place == home:
            return self._base
        if self._template is None:
            raise SpokeUnreachable(
                place,
                f"{place.account} {place.region} is not this deployment's account and region "
                f"({home.account} {home.region}) and no spoke role is configured "
                "(SPOKE_ROLE_NAME)",
            )
        entry = self._current(place)
        if entry is None:
            with self._lock_of(place):  # single flight: the others wait for this answer
                entry = self._current(place) or self._enter(place, self._template)
        if entry.access is None:
            raise SpokeUnreachable(place, entry.refused or "refused")
        return entry.access

    def forget_refusal(self, place: Place) -> None:
        """The spoke announced itself: a remembered refusal there is out of date."""
        with self._guard:
            entry = self._known.get(place)
            if entry is not None and entry.access is None:
                del self._known[place]

    def _current(self, place: Place) -> _Entry | None:
        with self._guard:
            entry = self._known.get(place)
        return entry if entry is not None and self._clock() < entry.until else None

    def _lock_of(self, place: Place) -> threading.Lock:
        with self._guard:
            return self._entering.setdefault(place, threading.Lock())

    def _enter(self, place: Place, template: str) -> _Entry:
        role_arn = spoke_role_arn(self._partition, place, template)
        entry = self._assume(place, role_arn)
        with self._guard:
            self._known[place] = entry
        return entry

    def _assume(self, place: Place, role_arn: str) -> _Entry:
        with self._guard:
            self.assume_calls[place] += 1
        asked: AssumeRoleRequestTypeDef = {
            "RoleArn": role_arn,
            "RoleSessionName": self._session_name,
            "DurationSeconds": SESSION_SECONDS,
        }
        if self._external_id is not None:
            asked["ExternalId"] = self._external_id
        try:
            # throttling and 5xx: botocore retries (clients.RETRIES), then it raises
            credentials = self._sts.assume_role(**asked)["Credentials"]
        except ClientError as error:
            code = error_code(error)
            if code not in UNREACHABLE_CODES:
                raise
            reason = unreachable_reason(role_arn, place, code)
            logger.warning("spoke unreachable", extra={"place": str(place), "reason": reason})
            return _Entry(until=failure_until(self._clock()), refused=reason)
        expiration = credentials["Expiration"]
        access = replace(
            self._base,
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expiration=expiration,
        )
        logger.info(
            "spoke role assumed",
            extra={"place": str(place), "role": role_arn, "expiration": expiration.isoformat()},
        )
        return _Entry(until=credentials_until(expiration), access=access)
