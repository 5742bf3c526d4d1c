"""`start` / `status` / `stop` as a library, against the sandbox over HTTP: jobs created,
uploaded, started and watched one at a time, resumable from the journal, and steady
under throttling, server errors, upload faults, expired URLs and other teams' jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from csvimport.errors import ConfigError, CsvImportError, RefusedError
from csvimport.run.jobevents import (
    RUN_AGAIN_WITH,
    WOULD,
    Event,
    EventKind,
    JobProgress,
    Planned,
    WaitingForOtherJob,
)
from csvimport.run.jobs import Importer, Pacing, StartOptions
from csvimport.run.jobstatus import ChunkState, PlanStep, explain_end, plan_step
from csvimport.run.journal import JOURNAL, Attempt, Journal, JournalLock, Step
from csvimport.rundir import RunDir
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    DAMAGED_JOURNALS,
    FAST,
    bare_client,
    build_run,
    cognito_csv,
    damaged_journal,
    sandbox_jobs,
    upload,
    user,
)
from .helpers import Importer as SandboxImporter


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def texts(self, kind: EventKind | None = None) -> list[str]:
        return [e.describe() for e in self.events if kind is None or e.kind is kind]


def importer_for_run(
    run_dir: Path, client: Any, recorder: Recorder | None = None, pacing: Pacing = FAST
) -> Importer:
    run = RunDir.open(run_dir)
    return Importer(run, Journal.load(run), client, pacing=pacing,
                    on_event=recorder or Recorder())  # fmt: skip


@pytest.fixture
def run_dir(cognito: Any, pool: PoolInfo, tmp_path: Path) -> Path:
    return build_run(cognito, pool, tmp_path, users=7, max_rows=3)


def assert_imported_once(sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter,
                         run_dir: Path, users: int) -> None:  # fmt: skip
    """One Succeeded job per chunk, no job uploaded twice, every user in the pool."""
    run = RunDir.open(run_dir)
    jobs = sandbox_jobs(sandbox, pool.user_pool_id)
    succeeded = [j for j in jobs if j["Status"] == "Succeeded"]
    assert sorted(j["JobName"].rsplit("-", 2)[1] for j in succeeded) == [
        c.name.split("-")[1] for c in run.chunks
    ]
    assert all(j["Uploads"] <= 1 for j in jobs), jobs
    assert all(j["Status"] in ("Succeeded", "Stopped") for j in jobs), jobs
    assert sorted(importer.users()) == sorted(f"user{n}" for n in range(1, users + 1))


def test_start_imports_every_chunk_in_its_own_job_one_at_a_time(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    recorder = Recorder()
    status = importer_for_run(run_dir, cognito, recorder).start(
        StartOptions(logs_role_arn=pool.logs_role_arn)
    )
    assert status.all_imported
    assert [c.state for c in status.chunks] == [ChunkState.IMPORTED] * 3
    assert_imported_once(sandbox, pool, importer, run_dir, users=7)
    # One job at a time: each job started after the previous one ended.
    jobs = [importer.describe(c.attempt.job_id) for c in status.chunks if c.attempt]
    for before, after in zip(jobs, jobs[1:], strict=False):
        assert after["StartDate"] >= before["CompletionDate"]
    ended = recorder.texts(EventKind.ENDED)
    assert len(ended) == 3 and all("succeeded: " in t for t in ended)


def test_the_journal_records_each_step_and_never_the_presigned_url(
    pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    recorder = Recorder()
    importer_for_run(run_dir, cognito, recorder).start(
        StartOptions(logs_role_arn=pool.logs_role_arn)
    )
    text = (run_dir / JOURNAL).read_text()
    data = json.loads(text)
    first = data["attempts"][0]
    events = [h["event"] for h in first["history"]]
    assert events[:6] == ["create requested", "created", "status Created", "upload started",
                          "uploaded", "started"]  # fmt: skip
    assert first["status"] == "Succeeded" and first["imported"] == 3
    everything = text + "".join(map(repr, recorder.events))
    for secret in ("X-Amz-Signature", "X-Amz-Security-Token", "/_sandbox/upload/"):
        assert secret not in everything


def test_a_second_start_after_success_creates_no_job(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    options = StartOptions(logs_role_arn=pool.logs_role_arn)
    importer_for_run(run_dir, cognito).start(options)
    before = sandbox_jobs(sandbox, pool.user_pool_id)
    status = importer_for_run(run_dir, cognito).start(options)
    assert status.all_imported
    assert sandbox_jobs(sandbox, pool.user_pool_id) == before


def test_no_wait_starts_one_job_and_a_later_start_goes_on(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    sandbox.settings.update(job_seconds=1.0)
    options = StartOptions(logs_role_arn=pool.logs_role_arn, wait=False)
    status = importer_for_run(run_dir, cognito).start(options)
    assert [c.state for c in status.chunks] == [
        ChunkState.RUNNING, ChunkState.NOT_STARTED, ChunkState.NOT_STARTED
    ]  # fmt: skip
    # While it runs, another --no-wait start makes no second job.
    status = importer_for_run(run_dir, cognito).start(options)
    assert status.chunks[0].state is ChunkState.RUNNING
    assert len(sandbox_jobs(sandbox, pool.user_pool_id)) == 1
    sandbox.settings.update(job_seconds=0.3)
    status = importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert status.all_imported
    assert_imported_once(sandbox, pool, importer, run_dir, users=7)


def test_throttling_and_server_errors_are_retried_by_botocore_without_crashing(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path,
    cli_client: Callable[..., Any],
) -> None:  # fmt: skip
    sandbox.faults.update(throttle_every=3, server_error_every=5)
    status = importer_for_run(run_dir, cli_client()).start(
        StartOptions(logs_role_arn=pool.logs_role_arn)
    )
    sandbox.faults.clear()
    assert status.all_imported
    assert_imported_once(sandbox, pool, importer, run_dir, users=7)


def test_throttling_that_outlasts_the_retries_is_a_service_error_naming_the_call(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    sandbox.faults.update(throttle_every=1, throttle_operations=["CreateUserImportJob"])
    with pytest.raises(CsvImportError) as caught:
        importer_for_run(run_dir, bare_client(sandbox)).start(
            StartOptions(logs_role_arn=pool.logs_role_arn)
        )
    assert "CreateUserImportJob failed: TooManyRequestsException" in caught.value.message
    assert caught.value.hint and "retry later" in caught.value.hint
    assert caught.value.exit_status == 3


def test_upload_failures_are_retried_and_the_file_arrives_once(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path,
    cli_client: Callable[..., Any],
) -> None:  # fmt: skip
    # Three failures, then the file arrives: within the command line's 6 attempts.
    sandbox.faults.update(upload_failures=3)
    status = importer_for_run(run_dir, cli_client()).start(StartOptions(pool.logs_role_arn))
    assert status.all_imported
    assert_imported_once(sandbox, pool, importer, run_dir, users=7)


def test_an_upload_that_keeps_failing_gives_up_after_the_attempts_of_every_aws_call(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cli_client: Callable[..., Any]
) -> None:
    sandbox.faults.update(upload_failures=100)
    with pytest.raises(CsvImportError) as caught:
        importer_for_run(run_dir, cli_client(attempts=2)).start(StartOptions(pool.logs_role_arn))
    assert "uploading chunk-0001.csv failed after 2 tries" in caught.value.message
    assert caught.value.exit_status == 3
    assert sandbox.faults.upload_failures == 98  # the sandbox saw two uploads, no more
    jobs = sandbox_jobs(sandbox, pool.user_pool_id)
    assert [(j["Status"], j["Uploads"]) for j in jobs] == [("Created", 0)]


def test_an_expired_upload_url_is_replaced_by_a_new_job(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    sandbox.settings.update(url_ttl_seconds=0)
    with pytest.raises(CsvImportError) as caught:
        importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert "3 import jobs in a row could not take the file" in caught.value.message
    assert caught.value.hint and "clock" in caught.value.hint
    jobs = sandbox_jobs(sandbox, pool.user_pool_id)
    assert [(j["Status"], j["Uploads"]) for j in jobs] == [("Stopped", 0)] * 3

    sandbox.settings.update(url_ttl_seconds=900)
    status = importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert status.all_imported
    assert status.chunks[0].attempt is not None and status.chunks[0].attempt.number == 4
    assert_imported_once(sandbox, pool, importer, run_dir, users=7)


def test_a_job_created_but_not_uploaded_before_its_url_expired_is_replaced(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    run = RunDir.open(run_dir)
    journal = Journal.load(run)
    attempt = journal.add(run.chunks[0], f"csvimport-{run.run_id}-chunk-0001-1")
    job = importer.create(attempt.job_name)
    journal.record(attempt, "created", step=Step.CREATED, job_id=job["JobId"])
    sandbox.clock.advance(16 * 60)
    status = importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert status.all_imported
    assert importer.describe(job["JobId"])["Status"] == "Stopped"
    assert_imported_once(sandbox, pool, importer, run_dir, users=7)


def start_foreign_job(sandbox: Sandbox, other: PoolInfo, importer: SandboxImporter) -> str:
    job = importer.create("other-team")
    assert upload(job["PreSignedUrl"], cognito_csv(importer.header(), [user("x")])).ok
    importer.start(job["JobId"])
    return str(job["JobId"])


def test_another_teams_active_job_is_named_and_start_refuses(
    sandbox: Sandbox, pool: PoolInfo, make_pool: Any, importer_for: Any, run_dir: Path,
    cognito: Any,
) -> None:  # fmt: skip
    other = make_pool()
    sandbox.settings.update(job_seconds=30)
    foreign = start_foreign_job(sandbox, other, importer_for(other))
    with pytest.raises(RefusedError) as caught:
        importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert foreign in caught.value.message and other.user_pool_id in caught.value.message
    assert caught.value.hint and "--wait-for-others" in caught.value.hint
    # The chunk is uploaded and waits; nothing was started twice or lost.
    jobs = sandbox_jobs(sandbox, pool.user_pool_id)
    assert [(j["Status"], j["Uploads"]) for j in jobs] == [("Created", 1)]


def test_wait_for_others_waits_for_the_other_job_then_imports(
    sandbox: Sandbox, pool: PoolInfo, make_pool: Any, importer_for: Any,
    importer: SandboxImporter, run_dir: Path, cognito: Any,
) -> None:  # fmt: skip
    other = make_pool()
    sandbox.settings.update(job_seconds=30)
    foreign = start_foreign_job(sandbox, other, importer_for(other))
    waited: list[WaitingForOtherJob] = []

    def other_team_finishes(event: Event) -> None:
        if isinstance(event, WaitingForOtherJob):
            waited.append(event)
            if len(waited) == 2:  # waited twice: now the other team's job ends
                sandbox.settings.update(job_seconds=0.3)

    run = RunDir.open(run_dir)
    status = Importer(run, Journal.load(run), cognito, pacing=FAST,
                      on_event=other_team_finishes).start(
        StartOptions(pool.logs_role_arn, wait_for_others=True)
    )  # fmt: skip
    assert status.all_imported
    assert len(waited) >= 2 and waited[0].blocked.other is not None
    assert waited[0].blocked.other["JobId"] == foreign
    assert waited[0].describe().startswith(f"another import job is active in this AWS account: "
                                           f"{foreign} (other-team) in pool {other.user_pool_id}")  # fmt: skip
    assert_imported_once(sandbox, pool, importer, run_dir, users=7)


def test_a_pool_changed_after_the_build_is_refused_with_the_difference(
    pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    cognito.add_custom_attributes(
        UserPoolId=pool.user_pool_id,
        CustomAttributes=[{"Name": "tier", "AttributeDataType": "String"}],
    )
    with pytest.raises(RefusedError) as caught:
        importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert "changed since this run was built" in caught.value.message
    assert "new columns in the pool's CSV header: custom:tier" in caught.value.message
    assert caught.value.hint and "build again" in caught.value.hint
    assert not (run_dir / JOURNAL).exists()


def test_a_deleted_pool_is_refused(pool: PoolInfo, run_dir: Path, cognito: Any) -> None:
    cognito.delete_user_pool(UserPoolId=pool.user_pool_id)
    with pytest.raises(RefusedError) as caught:
        importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert f"the user pool {pool.user_pool_id} this run was built for does not exist" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("role", "expected"),
    [(None, "no CloudWatch Logs role given"), ("my-role", "is not an IAM role ARN")],
)
def test_a_missing_or_malformed_logs_role_is_refused_before_any_job(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cognito: Any, role: str | None,
    expected: str,
) -> None:  # fmt: skip
    with pytest.raises(RefusedError) as caught:
        importer_for_run(run_dir, cognito).start(StartOptions(role))
    assert expected in caught.value.message
    assert caught.value.hint and "CSVIMPORT_LOGS_ROLE_ARN" in caught.value.hint
    assert sandbox_jobs(sandbox, pool.user_pool_id) == []


def test_a_job_that_fails_as_a_whole_halts_the_run_and_is_explained(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    bad_role = "arn:aws:iam::123456789012:role/does-not-exist"
    status = importer_for_run(run_dir, cognito).start(StartOptions(bad_role))
    assert [c.state for c in status.chunks] == [
        ChunkState.FAILED, ChunkState.NOT_STARTED, ChunkState.NOT_STARTED
    ]  # fmt: skip
    attempt = status.chunks[0].attempt
    assert attempt is not None
    what, fix = explain_end(attempt)
    assert what.startswith("failed: 0 imported") and "CloudWatch Logs role" in what
    assert fix and "cognito-idp.amazonaws.com" in fix and "--retry-failed" in fix

    # A plain re-run leaves the failed chunk alone and goes on with the others...
    recorder = Recorder()
    status = importer_for_run(run_dir, cognito, recorder).start(StartOptions(pool.logs_role_arn))
    assert [c.state for c in status.chunks] == [
        ChunkState.FAILED, ChunkState.IMPORTED, ChunkState.IMPORTED
    ]  # fmt: skip
    assert any("not run again without --retry-failed" in t for t in recorder.texts())
    # ...and --retry-failed runs it in a new job.
    status = importer_for_run(run_dir, cognito).start(
        StartOptions(pool.logs_role_arn, retry_failed=True)
    )
    assert status.all_imported
    assert sorted(importer.users()) == sorted(f"user{n}" for n in range(1, 8))


def test_users_cognito_skips_make_the_chunk_imported_with_problems(
    pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user2")
    status = importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert not status.all_imported
    assert status.chunks[0].state is ChunkState.IMPORTED_WITH_PROBLEMS
    assert status.to_json()["skipped"] == 1 and status.to_json()["imported"] == 6


def test_stop_stops_the_running_job_and_start_does_not_resume_it_unasked(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    sandbox.settings.update(job_seconds=20)
    importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn, wait=False))
    stopped = importer_for_run(run_dir, cognito).stop()
    assert stopped is not None and stopped.status == "Stopped"
    what, hint = explain_end(stopped)
    assert "cannot be restarted" in what and hint and "--resume-stopped" in hint
    assert json.loads((run_dir / JOURNAL).read_text())["attempts"][0]["status"] == "Stopped"
    assert importer_for_run(run_dir, cognito).stop() is None  # nothing left to stop

    sandbox.settings.update(job_seconds=0.3)
    status = importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert [c.state for c in status.chunks] == [
        ChunkState.STOPPED, ChunkState.IMPORTED, ChunkState.IMPORTED
    ]  # fmt: skip
    status = importer_for_run(run_dir, cognito).start(
        StartOptions(pool.logs_role_arn, resume_stopped=True)
    )
    # The new job skips whoever the stopped one had imported already.
    again = status.chunks[0].attempt
    assert again is not None and again.number == 2 and again.status == "Succeeded"
    assert (again.imported, again.skipped) == (3 - stopped.imported, stopped.imported)
    assert sorted(importer.users()) == sorted(f"user{n}" for n in range(1, 8))


def test_dry_run_changes_nothing(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    recorder = Recorder()
    importer_for_run(run_dir, cognito, recorder).start(
        StartOptions(pool.logs_role_arn, dry_run=True)
    )
    assert sandbox_jobs(sandbox, pool.user_pool_id) == []
    assert not (run_dir / JOURNAL).exists()
    assert recorder.texts(EventKind.NOTE) == [
        f"chunk-000{n}.csv ({rows} users): would create a job, upload and start it"
        for n, rows in ((1, 3), (2, 3), (3, 1))
    ]
    assert [e.step for e in recorder.events if isinstance(e, Planned)] == [PlanStep.CREATE] * 3


# A chunk's current attempt as (Cognito's status, csvimport's step), the options, and what
# start does with it.
PLANS = [
    (None, None, {}, PlanStep.CREATE),
    ("Succeeded", Step.STARTED, {"retry_failed": True, "resume_stopped": True},
     PlanStep.SKIP_SUCCEEDED),
    ("Pending", Step.STARTED, {}, PlanStep.WAIT_RUNNING),
    ("InProgress", Step.STARTED, {"retry_failed": True}, PlanStep.WAIT_RUNNING),
    ("Stopping", Step.STARTED, {"resume_stopped": True}, PlanStep.WAIT_RUNNING),
    ("Failed", Step.STARTED, {"resume_stopped": True}, PlanStep.HALT_FAILED),
    ("Failed", Step.STARTED, {"retry_failed": True}, PlanStep.RETRY_FAILED),
    ("Stopped", Step.STARTED, {"retry_failed": True}, PlanStep.HALT_STOPPED),
    ("Stopped", Step.STARTED, {"resume_stopped": True}, PlanStep.RESUME_STOPPED),
    ("Expired", Step.CREATED, {}, PlanStep.REPLACE_EXPIRED),
    ("Created", Step.UPLOADING, {}, PlanStep.START_UPLOADED),
    ("Created", Step.UPLOADED, {}, PlanStep.START_UPLOADED),
    ("Created", Step.CREATED, {}, PlanStep.REPLACE_NOT_UPLOADED),
    (None, Step.CREATING, {}, PlanStep.REPLACE_NOT_UPLOADED),
]  # fmt: skip


@pytest.mark.parametrize(("status", "step", "options", "expected"), PLANS,
                         ids=[f"{p[0]}-{p[1]}-{'-'.join(p[2])}" for p in PLANS])  # fmt: skip
def test_what_start_does_with_a_chunk_is_decided_as_a_value_from_its_attempt(
    status: str | None, step: Step | None, options: dict[str, bool], expected: PlanStep
) -> None:
    attempt = None if step is None else Attempt("chunk-0001.csv", 1, "job", step, status=status)
    flags = {"retry_failed": False, "resume_stopped": False, **options}
    assert plan_step(attempt, **flags) is expected
    assert expected.halts is (expected in (PlanStep.HALT_FAILED, PlanStep.HALT_STOPPED))


def test_every_step_start_may_take_has_its_words_and_every_halt_its_option() -> None:
    acts = {s for s in PlanStep if not s.halts and s is not PlanStep.SKIP_SUCCEEDED}
    assert set(WOULD) == acts
    assert set(RUN_AGAIN_WITH) == {s for s in PlanStep if s.halts}


def test_a_chunk_edited_after_the_build_is_refused(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    chunk = run_dir / "chunk-0001.csv"
    chunk.write_text(chunk.read_text().replace("user1", "userX"))
    with pytest.raises(RefusedError) as caught:
        importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    assert "changed since the build" in caught.value.message
    assert sandbox_jobs(sandbox, pool.user_pool_id) == []


def test_only_one_process_at_a_time_holds_a_run(run_dir: Path) -> None:
    run = RunDir.open(run_dir)
    with JournalLock(run, command="start"):
        with pytest.raises(RefusedError) as caught, JournalLock(run, command="stop"):
            pass
        assert "another csvimport is working on" in caught.value.message
    with JournalLock(run, command="stop"):  # free again
        pass


def test_status_wait_follows_a_job_started_elsewhere(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    sandbox.settings.update(job_seconds=1.0)
    importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn, wait=False))
    recorder = Recorder()
    watcher = importer_for_run(run_dir, cognito, recorder)
    watcher.refresh()
    status = watcher.wait_all()
    assert status.chunks[0].state is ChunkState.IMPORTED
    # Each progress event holds the counters as they were read, not the attempt's latest.
    progress = [e.processed for e in recorder.events if isinstance(e, JobProgress)]
    assert progress == sorted(progress) and progress[0] < progress[-1] == 3
    assert len(recorder.texts(EventKind.ENDED)) == 1


def test_polling_makes_at_most_four_describes_in_any_second(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path
) -> None:
    sandbox.settings.update(job_seconds=2.0)
    calls: list[float] = []
    client = bare_client(sandbox)
    client.meta.events.register(
        "before-call.cognito-idp.DescribeUserImportJob",
        lambda **kwargs: calls.append(time.monotonic()),
    )
    eager = Pacing(poll_first=0.0, poll_max=0.0, backoff=FAST.backoff)
    importer_for_run(run_dir, client, pacing=eager).start(StartOptions(pool.logs_role_arn))
    # README: at most 4 per second per pool and operation. Measured over spans of four
    # gaps, not single ones, so one late call under load cannot pass or fail it alone:
    # at 4/s any five calls span 1 s or more; at 5/s they would span 0.8 s.
    assert len(calls) >= 8, calls
    spans = [b - a for a, b in zip(calls, calls[4:], strict=False)]
    assert min(spans) >= 0.92, spans
    assert (len(calls) - 1) / (calls[-1] - calls[0]) <= 4.1


def test_status_while_another_process_holds_the_run_leaves_the_journal_alone(
    sandbox: Sandbox, pool: PoolInfo, run_dir: Path, cognito: Any
) -> None:
    sandbox.settings.update(job_seconds=0.5)
    importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn, wait=False))
    before = (run_dir / JOURNAL).read_bytes()
    run = RunDir.open(run_dir)
    with JournalLock(run, command="start"):
        lock = JournalLock(run, command="status")
        assert not lock.try_acquire()
        journal = Journal.load(run)
        journal.read_only = True
        status = Importer(run, journal, cognito, pacing=FAST).wait_all()
    assert status.chunks[0].state is ChunkState.IMPORTED  # seen...
    assert (run_dir / JOURNAL).read_bytes() == before  # ...but not written


@pytest.mark.parametrize("case", list(DAMAGED_JOURNALS))
def test_a_damaged_journal_is_refused_naming_the_damage_and_how_to_rebuild(
    run_dir: Path, case: str
) -> None:
    path = damaged_journal(run_dir, case)
    with pytest.raises(CsvImportError) as caught:
        Journal.load(RunDir.open(run_dir))
    assert caught.value.exit_status == 2
    assert caught.value.message.startswith(f"{path} is damaged: {DAMAGED_JOURNALS[case][1]}")
    assert caught.value.hint is not None
    assert caught.value.hint.startswith(f"Move it aside (mv {path} {path}.damaged)")
    assert "rebuilds it from the import jobs Cognito lists for this run" in caught.value.hint


def test_a_lock_file_that_cannot_be_opened_is_refused_naming_the_fix(run_dir: Path) -> None:
    run = RunDir.open(run_dir)
    (run_dir / "journal.lock").mkdir()
    with pytest.raises(ConfigError) as caught:
        JournalLock(run, command="start").try_acquire()
    assert caught.value.message == (
        f"cannot open the run's lock file {run_dir / 'journal.lock'}: Is a directory"
    )
    assert caught.value.hint and f"rm -r {run_dir / 'journal.lock'}" in caught.value.hint


def test_a_journal_of_another_build_is_refused_with_the_way_to_rebuild(run_dir: Path) -> None:
    path = damaged_journal(run_dir, "empty-file")
    run = RunDir.open(run_dir)
    path.write_text(json.dumps({"version": 1, "run_id": "0badc0de",
                                "user_pool_id": run.user_pool_id, "attempts": []}))  # fmt: skip
    with pytest.raises(RefusedError) as caught:
        Journal.load(run)
    assert caught.value.message == (
        f"{path} belongs to another build (run 0badc0de, this build is {run.run_id})"
    )
    assert caught.value.hint and f"mv {path} {path}.damaged" in caught.value.hint


def test_a_lost_journal_is_rebuilt_with_every_attempt_of_every_chunk_and_start_adds_none(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    # chunk 1: attempt 1 failed (bad logs role); --retry-failed: attempt 2 succeeded.
    bad_role = "arn:aws:iam::123456789012:role/does-not-exist"
    importer_for_run(run_dir, cognito).start(StartOptions(bad_role))
    importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn, retry_failed=True))
    before = sandbox_jobs(sandbox, pool.user_pool_id)
    kept = json.loads((run_dir / JOURNAL).read_text())["attempts"]
    (run_dir / JOURNAL).unlink()

    recorder = Recorder()
    status = importer_for_run(run_dir, cognito, recorder).start(
        StartOptions(pool.logs_role_arn, retry_failed=True)
    )
    assert status.all_imported
    assert sandbox_jobs(sandbox, pool.user_pool_id) == before  # no job made, none uploaded
    assert any("journal.json was missing: rebuilt it from the 4 import jobs" in t
               for t in recorder.texts(EventKind.WARNING))  # fmt: skip
    data = json.loads((run_dir / JOURNAL).read_text())
    fields = ("chunk", "number", "job_name", "job_id", "status", "step", "imported", "failed")
    assert [{k: a[k] for k in fields} for a in data["attempts"]] == [
        {k: a[k] for k in fields} for a in kept
    ]
    assert all("rebuilt from Cognito's job list" in a["recovered"] for a in data["attempts"])
    assert data["rebuilt"][0]["jobs"] == 4 and "was missing" in data["rebuilt"][0]["why"]
    assert sorted(importer.users()) == sorted(f"user{n}" for n in range(1, 8))


@pytest.mark.parametrize("uploaded", [False, True], ids=["never-uploaded", "uploaded"])
def test_a_lost_journal_with_a_job_created_not_started_starts_it_or_makes_the_next_one(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any,
    uploaded: bool,
) -> None:  # fmt: skip
    # Chunk 1's attempt 1 never reached Cognito, attempt 2 was created, then the journal
    # was lost: whether attempt 2's file was uploaded is unknown.
    run = RunDir.open(run_dir)
    created = importer.create(f"csvimport-{run.run_id}-chunk-0001-2")
    if uploaded:
        assert upload(created["PreSignedUrl"], (run_dir / "chunk-0001.csv").read_bytes()).ok
    rebuilt = importer_for_run(run_dir, cognito)
    rebuilt.refresh()
    attempt = rebuilt.journal.current(run.chunks[0])
    assert attempt is not None and (attempt.number, attempt.job_id) == (2, created["JobId"])
    assert attempt.step is Step.UPLOADING and "upload unknown" in (attempt.recovered or "")

    status = rebuilt.start(StartOptions(pool.logs_role_arn))
    assert status.all_imported
    jobs = sandbox_jobs(sandbox, pool.user_pool_id)
    first = (
        [(["0001", "2"], "Succeeded", 1)]  # started as it was
        if uploaded
        else [
            (["0001", "2"], "Stopped", 0),  # its file never arrived: set aside
            (["0001", "3"], "Succeeded", 1),  # the next name, not a second "-2"
        ]
    )
    assert [(j["JobName"].rsplit("-", 2)[1:], j["Status"], j["Uploads"]) for j in jobs] == [
        *first, (["0002", "1"], "Succeeded", 1), (["0003", "1"], "Succeeded", 1)
    ]  # fmt: skip
    assert sorted(importer.users()) == sorted(f"user{n}" for n in range(1, 8))

    # Lost again: a job stopped before it started is known as set aside, and nothing runs.
    (run_dir / JOURNAL).unlink()
    again = importer_for_run(run_dir, cognito)
    assert again.start(StartOptions(pool.logs_role_arn)).all_imported
    assert sandbox_jobs(sandbox, pool.user_pool_id) == jobs
    steps = [(a.number, a.step) for a in again.journal.for_chunk(run.chunks[0])]
    assert steps == ([(2, Step.STARTED)] if uploaded else [(2, Step.ABANDONED), (3, Step.STARTED)])


def test_a_job_the_journal_does_not_know_is_adopted_before_start_makes_one(
    sandbox: Sandbox, pool: PoolInfo, importer: SandboxImporter, run_dir: Path, cognito: Any
) -> None:
    # An old copy of the journal put back: it knows chunk 1's job, not chunk 2's.
    importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn, wait=False))
    old = (run_dir / JOURNAL).read_bytes()
    importer_for_run(run_dir, cognito).start(StartOptions(pool.logs_role_arn))
    before = sandbox_jobs(sandbox, pool.user_pool_id)
    (run_dir / JOURNAL).write_bytes(old)

    recorder = Recorder()
    status = importer_for_run(run_dir, cognito, recorder).start(StartOptions(pool.logs_role_arn))
    assert status.all_imported
    assert sandbox_jobs(sandbox, pool.user_pool_id) == before
    assert any("2 import job(s) of run " in t and "were not in journal.json" in t
               for t in recorder.texts(EventKind.WARNING))  # fmt: skip
