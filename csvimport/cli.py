"""The ``csvimport`` command line: a thin Typer adapter over the library.

This is the only module that imports Typer. Each command turns its options into library
inputs, calls the library, and prints data on stdout. :func:`main` is the one place where
exceptions become a message on stderr and an exit status (see ``ExitStatus``).
"""

from __future__ import annotations

import functools
import json
import shlex
import signal
import sys
import threading
import time
import traceback as tb
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from csvimport import __version__
from csvimport.assess.page import write_assessment
from csvimport.assess.predict import predict
from csvimport.assess.profile import assess_source
from csvimport.assess.propose import DEFAULT_POOL_NAME, propose, write_proposal
from csvimport.aws import AwsOptions
from csvimport.build.builder import BuildOptions, BuildResult
from csvimport.build.builder import build as run_build
from csvimport.build.deferral import PasswordFallback
from csvimport.build.duplicates import DuplicatePolicy
from csvimport.build.mapping.suggest import (
    MAP_SAMPLE_ROWS,
    columns_with_line_breaks,
    suggest_mapping,
)
from csvimport.build.sources.base import SourceError, SourceSpec
from csvimport.build.sources.opener import open_source
from csvimport.build.validate import REASONS
from csvimport.errors import (
    ConfigError,
    CsvImportError,
    ExitStatus,
    RefusedError,
    ServiceError,
    describe_aws_error,
)
from csvimport.files import replaced_private
from csvimport.legacyhash import TRIGGER_SECONDS, at_risk
from csvimport.migrate.lookupfile import write_lookup_file
from csvimport.migrate.package import (
    ZIP_COMPRESSLEVEL,
    Arch,
    PackageOptions,
    deploy_steps,
    write_package,
)
from csvimport.migrate.settings import LOOKUP_FILE
from csvimport.passes import followups as followup_pass
from csvimport.passes.undo import DEFAULT_RATE as UNDO_RATE
from csvimport.passes.undo import (
    UndoPlan,
    Window,
    open_journal,
    plan_undo,
    recorded_window,
    run_undo,
)
from csvimport.passwords.notice import NoticeFields, write_notices
from csvimport.passwords.recovery import RecoveryPolicy
from csvimport.passwords.resets import (
    DEFAULT_RATE,
    ResetJournal,
    plan_resets,
    read_usernames,
    run_wave,
)
from csvimport.pool import PoolSnapshot, existing_usernames, get_csv_header, read_pool
from csvimport.redact import mask_credentials, mask_username
from csvimport.report.logs import LogWait
from csvimport.report.reconcile import Reconciler
from csvimport.report.render import write_report
from csvimport.report.results import ResultFiles
from csvimport.report.retrysource import RETRY_SOURCE, write_retry_source
from csvimport.report.sourcecount import SourceComparison, count_source
from csvimport.report.verify import State as VerifyState
from csvimport.report.verify import verify as verify_pool
from csvimport.resources import schema_path
from csvimport.retry import USER_LIST, paced
from csvimport.run.jobevents import Event, EventKind, JobEnded, JobProgress, Note
from csvimport.run.jobs import Importer, StartOptions
from csvimport.run.jobstatus import ChunkState, RunStatus, explain_end
from csvimport.run.journal import Journal, JournalLock, Step
from csvimport.run.migrationcheck import (
    AliasCheck,
    AliasPlan,
    MigrationCheck,
    Strategy,
    check_setup,
    deferred_or_refuse,
)
from csvimport.rundir import DEFERRED, EXISTING, FOLLOWUPS, PASSWORDS, REJECTS, REPORT, RunDir

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


class PasswordHashes(StrEnum):
    """--password-hashes: whether build imports the mapped password hashes."""

    ON = "on"
    OFF = "off"


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
    typer.Option(
        "--traceback",
        help="On error, show the Python traceback before the message (same exit status).",
    ),
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
    spec = _source_spec(source, table, query, delimiter, encoding)
    opened = open_source(replace(spec, chunk_rows=MAP_SAMPLE_ROWS))
    try:
        multiline = columns_with_line_breaks(opened.chunks())
    except SourceError as exc:  # still write the mapping: `build` refuses the source alike
        typer.echo(f"note: no values sampled, so no fold_line_breaks proposed: {exc}", err=True)
        multiline = []
    text = suggest_mapping(opened.columns(), list(snapshot.header), source_name=opened.describe(),
                           multiline=multiline)  # fmt: skip
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists():
        raise RefusedError(
            f"{out} exists", hint="Pick another --out: csvimport never overwrites a mapping."
        )
    with replaced_private(out) as f:
        f.write(text)
    typer.echo(f"wrote {out}: review every line before `csvimport build`", err=True)


@contextmanager
def _rows_read(what: str) -> Iterator[Callable[[int], None]]:
    """A progress line on stderr (a terminal only) counting the source rows read."""
    with Progress(
        TextColumn(what),
        BarColumn(),
        TextColumn("{task.completed:,} rows read"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(what, total=None)
        yield lambda rows: bar.advance(task, rows)


@app.command()
def assess(
    ctx: typer.Context,
    source: SourceArgument,
    out: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="The assessment folder (created if missing)."),
    ] = Path("assessment"),
    table: TableOption = None,
    query: QueryOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    pool_name: Annotated[
        str, typer.Option("--pool-name", help="The proposed pool's name.")
    ] = DEFAULT_POOL_NAME,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            dir_okay=False,
            help="With --pool-id or --pool-spec: predict what `build` would write, "
            "reject and drop (no run is kept).",
        ),  # fmt: skip
    ] = None,
    pool_id: PoolIdOption = None,
    pool_spec: PoolSnapshotOption = None,
    duplicates: Annotated[
        DuplicatePolicy,
        typer.Option("--duplicates", help="The build's duplicates policy, for the prediction."),
    ] = DuplicatePolicy.KEEP_FIRST,
    password_fallback: Annotated[
        PasswordFallback | None,
        typer.Option(
            "--password-fallback",
            help="The build's --password-fallback, for the prediction (default: "
            "what the proposed strategy asks for).",
        ),  # fmt: skip
    ] = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Profile the legacy users (columns, duplicates, password hashes) and propose the pool:
    OUT/assessment.html, assessment.json, pool-spec.json, pool.template.json, mapping.toml
    and proposal.json."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    spec = _source_spec(source, table, query, delimiter, encoding)
    # A pool alone (CSVIMPORT_POOL_ID is often set) predicts nothing and is not an error.
    if mapping is not None and pool_id is None and pool_spec is None:
        raise ConfigError(
            "A prediction needs both a mapping and a pool.",
            hint="Give --mapping with --pool-id (or --pool-spec), or neither.",
        )
    if mapping is not None and not mapping.is_file():
        raise ConfigError(f"{mapping}: no such mapping file", hint="Check --mapping's path.")
    snapshot = _snapshot(state, pool_id, pool_spec) if mapping is not None else None
    with _rows_read("assess") as advance:
        found = assess_source(spec, progress=advance)
    proposal = propose(found, pool_name=pool_name)
    if mapping is not None and snapshot is not None:
        fallback = password_fallback or proposal.password_fallback
        found.predicted = predict(spec, mapping, snapshot, duplicates=duplicates,
                                  password_fallback=fallback)  # fmt: skip
        p = found.predicted
        typer.echo(f"predicted build ({mapping}): {p['written']:,} written, "
                   f"{p['rejected_total']:,} rejected, {p['duplicates']:,} duplicates, "
                   f"{p['deferred']:,} deferred", err=True)  # fmt: skip
    paths = write_assessment(found, out, proposal=proposal.to_json())
    paths += write_proposal(proposal, out)
    census = found.passwords
    typer.echo(
        f"assessed {found.rows:,} users in {len(found.columns)} columns; passwords: "
        f"{census.importable + census.convertible:,} importable, "
        f"{census.at_first_sign_in:,} at first sign-in, {census.unknown + census.empty:,} "
        "must reset",
        err=True,
    )
    typer.echo(f"strategy: {proposal.strategy.value} (build --password-fallback "
               f"{proposal.password_fallback.value})", err=True)  # fmt: skip
    typer.echo(f"sign-in: {json.dumps(proposal.choice('sign_in').value)}; case-sensitive "
               f"usernames: {str(proposal.case_sensitive).lower()}", err=True)  # fmt: skip
    for path in paths:
        typer.echo(f"wrote {path}", err=True)
    typer.echo(
        "Review the proposal before creating the pool: required attributes, sign-in and case "
        "sensitivity can never change once it exists (assessment.html says why each choice).",
        err=True,
    )


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
    password_hashes: Annotated[
        PasswordHashes,
        typer.Option(
            "--password-hashes",
            help="on: import the mapping's password_hash where Cognito can take it (one "
            "algorithm per import file); off: every user must reset the password.",
        ),
    ] = PasswordHashes.ON,
    password_fallback: Annotated[
        PasswordFallback,
        typer.Option(
            "--password-fallback",
            help="Users whose password hash Cognito cannot import: reset imports them "
            "without it (they must reset); migrate leaves out those whose hash csvimport "
            "can verify (deferred.csv), for the pool's user migration trigger to create at "
            "their first sign-in with their old password.",
        ),
    ] = PasswordFallback.RESET,
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
        password_hashes=password_hashes is PasswordHashes.ON,
        password_fallback=password_fallback,
    )
    with _rows_read("build") as advance:
        result = run_build(options, snapshot, progress=advance)
    _build_summary(result)
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2))
    if result.rejected or result.duplicates:
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


def _build_summary(result: BuildResult) -> None:
    def echo(text: str = "") -> None:
        typer.echo(text, err=True)

    for folder in result.removed_unfinished:
        echo(f"Removed {folder}: left by a build of {result.run_dir} that did not finish "
             "(killed)")  # fmt: skip
    echo(f"Built {result.run_dir}")
    deferred = "" if result.deferred_schemes is None else f" + {result.deferred:,} deferred"
    echo(
        f"  {result.source_rows:,} source rows = {result.written:,} written "
        f"+ {result.rejected:,} rejected + {result.duplicates:,} duplicates{deferred}"
    )
    for chunk in result.chunks:
        hashes = f", {chunk.password_algorithm} hashes" if chunk.password_algorithm else ""
        echo(f"  {chunk.file}: {chunk.rows:,} users, {chunk.bytes:,} bytes{hashes}")
    if result.passwords is not None:
        counts = ", ".join(f"{n:,} {status}" for status, n in sorted(result.passwords.items()))
        echo(f"  Password hashes of the written users: {counts} "
             f"(see {result.run_dir / PASSWORDS}).")  # fmt: skip
    if result.deferred_schemes is not None and result.reset_why is not None:
        _sign_in_summary(result, echo)
    if result.folded is not None:
        counts = ", ".join(f"{n:,} in {attribute}" for attribute, n in result.folded.items())
        echo(f"  Values with line breaks folded (fold_line_breaks): {counts}.")
    if result.followups is not None:
        _followups_summary(result.followups, result.run_dir / FOLLOWUPS, echo)
    if result.existing:
        echo(
            f"  Already in the pool, so Cognito will skip them: {result.existing:,} of the "
            f"written users (listed in {result.run_dir / EXISTING})."
        )
    if result.reasons:
        echo(f"  Why rows were refused (see {result.run_dir / REJECTS}):")
        for rule, count in result.reasons.most_common(5):
            echo(f"    {count:>8,}  {REASONS.get(rule, rule)}")
    if result.garbled:
        echo("  Rows the source file itself garbles (fix them there; rejects.csv has all):")
        for text in result.garbled:
            echo(f"    {text}")


def _sign_in_summary(result: BuildResult, echo: Callable[[str], None]) -> None:
    """How the users of a --password-fallback migrate build will sign in, and why."""
    assert result.deferred_schemes is not None and result.reset_why is not None

    def why(counts: Counter[str]) -> str:
        return f" ({', '.join(f'{reason}: {n:,}' for reason, n in counts.most_common())})"

    echo("  How users will sign in:")
    echo(f"    {result.imported_hash:>8,}  with their imported password hash")
    echo(f"    {result.deferred:>8,}  migrate at first sign-in, with their old password"
         + (why(result.deferred_schemes) if result.deferred else ""))  # fmt: skip
    echo(f"    {result.reset_why.total():>8,}  must reset their password"
         + (why(result.reset_why) if result.reset_why else ""))  # fmt: skip
    if result.deferred:
        echo(f"  Deferred users are left out of the import files (listed in "
             f"{result.run_dir / DEFERRED}): the pool's user migration trigger creates "
             "them at their first sign-in; it never fires for a user who already "
             "exists.")  # fmt: skip
    slow = {label: s for label, s in result.verify_seconds.items() if at_risk(s)}
    if slow:
        echo(f"  Slow password checks (timed on this machine; the trigger has "
             f"{TRIGGER_SECONDS} s for a whole sign-in): "
             + ", ".join(f"{label} {s:.2f} s" for label, s in slow.items())
             + ". Give the migration function more memory (more CPU), or build with "
             "--password-fallback reset; `csvimport migration-check` says it again.")  # fmt: skip


ListUsersRateOption = Annotated[
    float,
    typer.Option(
        "--rate",
        min=0.1,
        max=25,
        help="ListUsers calls per second (the account's 30/s UserList quota is shared "
        "with the apps using the pool).",
    ),
]
RunDirArgument = Annotated[
    Path,
    typer.Argument(metavar="RUN_DIR", help="A run directory made by `csvimport build`."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the run's state as JSON on stdout.")
]
INTERRUPTED_HINT = (
    "The journal is saved. A started job keeps running in Cognito: `csvimport status "
    "{run} --wait` follows it, `csvimport start {run}` goes on where this stopped, "
    "`csvimport stop {run}` stops the job."
)


class RateColumn(ProgressColumn):
    """Users processed per second, once there is a rate to show."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} users/s" if task.speed else "")


class JobDisplay:
    """Shows an importer's events on stderr: a line per note, a bar per running job."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = str(run_dir)
        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} users"),
            TextColumn("{task.fields[status]}"),
            RateColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not sys.stderr.isatty(),
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> JobDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, JobProgress):
            key = event.attempt.job_id or event.chunk.file
            if key not in self.tasks:
                self.tasks[key] = self.bar.add_task(
                    event.chunk.file, total=event.chunk.rows, status=""
                )
            self.bar.update(self.tasks[key], completed=event.processed, status=event.describe())
            return
        prefix = "warning: " if event.kind is EventKind.WARNING else ""
        self.line(prefix + event.describe())
        if isinstance(event, JobEnded):
            _, hint = explain_end(event.attempt)
            if hint:
                self.line("  " + hint)

    def line(self, text: str) -> None:
        """One message line, above the bars, never re-wrapped, with the run's real path."""
        text = text.replace("RUN_DIR", self.run_dir)
        self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)


def _open_run(run_dir: Path) -> RunDir:
    """Open a finished run and say on stderr what its opening found worth a warning."""
    run = RunDir.open(run_dir)
    for warning in run.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return run


@contextmanager
def _importer(
    state: CliState, run_dir: Path, *, command: str, read_only: bool = False
) -> Iterator[tuple[Importer, JournalLock]]:
    """Open a run, its journal and an importer showing its events on stderr.

    The journal is read-only when asked, or when another process holds the run (then
    ``importer.journal.read_only`` tells). Ctrl-C prints what state the run is left in.
    """
    run = _open_run(run_dir)
    lock = JournalLock(run, command=command)
    journal = Journal.load(run)
    if read_only or not lock.try_acquire():
        journal.read_only = True
    with JobDisplay(run_dir) as display:
        importer = Importer(run, journal, state.aws.client("cognito-idp"), on_event=display)
        try:
            yield importer, lock
        except KeyboardInterrupt:
            display.bar.stop()
            typer.echo(INTERRUPTED_HINT.format(run=run_dir), err=True)
            raise
        finally:
            lock.release()


def _print_status(status: RunStatus, run_dir: Path, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(status.to_json(), indent=2))
        return
    for item in status.chunks:
        a = item.attempt
        job = f"job {a.job_id}" if a and a.job_id else "no job yet"
        counts = (f"  imported {a.imported:,}, skipped {a.skipped:,}, failed {a.failed:,}"
                  if a and a.step is not Step.CREATING else "")  # fmt: skip
        typer.echo(f"{item.chunk.file}  {item.chunk.rows:,} users  {job}  "
                   f"{item.state.value}{counts}")  # fmt: skip
    totals = status.to_json()
    typer.echo(
        f"run {run_dir}: {totals['imported']:,} of {totals['users']:,} users imported, "
        f"{totals['skipped']:,} skipped, {totals['failed']:,} failed"
    )


def _exit_for(status: RunStatus, run_dir: Path) -> None:
    """Exit 0 only when every user of every chunk was imported; say why not otherwise."""
    if status.all_imported:
        return
    waiting = status.count(ChunkState.NOT_STARTED) + status.count(ChunkState.WAITING_TO_START)
    running = status.count(ChunkState.RUNNING)
    if running:
        typer.echo(f"not finished: {running} job(s) still running; follow them with "
                   f"`csvimport status {run_dir} --wait`", err=True)  # fmt: skip
    elif waiting:
        typer.echo(f"not finished: {waiting} chunk(s) not started; run "
                   f"`csvimport start {run_dir}`", err=True)  # fmt: skip
    else:
        typer.echo(f"some users were not imported: `csvimport report {run_dir}` says "
                   "which and why", err=True)  # fmt: skip
    raise typer.Exit(int(ExitStatus.USERS_FAILED))


@app.command()
def start(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    logs_role_arn: Annotated[
        str | None,
        typer.Option(
            "--logs-role-arn",
            envvar="CSVIMPORT_LOGS_ROLE_ARN",
            help="IAM role Cognito uses to write the jobs' CloudWatch logs (it must trust "
            "cognito-idp.amazonaws.com).",
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait for each job to end before the next chunk (--no-wait: start one job "
            "and return; run start again for the next).",
        ),
    ] = True,
    wait_for_others: Annotated[
        bool,
        typer.Option(
            "--wait-for-others",
            help="When another import job is active in the account, wait for it instead of "
            "refusing.",
        ),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run chunks whose job failed in a new job.")
    ] = False,
    resume_stopped: Annotated[
        bool,
        typer.Option(
            "--resume-stopped",
            help="Run chunks whose job was stopped in a new job (users already imported are "
            "skipped by Cognito).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the pool and show what start would do.")
    ] = False,
    skip_migration_check: Annotated[
        bool,
        typer.Option(
            "--skip-migration-check",
            help="Start even when the run leaves users to the migration trigger and the pool "
            "has no trigger, or no app client that allows USER_PASSWORD_AUTH.",
        ),
    ] = False,
    json_output: JsonOption = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Create, upload and start the run's import jobs, one at a time; resumable."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    options = StartOptions(
        logs_role_arn=logs_role_arn, wait=wait, wait_for_others=wait_for_others,
        retry_failed=retry_failed, resume_stopped=resume_stopped, dry_run=dry_run,
        migration_check=not skip_migration_check,
    )  # fmt: skip
    with _importer(state, run_dir, command="start", read_only=dry_run) as (importer, lock):
        if not dry_run and importer.journal.read_only:
            raise lock.refusal()  # another process holds the run
        status = importer.start(options)
    _print_status(status, run_dir, json_output)
    if dry_run:
        return
    if not wait and status.count(ChunkState.RUNNING):
        then = (f", then run `csvimport start {run_dir}` for the next chunk"
                if status.count(ChunkState.NOT_STARTED) else "")  # fmt: skip
        typer.echo(f"job started; follow it with `csvimport status {run_dir} --wait`{then}",
                   err=True)  # fmt: skip
        return
    _exit_for(status, run_dir)


@app.command()
def status(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Follow the running jobs until they end."),
    ] = False,
    write_html: Annotated[
        bool,
        typer.Option("--report", help="Then write the report, as `csvimport report` does."),
    ] = False,
    json_output: JsonOption = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Show each chunk's import job, its state and counters; exit 0 only if all imported."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    with _importer(state, run_dir, command="status") as (importer, lock):
        importer.refresh()
        result = importer.wait_all() if wait else importer.status()
    _print_status(result, run_dir, json_output)
    if write_html:
        _write_report(state, run_dir)
    _exit_for(result, run_dir)


@app.command()
def stop(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait until Cognito reports the job stopped."),
    ] = True,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Stop the run's active import job; a stopped job cannot be restarted."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    with _importer(state, run_dir, command="stop") as (importer, lock):
        attempt = importer.stop(wait=wait)
    if attempt is None:
        typer.echo(f"no import job of {run_dir} is running: nothing to stop", err=True)
        return
    what, hint = explain_end(attempt)
    if not attempt.ended:
        what = f"is {attempt.status}; `csvimport status {run_dir}` shows when it has stopped"
    typer.echo(f"{attempt.chunk}: job {attempt.job_id} {what}", err=True)
    if importer.journal.read_only:
        typer.echo(f"({lock.holder()} holds the run and records the stop)", err=True)
    typer.echo((hint or STOPPED_HINT).replace("RUN_DIR", str(run_dir)), err=True)


STOPPED_HINT = (
    "A stopped job cannot be restarted. `csvimport start RUN_DIR` goes on with the next "
    "chunks; --resume-stopped imports this chunk again in a new job."
)


@app.command()
def report(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write the HTML report (default RUN_DIR/report.html).",
            dir_okay=False,
        ),
    ] = None,
    show_pii: Annotated[
        bool,
        typer.Option(
            "--show-pii",
            help="Show emails, phones and usernames unmasked in the "
            "HTML report (the result files always hold them).",
        ),
    ] = False,
    log_wait: Annotated[
        float,
        typer.Option(
            "--log-wait",
            metavar="SECONDS",
            min=0,
            help="How long to wait for log lines that lag behind a job's end.",
        ),
    ] = LogWait.seconds,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="The legacy source again, for retry-source.csv (needed "
            "for a database: its URL is not stored).",
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option("--encoding", help="Encoding of the source file (default: the build's)."),
    ] = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Read the jobs' CloudWatch logs, account for every user, write the report."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    _write_report(state, run_dir, out=out, show_pii=show_pii, log_wait=log_wait,
                  source=source, encoding=encoding)  # fmt: skip


def _write_report(
    state: CliState, run_dir: Path, *, out: Path | None = None, show_pii: bool = False,
    log_wait: float = LogWait.seconds, source: str | None = None, encoding: str | None = None,
) -> None:  # fmt: skip
    """Bring the journal up to date, reconcile, write the result files and the report."""
    with _importer(state, run_dir, command="report") as (importer, _):
        importer.refresh()
        display = importer.emit
        reconciler = Reconciler(
            importer.run, importer.journal, state.aws.client("logs"),
            recovery=RecoveryPolicy.read(state.aws.client("cognito-idp"),
                                         importer.run.user_pool_id),
            wait=LogWait(seconds=log_wait),
            on_note=lambda text: display(Note(text)),
        )  # fmt: skip
        with ResultFiles(run_dir) as files:
            result = reconciler.reconcile(files)
            written = files.finish()
    earlier = run_dir / RETRY_SOURCE
    had_one = earlier.exists()  # a retry source not rewritten now is removed: it is stale
    try:
        retry = write_retry_source(importer.run, rows=reconciler.retry_rows, source=source,
                                   encoding=encoding)  # fmt: skip
    except CsvImportError as exc:
        gone = f" ({earlier} of an earlier report was removed)" if had_one else ""
        typer.echo(mask_credentials(f"warning: retry-source.csv not written: {exc.message} "
                                    f"{exc.hint or ''}{gone}"),
                   err=True)  # fmt: skip
        retry = None
    else:
        if retry is None and had_one:
            typer.echo(f"  removed {earlier} of an earlier report: no user needs a retry now",
                       err=True)  # fmt: skip
    if retry is not None:
        written.append(retry)
    html = write_report(result, out or run_dir / REPORT, show_pii=show_pii)
    recon = result.reconciliation
    migrating = f"{recon.deferred:,} migrate at first sign-in; " if recon.deferred else ""
    typer.echo(f"{recon.imported:,} of {recon.source_rows:,} users are in Cognito; {migrating}"
               f"{recon.need_attention:,} need attention", err=True)  # fmt: skip
    typer.echo(f"  {recon.rejected:,} rejected before import, {recon.duplicates:,} duplicates, "
               f"{recon.skipped:,} skipped and {recon.failed:,} failed by Cognito, "
               f"{recon.not_processed:,} not processed", err=True)  # fmt: skip
    for problem in recon.problems:
        typer.echo(f"MISMATCH: {problem}", err=True)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for path in written:
        typer.echo(f"  wrote {path}", err=True)
    typer.echo(str(html))
    if recon.need_attention or recon.problems:
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


@contextmanager
def _pass_bar(name: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (a terminal only) for a pass of ``total`` calls; yields
    the ``on_progress(done, total)`` callback the pass reports to."""
    with Progress(TextColumn(name), BarColumn(), TextColumn("{task.completed:,}/"
                  "{task.total:,}"), RateColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True,
                  disable=not sys.stderr.isatty()) as bar:  # fmt: skip
        task = bar.add_task(name, total=total)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done)

        yield advance


def _followups_summary(counts: dict[str, Any], path: Path, echo: Callable[[str], None]) -> None:
    """What the build listed for `csvimport followups`, and the roles no group takes."""
    memberships = counts["memberships"]
    echo(f"  For `csvimport followups` ({path}): {sum(memberships.values()):,} memberships in "
         f"{len(memberships):,} groups, {counts['disabled']:,} users to disable"
         + (f" ({counts['deferred']:,} users deferred: done when they are in the pool)"
            if counts["deferred"] else "") + ".")  # fmt: skip
    unmapped = counts["unmapped_roles"]
    if unmapped:
        shown = ", ".join(f"{role!r} ({n:,})" for role, n in list(unmapped.items())[:10])
        echo(f"  Legacy roles [groups.names] does not name (those users get no group for "
             f"them): {shown}{' ...' if len(unmapped) > 10 else ''}.")  # fmt: skip


# The usernames `resets` lists on stderr (may have been sent, unknown to --only); --json
# lists them all.
MAYBE_SENT_SHOWN = 20


@app.command()
def resets(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; send nothing.")
    ] = False,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            min=0.1,
            max=25,
            help="Codes per second (the account's 30/s recovery quota is shared "
            "with users' own password resets).",
        ),
    ] = DEFAULT_RATE,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Send at most this many (a pilot).")
    ] = None,
    only: Annotated[
        Path | None,
        typer.Option(
            "--only",
            dir_okay=False,
            exists=True,
            help="Send only to the usernames in this file (one per line).",
        ),
    ] = None,
    resend: Annotated[
        bool,
        typer.Option(
            "--resend",
            help="Send again to users who already got a code, or may have (a wave stopped "
            "between the call and its record).",
        ),
    ] = False,
    max_per_day: Annotated[
        int | None,
        typer.Option(
            "--max-per-day",
            min=1,
            help="Emails the pool's sender may send a day; the wave stops there and "
            "goes on when run again the next day.",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the plan and the wave's result as JSON on stdout.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Send password-reset codes to imported users who must reset, in paced waves."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    run = _open_run(run_dir)
    client = state.aws.client("cognito-idp")
    with JournalLock(run, command="resets"):
        pool = client.describe_user_pool(UserPoolId=run.user_pool_id)["UserPool"]
        journal = ResetJournal(run)
        usernames = read_usernames(only) if only is not None else None
        plan = plan_resets(run, pool, journal, limit=limit, only=usernames, resend=resend,
                           max_per_day=max_per_day, enforce=not dry_run)  # fmt: skip
        echo = functools.partial(typer.echo, err=True)
        echo(f"{len(plan.to_send):,} users to send a code to ({plan.emails:,} by email, "
             f"{plan.sms:,} by SMS); {plan.already_sent:,} already sent; "
             f"{len(plan.maybe_sent):,} may have been sent; "
             f"{len(plan.cannot_reset):,} cannot reset; {plan.left_out:,} left out "
             "(--only/--limit)")  # fmt: skip
        if plan.email_allowance is not None:
            echo(f"emails csvimport may still send today: {plan.email_allowance:,}")
        for reason, count in Counter(c.why_not for c in plan.cannot_reset).most_common():
            echo(f"  cannot reset ({count:,}): {reason}")
        if plan.deferred:
            echo(f"  {plan.deferred:,} users migrate at first sign-in (the build deferred "
                 "them): they are not in the pool and get no code")  # fmt: skip
        if plan.deferred_only:
            echo(f"  --only names {len(plan.deferred_only):,} of them: "
                 f"{', '.join(plan.deferred_only[:MAYBE_SENT_SHOWN])}"
                 + (" ..." if len(plan.deferred_only) > MAYBE_SENT_SHOWN else ""))  # fmt: skip
        if plan.unknown_only:
            echo(f"  --only names {len(plan.unknown_only):,} users who are not imported users "
                 f"who must reset: {', '.join(plan.unknown_only[:MAYBE_SENT_SHOWN])}"
                 + (" ..." if len(plan.unknown_only) > MAYBE_SENT_SHOWN else ""))  # fmt: skip
        if plan.maybe_sent:
            echo(f"  may have been sent ({len(plan.maybe_sent):,}): a wave stopped after "
                 "asking Cognito for their code and before recording the answer; they get "
                 "no other unless --resend (with --only FILE naming them):")  # fmt: skip
            for candidate in plan.maybe_sent[:MAYBE_SENT_SHOWN]:
                echo(f"    {candidate.username}")
            if len(plan.maybe_sent) > MAYBE_SENT_SHOWN:
                echo(f"    ... and {len(plan.maybe_sent) - MAYBE_SENT_SHOWN:,} more (--json "
                     "lists them all)")  # fmt: skip
        if dry_run:
            if json_output:
                typer.echo(json.dumps({"plan": plan.to_json(), "result": None}, indent=2))
            if plan.refusal is not None:
                raise plan.refusal  # after the plan: a real wave would be refused
            return
        with _pass_bar("resets", len(plan.to_send)) as advance:
            result = run_wave(run, client, plan, journal, rate=rate, on_progress=advance)
    echo(f"sent {result.sent:,} codes; {sum(result.failed.values()):,} failed; "
         f"{result.not_sent:,} not sent yet")  # fmt: skip
    for reason, count in result.failed.most_common():
        echo(f"  failed ({count:,}): {reason}")
    if result.stopped_because:
        echo(f"stopped: {result.stopped_because}; run `csvimport resets {run_dir}` again "
             "tomorrow to go on (nobody gets a second code)")  # fmt: skip
    if json_output:
        typer.echo(json.dumps({"plan": plan.to_json(), "result": result.to_json()}, indent=2))
    if result.failed or result.not_sent or plan.cannot_reset or plan.maybe_sent:
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


# The users `undo` names on stderr, masked (the plan file lists them all, unmasked).
UNDO_SHOWN = 10
UNDO_AGAIN_HINT = (
    "Run `csvimport undo {run} --yes` again: it goes on where this one stopped, reads the "
    "pool to tell whether an interrupted call deleted its user, and deletes nobody twice."
)
UNDO_BANNER = (
    "undo DELETES users from user pool {pool_id} ({name}): for rehearsals in a staging "
    "pool only, never a pool people use. Deleted users are gone: Cognito cannot bring "
    "them back."
)


@app.command()
def undo(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Delete the users the plan names (without it: a dry run that deletes nothing).",
        ),
    ] = False,
    include_migrated: Annotated[
        bool,
        typer.Option(
            "--include-migrated",
            help="Also delete the deferred users the migration function created at their "
            "sign-in (a full rehearsal reset); left alone without it.",
        ),
    ] = False,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            min=0.1,
            max=25,
            help="AdminDeleteUser calls per second (the account's 25/s UserUpdate quota is "
            "shared with the apps using the pool).",
        ),
    ] = UNDO_RATE,
    list_rate: Annotated[
        float,
        typer.Option(
            "--list-rate",
            min=0.1,
            max=25,
            help="ListUsers calls per second, to read the users before deleting (the "
            "account's 30/s UserList quota is shared with the apps).",
        ),
    ] = USER_LIST.rate,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the plan and the result as JSON on stdout.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Delete the users this run imported, for rehearsals in a staging pool (a dry run
    unless --yes)."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    echo = functools.partial(typer.echo, err=True)
    run = _open_run(run_dir)
    client = state.aws.client("cognito-idp")
    with JournalLock(run, command="undo"):
        pool = paced(client).describe_user_pool(UserPoolId=run.user_pool_id)["UserPool"]
        echo(UNDO_BANNER.format(pool_id=run.user_pool_id, name=pool.get("Name", "?")))
        recorded: dict[str, Window] = {}
        for attempt in Journal.load(run).attempts:
            window = recorded_window(attempt.started, attempt.completed)
            if attempt.job_id and window is not None:
                recorded[attempt.job_id] = window
        journal = open_journal(run)
        estimated = pool.get("EstimatedNumberOfUsers")
        bar = Progress(TextColumn("{task.description}"), BarColumn(),
                       TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn(),
                       console=Console(stderr=True), transient=True,
                       disable=not sys.stderr.isatty())  # fmt: skip
        with bar:
            task = bar.add_task("reading users", total=None)
            plan = plan_undo(run, client, journal, include_migrated=include_migrated,
                             rate=list_rate, recorded=recorded,
                             estimated_users=estimated if isinstance(estimated, int) else None,
                             on_progress=lambda done, total: bar.update(task, completed=done,
                                                                        total=total))  # fmt: skip
        _print_undo_plan(plan, run_dir, yes=yes)
        if not yes:
            if json_output:
                typer.echo(json.dumps({"plan": plan.to_json(UNDO_SHOWN), "result": None},
                                      indent=2))  # fmt: skip
            return
        with _pass_bar("deleting", len(plan.to_delete)) as advance:
            try:
                result = run_undo(run, client, plan, journal, rate=rate, on_progress=advance)
            except ServiceError as exc:
                again = UNDO_AGAIN_HINT.format(run=run_dir)
                exc.hint = f"{exc.hint} {again}" if exc.hint else again
                raise
    echo(f"deleted {result.deleted:,} users from user pool {run.user_pool_id}; "
         f"{result.already_gone:,} were already gone; "
         f"{sum(result.failed.values()):,} failed")  # fmt: skip
    for reason, count in result.failed.most_common():
        echo(f"  failed ({count:,}): {reason}")
    if json_output:
        typer.echo(json.dumps({"plan": plan.to_json(UNDO_SHOWN), "result": result.to_json()},
                              indent=2))  # fmt: skip
    if result.failed:
        echo(f"  hint: run `csvimport undo {run_dir} --yes` again once the cause is fixed "
             "(nobody is deleted twice)")  # fmt: skip
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


def _print_undo_plan(plan: UndoPlan, run_dir: Path, *, yes: bool) -> None:
    echo = functools.partial(typer.echo, err=True)
    verb = "deleting" if yes else "would delete (dry run: pass --yes to delete)"
    names = ", ".join(mask_username(t.candidate.username) for t in plan.to_delete[:UNDO_SHOWN])
    extra = len(plan.to_delete) - UNDO_SHOWN
    more = f" and {extra:,} more" if extra > 0 else ""
    echo(f"{verb} {len(plan.to_delete):,} users this run imported"
         + (f": {names}{more}" if names else ""))  # fmt: skip
    if plan.already_deleted:
        echo(f"  {plan.already_deleted:,} deleted by an earlier undo")
    if plan.settle:
        echo(f"  {len(plan.settle):,} gone since an earlier undo asked Cognito to delete them: "
             "recorded as deleted, no call made")  # fmt: skip
    for why, count in Counter(left.why for left in plan.left).most_common():
        shown = ", ".join([mask_username(left.candidate.username) for left in plan.left
                           if left.why is why][:UNDO_SHOWN])  # fmt: skip
        echo(f"  leaving {count:,}: {why.value}: {shown}")
    if plan.not_created:
        counts = ", ".join(f"{n:,} {outcome}" for outcome, n in plan.not_created.most_common())
        echo(f"  not candidates (the import did not create them): {counts}")
    if plan.deferred_not_read:
        echo(f"  leaving the {plan.deferred_not_read:,} deferred users: the migration "
             "function, not the import, creates them (--include-migrated deletes those in "
             "the pool)")  # fmt: skip
    echo(f"  read with {plan.lookups:,} ListUsers calls ({plan.lookup.value}); every user, "
         f"unmasked, with what undo does: {plan.plan_file}")  # fmt: skip


@app.command()
def followups(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what the pass would do; change nothing.")
    ] = False,
    create_groups: Annotated[
        bool,
        typer.Option(
            "--create-groups", help="Create the groups the mapping names that the pool lacks."
        ),
    ] = False,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            min=0.1,
            max=25,
            help="Calls per second (the account's 25/s UserUpdate quota is shared with the "
            "applications using the pool).",
        ),
    ] = followup_pass.DEFAULT_RATE,
    retry_uncertain: Annotated[
        bool,
        typer.Option(
            "--retry-uncertain",
            help="Make again the calls an earlier pass may have made (it stopped between "
            "the call and its record); both calls are idempotent in Cognito.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the plan and the pass's result as JSON on stdout.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Add imported users to their groups and disable the users the legacy system had
    disabled: what the CSV cannot carry."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    run = _open_run(run_dir)
    client = state.aws.client("cognito-idp")
    echo = functools.partial(typer.echo, err=True)
    with JournalLock(run, command="followups"):
        journal = followup_pass.open_journal(run.path)
        groups = followup_pass.pool_groups(client, run.user_pool_id)
        plan = followup_pass.plan_followups(run, groups, journal, create_groups=create_groups,
                                            retry_uncertain=retry_uncertain,
                                            enforce=not dry_run)  # fmt: skip
        per_group = plan.per_group
        echo(f"{per_group.total():,} memberships to add, {plan.disables:,} users to disable, "
             f"{len(plan.to_create):,} groups to create; {plan.already_done:,} calls already "
             f"done; {len(plan.maybe_done):,} may have been done")  # fmt: skip
        if plan.missing_groups and not create_groups:
            echo(f"  the pool lacks {len(plan.missing_groups):,} of these groups "
                 "(--create-groups creates them)")  # fmt: skip
        for group, count in sorted(per_group.items()):
            echo(f"  {group}: {count:,}")
        for why, count in plan.skipped.most_common():
            echo(f"  left alone ({count:,}): {why}")
        for role, count in plan.unmapped_roles.most_common():
            echo(f"  legacy role {role!r} of {count:,} imported users is in no group: the "
                 "mapping's [groups.names] does not name it")  # fmt: skip
        if plan.maybe_done:
            echo(
                f"  may have been done ({len(plan.maybe_done):,}): an earlier pass stopped "
                "between the call and its record; not called again unless --retry-uncertain"
            )
            for call in plan.maybe_done[:MAYBE_SENT_SHOWN]:
                echo(f"    {call.action} {call.username or call.group}"
                     + (f" to {call.group}" if call.username and call.group else ""))  # fmt: skip
            if len(plan.maybe_done) > MAYBE_SENT_SHOWN:
                echo(f"    ... and {len(plan.maybe_done) - MAYBE_SENT_SHOWN:,} more (--json "
                     "lists them all)")  # fmt: skip
        if dry_run:
            if json_output:
                typer.echo(json.dumps({"plan": plan.to_json(), "result": None}, indent=2))
            if plan.refusal is not None:
                raise plan.refusal  # after the plan: a real pass would be refused
            return
        with _pass_bar("followups", len(plan.to_create) + len(plan.calls)) as advance:
            result = followup_pass.run_followups(
                run, client, plan, journal, rate=rate, on_progress=advance
            )
    echo(f"added {result.added.total():,} memberships; disabled {result.disabled:,} users; "
         f"created {len(result.created):,} groups; {result.failed.total():,} calls failed; "
         f"{result.not_done:,} not done yet")  # fmt: skip
    for reason, count in result.failed.most_common():
        echo(f"  failed ({count:,}): {reason}")
    if json_output:
        typer.echo(json.dumps({"plan": plan.to_json(), "result": result.to_json()}, indent=2))
    if result.stopped_because:
        echo(f"stopped: {result.stopped_because}; run `csvimport followups {run_dir}` again "
             "later to go on (nothing done is repeated, nothing is lost)")  # fmt: skip
        raise typer.Exit(int(ExitStatus.SERVICE))
    if result.failed or plan.maybe_done or plan.unmapped_roles:
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


@app.command("migration-check")
def migration_check(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            min=1,
            metavar="N",
            help="Check the usernames and aliases of N deferred users picked at random "
            "(the same N for every run of the check) instead of all of them.",
        ),
    ] = None,
    aliases: Annotated[
        bool,
        typer.Option(
            "--aliases/--no-aliases",
            help="Check that no user in the pool holds a deferred user's username or alias "
            "(ListUsers, paced); --no-aliases checks the trigger and app clients only.",
        ),
    ] = True,
    rate: ListUsersRateOption = USER_LIST.rate,
    show_pii: Annotated[
        bool,
        typer.Option("--show-pii", help="Show taken usernames, emails and phones unmasked."),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what the check found as JSON on stdout.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Check that the migration trigger can sign in the users the run leaves to it."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    echo = functools.partial(typer.echo, err=True)
    run = _open_run(run_dir)
    deferred = deferred_or_refuse(run)
    client = state.aws.client("cognito-idp")
    setup = check_setup(run, client, deferred=deferred)
    echo(f"run {run_dir}: {deferred:,} users left to the migration trigger of user pool "
         f"{setup.pool_id} ({setup.pool_name})")  # fmt: skip
    echo(f"  trigger: {setup.trigger_arn or 'none'}")
    for app_client in setup.clients:
        how = "allows USER_PASSWORD_AUTH" if app_client.password_sign_in else "SRP only"
        echo(f"  app client {app_client.name or app_client.client_id}: {how}")
    for finding in setup.findings:
        echo(f"{finding.severity.value}: {finding.message}")
        if finding.hint:
            echo(f"  hint: {finding.hint}")
    report = None
    if aliases:
        bar = Progress(TextColumn("aliases"), BarColumn(), TextColumn("{task.completed:,}/"
                       "{task.total:,} calls"), TimeRemainingColumn(),
                       console=Console(stderr=True), transient=True,
                       disable=not sys.stderr.isatty())  # fmt: skip
        task = bar.add_task("aliases", total=None)
        check = AliasCheck(run, client, sample=sample, rate=rate,
                           estimated_users=setup.estimated_users,
                           on_progress=lambda done, total: bar.update(task, completed=done,
                                                                      total=total))  # fmt: skip
        plan = check.plan()
        echo(_alias_plan_line(plan))
        with bar:
            report = check.run()
        taken = report.finding()
        if taken is None:
            echo(f"  no username or alias of the {plan.checked:,} users checked is taken")
        else:
            echo(f"{taken.severity.value}: {taken.message}")
            for example in report.examples:
                echo(f"    {example.describe(show_pii=show_pii)}")
            if report.taken > len(report.examples):
                echo(f"    ... and {report.taken - len(report.examples):,} more (--json lists "
                     "the first ones too)")  # fmt: skip
            echo(f"  hint: {taken.hint}")
    result = MigrationCheck(run_id=run.run_id, deferred=deferred, setup=setup, aliases=report)
    if json_output:
        typer.echo(json.dumps(result.to_json(show_pii=show_pii), indent=2))
    if result.exit_status is not ExitStatus.OK:
        raise typer.Exit(int(result.exit_status))


@app.command("verify")
def verify(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    rate: ListUsersRateOption = USER_LIST.rate,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="The legacy source (as `build` takes it: a file, or an SQLAlchemy URL "
            "with --table or --query), counted to check every legacy user is accounted for.",
        ),
    ] = None,
    table: TableOption = None,
    query: QueryOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what verify found as JSON on stdout.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Check that every user the run wrote is in the pool with the attributes it carried."""
    state = _command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    echo = functools.partial(typer.echo, err=True)
    run = _open_run(run_dir)
    counted = None
    if source is None:
        if table is not None or query is not None or delimiter is not None:
            raise ConfigError(
                "--table, --query and --delimiter describe the legacy source: they need "
                "--source", hint="Add --source SOURCE (the file or database URL `build` read)."
            )  # fmt: skip
    else:  # before the pool's scan: a source that cannot be read fails in seconds
        with Progress(TextColumn("counting the source"), TextColumn("{task.completed:,} rows"),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                      disable=not sys.stderr.isatty()) as counting:  # fmt: skip
            task = counting.add_task("count", total=None)
            counted = count_source(_source_spec(source, table, query, delimiter, encoding),
                                   on_rows=lambda rows: counting.advance(task, rows))  # fmt: skip
    client = state.aws.client("cognito-idp")
    bar = Progress(TextColumn("verify"), BarColumn(), TextColumn("{task.completed:,}/"
                   "{task.total:,} pages"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True,
                   disable=not sys.stderr.isatty())  # fmt: skip
    task = bar.add_task("verify", total=None)
    pool = paced(client).describe_user_pool(UserPoolId=run.user_pool_id)["UserPool"]
    estimated = pool.get("EstimatedNumberOfUsers")
    with bar:
        result = verify_pool(run, client, rate=rate, source=counted,
                             estimated_users=estimated if isinstance(estimated, int) else None,
                             on_progress=lambda done, total: bar.update(task, completed=done,
                                                                        total=total))  # fmt: skip
    states = ", ".join(f"{count:,} {name}" for name, count in result.states.items())
    echo(f"run {run_dir}: {result.written:,} users written, {result.deferred:,} deferred; "
         f"read {result.pool_users:,} pool users in {result.pages:,} ListUsers pages")  # fmt: skip
    echo(f"  {states or 'no users'}")
    if not_imported := result.states.get(VerifyState.NOT_IMPORTED, 0):
        echo(f"  {not_imported:,} written users were not imported by this run (Cognito skipped "
             "them because they existed before, failed them, or their job never ran them): "
             "not compared; the report says why for each")  # fmt: skip
    if result.statuses:
        echo("  status: " + ", ".join(f"{n} {c:,}" for n, c in sorted(result.statuses.items())))
    if result.disabled:
        echo(f"  disabled: {result.disabled:,}")
    if result.differing:
        echo(
            f"  {result.differing:,} users differ from their import file in: "
            + ", ".join(f"{n} ({c:,})" for n, c in sorted(result.differing_attributes.items()))
        )
    if result.others:
        echo(f"  {result.others:,} pool users the run did not write, e.g. "
             + ", ".join(result.other_examples))  # fmt: skip
    if result.must_reset:
        echo(f"  {_reset_progress(result.completed_reset, result.must_reset)}")
    if result.source is not None:
        _echo_source(result.source)
    echo(f"  snapshot: {result.snapshot} (counts: {result.summary})")
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2))
    if not result.ok:
        echo(
            "  hint: the snapshot names each user that is missing or differs (names of "
            "attributes only); re-import the missing ones with a new build"
        )
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


def _reset_progress(done: int, due: int) -> str:
    return (f"{done:,} of {due:,} users imported without a password have completed their "
            f"reset ({done / due:.0%})")  # fmt: skip


def _echo_source(c: SourceComparison) -> None:
    """The legacy source's count against the pool and the run, and what differs."""
    echo = functools.partial(typer.echo, err=True)
    verdict = "every legacy user is accounted for" if c.balanced else (
        f"{c.unaccounted:,} legacy users are not accounted for" if c.unaccounted > 0
        else f"{-c.unaccounted:,} more users are accounted for than the source has")  # fmt: skip
    echo(f"  source {c.source}: {c.source_rows:,} rows; {verdict}")
    echo(f"    {c.accounted:,} accounted for = {c.in_pool:,} in the pool (written or created "
         f"by the migration function) + {c.rejected:,} rejected + {c.duplicates:,} "
         f"duplicates + {c.waiting:,} deferred still waiting")  # fmt: skip
    for difference in c.differences():
        echo(f"    DIFFERS: {difference}")


def _alias_plan_line(plan: AliasPlan) -> str:
    """What the alias check will do and how long it takes, said before it starts."""
    names = ", ".join(plan.attributes)
    if plan.strategy is Strategy.SCAN:
        how = (f"listing the pool's users ({plan.calls:,} ListUsers calls) against the "
               f"{plan.checked:,} deferred users' {names}")  # fmt: skip
    else:
        sampled = f" (a sample of {plan.deferred:,})" if plan.sampled else ""
        how = f"{plan.calls:,} ListUsers calls for the {names} of {plan.checked:,} users{sampled}"
    line = (f"checking aliases: {how} at {plan.rate:g} calls/s: about "
            f"{_duration_words(plan.seconds)}")  # fmt: skip
    if plan.unchecked:
        line += (f"\n  not checked: {', '.join(plan.unchecked)} (the pool signs in with it, "
                 "but deferred.csv does not carry it)")  # fmt: skip
    if plan.strategy is Strategy.FILTER and not plan.sampled and plan.seconds > 600:
        line += "\n  (Ctrl-C stops it; --sample N checks N users at random instead)"
    return line


def _duration_words(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"


@app.command()
def notice(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            dir_okay=False,
            help="A TOML file with the fields below (options override it).",
        ),
    ] = None,
    product: Annotated[
        str | None, typer.Option("--product", help="The product's name as users know it.")
    ] = None,
    support: Annotated[
        str | None, typer.Option("--support", help="How users reach support (email or URL).")
    ] = None,
    sign_in_url: Annotated[
        str | None, typer.Option("--sign-in-url", help="Where users sign in.")
    ] = None,
    migrated_on: Annotated[
        str | None, typer.Option("--migrated-on", help="The migration date, as users read it.")
    ] = None,
    reset_by: Annotated[
        str | None, typer.Option("--reset-by", help="The date by which users should reset.")
    ] = None,
    code_sent: Annotated[
        bool | None,
        typer.Option(
            "--code-sent/--no-code-sent",
            help="Whether a `csvimport resets` wave already sent users a code.",
        ),
    ] = None,
    migration_ends: Annotated[
        str | None,
        typer.Option(
            "--migration-ends",
            help="When the user migration trigger is removed (runs that defer users): the "
            "app signs in with USER_PASSWORD_AUTH until then.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", file_okay=False, help="Folder for the files (default RUN_DIR/notice)."
        ),
    ] = None,
) -> None:
    """Write the messages for users (reset, or sign in as before) and the app team's checklist."""
    base = NoticeFields.load(config) if config is not None else NoticeFields()
    fields = base.merged(
        product=product, support=support, sign_in_url=sign_in_url, migrated_on=migrated_on,
        reset_by=reset_by, code_sent=code_sent, migration_ends=migration_ends,
    )  # fmt: skip
    for path in write_notices(_open_run(run_dir), fields, out):
        typer.echo(str(path))


@app.command("migration-lookup")
def migration_lookup(
    run_dir: RunDirArgument,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            dir_okay=False,
            help="Where to write it (default RUN_DIR/migration/lookup.csv). It holds password "
            "hashes: mode 0600, never commit it.",
        ),
    ] = None,
) -> None:
    """Write the deferred users' legacy records for the migration function (file sources)."""
    target = out if out is not None else run_dir / "migration" / LOOKUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    count = write_lookup_file(run_dir, target)
    typer.echo(str(target))
    typer.echo(f"{count} deferred users' records; the file holds password hashes: keep it "
               "encrypted at rest and out of version control.", err=True)  # fmt: skip


@app.command("migration-package")
def migration_package(
    ctx: typer.Context,
    run_dir: RunDirArgument,
    out: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="Folder for the zip, template and script."),
    ],
    arch: Annotated[
        Arch, typer.Option("--arch", help="The function's architecture (x86_64 or arm64).")
    ] = Arch.X86_64,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The legacy database as the function reaches it (no password), when it "
            "differs from the build's URL.",
        ),
    ] = None,
    wheelhouse: Annotated[
        Path | None,
        typer.Option(
            "--wheelhouse",
            file_okay=False,
            help="Install the dependencies from this folder of wheels only (no index).",
        ),
    ] = None,
    dependency_cache: Annotated[
        Path | None,
        typer.Option(
            "--dependency-cache",
            file_okay=False,
            help="Where installed dependencies are kept between runs "
            "(default ~/.cache/csvimport/lambda-dependencies).",
        ),
    ] = None,
    compress_level: Annotated[
        int,
        typer.Option(
            "--compress-level",
            min=1,
            max=9,
            help="zlib's level for the zip: 1 packs about four times faster, 12% bigger.",
        ),
    ] = ZIP_COMPRESSLEVEL,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON on stdout.")
    ] = False,
) -> None:
    """Build the migration function's Lambda zip and its CloudFormation template."""
    options = PackageOptions(arch=arch, cache=dependency_cache, wheelhouse=wheelhouse,
                             url=database_url, compresslevel=compress_level)  # fmt: skip
    result = write_package(run_dir, out, options,
                           on_progress=lambda message: typer.echo(message, err=True))  # fmt: skip
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        for path in (result.zip_path, result.template_path, result.trigger_script_path,
                     result.requirements_path):  # fmt: skip
            typer.echo(str(path))
    for line in deploy_steps(result):
        typer.echo(line, err=True)


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
    on stderr, and their exit status; usage errors exit 2; Ctrl-C and SIGTERM exit 130.
    --traceback adds the Python traceback before the message; the exit status stays the
    error's. Anything else is a bug: its traceback is printed and the exit status is
    INTERNAL (70). Every credential is masked.
    """
    state = CliState()
    command = typer.main.get_command(app)
    terminated = _TerminateAsInterrupt()
    try:
        with terminated:
            # Not standalone: Typer returns exit codes and raises errors instead of
            # exiting, so this function is the only place that prints them.
            result = command.main(
                args=list(argv) if argv is not None else None,
                prog_name=PROG_NAME,
                standalone_mode=False,
                obj=state,
            )
        # Typer returns the code of typer.Exit, and turns Ctrl-C into Exit(130).
        status = result if isinstance(result, int) else ExitStatus.OK
        if status == ExitStatus.INTERRUPTED:
            typer.echo(terminated.message, err=True)
    except (KeyboardInterrupt, typer.Abort):
        # Typer raises Abort for end of input at a prompt.
        typer.echo(terminated.message, err=True)
        status = ExitStatus.INTERRUPTED
    except typer.TyperException as exc:
        # Since Typer 0.26 every usage error (unknown option, missing --pool-id, bad value)
        # is a TyperException, as is a ClickException raised by Typer itself.
        status = ExitStatus.USAGE
        message = exc.format_message()
        if message.strip():  # empty when Typer already printed the help (no arguments)
            _error(message, _usage_hint(exc))
    except Exception as exc:
        error = exc if isinstance(exc, CsvImportError) else describe_aws_error(exc)
        if error is None:
            _print_traceback()
            _error(f"internal error: {exc!r}", INTERNAL_ERROR_HINT)
            status = ExitStatus.INTERNAL
        else:
            if state.traceback:
                _print_traceback()
            _error(error.message, error.hint)
            status = error.exit_status
    sys.exit(int(status))


class _TerminateAsInterrupt:
    """While active, SIGTERM stops the command as Ctrl-C does (KeyboardInterrupt): the same
    clean-up, the same message with what state the run is left in, exit 130. A second
    SIGTERM during that clean-up is ignored, so the clean-up itself is not cut short."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: Any = None

    @property
    def message(self) -> str:
        return "interrupted" if self.signal is None else "interrupted (SIGTERM)"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            return
        self.signal = signum
        raise KeyboardInterrupt

    def __enter__(self) -> None:
        # Signal handlers can only be set from the main thread (main() may be called from
        # another one in a library use): there, SIGTERM keeps its default.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


INTERNAL_ERROR_HINT = (
    "This is a bug in csvimport, not in your data: please report it with the traceback above. "
    "Your run directory and journal are left as they were."
)


def _usage_hint(exc: typer.TyperException) -> str:
    # Usage errors carry the context of the command that failed; others do not.
    command_path = getattr(getattr(exc, "ctx", None), "command_path", None) or PROG_NAME
    return f"Run '{command_path} --help' for the options."


def _error(message: str, hint: str | None = None) -> None:
    # Messages may quote a database URL or a driver's words: no credential gets through.
    typer.echo(f"error: {mask_credentials(message)}", err=True)
    if hint:
        typer.echo(f"hint: {mask_credentials(hint)}", err=True)


def _print_traceback() -> None:
    """Print the exception being handled, with its causes, its credentials masked."""
    typer.echo(mask_credentials(tb.format_exc()).rstrip("\n"), err=True)
