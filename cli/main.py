"""`podid`: the operator CLI. It works against the local sandbox when one is
running (`podid sandbox up`), else against the account of the standard AWS
environment or profile, with the stack's table (`--table` or TABLE_NAME)."""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from cli import associations, clusters, declarations, findings, output, sandbox_commands

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
app.command()(declarations.declare)
app.command()(declarations.delete)
app.command("list")(declarations.list_declarations)
app.command("import")(declarations.import_)
app.command()(declarations.schema)
app.command()(associations.status)
app.command()(associations.plan)
app.command()(associations.wait)
app.command()(clusters.reconcile)
app.command()(findings.findings)

cluster_app = typer.Typer(help="Clusters the control plane manages.", no_args_is_help=True)
cluster_app.command()(clusters.enroll)
cluster_app.command("list")(clusters.list_clusters)
app.add_typer(cluster_app, name="cluster")

sandbox_app = typer.Typer(
    help="The embedded local stack (no AWS account needed).", no_args_is_help=True
)
sandbox_app.command()(sandbox_commands.up)
sandbox_app.command()(sandbox_commands.down)
sandbox_app.command()(sandbox_commands.demo)
app.add_typer(sandbox_app, name="sandbox")


def main(argv: list[str] | None = None) -> None:
    """Console script entry point. AWS refusing or unreachable is the user's
    to fix: one line saying what to do, exit 1. Anything else is a bug and
    keeps its traceback (tests call `app` directly and see it too)."""
    try:
        app(args=argv, prog_name="podid")
    except Exception as error:
        # botocore loads only when something failed: `podid --help` stays fast
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(error, EndpointConnectionError):
            _exit(
                f"cannot reach {error.kwargs.get('endpoint_url', 'AWS')}: start the sandbox "
                "(`podid sandbox up`), or check AWS_ENDPOINT_URL and AWS_REGION"
            )
        if isinstance(error, NoCredentialsError):
            _exit(
                "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY) for the stack's account, or start `podid sandbox up`"
            )
        if isinstance(error, ClientError):
            _exit(describe_client_error(error))
        raise


def describe_client_error(error: Any) -> str:
    detail = error.response.get("Error", {})
    code, message = detail.get("Code", "Error"), detail.get("Message", "")
    operation = error.operation_name
    if code == "ResourceNotFoundException" and operation in _TABLE_OPERATIONS:
        hint = "check --table / TABLE_NAME is the stack output TableName, in this region"
    elif "NonExistentQueue" in code or code == "QueueDoesNotExist":
        hint = "check --queue-url / RECONCILE_QUEUE_URL is the stack output ReconcileQueueUrl"
    elif "AccessDenied" in code or code in _CREDENTIAL_CODES:
        hint = (
            f"check the credentials (AWS_PROFILE) are the stack's account's and allow {operation}"
        )
    else:
        hint = "fix the cause above and run the command again"
    return f"AWS refused {operation}: {code}: {message}; {hint}"


_TABLE_OPERATIONS = {
    "GetItem",
    "PutItem",
    "DeleteItem",
    "UpdateItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
}
_CREDENTIAL_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
}


def _exit(message: str) -> NoReturn:
    output.error(message)
    raise SystemExit(1)


if __name__ == "__main__":
    main()
