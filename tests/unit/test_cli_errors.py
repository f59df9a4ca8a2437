"""`podid` turns AWS refusing or unreachable into one actionable line, exit 1;
anything else keeps its traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from cli import main as cli_main


def failing(error: Exception) -> Callable[..., None]:
    """A command body that raises `error`, whatever it is called with."""

    def app(**_: object) -> None:
        raise error

    return app


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            "cannot reach http://127.0.0.1:1",
        ),
        (NoCredentialsError(), "no AWS credentials"),
        (
            ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "GetItem"
            ),
            "check --table",
        ),
    ],
)
def test_aws_errors_exit_1_with_what_to_do(
    error: Exception, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_main, "app", failing(error))
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["status"])
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert says in captured.out + captured.err


def test_other_errors_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "app", failing(KeyError("bug")))
    with pytest.raises(KeyError):
        cli_main.main(["status"])
