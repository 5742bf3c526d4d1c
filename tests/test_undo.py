"""`csvimport undo` against the sandbox over HTTP: only the users the run's import created
are deleted, checked by when they were created, journaled so a killed undo deletes nobody
twice."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from csvimport.passes.undo import (
    UNDO_JOURNAL,
    UNDO_PLAN,
    Lookup,
    Why,
    open_journal,
    plan_undo,
    recorded_window,
    run_undo,
)
from csvimport.passjournal import Step
from csvimport.report.render import render_report
from csvimport.report.results import write_results
from csvimport.rundir import RunDir
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    CRASH_AT,
    build_run,
    csvimport,
    deferred_run,
    env_for,
    migration_pool,
    reconcile,
    run_all,
)

# More than undo's margin around an import job's time (passes.undo.WINDOW_MARGIN).
PAST_THE_MARGIN = 1.2


def usernames(cognito: Any, pool: PoolInfo) -> set[str]:
    users = cognito.list_users(UserPoolId=pool.user_pool_id, Limit=60)["Users"]
    return {u["Username"] for u in users}


def sub_of(cognito: Any, pool: PoolInfo, username: str) -> str:
    user = cognito.list_users(UserPoolId=pool.user_pool_id, Limit=60,
                              Filter=f'username = "{username}"')["Users"][0]  # fmt: skip
    return next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")


def create(cognito: Any, pool: PoolInfo, username: str) -> None:
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username=username,
                              MessageAction="SUPPRESS")  # fmt: skip


def import_run(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path, *, users: int,
    before_import: Callable[[], None] = lambda: None,
) -> RunDir:  # fmt: skip
    """Build, import and report a run of user1..userN; ``before_import`` runs between the
    build and the import (a user created then is in the pool when the job runs: SKIPPED)."""
    run_dir = build_run(cognito, pool, tmp_path, users=users)
    before_import()
    run_all(run_dir, cognito, pool)
    _, results, _ = reconcile(run_dir, cognito, logs)
    write_results(run_dir, results)
    return RunDir.open(run_dir)


def undo(sandbox: Sandbox, pool: PoolInfo, run: RunDir, *args: str) -> Any:
    return csvimport(env_for(sandbox, pool), "undo", str(run.path), "--rate", "25",
                     "--list-rate", "25", "--json", *args)  # fmt: skip


def test_a_dry_run_deletes_nothing_and_lists_every_candidate_in_a_private_file(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = import_run(cognito, logs, pool, tmp_path, users=12)
    before = usernames(cognito, pool)
    done = undo(sandbox, pool, run)
    assert done.returncode == 0, done.stderr
    assert usernames(cognito, pool) == before
    assert sandbox.faults.calls().get("AdminDeleteUser", 0) == 0
    assert not (run.path / UNDO_JOURNAL).exists()
    plan = json.loads(done.stdout)["plan"]
    assert plan["to_delete"] == 12 and plan["left"] == {}
    assert len(plan["to_delete_examples"]) == 10  # masked, the rest in the plan file
    assert "user12" not in done.stderr + done.stdout and "u…2" in done.stderr
    assert f"user pool {pool.user_pool_id} ({pool.user_pool_name})" in done.stderr
    assert "staging" in done.stderr and "pass --yes" in done.stderr
    listed = run.path / UNDO_PLAN
    assert stat.S_IMODE(listed.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in listed.read_text().splitlines()]
    assert sorted(u["username"] for u in lines if u["action"] == "delete") == sorted(
        f"user{n}" for n in range(1, 13)
    )
    # the report counts what the dry run planned, and says nothing was undone
    report, _, _ = reconcile(run.path, cognito, logs)
    assert report.undo is not None
    assert (report.undo.planned, report.undo.deleted, report.undo.pending) == (12, 0, 0)
    html = render_report(report)
    assert 'id="undo"' in html and "planned by a dry run, not deleted" in html
    assert 'id="undone"' not in html


def test_the_report_says_the_import_was_undone_and_who_was_left_and_why(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = import_run(cognito, logs, pool, tmp_path, users=3)
    before, _, _ = reconcile(run.path, cognito, logs)
    assert before.undo is None and 'id="undo"' not in render_report(before)
    cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user2")
    time.sleep(PAST_THE_MARGIN)
    create(cognito, pool, "user2")  # someone else now: undo leaves them
    assert undo(sandbox, pool, run, "--yes").returncode == 0
    report, _, _ = reconcile(run.path, cognito, logs)
    assert report.undo is not None
    assert (report.undo.deleted, report.undo.failed, report.undo.pending) == (2, 0, 0)
    assert report.undo.left == {Why.OUTSIDE_JOB.value: 1}
    assert report.reconciliation.imported == 3  # the import's own counts are kept
    html = render_report(report)
    assert "This import was undone" in html
    assert "2 of the users it created were deleted from the pool again" in html
    assert escape(f"left in the pool: {Why.OUTSIDE_JOB.value}") in html


def test_yes_deletes_exactly_the_imported_users_and_leaves_same_named_others(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    # user1 exists before the import (Cognito skips it); user2 is deleted and created
    # again after the import; someone-else was never the run's.
    run = import_run(cognito, logs, pool, tmp_path, users=4,
                     before_import=lambda: create(cognito, pool, "user1"))  # fmt: skip
    create(cognito, pool, "someone-else")
    cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user2")
    time.sleep(PAST_THE_MARGIN)
    create(cognito, pool, "user2")
    kept = {name: sub_of(cognito, pool, name) for name in ("user1", "user2", "someone-else")}
    done = undo(sandbox, pool, run, "--yes")
    assert done.returncode == 0, done.stderr
    assert usernames(cognito, pool) == set(kept)
    assert {name: sub_of(cognito, pool, name) for name in kept} == kept  # the same users
    found = json.loads(done.stdout)
    assert found["plan"]["left"] == {"outside_job": 1}
    assert found["plan"]["not_created"] == {"skipped": 1}  # user1, there before the import
    assert "not candidates (the import did not create them): 1 skipped" in done.stderr
    assert found["result"] == {"deleted": 2, "already_gone": 0, "failed": {}, "not_done": 0}
    assert sandbox.faults.calls()["AdminDeleteUser"] == 3  # the test's own delete, and two
    assert f"leaving 1: {Why.OUTSIDE_JOB.value}: u…2" in done.stderr
    journal = open_journal(run).last()
    assert {key: r.step for key, r in journal.items()} == {
        "delete user3": Step.DONE, "delete user4": Step.DONE,
    }  # fmt: skip
    again = undo(sandbox, pool, run, "--yes")  # nothing left to do, nothing called
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["plan"]["already_deleted"] == 2
    assert sandbox.faults.calls()["AdminDeleteUser"] == 3


def test_an_undo_killed_after_a_call_resumes_without_a_second_call(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = import_run(cognito, logs, pool, tmp_path, users=5)
    sandbox.faults.update()  # count from here
    env = env_for(sandbox, pool)
    # Killed after Cognito deleted user2, before undo.jsonl said so.
    crashed = subprocess.run(
        [sys.executable, str(CRASH_AT), "--pass", "done", "before", "2", "undo",
         str(run.path), "--yes", "--rate", "25"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert open_journal(run).last()["delete user2"].step is Step.CALLING
    assert usernames(cognito, pool) == {"user3", "user4", "user5"}
    resumed = undo(sandbox, pool, run, "--yes")
    assert resumed.returncode == 0, resumed.stderr
    found = json.loads(resumed.stdout)
    assert found["plan"]["already_deleted"] == 1 and found["plan"]["already_gone"] == 1
    assert found["result"]["deleted"] == 3 and found["result"]["already_gone"] == 1
    assert usernames(cognito, pool) == set()
    assert sandbox.faults.calls()["AdminDeleteUser"] == 5  # one call per user, in all
    assert all(r.step is Step.DONE for r in open_journal(run).last().values())


def test_a_username_taken_again_between_a_kill_and_the_resume_is_left_to_its_new_user(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = import_run(cognito, logs, pool, tmp_path, users=2)
    crashed = subprocess.run(
        [sys.executable, str(CRASH_AT), "--pass", "done", "before", "1", "undo",
         str(run.path), "--yes", "--rate", "25"],
        capture_output=True, text=True, env=env_for(sandbox, pool), timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recorded = open_journal(run).last()["delete user1"]
    assert recorded.step is Step.CALLING and recorded.reason.startswith("sub ")
    create(cognito, pool, "user1")  # someone else's user1, with another sub
    newcomer = sub_of(cognito, pool, "user1")
    assert recorded.reason != f"sub {newcomer}"
    sandbox.faults.update()
    resumed = undo(sandbox, pool, run, "--yes")
    assert resumed.returncode == 0, resumed.stderr
    found = json.loads(resumed.stdout)
    assert found["plan"]["left"] == {"recreated": 1}
    assert found["result"] == {"deleted": 1, "already_gone": 1, "failed": {}, "not_done": 0}
    assert sandbox.faults.calls()["AdminDeleteUser"] == 1  # user2 only
    assert usernames(cognito, pool) == {"user1"} and sub_of(cognito, pool, "user1") == newcomer
    assert open_journal(run).last()["delete user1"].reason == "already gone"


def test_an_intent_whose_call_never_went_out_is_called_once_on_resume(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = import_run(cognito, logs, pool, tmp_path, users=3)
    sandbox.faults.update()
    crashed = subprocess.run(
        [sys.executable, str(CRASH_AT), "--pass", "calling", "after", "2", "undo",
         str(run.path), "--yes", "--rate", "25"],
        capture_output=True, text=True, env=env_for(sandbox, pool), timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert usernames(cognito, pool) == {"user2", "user3"}  # user2's intent, no call
    resumed = undo(sandbox, pool, run, "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert usernames(cognito, pool) == set()
    assert sandbox.faults.calls()["AdminDeleteUser"] == 3


def test_throttled_deletes_are_retried_and_each_user_deleted_once(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = import_run(cognito, logs, pool, tmp_path, users=6)
    journal = open_journal(run)
    plan = plan_undo(run, cognito, journal, rate=25)
    sandbox.faults.update(throttle_every=2, throttle_operations=["AdminDeleteUser"])
    result = run_undo(run, cognito, plan, journal, rate=25)
    assert result.deleted == 6 and not result.failed
    # every other attempt: each user but the first throttled once, then deleted
    assert sandbox.faults.throttled()["AdminDeleteUser"] == 5
    assert sandbox.faults.calls()["AdminDeleteUser"] == 6 + 5
    assert usernames(cognito, pool) == set()


def test_deletes_over_the_accounts_user_update_quota_are_retried(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path,
    cli_client: Callable[..., Any],
) -> None:  # fmt: skip
    run = import_run(cognito, logs, pool, tmp_path, users=6)
    journal = open_journal(run)
    plan = plan_undo(run, cognito, journal, rate=25)
    sandbox.settings.update(user_update_rps=2)  # the apps use the rest of the 25/s
    # The command line's client (6 attempts): with botocore's 3, a delete's retries could
    # all land in second-long windows already used up, and the test was flaky.
    result = run_undo(run, cli_client(), plan, journal, rate=25)
    assert result.deleted == 6 and not result.failed
    assert sandbox.faults.calls()["AdminDeleteUser"] > 6  # some refused, then retried
    assert usernames(cognito, pool) == set()


@pytest.mark.parametrize(("fault", "code", "step"), [
    # Throttling is a refusal: nothing was deleted, the outcome says so.
    ({"throttle_every": 1}, "TooManyRequestsException", Step.NOT_DONE),
    # A 5xx may have deleted: the intent stays, and the rerun reads the pool to tell.
    ({"server_error_every": 1}, "InternalErrorException", Step.CALLING),
])  # fmt: skip
def test_a_call_whose_retries_run_out_exits_3_and_a_rerun_deletes_the_user(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path,
    fault: dict[str, int], code: str, step: Step,
) -> None:  # fmt: skip
    run = import_run(cognito, logs, pool, tmp_path, users=2)
    sandbox.faults.update(**fault, throttle_operations=["AdminDeleteUser"])
    done = undo(sandbox, pool, run, "--yes")
    assert done.returncode == 3
    assert code in done.stderr and f"csvimport undo {run.path} --yes` again" in done.stderr
    assert open_journal(run).last()["delete user1"].step is step
    sandbox.faults.clear()
    again = undo(sandbox, pool, run, "--yes")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"]["deleted"] == 2  # user1 still there, same sub
    assert usernames(cognito, pool) == set()


def test_undo_needs_the_reports_results(
    sandbox: Sandbox, cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=2)
    run_all(run_dir, cognito, pool)
    done = undo(sandbox, pool, RunDir.open(run_dir), "--yes")
    assert done.returncode == 2
    assert "results.jsonl" in done.stderr and "csvimport report" in done.stderr
    assert usernames(cognito, pool) == {"user1", "user2"}


def test_migrated_users_are_left_unless_include_migrated(
    sandbox: Sandbox, cognito: Any, logs: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    run_dir = deferred_run(cognito, pool, tmp_path, users=3)
    create(cognito, pool, "legacy2")  # not the migration function's: before the run
    time.sleep(PAST_THE_MARGIN)
    run_all(run_dir, cognito, pool)
    _, results, _ = reconcile(run_dir, cognito, logs)
    write_results(run_dir, results)
    run = RunDir.open(run_dir)
    create(cognito, pool, "legacy0")  # as the migration function does at a first sign-in
    left = undo(sandbox, pool, run, "--yes")
    assert left.returncode == 0, left.stderr
    assert json.loads(left.stdout)["plan"]["deferred_not_read"] == 3
    assert usernames(cognito, pool) == {"legacy0", "legacy2"}
    full = undo(sandbox, pool, run, "--yes", "--include-migrated")
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["plan"]["left"] == {"not_in_pool": 1, "before_run": 1}
    assert usernames(cognito, pool) == {"legacy2"}


@pytest.mark.parametrize(("estimated_users", "lookup", "calls"),
                         [(10_000, Lookup.FILTER, 4), (0, Lookup.SCAN, 1)])  # fmt: skip
def test_a_username_filter_and_a_scan_of_the_pool_decide_alike(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path,
    estimated_users: int, lookup: Lookup, calls: int,
) -> None:  # fmt: skip
    run = import_run(cognito, logs, pool, tmp_path, users=5,
                     before_import=lambda: create(cognito, pool, "user5"))  # fmt: skip
    cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user1")
    cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user2")
    time.sleep(PAST_THE_MARGIN)
    create(cognito, pool, "user2")
    plan = plan_undo(run, cognito, open_journal(run), rate=25, estimated_users=estimated_users)
    assert plan.lookup is lookup and plan.lookups == calls  # 4 candidates, one page
    assert [t.candidate.username for t in plan.to_delete] == ["user3", "user4"]
    assert {left.candidate.username: left.why for left in plan.left} == {
        "user1": Why.NOT_IN_POOL, "user2": Why.OUTSIDE_JOB,
    }  # fmt: skip
    assert all(t.sub == sub_of(cognito, pool, t.candidate.username) for t in plan.to_delete)


def test_a_jobs_time_from_the_run_journal_is_rounded_out_to_whole_seconds() -> None:
    window = recorded_window("2026-12-03T06:00:00+00:00", "2026-12-03T06:00:05+00:00")
    assert window is not None
    assert window.holds(datetime(2026, 12, 3, 6, 0, 5, 900_000, tzinfo=UTC))  # truncated end
    assert not window.holds(datetime(2026, 12, 3, 6, 0, 8, tzinfo=UTC))
    assert not window.holds(datetime(2026, 12, 3, 5, 59, 58, tzinfo=UTC))
    assert recorded_window("2026-12-03T06:00:00+00:00", None) is None
