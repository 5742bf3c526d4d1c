"""The ``csvimport`` command line: a thin Typer adapter over the library.

This is the only module that imports Typer. Each command turns its options into library
inputs, calls the library, and prints data on stdout. :func:`main` is the one place where
exceptions become a message on stderr and an exit status (see ``ExitStatus``).
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
import traceback as tb
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from csvimport import __version__
from csvimport.aws import AwsOptions
from csvimport.errors import ConfigError, CsvImportError, ExitStatus, describe_aws_error
from csvimport.pool import get_csv_header
from csvimport.resources import schema_path

PROG_NAME = "csvimport"
SANDBOX_EXTRA_HINT = "pip install 'csvimport[sandbox]' (or make install)"
# The sandbox signs nothing for real: any non-empty credentials work against it.
SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SANDBOX_DEFAULT_REGION = "us-east-1"
POOL_SPEC_HINT = (
    "A pool spec is a JSON object of CreateUserPool's parameters, PoolName at least; "
    "see schemas/sandbox-pool.json."
)

app = typer.Typer(
    name=PROG_NAME,
    help=(
        "Migrate legacy users into Amazon Cognito user pools with CSV user import jobs. "
        "Data goes to stdout, messages to stderr; exit status 0 all good, 1 some users "
        "failed, 2 usage or config error, 3 AWS error, 130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Plain Python tracebacks with --traceback, complete and easy to paste in a bug report.
    pretty_exceptions_enable=False,
)


@dataclass
class CliState:
    """What the global options decided, shared with every command via the Typer context."""

    aws: AwsOptions = field(default_factory=AwsOptions)
    traceback: bool = False


def _state(ctx: typer.Context) -> CliState:
    state = ctx.ensure_object(CliState)
    assert isinstance(state, CliState)
    return state


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG_NAME} {__version__}")
        raise typer.Exit()


# The AWS options and --traceback are accepted before the command (global) and after it
# (per command, overriding the global value), so `csvimport header --pool-id X
# --endpoint-url URL` works as people type it.
RegionOption = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="AWS region; falls back to $AWS_REGION, $AWS_DEFAULT_REGION, the profile's.",
    ),
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="AWS profile; falls back to $AWS_PROFILE.")
]
EndpointUrlOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send AWS calls to this URL, e.g. a csvimport sandbox; falls back to "
        "$AWS_ENDPOINT_URL.",
    ),
]
TracebackOption = Annotated[
    bool,
    typer.Option("--traceback", help="On error, show the Python traceback, not a message."),
]


@app.callback()
def _global_options(
    ctx: typer.Context,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    state = _state(ctx)
    state.aws = AwsOptions.resolve(region=region, profile=profile, endpoint_url=endpoint_url)
    state.traceback = traceback


def _command_state(
    ctx: typer.Context,
    *,
    traceback: bool,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
) -> CliState:
    """Apply a command's own AWS options and --traceback over the global ones."""
    state = _state(ctx)
    state.aws = replace(
        state.aws,
        region=region or state.aws.region,
        profile=profile or state.aws.profile,
        endpoint_url=endpoint_url or state.aws.endpoint_url,
    )
    state.traceback = state.traceback or traceback
    return state


@app.command()
def header(
    ctx: typer.Context,
    pool_id: Annotated[
        str,
        typer.Option(
            "--pool-id", envvar="CSVIMPORT_POOL_ID", help="User pool id, e.g. us-east-1_AbC123."
        ),
    ],
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Print the CSV header Cognito expects for a user pool (GetCSVHeader)."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    client = state.aws.client("cognito-idp")
    typer.echo(",".join(get_csv_header(client, pool_id)))


@app.command()
def sandbox(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)
    ] = 0,
    pool_spec: Annotated[
        Path | None,
        typer.Option(
            "--pool-spec",
            metavar="PATH",
            help="JSON spec of the user pool to create; the demo pool "
            "(schemas/sandbox-pool.json) if not given.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    job_seconds: Annotated[
        float, typer.Option(help="How long each import job runs, in seconds.", min=0)
    ] = 5.0,
    log_lag: Annotated[
        float,
        typer.Option(help="Seconds a job's CloudWatch log lines lag behind its end.", min=0),
    ] = 0.0,
    region: RegionOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Run a local Cognito sandbox (moto + csvimport's import-job API) in the foreground.

    The first line on stdout is one JSON object (endpoint_url, region, user_pool_id,
    user_pool_name, logs_role_arn); shell export lines follow. Ctrl-C or SIGTERM stops it.
    """
    try:
        from csvimport.sandbox import Sandbox, SandboxSettings, load_pool_spec
    except ImportError as exc:
        missing = f" ({exc.name} is missing)" if exc.name else ""
        raise ConfigError(
            f"The sandbox needs the optional dependencies{missing}.", hint=SANDBOX_EXTRA_HINT
        ) from exc

    # Load the spec before starting the server, so a bad spec fails fast.
    spec_path = pool_spec if pool_spec is not None else schema_path("sandbox-pool.json")
    try:
        spec = load_pool_spec(spec_path)
    except ValueError as exc:  # load_pool_spec's way of saying the file is unusable
        raise ConfigError(str(exc), hint=POOL_SPEC_HINT) from exc
    settings = SandboxSettings(job_seconds=job_seconds, log_lag_seconds=log_lag)
    state = _command_state(ctx, region=region, traceback=traceback)
    sandbox_region = state.aws.region or SANDBOX_DEFAULT_REGION
    # Both signals stop the sandbox the same way. SIGINT is installed explicitly because a
    # shell starts background jobs with SIGINT ignored, and `kill -INT` must still work.
    previous = {
        signum: signal.signal(signum, _raise_keyboard_interrupt)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        box = Sandbox(host=host, port=port, region=sandbox_region, settings=settings)
        try:
            box.start()
        except OSError as exc:  # the address is taken, or not ours to listen on
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                hint="Pick another --host or --port (0 picks a free port).",
            ) from exc
        try:
            info = box.create_pool(spec).to_json()
            print(json.dumps(info), flush=True)
            print(_sandbox_exports(info), flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
        finally:
            box.stop()
    except KeyboardInterrupt:
        # The normal way to stop the sandbox: not an error.
        typer.echo("sandbox stopped", err=True)
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(signum, handler)


def _sandbox_exports(info: dict[str, Any]) -> str:
    """Return shell lines that point boto3, the AWS CLI and csvimport at the sandbox."""
    variables = {
        "AWS_ENDPOINT_URL": info["endpoint_url"],
        "AWS_REGION": info["region"],
        # botocore reads only AWS_DEFAULT_REGION; csvimport and other SDKs read AWS_REGION.
        "AWS_DEFAULT_REGION": info["region"],
        **SANDBOX_CREDENTIALS,
        "CSVIMPORT_POOL_ID": info["user_pool_id"],
        "CSVIMPORT_LOGS_ROLE_ARN": info["logs_role_arn"],
    }
    return "\n".join(
        f"export {name}={shlex.quote(str(value))}" for name, value in variables.items()
    )


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line and exit with its status; the one error boundary.

    CsvImportError and botocore errors become an "error: ..." line and a "hint: ..." line
    on stderr, and their exit status; usage errors exit 2; Ctrl-C exits 130. With
    --traceback, CsvImportError and botocore errors are re-raised instead. Anything else is
    a bug: its traceback is printed and the exit status is INTERNAL (70).
    """
    state = CliState()
    command = typer.main.get_command(app)
    try:
        # Not standalone: Typer returns exit codes and raises errors instead of exiting,
        # so this function is the only place that prints them.
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name=PROG_NAME,
            standalone_mode=False,
            obj=state,
        )
        # Typer returns the code of typer.Exit, and turns Ctrl-C into Exit(130).
        status = result if isinstance(result, int) else ExitStatus.OK
        if status == ExitStatus.INTERRUPTED:
            typer.echo("interrupted", err=True)
    except (KeyboardInterrupt, typer.Abort):
        # Typer raises Abort for end of input at a prompt.
        typer.echo("interrupted", err=True)
        status = ExitStatus.INTERRUPTED
    except typer.TyperException as exc:
        # Since Typer 0.26 every usage error (unknown option, missing --pool-id, bad value)
        # is a TyperException, as is a ClickException raised by Typer itself.
        status = ExitStatus.USAGE
        message = exc.format_message()
        if message.strip():  # empty when Typer already printed the help (no arguments)
            _error(message, _usage_hint(exc))
    except CsvImportError as exc:
        if state.traceback:
            raise
        _error(exc.message, exc.hint)
        status = exc.exit_status
    except Exception as exc:
        translated = describe_aws_error(exc)
        if state.traceback:
            raise
        if translated is None:
            tb.print_exc()
            _error(f"internal error: {exc!r}", INTERNAL_ERROR_HINT)
            status = ExitStatus.INTERNAL
        else:
            _error(translated.message, translated.hint)
            status = translated.exit_status
    sys.exit(int(status))


INTERNAL_ERROR_HINT = (
    "This is a bug in csvimport, not in your data: please report it with the traceback above. "
    "Your run directory and journal are left as they were."
)


def _usage_hint(exc: typer.TyperException) -> str:
    # Usage errors carry the context of the command that failed; others do not.
    command_path = getattr(getattr(exc, "ctx", None), "command_path", None) or PROG_NAME
    return f"Run '{command_path} --help' for the options."


def _error(message: str, hint: str | None = None) -> None:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
