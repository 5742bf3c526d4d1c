"""Commands that drive a run's import jobs: `start`, `status` and `stop`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from csvimport.cli.app import app, command_state
from csvimport.cli.options import (
    EndpointUrlOption,
    JsonOption,
    ProfileOption,
    RegionOption,
    RunDirArgument,
    TracebackOption,
)
from csvimport.cli.report import write_run_report
from csvimport.cli.runs import open_importer
from csvimport.errors import ExitStatus
from csvimport.run.jobs import StartOptions
from csvimport.run.jobstatus import ChunkState, RunStatus, explain_end
from csvimport.run.journal import Step


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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    options = StartOptions(
        logs_role_arn=logs_role_arn, wait=wait, wait_for_others=wait_for_others,
        retry_failed=retry_failed, resume_stopped=resume_stopped, dry_run=dry_run,
        migration_check=not skip_migration_check,
    )  # fmt: skip
    with open_importer(state, run_dir, command="start", read_only=dry_run) as (importer, lock):
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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    with open_importer(state, run_dir, command="status") as (importer, lock):
        importer.refresh()
        result = importer.wait_all() if wait else importer.status()
    _print_status(result, run_dir, json_output)
    if write_html:
        write_run_report(state, run_dir)
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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    with open_importer(state, run_dir, command="stop") as (importer, lock):
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
