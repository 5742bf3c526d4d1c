"""Paced passes over a run's imported users: `resets`, `undo`, `followups`, and `notice`
(the messages telling people what changes for them).
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from csvimport.cli.app import app, command_state
from csvimport.cli.display import pass_bar
from csvimport.cli.options import (
    EndpointUrlOption,
    ProfileOption,
    RegionOption,
    RunDirArgument,
    TracebackOption,
)
from csvimport.cli.runs import open_run
from csvimport.errors import ExitStatus, ServiceError
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
from csvimport.passwords.resets import (
    DEFAULT_RATE,
    ResetJournal,
    plan_resets,
    read_usernames,
    run_wave,
)
from csvimport.redact import mask_username
from csvimport.retry import USER_LIST, paced
from csvimport.run.journal import Journal, JournalLock

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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    run = open_run(run_dir)
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
        with pass_bar("resets", len(plan.to_send)) as advance:
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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    echo = functools.partial(typer.echo, err=True)
    run = open_run(run_dir)
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
        with pass_bar("deleting", len(plan.to_delete)) as advance:
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
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    run = open_run(run_dir)
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
        with pass_bar("followups", len(plan.to_create) + len(plan.calls)) as advance:
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
    for path in write_notices(open_run(run_dir), fields, out):
        typer.echo(str(path))
