"""``start`` / ``status`` / ``stop``: a run's chunks through Cognito's import jobs.

For each chunk: ``CreateUserImportJob`` -> PUT the file to the presigned URL ->
``StartUserImportJob`` -> watch it with ``DescribeUserImportJob`` until it ends, one job
at a time (Cognito allows one active import job per account). Every step is written to
the run's journal (``csvimport.journal``) before or right after it happens, so a
re-run after any crash resumes without a second job for a chunk that has a live or
successful one, and without uploading a file twice.

The AWS calls go through :class:`JobApi`, paced under Cognito's quotas and retried by
botocore (``csvimport.retry``: one layer, ``AWS_MAX_ATTEMPTS`` attempts per call at most).
The library never prints: it reports through an ``on_event`` callback.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import requests

from csvimport.errors import (
    ConfigError,
    CsvImportError,
    RefusedError,
    ServiceError,
    describe_aws_error,
)
from csvimport.journal import ACTIVE, JOB_NAME_PREFIX, JOURNAL, Attempt, Journal, Step, job_name
from csvimport.pool import PoolSnapshot, read_pool
from csvimport.retry import Backoff, PacedClient, error_code, error_message, max_attempts
from csvimport.rundir import RunChunk, RunDir

# --- Cognito's documented limits (facts §3, §4; the rate quotas are csvimport.retry's) --
POOLS_PAGE = 60  # ListUserPools' MaxResults maximum
LIST_JOBS_PAGE = 60  # ListUserImportJobs' MaxResults maximum
SSE_HEADER = "x-amz-server-side-encryption"
SSE_VALUE = "aws:kms"
ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+")

# --- GUESSES: undocumented behaviour; correct here when real Cognito disagrees --------
# GUESS: the error StartUserImportJob answers while another job of the account is active
# (facts §3: "The error for a second start is UNVERIFIED").
OTHER_JOB_ACTIVE_CODES = frozenset({"PreconditionNotMetException", "LimitExceededException"})
# Seen publicly (facts §3): starting a job whose file never arrived.
NOT_UPLOADED = re.compile(r"no csv file was uploaded", re.IGNORECASE)
# GUESS: how an expired presigned URL answers (S3's usual 403 AccessDenied wording).
URL_EXPIRED = re.compile(r"request has expired|expired", re.IGNORECASE)
# GUESS: what a whole-job failure's CompletionMessage says, matched loosely because
# Cognito's wording is not documented and "do not depend on exact text" (facts §3).
FAILURE_EXPLANATIONS: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"too many users", re.IGNORECASE),
        "Cognito gave up on the file because too many of its users failed or were skipped; "
        "the users after that point were not processed.",
        "Run `csvimport report RUN_DIR` to see why they failed, fix the mapping or the data, "
        "and build again; or `csvimport start RUN_DIR --retry-failed` to run the same file "
        "again (users already imported are then skipped).",
    ),
    (
        re.compile(r"role|assume|permission|cloudwatch", re.IGNORECASE),
        "Cognito could not use the CloudWatch Logs role, so the job could not run.",
        "The role must trust cognito-idp.amazonaws.com (sts:AssumeRole) and allow "
        "logs:CreateLogGroup, logs:CreateLogStream, logs:DescribeLogStreams and "
        "logs:PutLogEvents on arn:aws:logs:REGION:ACCOUNT:log-group:/aws/cognito/*; fix it, "
        "then `csvimport start RUN_DIR --retry-failed`.",
    ),
    (
        re.compile(r"pool", re.IGNORECASE),
        "The user pool went away while the job ran.",
        "Check the pool still exists; a run is built for one pool and cannot be moved.",
    ),
    (
        re.compile(r"csv|header|column|parse|utf|byte order|larger|more than", re.IGNORECASE),
        "Cognito could not read the import file as a whole.",
        "Build the run again against the pool as it is now (`csvimport build`), then start "
        "the new run directory.",
    ),
]
UNKNOWN_FAILURE_HINT = (
    "Run `csvimport report RUN_DIR` to read the job's log, then `csvimport start RUN_DIR "
    "--retry-failed` once the cause is fixed."
)
LOGS_ROLE_HINT = (
    "Pass --logs-role-arn or set CSVIMPORT_LOGS_ROLE_ARN to an IAM role that trusts "
    "cognito-idp.amazonaws.com and may write to the log groups /aws/cognito/*."
)


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


class JobApi:
    """Cognito's import-job calls for one pool, through a :class:`PacedClient`."""

    def __init__(self, client: Any, pool_id: str) -> None:
        self.paced = PacedClient(client)
        self.pool_id = pool_id

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return self.paced.call(operation, **kwargs)

    def create(self, name: str, role_arn: str, algorithm: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "JobName": name,
            "UserPoolId": self.pool_id,
            "CloudWatchLogsRoleArn": role_arn,
        }
        if algorithm:
            kwargs["PasswordHashingAlgorithm"] = algorithm
        return dict(self.call("create_user_import_job", **kwargs)["UserImportJob"])

    def start(self, job_id: str) -> dict[str, Any]:
        answer = self.call("start_user_import_job", UserPoolId=self.pool_id, JobId=job_id)
        return dict(answer["UserImportJob"])

    def stop(self, job_id: str) -> dict[str, Any]:
        answer = self.call("stop_user_import_job", UserPoolId=self.pool_id, JobId=job_id)
        return dict(answer["UserImportJob"])

    def describe(self, job_id: str) -> dict[str, Any]:
        answer = self.call("describe_user_import_job", UserPoolId=self.pool_id, JobId=job_id)
        return dict(answer["UserImportJob"])

    def list_jobs(self, pool_id: str | None = None, *, pages: int | None = None) -> list[Any]:
        """The pool's import jobs, newest first (all pages, or the first ``pages``)."""
        kwargs: dict[str, Any] = {"UserPoolId": pool_id or self.pool_id,
                                  "MaxResults": LIST_JOBS_PAGE}  # fmt: skip
        jobs: list[Any] = []
        seen = 0
        while True:
            page = self.call("list_user_import_jobs", **kwargs)
            jobs.extend(page.get("UserImportJobs", []))
            seen += 1
            token = page.get("PaginationToken")
            if not token or (pages is not None and seen >= pages):
                return jobs
            kwargs["PaginationToken"] = token

    def active_job_in_account(self) -> dict[str, Any] | None:
        """The account's active import job (Cognito allows one), to name what blocks a
        start; None when no pool shows one.

        Pools are searched most recently changed first (a migration target is likely to be
        a new or recently configured pool), and the search stops at the first active job.
        """
        pools: list[Any] = []
        kwargs: dict[str, Any] = {"MaxResults": POOLS_PAGE}
        while True:
            page = self.call("list_user_pools", **kwargs)
            pools.extend(page.get("UserPools", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        pools.sort(key=lambda p: str(p.get("LastModifiedDate") or p.get("CreationDate") or ""),
                   reverse=True)  # fmt: skip
        for pool in pools:
            # Active jobs are recent: the newest page of each pool is enough.
            for job in self.list_jobs(pool["Id"], pages=1):
                if job.get("Status") in ACTIVE:
                    return dict(job)
        return None


# --- the upload -----------------------------------------------------------------------
class UploadUrlExpired(Exception):
    """The presigned URL is no longer valid: the job must be replaced by a new one."""


UPLOAD_CONNECT_TIMEOUT = 10.0
UPLOAD_READ_TIMEOUT = 600.0  # a 100 MB file on a slow link; S3 answers after the body


def upload_file(
    session: requests.Session,
    url: str,
    path: Path,
    *,
    backoff: Backoff,
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """PUT ``path`` to a presigned URL, streamed; retry what may pass, ``attempts`` tries
    in all (the bound of every AWS call: ``csvimport.retry.max_attempts``).

    The URL is a secret: it appears in no message or exception raised here (requests'
    own exceptions name it, so they are never passed on).
    """
    host = urlsplit(url).netloc
    size = path.stat().st_size
    delays = backoff.delays(attempts)
    while True:
        try:
            with path.open("rb") as body:
                response = session.put(
                    url,
                    data=body,
                    headers={SSE_HEADER: SSE_VALUE, "Content-Length": str(size)},
                    timeout=(UPLOAD_CONNECT_TIMEOUT, UPLOAD_READ_TIMEOUT),
                )
        except requests.RequestException as exc:
            problem = f"the connection to {host} failed ({type(exc).__name__})"
        else:
            if response.status_code == 200:
                return
            code = _xml_field(response.text, "Code")
            message = _xml_field(response.text, "Message")
            problem = f"{host} answered HTTP {response.status_code} {code}: {message}".rstrip()
            if response.status_code == 403 and URL_EXPIRED.search(message):
                raise UploadUrlExpired(problem)
            if response.status_code < 500 and response.status_code not in (408, 429):
                raise ServiceError(
                    f"uploading {path.name} was refused: {problem}",
                    hint="The presigned URL was rejected; run `csvimport start RUN_DIR` again "
                    "to upload through a new import job. If it happens again, check the "
                    "clock of this machine and any proxy between it and AWS.",
                )
        delay = next(delays, None)
        if delay is None:
            raise ServiceError(
                f"uploading {path.name} failed after {attempts} tries: {problem}",
                hint="Check the network (and any proxy), then run `csvimport start RUN_DIR` "
                "again: it goes on where it stopped.",
            )
        sleep(delay)


def _xml_field(text: str, name: str) -> str:
    match = re.search(rf"<{name}>(.*?)</{name}>", text or "", re.DOTALL)
    return match.group(1).strip() if match else ""


# --- events for the caller ------------------------------------------------------------
class EventKind(StrEnum):
    NOTE = "note"  # something done or decided, worth a line
    WARNING = "warning"
    PROGRESS = "progress"  # a running job's counters
    ENDED = "ended"  # a job reached a terminal status


@dataclass(frozen=True)
class Event:
    kind: EventKind
    text: str
    chunk: RunChunk | None = None
    attempt: Attempt | None = None


EventSink = Callable[[Event], None]


def _ignore(event: Event) -> None:
    pass


# --- outcomes ---------------------------------------------------------------------------
class ChunkState(StrEnum):
    IMPORTED = "imported"  # Succeeded, every user imported
    IMPORTED_WITH_PROBLEMS = "imported with problems"  # Succeeded; some skipped or failed
    FAILED = "failed"
    STOPPED = "stopped"
    RUNNING = "running"
    WAITING_TO_START = "uploaded, not started"
    NOT_STARTED = "not started"


@dataclass(frozen=True)
class ChunkStatus:
    chunk: RunChunk
    attempt: Attempt | None
    state: ChunkState

    def to_json(self) -> dict[str, Any]:
        a = self.attempt
        return {
            "chunk": self.chunk.file,
            "users": self.chunk.rows,
            "state": self.state.value,
            "job_id": a.job_id if a else None,
            "job_name": a.job_name if a else None,
            "status": a.status if a else None,
            "imported": a.imported if a else 0,
            "skipped": a.skipped if a else 0,
            "failed": a.failed if a else 0,
            "completion_message": a.message if a else None,
            "started": a.started if a else None,
            "completed": a.completed if a else None,
            "attempts": a.number if a else 0,
        }


def chunk_state(attempt: Attempt | None) -> ChunkState:
    if attempt is None or attempt.step in (Step.CREATING, Step.CREATED):
        return ChunkState.NOT_STARTED
    if attempt.status == "Succeeded":
        if attempt.skipped or attempt.failed:
            return ChunkState.IMPORTED_WITH_PROBLEMS
        return ChunkState.IMPORTED
    if attempt.status == "Failed":
        return ChunkState.FAILED
    if attempt.status == "Stopped":
        return ChunkState.STOPPED
    if attempt.status in ACTIVE:
        return ChunkState.RUNNING
    if attempt.status == "Expired":
        return ChunkState.NOT_STARTED
    return ChunkState.WAITING_TO_START


@dataclass(frozen=True)
class RunStatus:
    """Where every chunk of a run stands."""

    chunks: list[ChunkStatus]

    @property
    def all_imported(self) -> bool:
        return all(c.state is ChunkState.IMPORTED for c in self.chunks)

    def count(self, state: ChunkState) -> int:
        return sum(1 for c in self.chunks if c.state is state)

    def to_json(self) -> dict[str, Any]:
        return {
            "all_imported": self.all_imported,
            "users": sum(c.chunk.rows for c in self.chunks),
            "imported": sum(c.attempt.imported for c in self.chunks if c.attempt),
            "skipped": sum(c.attempt.skipped for c in self.chunks if c.attempt),
            "failed": sum(c.attempt.failed for c in self.chunks if c.attempt),
            "chunks": [c.to_json() for c in self.chunks],
        }


def explain_end(attempt: Attempt) -> tuple[str, str | None]:
    """A job's end in words, and what to do next (None when nothing is to be done)."""
    counts = (f"{attempt.imported:,} imported, {attempt.skipped:,} skipped, "
              f"{attempt.failed:,} failed")  # fmt: skip
    if attempt.status == "Succeeded":
        if not (attempt.skipped or attempt.failed):
            return f"succeeded: {counts}", None
        return (
            f"succeeded with problems: {counts}",
            "`csvimport report RUN_DIR` says which users were skipped or failed and why.",
        )
    if attempt.status == "Stopped":
        return (
            f"stopped: {counts}; a stopped job cannot be restarted",
            "Cognito keeps no per-user state for the users it did not reach: `csvimport "
            "report RUN_DIR` reads the log to tell them apart. `csvimport start RUN_DIR` goes "
            "on with the next chunks; add --resume-stopped to import this chunk again in a new "
            "job (users already imported are then skipped).",
        )
    if attempt.status == "Expired":
        return "expired before it was started", "`csvimport start RUN_DIR` makes a new job."
    if attempt.status == "Failed":
        said = attempt.message or "no message"
        for pattern, why, fix in FAILURE_EXPLANATIONS:
            if pattern.search(said):
                return f"failed: {counts}. {why} (Cognito: {said!r})", fix
        return f"failed: {counts} (Cognito: {said!r})", UNKNOWN_FAILURE_HINT
    return f"{attempt.status}: {counts}", None


# --- preflight ------------------------------------------------------------------------
# Snapshot fields that decide whether Cognito accepts the rows as built.
IMPORT_FIELDS = ("name", "attributes", "auto_verified", "username_attributes",
                 "alias_attributes", "case_sensitive", "mfa")  # fmt: skip


def pool_differences(built: PoolSnapshot, live: PoolSnapshot) -> list[str]:
    """What changed in the pool since the build that could change what Cognito accepts."""
    differences: list[str] = []
    missing = [c for c in built.header if c not in live.header]
    extra = [c for c in live.header if c not in built.header]
    if missing:
        differences.append(f"columns no longer in the pool's CSV header: {', '.join(missing)}")
    if extra:
        differences.append(f"new columns in the pool's CSV header: {', '.join(extra)}")
    built_json, live_json = built.to_json(), live.to_json()
    for name in IMPORT_FIELDS:
        if name == "attributes":
            before = {a["name"]: a for a in built_json[name]}
            after = {a["name"]: a for a in live_json[name]}
            for attr in sorted(set(before) | set(after)):
                if before.get(attr) != after.get(attr):
                    differences.append(
                        f"attribute {attr}: {_short(before.get(attr))} -> {_short(after.get(attr))}"
                    )
        elif built_json[name] != live_json[name]:
            differences.append(f"{name}: {built_json[name]!r} -> {live_json[name]!r}")
    return differences


def _short(attribute: dict[str, Any] | None) -> str:
    if attribute is None:
        return "absent"
    return ", ".join(f"{k}={v}" for k, v in attribute.items() if k != "name" and v is not None)


def check_role_arn(role_arn: str | None) -> str:
    if not role_arn:
        raise RefusedError("no CloudWatch Logs role given", hint=LOGS_ROLE_HINT)
    if not ROLE_ARN.fullmatch(role_arn):
        raise RefusedError(
            f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
            hint=LOGS_ROLE_HINT,
        )
    return role_arn


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
        ids = ", ".join(str(a.job_id) for a in adopted)
        if missing:
            text = (f"{JOURNAL} was missing: rebuilt it from the {len(adopted)} import jobs "
                    f"Cognito lists for run {self.run.run_id} ({ids})")  # fmt: skip
        else:
            text = (f"{len(adopted)} import job(s) of run {self.run.run_id} were not in "
                    f"{JOURNAL} (an old copy put back?); took them in from Cognito's job "
                    f"list: {ids}")  # fmt: skip
        if self.journal.read_only:
            text += " (in memory only: this look changes nothing in the run directory)"
        self.emit(Event(EventKind.WARNING, text))

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
        if job.get("Status") == "Created":
            self._stop_quietly(job["JobId"])
            self.emit(Event(EventKind.WARNING,
                            f"stopped stray job {job['JobId']} ({job['JobName']}): a retried "
                            "create made it and nothing uploaded to it"))  # fmt: skip

    def _stop_quietly(self, job_id: str) -> None:
        # Already ended or gone: either way nobody can start it any more.
        with contextlib.suppress(botocore.exceptions.ClientError):
            self.api.stop(job_id)

    # -- preflight ----------------------------------------------------------------------
    def preflight(self) -> PoolSnapshot:
        """Refuse to start when the pool is gone, changed since the build, or cannot
        import at all, or when a file of the run is missing or changed since the build;
        return the live pool."""
        self.run.verify_files()
        pool_id = self.run.user_pool_id
        try:
            paced: Any = self.api.paced  # read_pool wants a client; this is one, paced
            live = read_pool(paced, pool_id)
        except ConfigError:  # read_pool's "no such pool"; AWS failures stay what they are
            raise RefusedError(
                f"the user pool {pool_id} this run was built for does not exist (region "
                f"{self.client.meta.region_name})",
                hint="Check --region and --profile: a run can only be imported into the pool "
                "it was built for. For another pool, build again with its --pool-id.",
            ) from None
        differences = pool_differences(self.run.snapshot, live)
        header = set(self.run.header(self.run.chunks[0])) if self.run.chunks else set()
        file_missing = [c for c in live.header if c not in header]
        if self.run.chunks and file_missing and not differences:
            differences.append(f"the import files lack columns: {', '.join(file_missing)}")
        if differences:
            raise RefusedError(
                f"the user pool {pool_id} changed since this run was built:\n  - "
                + "\n  - ".join(differences),
                hint="The run was validated against the pool as it was; build again "
                "(`csvimport build ... --pool-id " + pool_id + "`) and start the new run "
                "directory.",
            )
        if not live.auto_verified:
            raise RefusedError(
                f"the user pool {pool_id} has no auto-verified attributes, so Cognito will not "
                "start an import job",
                hint="Turn on automatic verification of email or phone number in the pool "
                "(AutoVerifiedAttributes), then build again.",
            )
        return live

    # -- start --------------------------------------------------------------------------
    def start(self, options: StartOptions) -> RunStatus:
        """Import every chunk not yet imported, one job at a time; see ``StartOptions``."""
        self.preflight()
        self.refresh(look_up=True)  # never a second job for a chunk Cognito shows one for
        role_arn: str | None = None
        for chunk in self.run.chunks:
            attempt = self.journal.current(chunk)
            action = self._plan(chunk, attempt, options)
            if action == "done":
                continue
            if action in ("failed", "stopped"):
                assert attempt is not None
                what, _ = explain_end(attempt)
                flag = "--retry-failed" if action == "failed" else "--resume-stopped"
                self._note(f"{chunk.file}: job {attempt.job_id} {what}; not run again "
                           f"without {flag}", chunk, attempt)  # fmt: skip
                continue
            if options.dry_run:
                self._note(f"{chunk.file} ({chunk.rows:,} users): would {action}", chunk, attempt)
                if action == "wait for the running job":
                    return self.status()
                continue
            if action != "wait for the running job" and role_arn is None:
                role_arn = check_role_arn(options.logs_role_arn)
            assert action == "wait for the running job" or role_arn is not None
            attempt = self._drive(chunk, attempt, action, role_arn or "", options)
            if not options.wait:
                return self.status()
            attempt = self.watch(chunk, attempt)
            if attempt.status != "Succeeded":
                break  # a failed or stopped job halts the run: the operator decides
        return self.status()

    def _plan(self, chunk: RunChunk, attempt: Attempt | None, options: StartOptions) -> str:
        if attempt is None:
            return "create a job, upload and start it"
        if attempt.status == "Succeeded":
            return "done"
        if attempt.live:
            return "wait for the running job"
        if attempt.status == "Failed":
            return "retry in a new job" if options.retry_failed else "failed"
        if attempt.status == "Stopped":
            return "resume in a new job" if options.resume_stopped else "stopped"
        if attempt.status == "Expired":
            return "replace the expired job"
        if attempt.step in (Step.UPLOADING, Step.UPLOADED, Step.STARTED):
            return "start the uploaded job"
        return "replace the job that was never uploaded"

    def _drive(
        self, chunk: RunChunk, attempt: Attempt | None, action: str, role_arn: str,
        options: StartOptions,
    ) -> Attempt:  # fmt: skip
        """Get a job of the chunk running; return its attempt."""
        if action == "wait for the running job":
            assert attempt is not None
            self._note(f"{chunk.file}: job {attempt.job_id} is already running", chunk, attempt)
            return attempt
        if attempt is not None and action == "start the uploaded job":
            if self._start_job(chunk, attempt, options):
                return attempt
            self._abandon(attempt, "its file never arrived (the upload was cut off)")
        elif attempt is not None and not (attempt.ended and attempt.status != "Expired"):
            why = (
                "it expired before it was started"
                if attempt.status == "Expired"
                else "it was created but never uploaded, and its upload URL is not kept"
            )
            self._abandon(attempt, why)
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
        self._note(f"{chunk.file}: created job {attempt.job_id}, uploading "
                   f"{chunk.bytes:,} bytes", chunk, attempt)  # fmt: skip
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
        if attempt.job_id and attempt.status in (None, "Created"):
            self._stop_quietly(attempt.job_id)
        self.journal.record(attempt, f"abandoned: {why}", step=Step.ABANDONED,
                            abandoned_because=why)  # fmt: skip
        self._note(f"{attempt.chunk}: job {attempt.job_id} set aside: {why}", None, attempt)

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
                    if job.get("Status") != "Created":
                        self.journal.observe(attempt, job)
                        return True
                    raise
                if code not in OTHER_JOB_ACTIVE_CODES:
                    raise
                self._blocked(said, options)
                continue
            self.journal.record(attempt, "started", step=Step.STARTED)
            self.journal.observe(attempt, job)
            self._note(f"{chunk.file}: started job {attempt.job_id} "
                       f"({chunk.rows:,} users)", chunk, attempt)  # fmt: skip
            return True

    def _blocked(self, said: str, options: StartOptions) -> None:
        """Another import job is active in the account: wait for it, or refuse."""
        other = self.api.active_job_in_account()
        if other is not None and not self.journal.by_job_id(other["JobId"]):
            what = (f"another import job is active in this AWS account: {other['JobId']} "
                    f"({other.get('JobName', '')}) in pool {other['UserPoolId']}, "
                    f"{other['Status']}")  # fmt: skip
        else:
            what = f"Cognito will not start the job yet: {said}"
        if not options.wait_for_others:
            raise RefusedError(
                what,
                hint="Cognito runs one import job per account at a time. Wait for it and run "
                "`csvimport start RUN_DIR` again, or pass --wait-for-others to wait here.",
            )
        self.emit(Event(EventKind.NOTE, f"{what}; waiting "
                        f"{self.pacing.other_job_poll:.0f} s (--wait-for-others)"))  # fmt: skip
        self.sleep(self.pacing.other_job_poll)

    # -- watching -----------------------------------------------------------------------
    def watch(self, chunk: RunChunk, attempt: Attempt) -> Attempt:
        """Poll a started job until it ends, with growing pauses while nothing changes."""
        assert attempt.job_id is not None
        interval = self.pacing.poll_first
        last = -1
        while not attempt.ended:
            self.journal.observe(attempt, self.api.describe(attempt.job_id))
            self.emit(Event(EventKind.PROGRESS, attempt.status or "", chunk, attempt))
            if attempt.ended:
                break
            if attempt.processed == last:
                interval = min(interval * self.pacing.poll_growth, self.pacing.poll_max)
            last = attempt.processed
            self.sleep(interval)
        what, _ = explain_end(attempt)
        self.emit(Event(EventKind.ENDED, f"{chunk.file}: job {attempt.job_id} {what}",
                        chunk, attempt))  # fmt: skip
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

    def _note(self, text: str, chunk: RunChunk | None, attempt: Attempt | None) -> None:
        self.emit(Event(EventKind.NOTE, text, chunk, attempt))
