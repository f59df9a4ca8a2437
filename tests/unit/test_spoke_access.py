"""The hub's access to spoke accounts (issue 16, item 5): one AssumeRole per
account and region while its credentials live, under threads too; refusals
reported and remembered briefly; nothing asked at home; no secret logged.

STS is botocore's own client with a Stubber: real request validation and
parsing, no network. Each test states the calls it expects; an unexpected
AssumeRole fails with botocore's UnStubbedResponseError."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from functions.aws import clients
from functions.aws.clients import Access
from functions.aws.spokes import SpokeAccess
from functions.core.places import Place
from functions.core.spokes import SpokeUnreachable
from functions.observability import logger
from functions.settings import Settings

HUB = "111122223333"
SPOKE = "444455556666"
OTHER = "777788889999"
REGION = "eu-west-1"
HUB_PLACE = Place(HUB, REGION)
SPOKE_PLACE = Place(SPOKE, REGION)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:9"  # never reached: the Stubber answers


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Hub:
    """A SpokeAccess over a stubbed STS client, and the AssumeRole requests it sent."""

    def __init__(self, *, external_id: str | None = None, template: str | None = None) -> None:
        self.sts = boto3.client(
            "sts",
            region_name=REGION,
            aws_access_key_id="hub-key",
            aws_secret_access_key="hub-secret",
        )
        self.stub = Stubber(self.sts)
        self.clock = Clock()
        self.sent: list[dict[str, Any]] = []
        self.sts.meta.events.register("before-parameter-build.sts.AssumeRole", self._record)
        settings = Settings(
            table_name="podid",
            aws_region=REGION,
            spoke_role_name=template if template is not None else "podid-spoke-{region}",
            spoke_external_id=external_id,
        )
        self.spokes = SpokeAccess(
            self.sts,
            settings,
            home=lambda: HUB_PLACE,
            function_name="podid-prod-reconcile",
            clock=self.clock,
            base=Access(endpoint_url=ENDPOINT),
        )

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.sent.append(dict(params))

    def grants(self, place: Place, secret: str = "spoke-secret", hours: float = 1) -> None:
        """STS will answer the next AssumeRole for this place with credentials."""
        self.stub.add_response(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": f"ASIA{place.account}{len(self.sent)}",
                    "SecretAccessKey": secret,
                    "SessionToken": f"token-of-{secret}",
                    "Expiration": self.clock.now + timedelta(hours=hours),
                },
                "AssumedRoleUser": {
                    "AssumedRoleId": "AROAEXAMPLE:podid-prod-reconcile",
                    "Arn": f"arn:aws:sts::{place.account}:assumed-role/"
                    f"podid-spoke-{place.region}/podid-prod-reconcile",
                },
            },
            {
                "RoleArn": f"arn:aws:iam::{place.account}:role/podid-spoke-{place.region}",
                "RoleSessionName": "podid-prod-reconcile",
                "DurationSeconds": 3600,
                **self._external(),
            },
        )

    def refuses(self, code: str, status: int = 403) -> None:
        self.stub.add_client_error(
            "assume_role", service_error_code=code, service_message="no", http_status_code=status
        )

    def _external(self) -> dict[str, str]:
        external = self.spokes._external_id  # what the hub was configured with
        return {"ExternalId": external} if external else {}


@pytest.fixture
def hub() -> Iterator[Hub]:
    made = Hub()
    with made.stub:
        yield made
        made.stub.assert_no_pending_responses()


def test_one_assume_role_serves_every_cluster_of_a_place(hub: Hub) -> None:
    # Given a spoke whose role STS grants once
    hub.grants(SPOKE_PLACE)
    # When a pass asks for it once per cluster, ten clusters
    given = [hub.spokes.access(SPOKE_PLACE) for _ in range(10)]
    # Then one AssumeRole served them all, with the spoke's temporary credentials
    assert hub.spokes.assume_calls == {SPOKE_PLACE: 1}
    assert len(set(given)) == 1
    access = given[0]
    assert access.access_key_id == f"ASIA{SPOKE}0"
    assert (access.secret_access_key, access.session_token) == (
        "spoke-secret",
        "token-of-spoke-secret",
    )
    assert access.expiration == T0 + timedelta(hours=1)
    assert access.endpoint_url == ENDPOINT  # the hub's endpoint (a sandbox) is kept


def test_each_account_and_region_gets_its_own_call(hub: Hub) -> None:
    places = [SPOKE_PLACE, Place(SPOKE, "us-east-1"), Place(OTHER, REGION)]
    for place in places:
        hub.grants(place, secret=f"secret-{place}")
    # When each place is asked for twice
    first = [hub.spokes.access(place) for place in places]
    again = [hub.spokes.access(place) for place in places]
    # Then each got its own role (the Stubber checked each RoleArn) and one call
    assert hub.spokes.assume_calls == dict.fromkeys(places, 1)
    assert first == again
    assert len({access.secret_access_key for access in first}) == 3


def test_credentials_are_refreshed_ahead_of_their_expiry(hub: Hub) -> None:
    hub.grants(SPOKE_PLACE, secret="first")
    first = hub.spokes.access(SPOKE_PLACE)
    # 54 minutes into an hour's session: still the same credentials
    hub.clock.advance(minutes=54, seconds=59)
    assert hub.spokes.access(SPOKE_PLACE) is first
    assert hub.spokes.assume_calls[SPOKE_PLACE] == 1
    # 5 minutes before expiry: new credentials, asked once
    hub.clock.advance(seconds=1)
    hub.grants(SPOKE_PLACE, secret="second")
    second = hub.spokes.access(SPOKE_PLACE)
    assert second.secret_access_key == "second"
    assert hub.spokes.access(SPOKE_PLACE) is second
    assert hub.spokes.assume_calls[SPOKE_PLACE] == 2


def test_threads_asking_for_one_place_make_one_call(hub: Hub) -> None:
    # Given STS slow to answer, so every thread asks while the first call is out
    hub.grants(SPOKE_PLACE)
    hub.sts.meta.events.register(
        "before-parameter-build.sts.AssumeRole", lambda **_: time.sleep(0.2)
    )
    threads = 8
    start = threading.Barrier(threads)
    got: list[Access] = []
    failed: list[BaseException] = []

    def ask() -> None:
        start.wait()
        try:
            got.append(hub.spokes.access(SPOKE_PLACE))
        except BaseException as error:
            failed.append(error)

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    # Then one AssumeRole answered all eight
    assert failed == []
    assert len(got) == threads
    assert len(set(got)) == 1
    assert hub.spokes.assume_calls == {SPOKE_PLACE: 1}
    assert len(hub.sent) == 1


def test_a_refusing_spoke_is_reported_and_remembered_for_a_minute(hub: Hub) -> None:
    # Given an account whose spoke stack was removed
    hub.refuses("AccessDenied")
    # When a pass asks for it once per cluster of that account
    with pytest.raises(SpokeUnreachable) as raised:
        hub.spokes.access(SPOKE_PLACE)
    for _ in range(9):
        hub.clock.advance(seconds=5)
        with pytest.raises(SpokeUnreachable):
            hub.spokes.access(SPOKE_PLACE)
    # Then STS was asked once and the message says what to check
    assert hub.spokes.assume_calls[SPOKE_PLACE] == 1
    assert raised.value.place == SPOKE_PLACE
    assert str(raised.value) == (
        f"spoke role arn:aws:iam::{SPOKE}:role/podid-spoke-{REGION} cannot be assumed: "
        f"AccessDenied — is the spoke stack deployed in {SPOKE} {REGION}?"
    )
    # and once the minute has passed it is asked again (the account came back)
    hub.clock.advance(seconds=16)
    hub.grants(SPOKE_PLACE)
    assert hub.spokes.access(SPOKE_PLACE).secret_access_key == "spoke-secret"
    assert hub.spokes.assume_calls[SPOKE_PLACE] == 2


def test_a_refusal_in_one_place_does_not_block_another(hub: Hub) -> None:
    hub.refuses("AccessDenied")
    hub.grants(Place(OTHER, REGION))
    with pytest.raises(SpokeUnreachable):
        hub.spokes.access(SPOKE_PLACE)
    assert hub.spokes.access(Place(OTHER, REGION)).access_key_id is not None


@pytest.mark.parametrize(
    ("code", "status"), [("Throttling", 400), ("InternalFailure", 500), ("ExpiredToken", 403)]
)
def test_other_failures_are_raised_and_not_remembered(hub: Hub, code: str, status: int) -> None:
    # throttling and 5xx were retried by botocore already; the hub's own expired
    # token says nothing about the spoke: none of them is the spoke's answer
    hub.refuses(code, status)
    with pytest.raises(ClientError) as raised:
        hub.spokes.access(SPOKE_PLACE)
    assert raised.value.response["Error"]["Code"] == code
    hub.grants(SPOKE_PLACE)
    assert hub.spokes.access(SPOKE_PLACE).access_key_id is not None
    assert hub.spokes.assume_calls[SPOKE_PLACE] == 2


def test_the_hubs_own_place_needs_no_assume_role(hub: Hub) -> None:
    # no AssumeRole is stubbed: one would fail the test
    assert hub.spokes.access(HUB_PLACE) == Access(endpoint_url=ENDPOINT)
    assert hub.spokes.access(HUB_PLACE) == Access(endpoint_url=ENDPOINT)
    assert hub.spokes.home == HUB_PLACE
    assert hub.spokes.assume_calls == {}
    # the same account in another region is a spoke (its own stack and role)
    hub.grants(Place(HUB, "us-east-1"))
    assert hub.spokes.access(Place(HUB, "us-east-1")).access_key_id is not None


def test_the_external_id_is_sent_when_configured() -> None:
    configured = Hub(external_id="podid-hub-7f3a")
    with configured.stub:
        configured.grants(SPOKE_PLACE)
        configured.spokes.access(SPOKE_PLACE)
        configured.stub.assert_no_pending_responses()
    assert configured.sent[0]["ExternalId"] == "podid-hub-7f3a"


def test_no_external_id_is_sent_unless_configured(hub: Hub) -> None:
    hub.grants(SPOKE_PLACE)
    hub.spokes.access(SPOKE_PLACE)
    assert "ExternalId" not in hub.sent[0]


def test_a_single_account_deployment_refuses_other_places_without_asking() -> None:
    alone = Hub(template="")  # SPOKE_ROLE_NAME unset
    with alone.stub:
        assert alone.spokes.access(HUB_PLACE) == Access(endpoint_url=ENDPOINT)
        with pytest.raises(SpokeUnreachable, match="no spoke role is configured"):
            alone.spokes.access(SPOKE_PLACE)
        alone.stub.assert_no_pending_responses()
    assert alone.spokes.assume_calls == {}


def test_no_secret_or_session_token_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Given the product's log lines as written (JSON with every extra field), at
    # DEBUG, and every other logger at DEBUG too
    written = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream, level = handler.setStream(written), logger.log_level
    logger.setLevel(logging.DEBUG)
    hub = Hub()
    try:
        with caplog.at_level(logging.DEBUG), hub.stub:
            # When a spoke is entered, refreshed, refused, and its access shown
            hub.grants(SPOKE_PLACE, secret="s3cr3t-first")
            shown = repr(hub.spokes.access(SPOKE_PLACE))
            hub.clock.advance(hours=1)
            hub.grants(SPOKE_PLACE, secret="s3cr3t-second")
            shown += repr(hub.spokes.access(SPOKE_PLACE))
            hub.refuses("AccessDenied")
            with pytest.raises(SpokeUnreachable) as raised:
                hub.spokes.access(Place(OTHER, REGION))
    finally:
        handler.setStream(stream)
        logger.setLevel(level)
    # Then the product did log what it did (so the capture works), and no secret
    # or session token is anywhere
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "spoke role assumed",
        "spoke role assumed",
        "spoke unreachable",
    ]
    assert lines[0]["role"] == f"arn:aws:iam::{SPOKE}:role/podid-spoke-{REGION}"
    text = written.getvalue() + caplog.text + shown + str(raised.value)
    for secret in ("s3cr3t-first", "s3cr3t-second"):
        assert secret not in text
        assert f"token-of-{secret}" not in text


def signed_with(client: object) -> Any:
    """The credentials botocore signs this client's requests with."""
    return getattr(client, "_request_signer")._credentials  # noqa: B009 - private to botocore


def test_clients_sign_with_the_spokes_credentials_and_forget_expired_ones() -> None:
    clients.reset()
    now = datetime.now(UTC)
    old = Access(
        endpoint_url=ENDPOINT,
        access_key_id="ASIAOLD",
        secret_access_key="old-secret",
        session_token="old-token",
        expiration=now + timedelta(seconds=1),
    )
    new = Access(
        endpoint_url=ENDPOINT,
        access_key_id="ASIANEW",
        secret_access_key="new-secret",
        session_token="new-token",
        expiration=now + timedelta(hours=1),
    )
    try:
        before = clients.eks(REGION, old)
        assert clients.eks(REGION, old) is before  # kept while it lives
        signing = signed_with(before)
        assert (signing.access_key, signing.token) == ("ASIAOLD", "old-token")
        time.sleep(1.1)  # the old credentials expire
        after = clients.eks(REGION, new)
        assert after is not before
        assert signed_with(after).token == "new-token"
        # Then the clients of the expired credentials were dropped when new ones came
        assert clients.cached_accesses() == {new}
    finally:
        clients.reset()
