"""Commands that account for every user after the import: `report` (the jobs' logs, the
HTML page) and `verify` (the pool against the run and the source).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from csvimport.cli.app import CliState, app, command_state
from csvimport.cli.build import source_spec
from csvimport.cli.options import (
    DelimiterOption,
    EncodingOption,
    EndpointUrlOption,
    ListUsersRateOption,
    ProfileOption,
    QueryOption,
    RegionOption,
    RunDirArgument,
    TableOption,
    TracebackOption,
)
from csvimport.cli.runs import open_importer, open_run
from csvimport.errors import ConfigError, CsvImportError, ExitStatus
from csvimport.passwords.recovery import RecoveryPolicy
from csvimport.redact import mask_credentials
from csvimport.report.logs import LogWait
from csvimport.report.reconcile import Reconciler
from csvimport.report.render import write_report
from csvimport.report.results import ResultFiles
from csvimport.report.retrysource import RETRY_SOURCE, write_retry_source
from csvimport.report.sourcecount import SourceComparison, count_source
from csvimport.report.verify import State as VerifyState
from csvimport.report.verify import verify as verify_pool
from csvimport.retry import USER_LIST, paced
from csvimport.run.jobevents import Note
from csvimport.rundir import REPORT


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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    write_run_report(state, run_dir, out=out, show_pii=show_pii, log_wait=log_wait,
                  source=source, encoding=encoding)  # fmt: skip


def write_run_report(
    state: CliState, run_dir: Path, *, out: Path | None = None, show_pii: bool = False,
    log_wait: float = LogWait.seconds, source: str | None = None, encoding: str | None = None,
) -> None:  # fmt: skip
    """Bring the journal up to date, reconcile, write the result files and the report."""
    with open_importer(state, run_dir, command="report") as (importer, _):
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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    echo = functools.partial(typer.echo, err=True)
    run = open_run(run_dir)
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
            counted = count_source(source_spec(source, table, query, delimiter, encoding),
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
