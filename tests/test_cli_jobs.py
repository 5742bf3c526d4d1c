"""`csvimport start`, `status` and `stop` as an operator runs them: real subprocesses
against the sandbox, killed at every step of a job and run again, interrupted, and
stopped from a second terminal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from csvimport.run.journal import JOURNAL, JOURNAL_LOCK, Journal, Step
from csvimport.rundir import RunDir
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    CLOSED_ENDPOINT,
    CRASH_AT,
    DAMAGED_JOURNALS,
    Importer,
    answering,
    build_run,
    csvimport,
    damaged_journal,
    env_for,
    imported_run,
    run_all,
    sandbox_jobs,
    upload,
)


@pytest.fixture
def run_dir(cognito: Any, pool: PoolInfo, tmp_path: Path) -> Path:
    return build_run(cognito, pool, tmp_path, users=5, max_rows=3)


def test_start_imports_the_run_and_status_then_reports_it_all_imported(
    sandbox: Sandbox, pool: PoolInfo, importer: Importer, run_dir: Path
) -> None:
    env = env_for(sandbox, pool)
    started = csvimport(env, "start", str(run_dir))
    assert started.returncode == 0, started.stderr
    assert "chunk-0001.csv: job import-" in started.stderr
    assert "succeeded: 3 imported, 0 skipped, 0 failed" in started.stderr
    assert f"run {run_dir}: 5 of 5 users imported, 0 skipped, 0 failed" in started.stdout
    for secret in ("X-Amz-Signature", "X-Amz-Security-Token", "_sandbox/upload"):
        assert secret not in started.stdout + started.stderr
    status = csvimport(env, "status", str(run_dir), "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["all_imported"] and data["imported"] == 5
    assert [c["state"] for c in data["chunks"]] == ["imported", "imported"]
    assert len(importer.users()) == 5


def test_status_of_a_run_not_yet_started_exits_1_and_says_what_to_run(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    result = csvimport(env_for(sandbox, pool), "status", str(run_dir))
    assert result.returncode == 1
    assert "chunk-0001.csv  3 users  no job yet  not started" in result.stdout
    assert f"not finished: 2 chunk(s) not started; run `csvimport start {run_dir}`" in (
        result.stderr
    )


def test_start_without_a_logs_role_exits_2_and_names_the_option(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    result = csvimport(env_for(sandbox, pool, CSVIMPORT_LOGS_ROLE_ARN=None), "start", str(run_dir))
    assert result.returncode == 2
    assert "error: no CloudWatch Logs role given" in result.stderr
    assert "hint: Pass --logs-role-arn or set CSVIMPORT_LOGS_ROLE_ARN" in result.stderr
    assert sandbox_jobs(sandbox, pool.user_pool_id) == []


def test_start_on_a_directory_that_is_not_a_build_exits_2(
    sandbox: Sandbox, pool: PoolInfo, tmp_path: Path
) -> None:
    result = csvimport(env_for(sandbox, pool), "start", str(tmp_path))
    assert result.returncode == 2
    assert f"error: {tmp_path} is not a finished csvimport build" in result.stderr


def test_dry_run_shows_the_plan_and_creates_nothing(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    result = csvimport(env_for(sandbox, pool), "start", str(run_dir), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "chunk-0001.csv (3 users): would create a job, upload and start it" in result.stderr
    assert "chunk-0002.csv (2 users): would create a job, upload and start it" in result.stderr
    assert sandbox_jobs(sandbox, pool.user_pool_id) == []


BAD_ROLE = "arn:aws:iam::123456789012:role/does-not-exist"


def every_state(sandbox: Sandbox, pool: PoolInfo, cognito: Any, importer: Importer,
                run_dir: Path) -> None:  # fmt: skip
    """Put chunks 1-8 of the run in every state `start` tells apart: succeeded, failed as
    a whole, stopped, expired, uploaded not started, created not uploaded (known to the
    journal), no job, running. Only chunk 6's job is in the journal."""
    run = RunDir.open(run_dir)
    names = [f"csvimport-{run.run_id}-{chunk.name}-1" for chunk in run.chunks]

    def create(n: int, role: str = pool.logs_role_arn) -> dict[str, Any]:
        return dict(cognito.create_user_import_job(
            JobName=names[n], UserPoolId=pool.user_pool_id, CloudWatchLogsRoleArn=role,
        )["UserImportJob"])  # fmt: skip

    def uploaded(n: int, role: str = pool.logs_role_arn) -> str:
        job = create(n, role)
        assert upload(job["PreSignedUrl"], (run_dir / run.chunks[n].file).read_bytes()).ok
        return str(job["JobId"])

    create(3)
    sandbox.clock.advance(25 * 3600)  # a job left in Created expires within a day or two
    importer.wait(importer.start(uploaded(0))["JobId"])
    importer.wait(importer.start(uploaded(1, role=BAD_ROLE))["JobId"])
    sandbox.settings.update(job_seconds=600)
    stopped = importer.start(uploaded(2))["JobId"]
    cognito.stop_user_import_job(UserPoolId=pool.user_pool_id, JobId=stopped)
    importer.wait(stopped)
    uploaded(4)
    journal = Journal.load(run)
    attempt = journal.add(run.chunks[5], names[5])
    journal.record(attempt, "created", step=Step.CREATED, job_id=create(5)["JobId"])
    importer.start(uploaded(7))


def word_for_word(text: str, sandbox: Sandbox, pool: PoolInfo, run_dir: Path) -> list[str]:
    """The lines of ``text``, each job id put as its name's end (<chunk-0001-1>), the run's
    id as RUN_ID and its directory as RUN."""
    run_id = RunDir.open(run_dir).run_id
    for job in sandbox_jobs(sandbox, pool.user_pool_id):
        text = text.replace(job["JobId"], "<" + job["JobName"].split(f"-{run_id}-")[1] + ">")
    return text.replace(str(run_dir), "RUN").replace(run_id, "RUN_ID").splitlines()


ROLE_FAILED = (
    "failed: 0 imported, 0 skipped, 0 failed. Cognito could not use the CloudWatch Logs "
    "role, so the job could not run. (Cognito: 'Amazon Cognito could not assume the "
    f"CloudWatch Logs role {BAD_ROLE} or it lacks the logs permissions; the role must "
    "trust cognito-idp.amazonaws.com.')"
)
ADOPTED = (
    "warning: 6 import job(s) of run RUN_ID were not in journal.json (an old copy put "
    "back?); took them in from Cognito's job list: <chunk-0004-1>, <chunk-0001-1>, "
    "<chunk-0002-1>, <chunk-0003-1>, <chunk-0005-1>, <chunk-0008-1>"
)
COUNTS = "imported {}, skipped 0, failed 0"


def test_start_status_and_stop_say_word_for_word_what_they_do_with_a_chunk_in_every_state(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, importer: Importer, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=8, max_rows=1)
    every_state(sandbox, pool, cognito, importer, run_dir)
    env = env_for(sandbox, pool)

    def said(*args: str) -> tuple[int, list[str], list[str]]:
        result = csvimport(env, *args)
        return (result.returncode, word_for_word(result.stdout, sandbox, pool, run_dir),
                word_for_word(result.stderr, sandbox, pool, run_dir))  # fmt: skip

    plan = [
        "chunk-0004.csv (1 users): would replace the expired job",
        "chunk-0005.csv (1 users): would start the uploaded job",
        "chunk-0006.csv (1 users): would replace the job that was never uploaded",
        "chunk-0007.csv (1 users): would create a job, upload and start it",
        "chunk-0008.csv (1 users): would wait for the running job",
    ]
    assert said("start", str(run_dir), "--dry-run") == (0, [
        f"chunk-0001.csv  1 users  job <chunk-0001-1>  imported  {COUNTS.format(1)}",
        f"chunk-0002.csv  1 users  job <chunk-0002-1>  failed  {COUNTS.format(0)}",
        f"chunk-0003.csv  1 users  job <chunk-0003-1>  stopped  {COUNTS.format(0)}",
        f"chunk-0004.csv  1 users  job <chunk-0004-1>  not started  {COUNTS.format(0)}",
        f"chunk-0005.csv  1 users  job <chunk-0005-1>  uploaded, not started  {COUNTS.format(0)}",
        f"chunk-0006.csv  1 users  job <chunk-0006-1>  not started  {COUNTS.format(0)}",
        "chunk-0007.csv  1 users  no job yet  not started",
        f"chunk-0008.csv  1 users  job <chunk-0008-1>  running  {COUNTS.format(1)}",
        "run RUN: 2 of 8 users imported, 0 skipped, 0 failed",
    ], [
        ADOPTED + " (in memory only: this look changes nothing in the run directory)",
        f"chunk-0002.csv: job <chunk-0002-1> {ROLE_FAILED}; not run again without "
        "--retry-failed",
        "chunk-0003.csv: job <chunk-0003-1> stopped: 0 imported, 0 skipped, 0 failed; a "
        "stopped job cannot be restarted; not run again without --resume-stopped",
        *plan,
    ])  # fmt: skip
    _, _, stderr = said("start", str(run_dir), "--dry-run", "--retry-failed", "--resume-stopped")
    assert stderr[1:] == [
        "chunk-0002.csv (1 users): would retry in a new job",
        "chunk-0003.csv (1 users): would resume in a new job",
        *plan,
    ]

    sandbox.settings.update(job_seconds=0.3)  # chunk 8's job ends
    importer.wait(next(j["JobId"] for j in sandbox_jobs(sandbox, pool.user_pool_id)
                       if j["JobName"].endswith("-chunk-0008-1")))  # fmt: skip
    rc, stdout, stderr = said("start", str(run_dir))
    assert (rc, stderr) == (1, [
        ADOPTED,
        f"chunk-0002.csv: job <chunk-0002-1> {ROLE_FAILED}; not run again without "
        "--retry-failed",
        "chunk-0003.csv: job <chunk-0003-1> stopped: 0 imported, 0 skipped, 0 failed; a "
        "stopped job cannot be restarted; not run again without --resume-stopped",
        "chunk-0004.csv: job <chunk-0004-1> set aside: it expired before it was started",
        "chunk-0004.csv: created job <chunk-0004-2>, uploading 336 bytes",
        "chunk-0004.csv: started job <chunk-0004-2> (1 users)",
        "chunk-0004.csv: job <chunk-0004-2> succeeded: 1 imported, 0 skipped, 0 failed",
        "chunk-0005.csv: started job <chunk-0005-1> (1 users)",
        "chunk-0005.csv: job <chunk-0005-1> succeeded: 1 imported, 0 skipped, 0 failed",
        "chunk-0006.csv: job <chunk-0006-1> set aside: it was created but never uploaded, "
        "and its upload URL is not kept",
        "chunk-0006.csv: created job <chunk-0006-2>, uploading 336 bytes",
        "chunk-0006.csv: started job <chunk-0006-2> (1 users)",
        "chunk-0006.csv: job <chunk-0006-2> succeeded: 1 imported, 0 skipped, 0 failed",
        "chunk-0007.csv: created job <chunk-0007-1>, uploading 336 bytes",
        "chunk-0007.csv: started job <chunk-0007-1> (1 users)",
        "chunk-0007.csv: job <chunk-0007-1> succeeded: 1 imported, 0 skipped, 0 failed",
        "some users were not imported: `csvimport report RUN` says which and why",
    ])  # fmt: skip
    assert stdout[-1] == "run RUN: 6 of 8 users imported, 0 skipped, 0 failed"

    assert said("start", str(run_dir), "--retry-failed", "--logs-role-arn", BAD_ROLE)[2] == [
        "chunk-0002.csv: created job <chunk-0002-2>, uploading 336 bytes",
        "chunk-0002.csv: started job <chunk-0002-2> (1 users)",
        f"chunk-0002.csv: job <chunk-0002-2> {ROLE_FAILED}",
        "  The role must trust cognito-idp.amazonaws.com (sts:AssumeRole) and allow "
        "logs:CreateLogGroup, logs:CreateLogStream, logs:DescribeLogStreams and "
        "logs:PutLogEvents on arn:aws:logs:REGION:ACCOUNT:log-group:/aws/cognito/*; fix it, "
        "then `csvimport start RUN --retry-failed`.",
        "some users were not imported: `csvimport report RUN` says which and why",
    ]
    sandbox.settings.update(job_seconds=600)
    assert said("start", str(run_dir), "--resume-stopped", "--no-wait")[2] == [
        f"chunk-0002.csv: job <chunk-0002-2> {ROLE_FAILED}; not run again without --retry-failed",
        "chunk-0003.csv: created job <chunk-0003-2>, uploading 336 bytes",
        "chunk-0003.csv: started job <chunk-0003-2> (1 users)",
        "job started; follow it with `csvimport status RUN --wait`",
    ]
    assert said("stop", str(run_dir)) == (0, [], [
        "chunk-0003.csv: job <chunk-0003-2> stopped: 1 imported, 0 skipped, 0 failed; a "
        "stopped job cannot be restarted",
        "Cognito keeps no per-user state for the users it did not reach: `csvimport report "
        "RUN` reads the log to tell them apart. `csvimport start RUN` goes on with the next "
        "chunks; add --resume-stopped to import this chunk again in a new job (users "
        "already imported are then skipped).",
    ])  # fmt: skip
    assert said("status", str(run_dir)) == (1, [
        f"chunk-0001.csv  1 users  job <chunk-0001-1>  imported  {COUNTS.format(1)}",
        f"chunk-0002.csv  1 users  job <chunk-0002-2>  failed  {COUNTS.format(0)}",
        f"chunk-0003.csv  1 users  job <chunk-0003-2>  stopped  {COUNTS.format(1)}",
        *[f"chunk-000{n}.csv  1 users  job <chunk-000{n}-{a}>  imported  {COUNTS.format(1)}"
          for n, a in ((4, 2), (5, 1), (6, 2), (7, 1), (8, 1))],
        "run RUN: 7 of 8 users imported, 0 skipped, 0 failed",
    ], ["some users were not imported: `csvimport report RUN` says which and why"])  # fmt: skip
    assert said("stop", str(run_dir)) == (
        0,
        [],
        ["no import job of RUN is running: nothing to stop"],
    )


# Journal saves of `start` for the first chunk: 1 create requested, 2 created (job id),
# 3 status Created, 4 upload started, 5 uploaded, 6 started, 7 status Pending.
CRASH_POINTS = {
    "after-create-before-the-journal-knew": ("before", 2),
    "created-not-uploaded": ("after", 3),
    "upload-begun": ("after", 4),
    "uploaded-not-recorded": ("before", 5),
    "uploaded-not-started": ("after", 5),
    "started-not-recorded": ("before", 6),
    "started-and-running": ("after", 7),
    "second-chunk-created": ("after", 13),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_start_killed_at_any_step_resumes_with_one_job_per_chunk_and_every_user_once(
    sandbox: Sandbox, pool: PoolInfo, importer: Importer, run_dir: Path, point: str
) -> None:
    env = env_for(sandbox, pool)
    when, number = CRASH_POINTS[point]
    crashed = subprocess.run(
        [sys.executable, str(CRASH_AT), when, str(number), "start", str(run_dir)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    json.loads((run_dir / JOURNAL).read_text())  # never half-written

    resumed = csvimport(env, "start", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    jobs = sandbox_jobs(sandbox, pool.user_pool_id)
    succeeded = sorted(j["JobName"].rsplit("-", 2)[1] for j in jobs if j["Status"] == "Succeeded")
    assert succeeded == ["0001", "0002"], jobs
    assert all(j["Uploads"] <= 1 for j in jobs), jobs
    # Jobs set aside were never uploaded, so they imported nobody.
    assert all(j["Uploads"] == 0 for j in jobs if j["Status"] != "Succeeded"), jobs
    users = importer.users()
    assert sorted(users) == [f"user{n}" for n in range(1, 6)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_during_status_wait_exits_130_says_the_job_runs_on_journal_whole(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, signum: int
) -> None:
    env = env_for(sandbox, pool)
    sandbox.settings.update(job_seconds=30)
    started = csvimport(env, "start", str(run_dir), "--no-wait")
    assert started.returncode == 0, started.stderr
    assert "job started; follow it with `csvimport status" in started.stderr
    with subprocess.Popen(
        [sys.executable, "-m", "csvimport", "status", str(run_dir), "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as watching:  # fmt: skip
        # Signalled once it works on the run (its pid in the lock file), not after a fixed
        # sleep: under load, Python may still be importing, where Ctrl-C is a traceback.
        lock, deadline = run_dir / JOURNAL_LOCK, time.monotonic() + 60
        while time.monotonic() < deadline and watching.poll() is None:
            if lock.exists() and lock.read_text().startswith(f"{watching.pid} "):
                break
            time.sleep(0.05)
        time.sleep(0.5)  # into its wait
        watching.send_signal(signum)
        _, stderr = watching.communicate(timeout=30)
    assert watching.returncode == 130, stderr
    assert "A started job keeps running in Cognito" in stderr
    assert f"`csvimport stop {run_dir}` stops the job" in stderr
    assert f"`csvimport start {run_dir}` goes on where this stopped" in stderr
    assert "Traceback" not in stderr
    journal = json.loads((run_dir / JOURNAL).read_text())
    assert journal["attempts"][0]["step"] == "started"


def test_stop_from_a_second_terminal_stops_the_job_start_is_waiting_for(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    env = env_for(sandbox, pool)
    sandbox.settings.update(job_seconds=30)
    with subprocess.Popen(
        [sys.executable, "-m", "csvimport", "start", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as starting:  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            journal = run_dir / JOURNAL
            if journal.exists() and '"step": "started"' in journal.read_text():
                break
            time.sleep(0.1)
        stopped = csvimport(env, "stop", str(run_dir))
        _, start_err = starting.communicate(timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert "chunk-0001.csv: job import-" in stopped.stderr
    assert "stopped: " in stopped.stderr and "cannot be restarted" in stopped.stderr
    assert "holds the run and records the stop" in stopped.stderr
    assert "--resume-stopped" in stopped.stderr
    # The running start saw the stop, recorded it, and halted the run with exit 1.
    assert starting.returncode == 1, start_err
    journal = json.loads((run_dir / JOURNAL).read_text())
    assert [a["status"] for a in journal["attempts"]] == ["Stopped"]
    jobs = sandbox_jobs(sandbox, pool.user_pool_id)
    assert [j["Status"] for j in jobs] == ["Stopped"]


def uploads(sandbox: Sandbox, pool: PoolInfo) -> list[tuple[str, str, int]]:
    """Every job of the pool as (name, status, uploads), in creation order."""
    return [
        (j["JobName"], j["Status"], j["Uploads"]) for j in sandbox_jobs(sandbox, pool.user_pool_id)
    ]


def listed_job_names(cognito: Any, pool: PoolInfo) -> list[str]:
    """What ListUserImportJobs shows, every page (there is no paginator for it)."""
    names: list[str] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool.user_pool_id, "MaxResults": 60}
    while True:
        page = cognito.list_user_import_jobs(**kwargs)
        names += [j["JobName"] for j in page["UserImportJobs"]]
        if not page.get("PaginationToken"):
            return names
        kwargs["PaginationToken"] = page["PaginationToken"]


def test_a_lost_journal_is_rebuilt_from_cognito_so_status_report_and_start_see_every_job(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, importer: Importer, run_dir: Path
) -> None:
    env = env_for(sandbox, pool)
    assert csvimport(env, "start", str(run_dir)).returncode == 0
    jobs = uploads(sandbox, pool)
    journal = run_dir / JOURNAL

    journal.unlink()
    status = csvimport(env, "status", str(run_dir))
    assert status.returncode == 0, status.stderr
    assert "no job yet" not in status.stdout
    assert "chunk-0001.csv  3 users  job import-" in status.stdout
    assert f"run {run_dir}: 5 of 5 users imported" in status.stdout
    assert "journal.json was missing: rebuilt it from the 2 import jobs" in status.stderr
    rebuilt = json.loads(journal.read_text())
    assert rebuilt["rebuilt"][0]["jobs"] == 2
    assert [(a["chunk"], a["number"], a["status"], a["step"]) for a in rebuilt["attempts"]] == [
        ("chunk-0001.csv", 1, "Succeeded", "started"), ("chunk-0002.csv", 1, "Succeeded", "started")
    ]  # fmt: skip

    journal.unlink()
    report = csvimport(env, "report", str(run_dir))
    assert report.returncode == 0, report.stderr
    assert "5 of 5 users are in Cognito; 0 need attention" in report.stderr

    journal.unlink()
    again = csvimport(env, "start", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert "rebuilt it from the 2 import jobs" in again.stderr
    assert uploads(sandbox, pool) == jobs  # no job created, nothing uploaded again
    assert sorted(listed_job_names(cognito, pool)) == sorted(name for name, _, _ in jobs)
    assert len(importer.users()) == 5


def test_a_journal_lost_while_its_job_runs_is_rebuilt_and_start_waits_for_that_job(
    sandbox: Sandbox, pool: PoolInfo, importer: Importer, run_dir: Path
) -> None:
    env = env_for(sandbox, pool)
    # The job runs until the resumed start has seen it running, however slow the machine.
    sandbox.settings.update(job_seconds=600)
    assert csvimport(env, "start", str(run_dir), "--no-wait").returncode == 0
    (run_dir / JOURNAL).unlink()

    status = csvimport(env, "status", str(run_dir))
    assert status.returncode == 1
    assert "chunk-0001.csv  3 users  job import-" in status.stdout
    assert "running" in status.stdout.splitlines()[0]

    (run_dir / JOURNAL).unlink()
    resuming = subprocess.Popen([sys.executable, "-m", "csvimport", "start", str(run_dir)],
                                stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert resuming.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("is already running" in s for s in seen):
        line = resuming.stderr.readline()
        if not line:
            break
        seen.append(line)
    sandbox.settings.update(job_seconds=0.3)  # now let it end
    rest = resuming.communicate(timeout=120)[1]
    stderr = "".join(seen) + rest
    assert resuming.returncode == 0, stderr
    assert "is already running" in stderr
    assert [(name.rsplit("-", 2)[1], state, n) for name, state, n in uploads(sandbox, pool)] == [
        ("0001", "Succeeded", 1), ("0002", "Succeeded", 1)
    ]  # fmt: skip
    assert sorted(importer.users()) == [f"user{n}" for n in range(1, 6)]


@pytest.mark.parametrize(
    ("case", "command"),
    [("binary-garbage", "start"), ("a-list", "status"), ("an-empty-object", "report"),
     ("an-attempt-without-step", "stop")],
)  # fmt: skip
def test_a_damaged_journal_is_refused_with_exit_2_and_the_way_to_rebuild_it(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, case: str, command: str
) -> None:
    journal = damaged_journal(run_dir, case)
    damaged = journal.read_bytes()
    result = csvimport(env_for(sandbox, pool), command, str(run_dir))
    assert result.returncode == 2, result.stderr
    assert f"error: {journal} is damaged: {DAMAGED_JOURNALS[case][1]}" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert f"hint: Move it aside (mv {journal} {journal}.damaged)" in result.stderr
    assert f"`csvimport status {run_dir}`" in result.stderr
    assert journal.read_bytes() == damaged  # left as it was
    assert uploads(sandbox, pool) == []


def test_following_the_hint_for_a_damaged_journal_rebuilds_it_and_start_goes_on(
    sandbox: Sandbox, pool: PoolInfo, importer: Importer, run_dir: Path
) -> None:
    env = env_for(sandbox, pool)
    assert csvimport(env, "start", str(run_dir), "--no-wait").returncode == 0
    journal = run_dir / JOURNAL
    journal.write_bytes(b"\x00\x01 not a journal")
    journal.rename(run_dir / "journal.json.damaged")
    status = csvimport(env, "status", str(run_dir))
    assert "chunk-0001.csv  3 users  job import-" in status.stdout, status.stderr
    assert csvimport(env, "start", str(run_dir)).returncode == 0
    assert [n for _, _, n in uploads(sandbox, pool)] == [1, 1]
    assert len(importer.users()) == 5


def test_a_journal_of_another_build_is_refused_and_the_hint_says_how_to_rebuild(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    env = env_for(sandbox, pool)
    journal = run_dir / JOURNAL
    journal.write_text(json.dumps({"version": 1, "run_id": "0badc0de",
                                   "user_pool_id": pool.user_pool_id, "attempts": []}))  # fmt: skip
    result = csvimport(env, "start", str(run_dir))
    assert result.returncode == 2
    assert "belongs to another build (run 0badc0de, this build is " in result.stderr
    assert f"Move it aside (mv {journal} {journal}.damaged)" in result.stderr
    assert uploads(sandbox, pool) == []


@pytest.mark.parametrize(
    ("command", "operation", "attempts"),
    [("start", "CreateUserImportJob", 2), ("status", "ListUserImportJobs", 3)],
)
def test_a_call_throttled_for_good_exits_3_after_aws_max_attempts_attempts_no_more(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, command: str, operation: str, attempts: int
) -> None:
    sandbox.faults.update(throttle_every=1, throttle_operations=[operation])
    env = env_for(sandbox, pool, AWS_MAX_ATTEMPTS=str(attempts))
    result = csvimport(env, command, str(run_dir))
    assert result.returncode == 3, result.stderr
    # Every attempt botocore made reached the sandbox: AWS_MAX_ATTEMPTS in all, one layer.
    assert sandbox.faults.throttled() == {operation: attempts}
    assert (
        f"error: {operation} failed: TooManyRequestsException: Rate exceeded "
        f"({attempts} attempts)" in result.stderr
    )
    assert "hint: AWS throttled the requests and the retries ran out" in result.stderr
    assert "AWS_MAX_ATTEMPTS" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["start", "status", "stop", "report", "resets"])
def test_an_unreachable_endpoint_is_named_with_exit_3_within_seconds(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, command: str
) -> None:
    # AWS_MAX_ATTEMPTS unset: botocore's default retries, as an operator runs it.
    env = env_for(sandbox, pool, AWS_ENDPOINT_URL=CLOSED_ENDPOINT, AWS_MAX_ATTEMPTS=None)
    began = time.monotonic()
    result = csvimport(env, command, str(run_dir))
    took = time.monotonic() - began
    assert result.returncode == 3, result.stderr
    assert f"error: Cannot reach {CLOSED_ENDPOINT}/" in result.stderr
    assert "hint: Check --endpoint-url" in result.stderr
    assert "does not exist" not in result.stderr and "Traceback" not in result.stderr
    assert took < 8, took


@pytest.mark.parametrize("command", ["status", "start", "report", "resets"])
def test_an_unreachable_endpoint_after_the_import_is_named_with_exit_3(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path, command: str
) -> None:
    # Past the first call each makes on a fresh run: a job still running for `status` (on
    # a finished run it reads the journal alone), a run imported and reported for the
    # others, with logs to read and users to reset.
    if command == "status":
        sandbox.settings.update(job_seconds=60.0)
        run = RunDir.open(build_run(cognito, pool, tmp_path, users=3))
        run_all(run.path, cognito, pool, wait=False)
    else:
        run = imported_run(cognito, logs, pool, tmp_path, users=3)
    env = env_for(sandbox, pool, AWS_ENDPOINT_URL=CLOSED_ENDPOINT, AWS_MAX_ATTEMPTS="1")
    before = (run.path / JOURNAL).read_bytes()
    result = csvimport(env, command, str(run.path))
    assert result.returncode == 3, result.stderr
    assert f"error: Cannot reach {CLOSED_ENDPOINT}/" in result.stderr
    assert "hint: Check --endpoint-url" in result.stderr and "Traceback" not in result.stderr
    assert (run.path / JOURNAL).read_bytes() == before


def test_a_web_page_at_the_endpoint_is_named_with_exit_3_not_an_internal_error(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    with answering(200, b"<html>proxy sign-in</html>", "text/html") as url:
        result = csvimport(env_for(sandbox, pool, AWS_ENDPOINT_URL=url), "start", str(run_dir))
    assert result.returncode == 3, result.stderr
    assert (
        f"error: DescribeUserPool: {url}/ answered HTTP 200 with 26 bytes of text/html, not an AWS answer"
        in result.stderr
    )
    assert "hint: Check --endpoint-url" in result.stderr and "Traceback" not in result.stderr


UPLOAD_FAULTS = {
    # fault, AWS_MAX_ATTEMPTS, exit status, what stderr says
    "fails then succeeds": ({"upload_failures": 1}, "3", 0, "succeeded: 3 imported"),
    "refused with 403": ({"upload_refusals": 1}, "3", 3, "uploading chunk-0001.csv was refused"),
    "out of retries": ({"upload_failures": 100}, "2", 3, "failed after 2 tries"),
}


@pytest.mark.parametrize("case", list(UPLOAD_FAULTS))
def test_the_presigned_url_is_in_no_output_or_file_when_the_upload_fails(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cognito: Any, case: str
) -> None:
    faults, attempts, exit_status, said = UPLOAD_FAULTS[case]
    sandbox.faults.update(**faults)
    result = csvimport(env_for(sandbox, pool, AWS_MAX_ATTEMPTS=attempts), "start", str(run_dir))
    assert result.returncode == exit_status, result.stderr
    assert said in result.stderr
    urls = [
        cognito.describe_user_import_job(UserPoolId=pool.user_pool_id, JobId=job["JobId"])[
            "UserImportJob"
        ]["PreSignedUrl"]
        for job in sandbox_jobs(sandbox, pool.user_pool_id)
    ]
    assert urls
    secrets = set()
    for url in urls:
        parts = urlsplit(url)
        secrets |= {url, parts.query, parts.path}
        secrets |= {value for _, value in parse_qsl(parts.query) if len(value) >= 16}
    places = {"stdout": result.stdout, "stderr": result.stderr}
    places |= {
        str(path.relative_to(run_dir)): path.read_bytes().decode("utf-8", "replace")
        for path in run_dir.rglob("*")
        if path.is_file()
    }
    assert JOURNAL in places
    leaks = [(place, secret) for place, text in places.items() for secret in secrets
             if secret in text]  # fmt: skip
    assert leaks == []


def _delete(path: Path) -> None:
    path.unlink()


def _edit(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"2", b"9", 1))


# Each file of a run damaged as people do: (file, how, what the error says of it).
DAMAGES = {
    "chunk-deleted": ("chunk-0002.csv", _delete, "is missing from the run directory; it is "
                      "the import file Cognito reads these users from"),
    "line-map-deleted": ("chunk-0001.map.csv", _delete, "is missing from the run directory; "
                         "it is the line map telling which legacy user each line of "
                         "chunk-0001.csv is"),
    "line-map-edited": ("chunk-0002.map.csv", _edit, "changed since the build (its sha256 no "
                        "longer matches manifest.json); it is the line map"),
    "mapping-edited": ("mapping.toml", lambda p: p.write_text(p.read_text() + "# fixed\n"),
                       "changed since the build"),
    "rejects-deleted": ("rejects.csv", _delete, "is missing from the run directory; it is the "
                        "build's list of refused and duplicate users"),
    "pool-edited": ("pool.json", lambda p: p.write_text(p.read_text().replace("pool-", "loop-")),
                    "changed since the build"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_start_refuses_a_run_with_a_file_lost_or_edited_naming_it_and_the_fix(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, damage: str
) -> None:
    name, spoil, said = DAMAGES[damage]
    spoil(run_dir / name)
    result = csvimport(env_for(sandbox, pool), "start", str(run_dir))
    assert result.returncode == 2, result.stderr
    assert f"error: {run_dir / name} {said}" in result.stderr
    fix = "build again with the edited mapping" if name == "mapping.toml" else "build again"
    assert "hint: " in result.stderr and fix in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox_jobs(sandbox, pool.user_pool_id) == []


def test_a_lost_manifest_is_named_as_lost_with_how_to_get_it_back(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    (run_dir / "manifest.json").unlink()
    result = csvimport(env_for(sandbox, pool), "status", str(run_dir))
    assert result.returncode == 2, result.stderr
    assert (f"error: {run_dir} has lost its manifest.json: it holds the files of a "
            "csvimport build (chunk-0001.csv, ") in result.stderr  # fmt: skip
    assert "hint: Put manifest.json back exactly as it was" in result.stderr


def test_a_manifest_naming_a_file_outside_the_run_is_refused_as_damaged(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    manifest = run_dir / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"chunk-0001.csv"', '"/etc/passwd"'))
    result = csvimport(env_for(sandbox, pool), "start", str(run_dir), "--dry-run")
    assert result.returncode == 2, result.stderr
    assert "manifest.json is damaged" in result.stderr and "/etc/passwd" in result.stderr


def test_a_run_built_before_files_had_hashes_is_used_with_a_warning_and_presence_checked(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["files"]
    for chunk in manifest["chunks"]:
        del chunk["map_sha256"]
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    env = env_for(sandbox, pool)
    status = csvimport(env, "status", str(run_dir))
    assert status.returncode == 1, status.stderr  # not started yet
    assert "warning: " in status.stderr and "built by an older csvimport" in status.stderr

    (run_dir / "chunk-0001.map.csv").unlink()
    started = csvimport(env, "start", str(run_dir))
    assert started.returncode == 2, started.stderr
    assert f"error: {run_dir / 'chunk-0001.map.csv'} is missing" in started.stderr
    assert sandbox_jobs(sandbox, pool.user_pool_id) == []
