"""User import jobs: their records, their status machine, and the runner that imports.

A ``JobStore`` holds every job of one sandbox (all accounts and regions). A background
``JobRunner`` thread moves started jobs through Pending -> InProgress -> a terminal
status, creates users in moto's Cognito backend at a pace set by
``SandboxSettings.job_seconds``, and writes one CloudWatch Logs line per row into moto's
logs backend (optionally lagging behind).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import string
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from moto.cognitoidp.models import CognitoIdpUser, UserStatus, cognitoidp_backends
from moto.core.exceptions import JsonRESTError
from moto.logs.models import logs_backends

from . import settings as S
from .csvfile import FileRejected, check_header, read_import_file, split_values
from .iam import role_lets_cognito_log
from .lambdas import LocalFunctions
from .rules import PoolRules, fold, parse_bool
from .settings import Faults, SandboxSettings


class SandboxError(JsonRESTError):
    """An AWS-shaped error answered by the sandbox's import-job API."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(error_type, message)


class Clock:
    """Wall time plus an offset that tests may advance: the sandbox's "now" for every date
    it gives out or compares (jobs, their URLs, logs and users, reset messages)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def naive_utc(self, epoch: float | None = None) -> datetime:
        """Now (or ``epoch``) as the naive UTC datetime moto's models keep."""
        return datetime.fromtimestamp(self.now() if epoch is None else epoch,
                                      tz=UTC).replace(tzinfo=None)  # fmt: skip

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def log_group_name(pool_id: str, pool_name: str) -> str:
    """The log group Cognito writes a pool's import results to (facts §5)."""
    return f"/aws/cognito/userpools/{pool_id}/{pool_name}"


@dataclass
class ImportJob:
    job_id: str
    job_name: str
    pool_id: str
    pool_name: str
    account: str
    region: str
    role_arn: str
    algorithm: str | None
    created: float  # sandbox-clock epoch, as are started and completed
    url: str
    url_token: str  # the secret in the URL
    url_expires: float  # sandbox-clock epoch
    status: str = "Created"
    started: float | None = None
    completed: float | None = None
    message: str | None = None
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    upload: Path | None = None
    uploads: int = 0  # accepted PUTs: tests check a client never uploads twice
    # processing state
    pending_until: float = 0.0
    processing_started: float = 0.0
    header: list[str] = field(default_factory=list)
    lines: list[tuple[int, str]] = field(default_factory=list)
    next_line: int = 0
    rules: PoolRules | None = None
    unique_index: dict[tuple[str, str], str] = field(default_factory=dict)
    logs: deque[tuple[float, int, str]] = field(default_factory=deque)

    def to_api(self) -> dict[str, Any]:
        """The job as Cognito's ``UserImportJobType``."""
        out: dict[str, Any] = {
            "JobName": self.job_name,
            "JobId": self.job_id,
            "UserPoolId": self.pool_id,
            "PreSignedUrl": self.url,
            "CreationDate": _dt(self.created),
            "Status": self.status,
            "CloudWatchLogsRoleArn": self.role_arn,
            "ImportedUsers": self.imported,
            "SkippedUsers": self.skipped,
            "FailedUsers": self.failed,
        }
        if self.started is not None:
            out["StartDate"] = _dt(self.started)
        if self.completed is not None:
            out["CompletionDate"] = _dt(self.completed)
        if self.message:
            out["CompletionMessage"] = self.message
        if self.algorithm:
            out["PasswordHashingAlgorithm"] = self.algorithm
        return out


class JobStore:
    """Every import job of a sandbox, and the operations of the import-job API."""

    def __init__(
        self, *, settings: SandboxSettings, faults: Faults, clock: Clock, upload_dir: Path
    ) -> None:
        self.settings = settings
        self.faults = faults
        self.clock = clock
        self.upload_dir = upload_dir
        self.base_url = ""  # set by the server once its port is known
        self.lock = threading.RLock()
        self.jobs: dict[str, ImportJob] = {}
        self._signing_key = secrets.token_bytes(32)
        self.hash_import_pools: set[str] = set()  # pools eligible for password-hash import
        self.functions = LocalFunctions()  # Lambda ARNs the pool specs give a local handler

    # -- helpers ----------------------------------------------------------------------
    def _pool(self, account: str, region: str, pool_id: str) -> Any:
        pool = cognitoidp_backends[account][region].user_pools.get(pool_id)
        if pool is None:
            raise SandboxError("ResourceNotFoundException", f"User pool {pool_id} does not exist.")
        return pool

    def _job(self, account: str, region: str, pool_id: str, job_id: str) -> ImportJob:
        self._pool(account, region, pool_id)
        job = self.jobs.get(job_id)
        if job is None or job.pool_id != pool_id or job.account != account:
            raise SandboxError("ResourceNotFoundException", f"Import job {job_id} does not exist.")
        self._expire_if_due(job)
        return job

    def _expire_if_due(self, job: ImportJob) -> None:
        if (
            job.status == "Created"
            and self.clock.now() - job.created > self.settings.job_expiry_seconds
        ):
            job.status = "Expired"
            job.completed = self.clock.now()
            job.message = S.MSG_EXPIRED
            if job.upload is not None:
                job.upload.unlink(missing_ok=True)  # Cognito deletes the data of expired jobs
                job.upload = None

    def signature(self, job_id: str, expires: str, token: str) -> str:
        msg = f"{job_id}\n{expires}\n{token}".encode()
        return hmac.new(self._signing_key, msg, hashlib.sha256).hexdigest()

    def _new_job_id(self) -> str:
        alphabet = string.ascii_letters + string.digits
        while True:
            job_id = "import-" + "".join(secrets.choice(alphabet) for _ in range(10))
            if job_id not in self.jobs:
                return job_id

    # -- the API ----------------------------------------------------------------------
    def create(
        self, account: str, region: str, pool_id: str, job_name: str, role_arn: str,
        algorithm: str | None,
    ) -> ImportJob:  # fmt: skip
        with self.lock:
            pool = self._pool(account, region, pool_id)
            if not re.fullmatch(r"[\w\s+=,.@-]+", job_name) or len(job_name) > 128:
                raise SandboxError(
                    "InvalidParameterException",
                    "1 validation error detected: Value at 'jobName' failed to satisfy "
                    "constraint: Member must satisfy regular expression pattern: [\\w\\s+=,.@-]+",
                )
            if not re.fullmatch(
                r"arn:[\w+=/,.@-]+:[\w+=/,.@-]+:([\w+=/,.@-]*)?:[0-9]+:[\w+=/,.@-]+(:[\w+=/,.@-]+)?(:[\w+=/,.@-]+)?",
                role_arn,
            ):  # noqa: E501
                raise SandboxError(
                    "InvalidParameterException",
                    "1 validation error detected: Value at 'cloudWatchLogsRoleArn' failed to "
                    "satisfy constraint: Member must satisfy the ARN pattern",
                )
            if algorithm and pool_id not in self.hash_import_pools:
                raise SandboxError(*S.ERR_HASH_NOT_ENABLED)
            if sum(1 for j in self.jobs.values() if j.pool_id == pool_id) >= S.MAX_JOBS_PER_POOL:
                raise SandboxError(
                    "LimitExceededException",
                    f"A user pool can have at most {S.MAX_JOBS_PER_POOL} import jobs.",
                )
            job_id = self._new_job_id()
            sandbox_now = self.clock.now()
            token = secrets.token_urlsafe(24)
            stamp = datetime.fromtimestamp(sandbox_now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
            expires = str(int(self.settings.url_ttl_seconds))
            query = {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": f"ASIASANDBOX/{stamp[:8]}/{region}/s3/aws4_request",
                "X-Amz-Date": stamp,
                "X-Amz-Expires": expires,
                "X-Amz-SignedHeaders": f"host;{S.SSE_HEADER}",
                "X-Amz-Security-Token": token,
                "X-Amz-Signature": self.signature(job_id, expires, token),
            }
            url = f"{self.base_url}/_sandbox/upload/{region}/{pool_id}/{job_id}?{urlencode(query)}"
            job = ImportJob(
                job_id=job_id, job_name=job_name, pool_id=pool_id, pool_name=pool.name,
                account=account, region=region, role_arn=role_arn, algorithm=algorithm,
                created=sandbox_now, url=url, url_token=token,
                url_expires=sandbox_now + self.settings.url_ttl_seconds,
            )  # fmt: skip
            self.jobs[job_id] = job
            return job

    def describe(self, account: str, region: str, pool_id: str, job_id: str) -> ImportJob:
        with self.lock:
            return self._job(account, region, pool_id, job_id)

    def list(self, account: str, region: str, pool_id: str) -> list[ImportJob]:
        """The pool's jobs, newest first."""
        with self.lock:
            self._pool(account, region, pool_id)
            jobs = [j for j in self.jobs.values() if j.pool_id == pool_id and j.account == account]
            for job in jobs:
                self._expire_if_due(job)
            order = {job_id: i for i, job_id in enumerate(self.jobs)}
            return sorted(jobs, key=lambda j: (j.created, order[j.job_id]), reverse=True)

    def start(self, account: str, region: str, pool_id: str, job_id: str) -> ImportJob:
        with self.lock:
            job = self._job(account, region, pool_id, job_id)
            if job.status != "Created":
                code, text = S.ERR_NOT_STARTABLE
                raise SandboxError(code, text.format(job_id=job_id, status=job.status))
            if job.upload is None:
                code, text = S.ERR_NO_UPLOAD
                raise SandboxError(code, text.format(job_id=job_id))
            for other in self.jobs.values():
                if other.account == account and other.status in S.ACTIVE_STATUSES:
                    raise SandboxError(*S.ERR_OTHER_JOB_ACTIVE)
            pool = self._pool(account, region, pool_id)
            if not pool.extended_config.get("AutoVerifiedAttributes"):
                raise SandboxError(
                    "PreconditionNotMetException",
                    "The user pool has no auto-verified attributes; import jobs cannot start.",
                )
            job.status = "Pending"
            job.started = self.clock.now()
            job.pending_until = time.monotonic() + self.settings.pending_seconds
            return job

    def stop(self, account: str, region: str, pool_id: str, job_id: str) -> ImportJob:
        with self.lock:
            job = self._job(account, region, pool_id, job_id)
            if job.status in ("Pending", "InProgress"):
                job.status = "Stopping"
            elif job.status == "Created":
                self._finish(job, "Stopped", S.MSG_STOPPED)
            else:
                code, text = S.ERR_NOT_STOPPABLE
                raise SandboxError(code, text.format(job_id=job_id, status=job.status))
            return job

    def accept_upload(self, job_id: str, body: bytes) -> ImportJob:
        """Store an uploaded file for a job still in Created (checked by the caller)."""
        with self.lock:
            job = self.jobs[job_id]
            path = self.upload_dir / f"{job_id}.csv"
            path.write_bytes(body)
            job.upload = path
            job.uploads += 1
            return job

    # -- the runner's work ------------------------------------------------------------
    def _finish(self, job: ImportJob, status: str, message: str) -> None:
        job.status = status
        job.message = message
        job.completed = self.clock.now()
        job.lines = []

    def _fail_whole_job(self, job: ImportJob, message: str) -> None:
        self._finish(job, "Failed", message)

    def _begin_processing(self, job: ImportJob) -> None:
        backend = cognitoidp_backends[job.account][job.region]
        pool = backend.user_pools.get(job.pool_id)
        if pool is None:
            self._fail_whole_job(job, S.MSG_POOL_GONE)
            return
        group, stream = log_group_name(job.pool_id, job.pool_name), _stream_name(job)
        if not role_lets_cognito_log(job.account, job.role_arn, region=job.region, group=group,
                                     stream=stream):  # fmt: skip
            self._fail_whole_job(job, S.MSG_ROLE.format(arn=job.role_arn))
            return
        assert job.upload is not None
        rules = PoolRules.from_pool(pool)
        try:
            parsed = read_import_file(
                job.upload.read_bytes(), first_line_number=self.settings.first_line_number
            )
            check_header(parsed.header, rules.header, with_hash=bool(job.algorithm))
        except FileRejected as exc:
            self._fail_whole_job(job, str(exc))
            return
        job.rules = rules
        job.header = parsed.header
        job.lines = parsed.lines
        job.next_line = 0
        job.status = "InProgress"
        job.processing_started = time.monotonic()
        uniques = rules.unique_attributes()
        for user in pool.users.values():
            for attr in uniques:
                value = user.attribute_lookup.get(attr)
                if value:
                    job.unique_index[(attr, fold(rules.case_sensitive, value))] = user.username
        self._log_stream(job)

    def _log_stream(self, job: ImportJob) -> Any:
        """The job's log stream, created (with its group) when missing, as Cognito does."""
        logs = logs_backends[job.account][job.region]
        group, stream = log_group_name(job.pool_id, job.pool_name), _stream_name(job)
        if group not in logs.groups:
            logs.create_log_group(group, {})
            logs.groups[group].creation_time = self.clock.naive_utc()
        if stream not in logs.groups[group].streams:
            logs.create_log_stream(group, stream)
            logs.groups[group].streams[stream].creation_time = self.clock.naive_utc()
        return logs.groups[group].streams[stream]

    def _process_line(self, job: ImportJob, pool: Any, line_no: int, line: str) -> None:
        rules = job.rules
        assert rules is not None
        m = S.ROW_MESSAGES
        outcome, message = "FAILED", None
        values = split_values(line)
        if len(line) > S.MAX_ROW_CHARS:
            message = m["row_too_long"]
        elif len(values) != len(job.header):
            message = m["columns"].format(got=len(values), want=len(job.header))
        else:
            row = dict(zip(job.header, values, strict=True))
            message = rules.check_row(row, job.algorithm)
            if message is None:
                message, outcome = self._create_user(job, pool, rules, row)
        if outcome == "SUCCEEDED":
            job.imported += 1
        elif outcome == "SKIPPED":
            job.skipped += 1
        else:
            job.failed += 1
        visible_at = time.monotonic() + self.settings.log_lag_seconds
        stamp = int(self.clock.now() * 1000)
        job.logs.append((visible_at, stamp, f"[{outcome}] Line Number {line_no} - {message}"))

    def _create_user(
        self, job: ImportJob, pool: Any, rules: PoolRules, row: dict[str, str]
    ) -> tuple[str, str]:
        m = S.ROW_MESSAGES
        username = row["cognito:username"]
        if username in pool.users:  # pool.users folds case for case-insensitive pools
            return m["exists"], "SKIPPED"
        for attr in rules.unique_attributes():
            value = row.get(attr, "")
            verified = attr in rules.username_attributes or bool(
                parse_bool(row.get(f"{attr}_verified", ""))
                if attr != "preferred_username"
                else True
            )
            if value and verified and (attr, fold(rules.case_sensitive, value)) in job.unique_index:
                return m["alias_exists"].format(attr=attr), "FAILED"
        attributes = []
        for name, value in row.items():
            if not value or name.startswith("cognito:") or name == "password_hash":
                continue
            if name in ("email_verified", "phone_number_verified"):
                value = "true" if parse_bool(value) else "false"
            attributes.append({"Name": name, "Value": value})
        password_hash = row.get("password_hash", "") if job.algorithm else ""
        status = UserStatus.CONFIRMED if password_hash else UserStatus.RESET_REQUIRED
        user = CognitoIdpUser(job.pool_id, username, None, status, attributes)
        user.create_date = user.last_modified_date = self.clock.naive_utc()
        if password_hash:
            # Read by the sandbox's sign-in: the password is checked against this hash.
            user.csvimport_hash = (job.algorithm, password_hash)  # type: ignore[attr-defined]
        if parse_bool(row.get("cognito:mfa_enabled", "")) and pool.mfa_config != "OFF":
            user.sms_mfa_enabled = True
        pool.users[username] = user
        for attr in rules.unique_attributes():
            if row.get(attr):
                job.unique_index[(attr, fold(rules.case_sensitive, row[attr]))] = username
        return m["succeeded"], "SUCCEEDED"

    def _too_many_bad(self, job: ImportJob) -> bool:
        bad = job.failed + job.skipped
        seen = bad + job.imported
        return (
            bad >= self.settings.fail_job_after_bad_rows
            and bad > self.settings.fail_job_bad_fraction * seen
        )

    def _advance(self, job: ImportJob, batch_limit: int) -> None:
        if job.status == "Pending":
            if time.monotonic() >= job.pending_until:
                self._begin_processing(job)
            return
        if job.status == "Stopping":
            self._finish(job, "Stopped", S.MSG_STOPPED)
            return
        if job.status != "InProgress":
            return
        pool = cognitoidp_backends[job.account][job.region].user_pools.get(job.pool_id)
        if pool is None:
            self._fail_whole_job(job, S.MSG_POOL_GONE)
            return
        total = len(job.lines)
        elapsed = time.monotonic() - job.processing_started
        duration = self.settings.job_seconds
        target = total if duration <= 0 else min(total, math.ceil(total * elapsed / duration))
        end = min(target, job.next_line + batch_limit)
        while job.next_line < end:
            line_no, line = job.lines[job.next_line]
            job.next_line += 1
            self._process_line(job, pool, line_no, line)
            if self._too_many_bad(job):
                self._fail_whole_job(job, S.MSG_TOO_MANY_FAILED)
                return
        if job.next_line >= total and elapsed >= duration:
            self._finish(job, "Succeeded", S.MSG_SUCCEEDED)

    def tick(self, batch_limit: int = 2000) -> bool:
        """Advance every live job a little and flush due log lines.

        Returns True when a job had more rows due than ``batch_limit`` (call again soon).
        """
        behind = False
        with self.lock:
            for job in list(self.jobs.values()):
                self._expire_if_due(job)
                if job.status in S.ACTIVE_STATUSES:
                    before = job.next_line
                    self._advance(job, batch_limit)
                    behind = behind or job.next_line - before >= batch_limit
                if job.logs:
                    self._flush_logs(job)
        return behind

    def _flush_logs(self, job: ImportJob) -> None:
        now = time.monotonic()
        due: list[dict[str, Any]] = []
        while job.logs and job.logs[0][0] <= now:
            _, timestamp, message = job.logs.popleft()
            due.append({"timestamp": timestamp, "message": message})
        if not due:
            return
        stream = self._log_stream(job)  # a client may have deleted it meanwhile
        # Straight to the stream: moto's PutLogEvents drops events outside 14 days back
        # and 2 hours ahead of the wall clock, and these are stamped by the sandbox clock.
        stream.put_log_events(due)
        ingested = self.clock.now()
        stream.last_ingestion_time = self.clock.naive_utc(ingested)
        for event in stream.events[-len(due) :]:
            event.ingestion_time = int(ingested * 1000)


def _stream_name(job: ImportJob) -> str:
    """The log stream Cognito writes a job's results to (facts §5)."""
    return f"{job.job_id}/{job.job_name}"


class JobRunner(threading.Thread):
    """The background thread that makes started jobs progress."""

    def __init__(self, store: JobStore) -> None:
        super().__init__(name="csvimport-sandbox-jobs", daemon=True)
        self.store = store
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            if self.store.tick():
                time.sleep(0.001)  # more rows are due: just let API threads take the lock
            else:
                self._stopped.wait(self.store.settings.tick_seconds)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)
