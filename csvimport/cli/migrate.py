"""Commands for migration at first sign-in: `migration-check` (before going live), and
`migration-lookup` and `migration-package` (the trigger function's file and zip).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from csvimport.cli.app import app, command_state
from csvimport.cli.options import (
    EndpointUrlOption,
    ListUsersRateOption,
    ProfileOption,
    RegionOption,
    RunDirArgument,
    TracebackOption,
)
from csvimport.cli.runs import open_run
from csvimport.errors import ExitStatus
from csvimport.migrate.package import (
    ZIP_COMPRESSLEVEL,
    Arch,
    PackageOptions,
    deploy_steps,
    write_package,
)
from csvimport.migrate.settings import LOOKUP_FILE
from csvimport.retry import USER_LIST
from csvimport.run.migrationcheck import (
    AliasCheck,
    AliasPlan,
    MigrationCheck,
    Strategy,
    check_setup,
    deferred_or_refuse,
)


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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    echo = functools.partial(typer.echo, err=True)
    run = open_run(run_dir)
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
    # (the lookup file's mapping loads pandera: only this command needs it)
    from csvimport.migrate.lookupfile import write_lookup_file

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
