"""The sandbox's EKS token verifier accepts exactly what STS would answer for
(a presigned GetCallerIdentity signed by a known key, for this cluster, unexpired)
and refuses every altered or foreign token. Tokens are presigned offline by botocore."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import botocore.auth
import pytest

from sandbox.eks_token_verifier import (
    AwsCredential,
    EksTokenVerifier,
    TokenInvalid,
    presigned_url,
)

KEY, SECRET = "AKIDPUSHER", "pusher-secret"
SESSION_KEY, SESSION_SECRET, SESSION_TOKEN = "ASIAPUSHER", "session-secret", "session-token"
PRINCIPAL = "arn:aws:iam::123456789012:role/podid-webhook-push"
CLUSTER = "blue"
HEADER = "x-k8s-aws-id"
LOCAL_STS = "127.0.0.1:5000"


def verifier() -> EksTokenVerifier:
    return EksTokenVerifier(
        CLUSTER,
        {
            KEY: AwsCredential(SECRET, PRINCIPAL),
            SESSION_KEY: AwsCredential(SESSION_SECRET, PRINCIPAL),
        },
        extra_hosts=[LOCAL_STS],
    )


def sts(
    *,
    region: str = "eu-west-1",
    endpoint: str | None = None,
    key: str = KEY,
    secret: str = SECRET,
    session_token: str | None = None,
) -> Any:
    return boto3.client(
        "sts",
        region_name=region,
        endpoint_url=endpoint or f"https://sts.{region}.amazonaws.com",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=session_token,
    )


def presign(
    client: Any,
    cluster: str | None = CLUSTER,
    operation: str = "get_caller_identity",
    expires: int = 60,
) -> str:
    def add_header(request: Any, **_: Any) -> None:
        if cluster is not None:
            request.headers[HEADER] = cluster

    client.meta.events.register("before-sign.sts", add_header)
    url = client.generate_presigned_url(operation, Params={}, ExpiresIn=expires, HttpMethod="GET")
    return as_token(url)


def as_token(url: str) -> str:
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def edit_query(token: str, **changes: str) -> str:
    parts = urlsplit(presigned_url(token))
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | changes
    return as_token(urlunsplit(parts._replace(query=urlencode(query))))


@pytest.fixture
def signed_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime.datetime], None]:
    """Presign as if at another time (botocore reads its clock here)."""

    def at(moment: datetime.datetime) -> None:
        monkeypatch.setattr(
            botocore.auth, "get_current_datetime", lambda **_: moment.replace(tzinfo=None)
        )

    return at


def test_a_token_for_this_cluster_names_the_signing_principal() -> None:
    assert verifier().principal(presign(sts())) == PRINCIPAL
    # the global endpoint signs for us-east-1; a local STS for its own host
    global_sts = sts(region="us-east-1", endpoint="https://sts.amazonaws.com")
    assert verifier().principal(presign(global_sts)) == PRINCIPAL
    local = sts(endpoint=f"http://{LOCAL_STS}", region="us-east-1")
    assert verifier().principal(presign(local)) == PRINCIPAL


def test_temporary_credentials_verify_with_their_own_session_token() -> None:
    client = sts(key=SESSION_KEY, secret=SESSION_SECRET, session_token=SESSION_TOKEN)
    good = presign(client)
    assert verifier().principal(good) == PRINCIPAL
    with pytest.raises(TokenInvalid):
        verifier().principal(edit_query(good, **{"X-Amz-Security-Token": "another"}))


def test_expiry_is_the_signed_time_plus_at_most_fifteen_minutes(
    signed_at: Callable[[datetime.datetime], None],
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    signed_at(now - datetime.timedelta(minutes=20))
    expired = presign(sts(), expires=60)
    signed_at(now - datetime.timedelta(seconds=30))
    fresh = presign(sts(), expires=60)
    too_long = presign(sts(), expires=901)
    assert verifier().principal(fresh) == PRINCIPAL
    with pytest.raises(TokenInvalid):
        verifier().principal(expired)
    with pytest.raises(TokenInvalid):
        verifier().principal(too_long)
    # the same token is refused once its minute is over
    with pytest.raises(TokenInvalid):
        verifier().principal(fresh, now=now.timestamp() + 60)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: presign(sts(), cluster="green"), id="another cluster"),
        pytest.param(lambda: presign(sts(), cluster=None), id="cluster header unsigned"),
        pytest.param(lambda: presign(sts(secret="wrong")), id="wrong secret"),
        pytest.param(lambda: presign(sts(key="AKIDOTHER")), id="unknown key"),
        pytest.param(
            lambda: presign(sts(endpoint="https://sts.eu-west-1.amazonaws.com.evil.example")),
            id="foreign host",
        ),
        pytest.param(lambda: presign(sts(endpoint="http://127.0.0.1:6000")), id="other local"),
        pytest.param(
            lambda: presign(
                sts(region="us-east-1", endpoint="https://sts.eu-west-1.amazonaws.com")
            ),
            id="region not the host's",
        ),
        pytest.param(
            lambda: presign(sts(region="eu-west-1", endpoint="https://sts.amazonaws.com")),
            id="global host not us-east-1",
        ),
        pytest.param(lambda: presign(sts(), operation="get_session_token"), id="other action"),
        pytest.param(lambda: "k8s-aws-v1.bm90LWEtdXJs", id="not a url"),
        pytest.param(lambda: "k8s-aws-v1.!!!", id="not base64"),
        pytest.param(lambda: "Bearer plainly-wrong", id="no prefix"),
    ],
)
def test_foreign_tokens_are_refused(make: Callable[[], str]) -> None:
    with pytest.raises(TokenInvalid):
        verifier().principal(make())


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda url: url + "&Action=ListUsers", id="repeated action"),
        pytest.param(
            lambda url: url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"), id="expires"
        ),
        pytest.param(
            lambda url: url.replace("Version=2011-06-15", "Version=2011-06-16"), id="version"
        ),
        pytest.param(lambda url: url.replace("/?", "/x?"), id="path"),
        pytest.param(lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"), id="signature digit"),
        pytest.param(lambda url: url + "&X-Amz-Signature=00", id="second signature"),
        pytest.param(lambda url: url.replace("X-Amz-Signature=", "X-Amz-Sig="), id="no signature"),
        pytest.param(
            lambda url: url.replace("%2Fsts%2Faws4_request", "%2Fiam%2Faws4_request"), id="service"
        ),
    ],
)
def test_any_edit_of_a_signed_url_is_refused(tamper: Callable[[str], str]) -> None:
    url = presigned_url(presign(sts()))
    for part in ("X-Amz-Expires=60", "Version=2011-06-15", "%2Fsts%2Faws4_request"):
        assert part in url  # each edit below changes something that is there
    with pytest.raises(TokenInvalid):
        verifier().principal(as_token(tamper(url)))
