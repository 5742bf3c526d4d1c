"""`csvimport report` and `status --wait --report` as an operator runs them."""

from __future__ import annotations

import html
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from csvimport.report.logs import log_group, log_stream
from csvimport.run.journal import Journal
from csvimport.rundir import RunDir
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    MESSY,
    build_run,
    csvimport,
    env_for,
    pool_spec,
    reported_run,
    run_all,
)


def test_report_accounts_for_every_user_and_writes_the_files(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user2")
    run_dir = build_run(cognito, pool, tmp_path, users=3, extra=MESSY)
    env = env_for(sandbox, pool)
    assert csvimport(env, "start", str(run_dir), "--no-wait").returncode == 0
    waited = csvimport(env, "status", str(run_dir), "--wait", "--report")
    assert waited.returncode == 1, waited.stderr  # one skipped, one rejected, one duplicate
    assert (run_dir / "report.html").exists()

    result = csvimport(env, "report", str(run_dir))
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == str(run_dir / "report.html")
    assert "3 of 6 users are in Cognito; 3 need attention" in result.stderr
    assert ("1 rejected before import, 1 duplicates, 1 skipped and 0 failed by Cognito, "
            "0 not processed") in result.stderr  # fmt: skip
    assert "MISMATCH" not in result.stderr
    for name in ("results.jsonl", "failed-users.csv", "retry-source.csv", "report.html"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    # Every file of the run, by whichever command wrote it, is private and whole (the
    # journal's lock file holds no data, only who works on the run).
    files = [p for p in run_dir.rglob("*") if p.is_file() and p.name != "journal.lock"]
    assert {"journal.json", "manifest.json", "pool.json", "mapping.toml"} <= {p.name for p in files}
    assert [p.name for p in files if p.name.endswith(".tmp")] == []
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.relative_to(run_dir)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    outcomes = [json.loads(x)["outcome"] for x in lines]
    assert sorted(outcomes) == ["duplicate", "imported", "imported", "imported", "rejected",
                                "skipped"]  # fmt: skip
    html = (run_dir / "report.html").read_text()
    assert "user2@example.com" not in html  # masked by default

    shown = csvimport(env, "report", str(run_dir), "--show-pii", "--out", str(tmp_path / "r.html"))
    assert shown.returncode == 1
    assert "user2@example.com" in (tmp_path / "r.html").read_text()


def test_report_says_on_stderr_while_it_waits_for_log_lines_that_lag_behind(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    env = env_for(sandbox, pool)
    # Lines show 8 s after their user is processed: enough for `start` to see the job end
    # and return even on a loaded machine (4 s was not, in a suite beside other work).
    sandbox.settings.update(log_lag_seconds=8)
    assert csvimport(env, "start", str(run_dir)).returncode == 0
    result = csvimport(env, "report", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "so far" in line][0].endswith(
        " of 3 log lines so far; waiting for CloudWatch Logs to catch up"
    )
    assert "3 of 3 users are in Cognito; 0 need attention" in result.stderr


def test_report_of_a_fully_imported_run_exits_0_and_clears_what_killed_reports_left(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    env = env_for(sandbox, pool)
    assert csvimport(env, "start", str(run_dir)).returncode == 0
    dead = 2**22 + 1  # above Linux's highest pid: no process has it
    left = [run_dir / f".{name}.{dead}.tmp"
            for name in ("results.jsonl", "failed-users.csv", "report.html")]  # fmt: skip
    left.append(run_dir / "results.jsonl.tmp")  # the name an older csvimport used
    # a report writing right now, in another live process (the test runs csvimport in its own)
    live = run_dir / f".results.jsonl.{os.getppid()}.tmp"
    # the part files a killed report streamed its results into, and a live report's
    dead_parts = run_dir / f".report-parts.{dead}.x1y2"
    live_parts = run_dir / f".report-parts.{os.getppid()}.x3y4"
    for folder in (dead_parts, live_parts):
        folder.mkdir(mode=0o700)
        left.append(folder / "part-00000")
    for path in [*left, live]:
        path.write_text("half of a report with user data\n")
    result = csvimport(env, "report", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert [p for p in left if p.exists()] == [live_parts / "part-00000"] and live.exists()
    assert not dead_parts.exists()
    assert [p.name for p in run_dir.glob(".report-parts.*")] == [live_parts.name]
    assert "3 of 3 users are in Cognito; 0 need attention" in result.stderr
    assert not (run_dir / "retry-source.csv").exists()


def _rows(text: bytes, row: int, new: bytes | None) -> bytes:
    """``text`` with its line ``row`` (1 = first) replaced, or removed when ``new`` is None."""
    lines = text.splitlines()
    lines[row - 1 : row] = [] if new is None else [new]
    return b"\n".join(lines) + b"\n"


# A file of the run damaged, and what `report` says after "error: ".
DAMAGED_RUN_FILES = {
    # A file whose sha256 the manifest holds is refused as changed before it is parsed; the
    # line-by-line checks guard runs built before manifests held every file's sha256.
    "chunk-0001.map.csv": [
        (None, "{path} is missing from the run directory"),
        (lambda t: _rows(t, 3, b"2,2,\xff\xfe"), "{path} changed since the build"),
        (lambda t: _rows(t, 4, None), "{path} changed since the build"),
    ],
    "rejects.csv": [
        (None, "{path} is missing from the run directory"),
        (lambda t: _rows(t, 2, b"\x00\xff\xfe"), "{path} changed since the build"),
    ],
    "chunk-0001.csv": [
        (None, "{path} is missing from the run directory"),
        (lambda t: t.replace(b"user1", b"userX"), "{path} changed since the build"),
    ],
    "pool.json": [
        (lambda t: b"\xff\xfe" + t, "{path} changed since the build"),
        (lambda t: b"[]", "{path} changed since the build"),
    ],
    "logs/*.jsonl": [
        (lambda t: _rows(t, 1, b"\x89PNG garbage"),
         "{path} line 1 is damaged: it is not a CloudWatch log event"),
        (lambda t: _rows(t, 2, b"{}"), "{path} line 2 is damaged: it is not a CloudWatch log event"),
        (lambda t: _rows(t, 1, b"[]"), "{path} line 1 is damaged: it is not a CloudWatch log event"),
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def imported_once(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PoolInfo]:
    """A run of 3 users and the MESSY rows, imported once for the tests that damage a copy
    of it: the import is the slow part of each, and the pool is theirs alone."""
    info = sandbox.create_pool(pool_spec())
    cognito = sandbox.client("cognito-idp")
    run_dir = build_run(cognito, info, tmp_path_factory.mktemp("imported"), users=3, extra=MESSY)
    run_all(run_dir, cognito, info)
    return run_dir, info


@pytest.fixture
def imported_copy(imported_once: tuple[Path, PoolInfo], tmp_path: Path) -> tuple[Path, PoolInfo]:
    """A copy of the imported run, for one test to damage."""
    run_dir, info = imported_once
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy, info


def test_report_refuses_a_damaged_run_file_naming_it_its_line_and_the_fix(
    sandbox: Sandbox, imported_copy: tuple[Path, PoolInfo]
) -> None:
    run_dir, pool = imported_copy
    env = env_for(sandbox, pool)
    assert csvimport(env, "report", str(run_dir)).returncode == 1  # keeps the job's log
    for name, cases in DAMAGED_RUN_FILES.items():
        [path] = run_dir.glob(name)
        intact = path.read_bytes()
        for damage, said in cases:
            if damage is None:
                path.unlink()
            else:
                path.write_bytes(damage(intact))
            refused = csvimport(env, "report", str(run_dir))
            assert refused.returncode == 2, (said, refused.stderr)
            assert "error: " + said.format(path=path) in refused.stderr, refused.stderr
            hint = "Delete" if name == "logs/*.jsonl" else "Put the file back"
            assert f"hint: {hint}" in refused.stderr and "Traceback" not in refused.stderr
            path.write_bytes(intact)
    assert csvimport(env, "report", str(run_dir)).returncode == 1  # intact again: reported


@pytest.mark.parametrize(
    ("name", "said"),
    [("chunk-0001.map.csv", "changed since the build"),
     ("chunk-0001.csv", "changed since the build"),
     ("rejects.csv", "changed since the build")],
)  # fmt: skip
def test_report_refuses_a_file_edited_after_the_import_naming_it(
    sandbox: Sandbox, imported_copy: tuple[Path, PoolInfo], name: str, said: str
) -> None:
    run_dir, pool = imported_copy
    env = env_for(sandbox, pool)
    path = run_dir / name
    path.write_bytes(path.read_bytes().replace(b"1", b"7"))
    result = csvimport(env, "report", str(run_dir))
    assert result.returncode == 2, result.stderr
    assert f"error: {path} {said}" in result.stderr
    assert not (run_dir / "results.jsonl").exists()


def test_a_later_report_removes_the_retry_source_once_nobody_needs_a_retry(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    env = env_for(sandbox, pool)
    before = csvimport(env, "report", str(run_dir))  # no job yet: nobody is imported
    assert before.returncode == 1, before.stderr
    retry = run_dir / "retry-source.csv"
    assert len(retry.read_text().splitlines()) == 4  # the header and the 3 users
    assert csvimport(env, "start", str(run_dir)).returncode == 0

    after = csvimport(env, "report", str(run_dir))
    assert after.returncode == 0, after.stderr
    assert not retry.exists()
    assert f"removed {retry} of an earlier report: no user needs a retry now" in after.stderr
    assert [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")] == []
    with (run_dir / "failed-users.csv").open() as f:
        assert len(f.read().splitlines()) == 1  # the header only


def test_a_retry_source_that_cannot_be_rewritten_is_removed_not_left_stale(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=2, extra=MESSY)
    env = env_for(sandbox, pool)
    assert csvimport(env, "report", str(run_dir)).returncode == 1
    retry = run_dir / "retry-source.csv"
    assert retry.exists()
    (tmp_path / "legacy.csv").write_text("changed\n")  # the source no longer matches
    result = csvimport(env, "report", str(run_dir))
    assert result.returncode == 1, result.stderr
    assert "warning: retry-source.csv not written" in result.stderr
    assert f"{retry} of an earlier report was removed" in result.stderr
    assert not retry.exists()


def _job_log(run_dir: Path, pool: PoolInfo) -> tuple[str, str, str]:
    """The one job of the run: its id, log group and log stream."""
    run = RunDir.open(run_dir)
    [attempt] = Journal.load(run).attempts
    assert attempt.job_id is not None
    group = log_group(pool.user_pool_id, run.snapshot.name)
    return attempt.job_id, group, log_stream(attempt.job_id, attempt.job_name)


def _assert_reported_as_mismatch(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, said: str
) -> None:
    """`csvimport report` exits 1 and says ``said`` after MISMATCH: and in report.html."""
    result = csvimport(env_for(sandbox, pool), "report", str(run_dir), "--log-wait", "0")
    assert result.returncode == 1, result.stderr
    assert f"MISMATCH: {said}" in result.stderr
    assert said in html.unescape((run_dir / "report.html").read_text())


def test_a_line_missing_from_the_jobs_log_in_cloudwatch_is_a_mismatch_on_stderr_and_in_the_report(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    run_all(run_dir, cognito, pool)
    job_id, group, stream = _job_log(run_dir, pool)
    events = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                 startFromHead=True)["events"]  # fmt: skip
    assert len(events) == 3
    # The log loses line 2 (CloudWatch has no call to delete one event: the stream is
    # made again without it).
    logs.delete_log_stream(logGroupName=group, logStreamName=stream)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": e["timestamp"], "message": e["message"]}
                                   for e in events if "Line Number 2 " not in e["message"]])  # fmt: skip
    _assert_reported_as_mismatch(sandbox, pool, run_dir, (
        f"job {job_id} (chunk-0001.csv): Cognito counted 3 users but its log has 2 lines; "
        "1 user(s) have no known outcome."
    ))  # fmt: skip
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["outcome"] for x in lines) == ["imported", "imported",
                                                               "not processed"]  # fmt: skip


def test_a_line_missing_from_the_stored_log_is_read_again_from_cloudwatch_no_mismatch(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir, job_id, stored = reported_run(pool, cognito, logs, tmp_path)
    lines = stored.read_text().splitlines()
    stored.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    result = csvimport(env_for(sandbox, pool), "report", str(run_dir), "--log-wait", "0")
    assert result.returncode == 0, result.stderr
    assert "MISMATCH" not in result.stderr
    assert len(stored.read_text().splitlines()) == 3


def test_a_stored_log_whose_outcomes_differ_from_cognitos_counters_is_a_mismatch(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir, job_id, stored = reported_run(pool, cognito, logs, tmp_path)
    stored.write_text(stored.read_text().replace("[SUCCEEDED]", "[SKIPPED]", 1))
    _assert_reported_as_mismatch(sandbox, pool, run_dir, (
        f"job {job_id} (chunk-0001.csv): Cognito's counters (imported 3, skipped 0, "
        "failed 0) differ from its log (2, 1, 0). Run `csvimport report` again later (log "
        "lines can lag); if it stays, `csvimport verify` checks these users in the pool, and "
        f"logs/{job_id}.jsonl holds the log as read."
    ))  # fmt: skip


LOG_FAULTS = {
    "throttled": {"throttle_every": 2, "throttle_operations": ["FilterLogEvents"]},
    "empty page": {"empty_log_pages_every": 2},
    "both": {"throttle_every": 2, "throttle_operations": ["FilterLogEvents"],
             "empty_log_pages_every": 2},
}  # fmt: skip


@pytest.mark.parametrize("case", list(LOG_FAULTS))
def test_report_reads_every_log_line_through_throttling_and_empty_pages(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path, case: str
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    run_all(run_dir, cognito, pool)
    _, group, stream = _job_log(run_dir, pool)
    sandbox.faults.update(**LOG_FAULTS[case])
    # One call of our own takes the first turn, so the report's first page is the 2nd:
    # throttled and/or empty with a token to go on from.
    logs.filter_log_events(logGroupName=group, logStreamNames=[stream])
    # --log-wait 0: a page given up on would leave users without an outcome, a MISMATCH.
    result = csvimport(env_for(sandbox, pool), "report", str(run_dir), "--log-wait", "0")
    assert result.returncode == 0, result.stderr
    assert "3 of 3 users are in Cognito; 0 need attention" in result.stderr
    assert "MISMATCH" not in result.stderr and "warning" not in result.stderr
    # Both: the 2nd call is throttled, the 3rd an empty page, the 4th throttled again.
    throttled = {"throttled": {"FilterLogEvents": 1}, "empty page": {},
                 "both": {"FilterLogEvents": 2}}  # fmt: skip
    assert sandbox.faults.throttled() == throttled[case]


def test_report_throttled_for_good_by_cloudwatch_logs_exits_3_naming_it(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    run_all(run_dir, cognito, pool)
    sandbox.faults.update(throttle_every=1, throttle_operations=["FilterLogEvents"])
    result = csvimport(env_for(sandbox, pool, AWS_MAX_ATTEMPTS="2"), "report", str(run_dir))
    assert result.returncode == 3, result.stderr
    assert sandbox.faults.throttled() == {"FilterLogEvents": 2}
    assert "error: FilterLogEvents failed: ThrottlingException" in result.stderr
    assert "hint: " in result.stderr and "Traceback" not in result.stderr
    assert not (run_dir / "results.jsonl").exists()
