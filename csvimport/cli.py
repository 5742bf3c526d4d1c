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
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from csvimport import __version__
from csvimport.aws import AwsOptions
from csvimport.build import EXISTING, REJECTS, BuildOptions, BuildResult
from csvimport.build import build as run_build
from csvimport.duplicates import DuplicatePolicy
from csvimport.errors import (
    ConfigError,
    CsvImportError,
    ExitStatus,
    RefusedError,
    describe_aws_error,
)
from csvimport.mapping import suggest_mapping
from csvimport.pool import PoolSnapshot, existing_usernames, get_csv_header, read_pool
from csvimport.resources import schema_path
from csvimport.sources import SourceSpec, open_source
from csvimport.validate import REASONS

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


SourceArgument = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE",
        help="Legacy users: a .csv/.jsonl/.json file, or an SQLAlchemy URL "
        "(sqlite:///legacy.db, mysql+pymysql://..., postgresql+psycopg://...).",
    ),
]
TableOption = Annotated[str | None, typer.Option("--table", help="Database table to read.")]
QueryOption = Annotated[str | None, typer.Option("--query", help="SQL query to read.")]
DelimiterOption = Annotated[
    str | None, typer.Option("--delimiter", help="CSV delimiter; sniffed when not given.")
]
EncodingOption = Annotated[str, typer.Option("--encoding", help="Encoding of a source file.")]
PoolIdOption = Annotated[
    str | None,
    typer.Option("--pool-id", envvar="CSVIMPORT_POOL_ID", help="Target user pool id."),
]
PoolSnapshotOption = Annotated[
    Path | None,
    typer.Option(
        "--pool-spec",
        metavar="POOL_JSON",
        help="Build offline from a saved pool snapshot (a run directory's pool.json) "
        "instead of reading the live pool.",
        dir_okay=False,
    ),
]


def _snapshot(state: CliState, pool_id: str | None, pool_spec: Path | None) -> PoolSnapshot:
    if pool_spec is not None:
        return PoolSnapshot.load(pool_spec)
    if not pool_id:
        raise ConfigError(
            "no target pool: pass --pool-id (or set CSVIMPORT_POOL_ID)",
            hint="Or build offline with --pool-spec pool.json from an earlier run directory.",
        )
    return read_pool(state.aws.client("cognito-idp"), pool_id)


def _source_spec(
    source: str, table: str | None, query: str | None, delimiter: str | None, encoding: str
) -> SourceSpec:
    return SourceSpec(
        location=source, table=table, query=query, delimiter=delimiter, encoding=encoding
    )


@app.command("map")
def map_command(
    ctx: typer.Context,
    source: SourceArgument,
    pool_id: PoolIdOption = None,
    pool_spec: PoolSnapshotOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the mapping here instead of stdout.", dir_okay=False),
    ] = None,
    table: TableOption = None,
    query: QueryOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Write a starter mapping (TOML) matching the source's columns to the pool's attributes."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    snapshot = _snapshot(state, pool_id, pool_spec)
    opened = open_source(_source_spec(source, table, query, delimiter, encoding))
    text = suggest_mapping(opened.columns(), list(snapshot.header), source_name=opened.describe())
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists():
        raise RefusedError(
            f"{out} exists", hint="Pick another --out: csvimport never overwrites a mapping."
        )
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}: review every line before `csvimport build`", err=True)


@app.command()
def build(
    ctx: typer.Context,
    source: SourceArgument,
    mapping: Annotated[
        Path,
        typer.Option("--mapping", help="The mapping file (see `csvimport map`).", dir_okay=False),
    ],
    out: Annotated[Path, typer.Option("--out", help="The run directory to create.")],
    pool_id: PoolIdOption = None,
    pool_spec: PoolSnapshotOption = None,
    table: TableOption = None,
    query: QueryOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    duplicates: Annotated[
        DuplicatePolicy,
        typer.Option(
            "--duplicates",
            help="Which of several users with the same username (or unique email/phone) "
            "goes: keep-first, keep-latest ([legacy].updated) or reject-all.",
        ),
    ] = DuplicatePolicy.KEEP_FIRST,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Users per import file.", min=1, max=500_000)
    ] = 500_000,
    max_bytes: Annotated[
        int,
        typer.Option("--max-bytes", help="Bytes per import file.", min=1024, max=100 * 1024**2),
    ] = 100 * 1024**2,
    check_existing: Annotated[
        bool,
        typer.Option(
            "--check-existing",
            help="List the pool's users (ListUsers, paced) and report the users Cognito "
            "would skip because they already exist (existing.csv).",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Turn legacy users into validated Cognito import files in a new run directory."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    snapshot = _snapshot(state, pool_id, pool_spec)
    existing = None
    if check_existing:
        existing = frozenset(
            existing_usernames(
                state.aws.client("cognito-idp"),
                pool_id or snapshot.user_pool_id,
                case_sensitive=snapshot.case_sensitive,
            )
        )
    options = BuildOptions(
        source=_source_spec(source, table, query, delimiter, encoding),
        mapping=mapping,
        out=out,
        duplicates=duplicates,
        max_rows=max_rows,
        max_bytes=max_bytes,
        existing=existing,
    )
    with Progress(
        TextColumn("build"),
        BarColumn(),
        TextColumn("{task.completed:,} rows read"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("build", total=None)
        result = run_build(options, snapshot, progress=lambda rows: bar.advance(task, rows))
    _build_summary(result)
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2))
    if result.rejected or result.duplicates:
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


def _build_summary(result: BuildResult) -> None:
    def echo(text: str = "") -> None:
        typer.echo(text, err=True)

    echo(f"Built {result.run_dir}")
    echo(
        f"  {result.source_rows:,} source rows = {result.written:,} written "
        f"+ {result.rejected:,} rejected + {result.duplicates:,} duplicates"
    )
    for chunk in result.chunks:
        echo(f"  {chunk.file}: {chunk.rows:,} users, {chunk.bytes:,} bytes")
    if result.existing:
        echo(
            f"  Already in the pool, so Cognito will skip them: {result.existing:,} of the "
            f"written users (listed in {result.run_dir / EXISTING})."
        )
    if result.reasons:
        echo(f"  Why rows were refused (see {result.run_dir / REJECTS}):")
        for rule, count in result.reasons.most_common(5):
            echo(f"    {count:>8,}  {REASONS.get(rule, rule)}")


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
