"""``start`` / ``status`` / ``stop``: the workflow that runs a run's chunks through
Cognito's import jobs.

For each chunk: ``CreateUserImportJob`` -> PUT the file to the presigned URL
(``csvimport.run.upload``) -> ``StartUserImportJob`` -> watch it with
``DescribeUserImportJob`` until it ends, one job at a time (Cognito allows one active
import job per account). Every step is written to the run's journal
(``csvimport.run.journal``) before or right after it happens, so a re-run after any crash
resumes without a second job for a chunk that has a live or successful one, and without
uploading a file twice. Before any job, ``csvimport.run.preflight`` checks the pool and the
run; ``csvimport.run.jobstatus`` says where each chunk stands and decides what ``start`` does
with it (a :class:`~csvimport.run.jobstatus.PlanStep`).

The AWS calls go through :class:`~csvimport.run.jobapi.JobApi`, paced under Cognito's quotas
and retried by botocore (``csvimport.retry``: one layer, ``AWS_MAX_ATTEMPTS`` attempts per
call at most). The library never prints: it reports through an ``on_event`` callback, one
value per event (``csvimport.run.jobevents``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
import requests

from csvimport.errors import CsvImportError, RefusedError, describe_aws_error
from csvimport.retry import Backoff, error_code, error_message, max_attempts
from csvimport.run.jobapi import NOT_UPLOADED, OTHER_JOB_ACTIVE_CODES, JobApi
from csvimport.run.jobevents import (
    AlreadyRunning,
    Event,
    EventSink,
    JobCreated,
    JobEnded,
    JobProgress,
    JobsTakenIn,
    JobStarted,
    LeftAlone,
    MigrationSetupWarning,
    Planned,
    SetAside,
    StartBlocked,
    StrayStopped,
    WaitingForOtherJob,
)
from csvimport.run.jobstatus import ChunkStatus, PlanStep, RunStatus, chunk_state, plan_step
from csvimport.run.journal import (
    JOB_NAME_PREFIX,
    JOURNAL,
    Attempt,
    JobStatus,
    Journal,
    Step,
    job_name,
)
from csvimport.run.migrationcheck import check_setup
from csvimport.run.preflight import check_before_start, check_role_arn
from csvimport.run.upload import UploadUrlExpired, upload_file
from csvimport.rundir import RunChunk, RunDir, iter_deferred


# --- pacing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Pacing:
    """How often csvimport looks at a running job, and how long it waits between uploads."""

    poll_first: float = 1.0  # first DescribeUserImportJob after a start
    poll_max: float = 15.0  # longest wait between two looks at a job making no progress
    poll_growth: float = 1.5
    other_job_poll: float = 30.0  # between looks at another team's active job
    stop_timeout: float = 300.0  # how long `stop` waits for Stopping to become Stopped
    backoff: Backoff = field(default_factory=Backoff)  # between attempts of an upload
    max_url_attempts: int = 3  # new jobs made in a row because the upload URL expired


def _ignore(event: Event) -> None:
    pass


# --- the importer ---------------------------------------------------------------------
@dataclass(frozen=True)
class StartOptions:
    """What ``csvimport start`` was asked to do."""

    logs_role_arn: str | None = None
    wait: bool = True  # False: start one job and return
    wait_for_others: bool = False  # wait while another team's job is active
    retry_failed: bool = False  # new jobs for chunks whose job failed
    resume_stopped: bool = False  # new jobs for chunks whose job was stopped
    dry_run: bool = False
    # When the run leaves users to the migration trigger, refuse to start while the pool
    # has no trigger or no app client that can send a password (--skip-migration-check).
    migration_check: bool = True


class Importer:
    """Runs a run directory's chunks through Cognito's import jobs."""

    def __init__(
        self,
        run: RunDir,
        journal: Journal,
        client: Any,
        *,
        http: requests.Session | None = None,
        pacing: Pacing | None = None,
        on_event: EventSink = _ignore,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run = run
        self.journal = journal
        self.client = client
        self.pacing = pacing or Pacing()
        self.api = JobApi(client, run.user_pool_id)
        self.http = http or requests.Session()
        self.emit = on_event
        self.sleep = sleep

    # -- looking ------------------------------------------------------------------------
    def status(self) -> RunStatus:
        return RunStatus([
            ChunkStatus(chunk, a := self.journal.current(chunk), chunk_state(a))
            for chunk in self.run.chunks
        ])  # fmt: skip

    def refresh(self, *, look_up: bool = False) -> None:
        """Bring the journal in line with Cognito, the source of truth.

        Cognito's job list (every page, paced) is read when ``look_up`` asks for it
        (``start``, before it may create a job), when the journal was missing, when a
        chunk has no job in the journal (before anyone is told "no job yet"), or when a
        create's answer never reached the journal. From it, jobs of this run the journal
        does not know are taken in (``Journal.adopt``: a lost journal is rebuilt), a job
        created before a crash could record it is adopted, and strays are stopped. Then
        the state of every job that has not ended is read.
        """
        ours = f"{JOB_NAME_PREFIX}-{self.run.run_id}-"
        unanswered = [a for a in self.journal.attempts if a.job_id is None
                      and a.step is not Step.ABANDONED and not a.ended]  # fmt: skip
        listed: list[Any] | None = None
        if (look_up or self.journal.missing or unanswered
                or any(self.journal.current(c) is None for c in self.run.chunks)):  # fmt: skip
            listed = self.api.list_jobs()
            self._take_in(listed)
        for attempt in self.journal.attempts:
            if attempt.step is Step.ABANDONED or attempt.ended:
                continue
            if attempt.job_id is None:
                assert listed is not None
                self._adopt(attempt, [j for j in listed if j.get("JobName") == attempt.job_name])
                continue
            try:
                self.journal.observe(attempt, self.api.describe(attempt.job_id))
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                gone = "Cognito no longer knows this job"
                self.journal.record(attempt, gone, step=Step.ABANDONED, abandoned_because=gone)
        # A read-only look (a dry run, or while another process holds the run) changes
        # nothing in Cognito either: the holder sweeps its own strays.
        if listed is not None and not self.journal.read_only:
            for job in listed:
                if job.get("JobName", "").startswith(ours) and not self.journal.by_job_id(
                    job["JobId"]
                ):
                    self._retire_stray(job)

    def _take_in(self, listed: list[Any]) -> None:
        """Adopt the run's jobs Cognito lists and the journal lacks; say so."""
        missing = self.journal.missing
        why = f"{JOURNAL} was missing" if missing else f"not in {JOURNAL}"
        adopted = self.journal.adopt(self.run.chunks, listed, why=why)
        if not adopted:
            return
        ids = tuple(str(a.job_id) for a in adopted)
        self.emit(JobsTakenIn(self.run.run_id, ids, journal_missing=missing,
                              in_memory=self.journal.read_only))  # fmt: skip

    def _adopt(self, attempt: Attempt, jobs: list[Any]) -> None:
        """A crash came between CreateUserImportJob and the journal: find that job."""
        if not jobs:
            lost = "the create call never reached Cognito"
            self.journal.record(attempt, lost, step=Step.ABANDONED, abandoned_because=lost)
            return
        first, *others = sorted(jobs, key=lambda j: str(j.get("CreationDate")))
        self.journal.record(attempt, "job found after a crash", step=Step.CREATED,
                            job_id=first["JobId"])  # fmt: skip
        self.journal.observe(attempt, first)
        for job in others:
            self._retire_stray(job)

    def _retire_stray(self, job: dict[str, Any]) -> None:
        """A job of this run the journal does not own (a retried create): stop it if it can
        still be started, so nothing imports the chunk twice."""
        if job.get("Status") == JobStatus.CREATED:
            self._stop_quietly(job["JobId"])
            self.emit(StrayStopped(str(job["JobId"]), str(job["JobName"])))

    def _stop_quietly(self, job_id: str) -> None:
        # Already ended or gone: either way nobody can start it any more.
        with contextlib.suppress(botocore.exceptions.ClientError):
            self.api.stop(job_id)

    # -- start --------------------------------------------------------------------------
    def start(self, options: StartOptions) -> RunStatus:
        """Import every chunk not yet imported, one job at a time; see ``StartOptions``."""
        check_before_start(self.run, self.api.paced)
        if options.migration_check:
            self._check_migration()
        self.refresh(look_up=True)  # never a second job for a chunk Cognito shows one for
        role_arn: str | None = None
        for chunk in self.run.chunks:
            attempt = self.journal.current(chunk)
            step = plan_step(attempt, retry_failed=options.retry_failed,
                             resume_stopped=options.resume_stopped)  # fmt: skip
            if step is PlanStep.SKIP_SUCCEEDED:
                continue
            if step.halts:
                assert attempt is not None
                self.emit(LeftAlone(chunk, attempt, step))
                continue
            if options.dry_run:
                self.emit(Planned(chunk, step))
                if step is PlanStep.WAIT_RUNNING:
                    return self.status()
                continue
            if step is not PlanStep.WAIT_RUNNING and role_arn is None:
                role_arn = check_role_arn(options.logs_role_arn)
            assert step is PlanStep.WAIT_RUNNING or role_arn is not None
            attempt = self._drive(chunk, attempt, step, role_arn or "", options)
            if not options.wait:
                return self.status()
            attempt = self.watch(chunk, attempt)
            if attempt.status != JobStatus.SUCCEEDED:
                break  # a failed or stopped job halts the run: the operator decides
        return self.status()

    def _check_migration(self) -> None:
        """When the run defers users: the pool has a migration trigger and an app client
        that can send passwords (warnings for SRP-only clients), or start refuses."""
        deferred = sum(1 for _ in iter_deferred(self.run))
        if not deferred:
            return
        setup = check_setup(self.run, self.api.paced, deferred=deferred)
        for finding in setup.warnings:
            self.emit(MigrationSetupWarning(finding.message, finding.hint))
        if setup.errors:
            raise setup.refusal(deferred=deferred)

    def _drive(
        self, chunk: RunChunk, attempt: Attempt | None, step: PlanStep, role_arn: str,
        options: StartOptions,
    ) -> Attempt:  # fmt: skip
        """Get a job of the chunk running as ``step`` says; return its attempt."""
        if step is PlanStep.WAIT_RUNNING:
            assert attempt is not None
            self.emit(AlreadyRunning(chunk, attempt))
            return attempt
        if step is PlanStep.START_UPLOADED:
            assert attempt is not None
            if self._start_job(chunk, attempt, options):
                return attempt
            self._abandon(attempt, "its file never arrived (the upload was cut off)")
        elif step is PlanStep.REPLACE_EXPIRED:
            assert attempt is not None
            self._abandon(attempt, "it expired before it was started")
        elif step is PlanStep.REPLACE_NOT_UPLOADED:
            assert attempt is not None
            self._abandon(
                attempt, "it was created but never uploaded, and its upload URL is not kept"
            )
        # CREATE, RETRY_FAILED, RESUME_STOPPED: no job, or one that ended; a new one.
        for _ in range(self.pacing.max_url_attempts):
            attempt = self._create_and_upload(chunk, role_arn)
            if attempt is None:
                continue
            if self._start_job(chunk, attempt, options):
                return attempt
            self._abandon(attempt, "Cognito says its file never arrived")
        raise CsvImportError(
            f"{chunk.file}: {self.pacing.max_url_attempts} import jobs in a row could not take "
            "the file (the upload URL expired before the upload ended, or the file never "
            "arrived)",
            hint="Check this machine's clock and its connection to AWS (a 100 MB upload must "
            "finish within the URL's 15 minutes), then run `csvimport start RUN_DIR` again.",
        )

    def _create_and_upload(self, chunk: RunChunk, role_arn: str) -> Attempt | None:
        """A new job with the chunk uploaded; None when its URL expired first."""
        self.run.verify(chunk)
        number = self.journal.next_number(chunk)
        attempt = self.journal.add(chunk, job_name(self.run.run_id, chunk, number))
        try:
            job = self.api.create(attempt.job_name, role_arn, chunk.password_algorithm)
        except botocore.exceptions.ClientError as exc:
            refused = f"create refused: {error_code(exc)}: {error_message(exc)}"
            self.journal.record(attempt, refused, step=Step.ABANDONED, abandoned_because=refused)
            raise self._create_refused(exc, chunk) from exc
        # The job id goes to the journal before anything else happens to the job.
        self.journal.record(attempt, "created", step=Step.CREATED, job_id=job["JobId"])
        self.journal.observe(attempt, job)
        url = str(job.pop("PreSignedUrl", ""))
        self._sweep(attempt)
        self.emit(JobCreated(chunk, attempt))
        self.journal.record(attempt, "upload started", step=Step.UPLOADING)
        try:
            upload_file(self.http, url, self.run.chunk_path(chunk), backoff=self.pacing.backoff,
                        attempts=max_attempts(self.client), sleep=self.sleep)  # fmt: skip
        except UploadUrlExpired:
            self._abandon(attempt, "its upload URL expired before the upload finished")
            return None
        self.journal.record(attempt, "uploaded", step=Step.UPLOADED)
        return attempt

    def _create_refused(self, exc: botocore.exceptions.ClientError, chunk: RunChunk) -> Exception:
        code = error_code(exc)
        if code == "OperationNotEnabledException" and chunk.password_algorithm:
            return RefusedError(
                f"the user pool {self.run.user_pool_id} cannot import password hashes "
                f"({chunk.file} carries {chunk.password_algorithm} hashes): {error_message(exc)}",
                hint="Build again with --password-hashes off, so these users are imported "
                "without a password and reset it; or use a pool eligible for hash import.",
            )
        if code == "LimitExceededException":
            return RefusedError(
                f"Cognito refused a new import job: {error_message(exc)}",
                hint="A pool keeps at most 1,000 import jobs; use another pool, or ask AWS.",
            )
        return describe_aws_error(exc) or exc

    def _sweep(self, attempt: Attempt) -> None:
        """Stop other jobs with this attempt's name: a create retried after a lost answer
        may have made two."""
        for job in self.api.list_jobs(pages=1):
            if job.get("JobName") == attempt.job_name and job["JobId"] != attempt.job_id:
                self._retire_stray(job)

    def _abandon(self, attempt: Attempt, why: str) -> None:
        if attempt.job_id and attempt.status in (None, JobStatus.CREATED):
            self._stop_quietly(attempt.job_id)
        self.journal.record(attempt, f"abandoned: {why}", step=Step.ABANDONED,
                            abandoned_because=why)  # fmt: skip
        self.emit(SetAside(attempt, why))

    def _start_job(self, chunk: RunChunk, attempt: Attempt, options: StartOptions) -> bool:
        """Start an uploaded job, waiting for other teams' jobs if asked to; False when
        Cognito says its file never arrived."""
        assert attempt.job_id is not None
        while True:
            try:
                job = self.api.start(attempt.job_id)
            except botocore.exceptions.ClientError as exc:
                code, said = error_code(exc), error_message(exc)
                if NOT_UPLOADED.search(said):
                    return False
                if code == "InvalidParameterException":
                    # Started already (by a run killed before it could record it)?
                    job = self.api.describe(attempt.job_id)
                    if job.get("Status") != JobStatus.CREATED:
                        self.journal.observe(attempt, job)
                        return True
                    raise
                if code not in OTHER_JOB_ACTIVE_CODES:
                    raise
                self._blocked(said, options)
                continue
            self.journal.record(attempt, "started", step=Step.STARTED)
            self.journal.observe(attempt, job)
            self.emit(JobStarted(chunk, attempt))
            return True

    def _blocked(self, said: str, options: StartOptions) -> None:
        """Another import job is active in the account: wait for it, or refuse."""
        other = self.api.active_job_in_account()
        if other is not None and self.journal.by_job_id(other["JobId"]):
            other = None  # this run's own job: Cognito's answer says more
        blocked = StartBlocked(other, said)
        if not options.wait_for_others:
            raise RefusedError(
                blocked.describe(),
                hint="Cognito runs one import job per account at a time. Wait for it and run "
                "`csvimport start RUN_DIR` again, or pass --wait-for-others to wait here.",
            )
        self.emit(WaitingForOtherJob(blocked, self.pacing.other_job_poll))
        self.sleep(self.pacing.other_job_poll)

    # -- watching -----------------------------------------------------------------------
    def watch(self, chunk: RunChunk, attempt: Attempt) -> Attempt:
        """Poll a started job until it ends, with growing pauses while nothing changes."""
        assert attempt.job_id is not None
        interval = self.pacing.poll_first
        last = -1
        while not attempt.ended:
            self.journal.observe(attempt, self.api.describe(attempt.job_id))
            self.emit(JobProgress(chunk, attempt, attempt.status, attempt.processed))
            if attempt.ended:
                break
            if attempt.processed == last:
                interval = min(interval * self.pacing.poll_growth, self.pacing.poll_max)
            last = attempt.processed
            self.sleep(interval)
        self.emit(JobEnded(chunk, attempt))
        return attempt

    def wait_all(self) -> RunStatus:
        """Watch every running or uploaded job of the run until it ends (``status --wait``)."""
        for chunk in self.run.chunks:
            attempt = self.journal.current(chunk)
            if attempt is not None and (attempt.live or attempt.step is Step.STARTED):
                self.watch(chunk, attempt)
        return self.status()

    # -- stop ---------------------------------------------------------------------------
    def stop(self, *, wait: bool = True) -> Attempt | None:
        """Stop the run's active job (None when none is active)."""
        self.refresh()
        live = [a for c in self.run.chunks if (a := self.journal.current(c)) and a.live]
        if not live:
            return None
        attempt = live[0]
        assert attempt.job_id is not None
        try:
            job = self.api.stop(attempt.job_id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidParameterException":
                raise
            job = self.api.describe(attempt.job_id)  # it ended meanwhile
        self.journal.record(attempt, "stop requested")
        self.journal.observe(attempt, job)
        deadline = time.monotonic() + self.pacing.stop_timeout
        interval = self.pacing.poll_first
        while wait and not attempt.ended and time.monotonic() < deadline:
            self.sleep(interval)
            interval = min(interval * self.pacing.poll_growth, self.pacing.poll_max)
            self.journal.observe(attempt, self.api.describe(attempt.job_id))
        return attempt
