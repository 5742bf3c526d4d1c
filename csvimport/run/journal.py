"""The run's journal: every import job csvimport made for a run, and how far each got.

``journal.json`` in the run directory is the memory that makes ``start`` resumable after
a crash, a kill -9 or Ctrl-C. Each chunk has a list of attempts (one import job each). An
attempt is written *before* the call that could create something in Cognito (step
``creating``, with the job name), again right after ``CreateUserImportJob`` answered
(``created``, with the job id), before and after the upload (``uploading``,
``uploaded``), and after ``StartUserImportJob`` (``started``). Job states and counters
read from Cognito are recorded as they are seen.

Every save replaces the file atomically (write, fsync, rename), so a reader sees the old
journal or the new one, never half of one. The presigned URL is a secret and is never
put here; neither is any user's data.

One process at a time may change a run's journal: :class:`JournalLock` holds an
exclusive ``flock`` on ``journal.lock``; the lock dies with its process, kill -9 included.

Cognito is the source of truth, the journal its memory: job names are deterministic
(``csvimport-RUN-chunk-NNNN-ATTEMPT``), so a journal that was lost, or an old copy put
back, is rebuilt from the jobs Cognito lists for the run (:meth:`Journal.adopt`, called
by ``jobs.Importer.refresh``). A journal that is there but damaged is refused, with the
way to rebuild it: move it aside.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from csvimport.errors import ConfigError, RefusedError
from csvimport.files import replaced_private
from csvimport.rundir import RunChunk, RunDir

JOURNAL = "journal.json"
JOURNAL_LOCK = "journal.lock"
JOURNAL_VERSION = 1
JOB_NAME_PREFIX = "csvimport"


class JobStatus(StrEnum):
    """An import job's ``Status`` as Cognito gives it (facts §3); equal to Cognito's text,
    so an attempt's ``status`` (Cognito's text, as last seen) compares with it."""

    CREATED = "Created"  # not started
    PENDING = "Pending"  # started, not yet importing
    IN_PROGRESS = "InProgress"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"
    EXPIRED = "Expired"  # not started in time; its data deleted


ACTIVE = frozenset({JobStatus.PENDING, JobStatus.IN_PROGRESS, JobStatus.STOPPING})
TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED,
                      JobStatus.EXPIRED})  # fmt: skip


class Step(StrEnum):
    """How far csvimport got with one import job."""

    CREATING = "creating"  # CreateUserImportJob about to be called; job id unknown
    CREATED = "created"  # the job exists; nothing uploaded
    UPLOADING = "uploading"  # the PUT began; whether it finished is unknown
    UPLOADED = "uploaded"  # the PUT answered 200
    STARTED = "started"  # StartUserImportJob answered (or Cognito shows the job started)
    ABANDONED = "abandoned"  # this job will never import the chunk; another one will


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value)


@dataclass
class Attempt:
    """One import job for one chunk."""

    chunk: str
    number: int
    job_name: str
    step: Step
    job_id: str | None = None
    status: str | None = None  # Cognito's Status, as last seen
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    message: str | None = None  # Cognito's CompletionMessage
    created: str | None = None
    started: str | None = None
    completed: str | None = None
    abandoned_because: str | None = None
    # Set when the attempt was rebuilt from Cognito's job list rather than recorded as it
    # happened: what was lost with the journal (e.g. whether the upload finished).
    recovered: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """The job may still import users (started and not ended)."""
        return self.status in ACTIVE

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @property
    def processed(self) -> int:
        return self.imported + self.skipped + self.failed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        """An attempt from the journal (checked by :func:`_check_attempt` first)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["step"] = Step(values["step"])
        return cls(**values)

    def apply(self, job: dict[str, Any]) -> None:
        """Copy a ``UserImportJob``'s counters and dates (not its status) into the attempt."""
        self.imported = int(job.get("ImportedUsers") or 0)
        self.skipped = int(job.get("SkippedUsers") or 0)
        self.failed = int(job.get("FailedUsers") or 0)
        self.created = _iso(job.get("CreationDate")) or self.created
        self.started = _iso(job.get("StartDate")) or self.started
        self.completed = _iso(job.get("CompletionDate")) or self.completed
        self.message = job.get("CompletionMessage") or self.message


def job_name(run_id: str, chunk: RunChunk, number: int) -> str:
    """The name of a chunk's ``number``-th import job: how Cognito's job list is read back."""
    return f"{JOB_NAME_PREFIX}-{run_id}-{chunk.name}-{number}"


def parse_job_name(run_id: str, chunks: list[RunChunk], name: str) -> tuple[RunChunk, int] | None:
    """The chunk and attempt number a job name of this run stands for; None for others."""
    match = re.fullmatch(rf"{JOB_NAME_PREFIX}-{re.escape(run_id)}-(.+)-([1-9][0-9]*)", name)
    if match is None:
        return None
    chunk = next((c for c in chunks if c.name == match.group(1)), None)
    return (chunk, int(match.group(2))) if chunk is not None else None


# --- reading a journal back: every shape it may not have -------------------------------
REBUILD_HINT = (
    "Move it aside (mv {path} {path}.damaged) and run `csvimport status {run}`: with no "
    "journal, csvimport rebuilds it from the import jobs Cognito lists for this run (their "
    "names start with csvimport-{run_id}-), so no chunk is imported twice. `csvimport start "
    "{run}` does the same and goes on."
)
_TEXT_FIELDS = ("job_id", "status", "message", "created", "started", "completed",
                "abandoned_because", "recovered")  # fmt: skip
_COUNTER_FIELDS = ("imported", "skipped", "failed")


class _Damage(Exception):
    """What is wrong with a journal's content, in words (becomes a ConfigError)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_attempt(n: int, data: Any, chunk_files: set[str]) -> None:
    """Refuse an attempt the code could not use as it is (``n`` counts from 1)."""
    if not isinstance(data, dict):
        raise _Damage(f"attempt {n} is not a JSON object")
    missing = [k for k in ("chunk", "number", "job_name", "step") if k not in data]
    if missing:
        raise _Damage(f"attempt {n} lacks {', '.join(missing)}")
    for name in ("chunk", "job_name"):
        if not isinstance(data[name], str):
            raise _Damage(f"attempt {n}: {name} must be text")
    if data["chunk"] not in chunk_files:
        raise _Damage(f"attempt {n}: {data['chunk']} is not a chunk of this run")
    if not _is_int(data["number"]) or data["number"] < 1:
        raise _Damage(f"attempt {n}: number must be a whole number of at least 1")
    if data["step"] not in {s.value for s in Step}:
        raise _Damage(f"attempt {n}: step {data['step']!r} is not one of "
                      f"{', '.join(s.value for s in Step)}")  # fmt: skip
    for name in _TEXT_FIELDS:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise _Damage(f"attempt {n}: {name} must be text or null, not {data[name]!r}")
    for name in _COUNTER_FIELDS:
        if name in data and not (_is_int(data[name]) and data[name] >= 0):
            raise _Damage(f"attempt {n}: {name} must be a whole number, not {data[name]!r}")
    history = data.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(h, dict) and all(isinstance(v, str) for v in h.values()) for h in history
    ):
        raise _Damage(f"attempt {n}: history must be a list of events")


def _check(data: Any, run: RunDir) -> None:
    """Refuse a journal whose shape is not the one :meth:`Journal.save` writes."""
    if not isinstance(data, dict):
        kind = "array" if isinstance(data, list) else "string" if isinstance(data, str) else "value"
        raise _Damage(f"it holds a JSON {kind}, not the journal's object")
    missing = [k for k in ("version", "run_id", "user_pool_id", "attempts") if k not in data]
    if missing:
        raise _Damage(f"it lacks {', '.join(missing)}")
    if not _is_int(data["version"]) or data["version"] != JOURNAL_VERSION:
        raise _Damage(f"version {data['version']!r}, not {JOURNAL_VERSION} (written by another "
                      "csvimport version?)")  # fmt: skip
    if not isinstance(data["run_id"], str):
        raise _Damage("run_id must be text")
    if data["user_pool_id"] != run.user_pool_id:
        raise _Damage(f"it is for user pool {data['user_pool_id']}, this run's is "
                      f"{run.user_pool_id}")  # fmt: skip
    if not isinstance(data["attempts"], list):
        raise _Damage("attempts must be a list")
    chunk_files = {c.file for c in run.chunks}
    for n, attempt in enumerate(data["attempts"], start=1):
        _check_attempt(n, attempt, chunk_files)
    if not isinstance(data.get("rebuilt", []), list):
        raise _Damage("rebuilt must be a list")


@dataclass
class Journal:
    """The attempts of a run, loaded from and saved to ``journal.json``."""

    path: Path
    run_id: str
    user_pool_id: str
    attempts: list[Attempt] = field(default_factory=list)
    # Read-only: changes stay in memory (a dry run, or a status while another process
    # holds the lock).
    read_only: bool = False
    # No journal.json when loaded: a run never started, or a journal lost. Either way
    # Cognito's job list says which (``jobs.Importer.refresh``).
    missing: bool = False
    # Each time jobs were taken into the journal from Cognito's list: when, why, how many.
    rebuilt: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, run: RunDir) -> Journal:
        """Read the run's journal, or start an empty one (``missing``) when there is none.

        A journal that cannot be used as it is (not JSON, another shape, another build's)
        is refused: nothing in it can be trusted to say which jobs already ran.
        """
        path = run.path / JOURNAL
        hint = REBUILD_HINT.format(path=path, run=run.path, run_id=run.run_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path=path, run_id=run.run_id, user_pool_id=run.user_pool_id,
                       missing=True)  # fmt: skip
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", hint=hint) from None
        try:
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise _Damage("it is not JSON (the journal is only ever replaced whole, "
                              "so it was edited, or the disk failed)") from None  # fmt: skip
            _check(data, run)
        except _Damage as damage:
            raise ConfigError(f"{path} is damaged: {damage}", hint=hint) from None
        if data["run_id"] != run.run_id:
            raise RefusedError(
                f"{path} belongs to another build (run {data['run_id']}, this build is "
                f"{run.run_id})",
                hint="Journals are not copied between run directories. " + hint,
            )
        attempts = [Attempt.from_json(a) for a in data["attempts"]]
        return cls(path=path, run_id=run.run_id, user_pool_id=data["user_pool_id"],
                   attempts=attempts, rebuilt=data.get("rebuilt", []))  # fmt: skip

    def save(self) -> None:
        """Replace ``journal.json`` atomically and durably (unless read-only)."""
        if self.read_only:
            return
        data: dict[str, Any] = {
            "version": JOURNAL_VERSION,
            "run_id": self.run_id,
            "user_pool_id": self.user_pool_id,
            "attempts": [a.to_json() for a in self.attempts],
        }
        if self.rebuilt:
            data["rebuilt"] = self.rebuilt
        with replaced_private(self.path) as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        self.missing = False

    def for_chunk(self, chunk: RunChunk) -> list[Attempt]:
        return [a for a in self.attempts if a.chunk == chunk.file]

    def current(self, chunk: RunChunk) -> Attempt | None:
        """The chunk's latest attempt that was not abandoned."""
        kept = [a for a in self.for_chunk(chunk) if a.step is not Step.ABANDONED]
        return kept[-1] if kept else None

    def by_job_id(self, job_id: str) -> Attempt | None:
        return next((a for a in self.attempts if a.job_id == job_id), None)

    def next_number(self, chunk: RunChunk) -> int:
        """The number of the chunk's next attempt: never one a job of the chunk has."""
        return max((a.number for a in self.for_chunk(chunk)), default=0) + 1

    def add(self, chunk: RunChunk, job_name: str) -> Attempt:
        """Record (and save) a new attempt, before its job is created."""
        attempt = Attempt(
            chunk=chunk.file,
            number=self.next_number(chunk),
            job_name=job_name,
            step=Step.CREATING,
        )
        self.attempts.append(attempt)
        self.record(attempt, "create requested")
        return attempt

    def adopt(
        self, chunks: list[RunChunk], jobs: list[dict[str, Any]], *, why: str
    ) -> list[Attempt]:
        """Take the run's jobs that the journal does not know into it, from Cognito's list.

        A job is unknown when neither its id nor its name is in the journal (a known name
        with another id is a retried create's stray, the caller's business). Each becomes
        an attempt numbered from its name, with the status, counters and dates the list
        gives; ``recovered`` says what the list cannot: for a job not started, whether its
        file was uploaded (its step is then ``uploading``: ``start`` tries to start it and
        replaces it if Cognito says no file arrived). A job stopped before it ever started
        was set aside by csvimport, and is recorded as abandoned.

        Of several unknown jobs with one name never started, only the newest is taken
        in; the others stay strays (``jobs.Importer.refresh`` stops them). Saves once, so
        a crash leaves the journal as it was or with every job taken in. Returns the
        attempts taken in.
        """
        known_ids = {a.job_id for a in self.attempts if a.job_id}
        known_names = {a.job_name for a in self.attempts}
        groups: dict[str, list[dict[str, Any]]] = {}
        for job in sorted(jobs, key=lambda j: str(j.get("CreationDate") or "")):
            name = str(job.get("JobName", ""))
            if job.get("JobId") in known_ids or name in known_names:
                continue
            if parse_job_name(self.run_id, chunks, name) is not None:
                groups.setdefault(name, []).append(job)
        now = _now()
        adopted: list[Attempt] = []
        for name, group in groups.items():
            parsed = parse_job_name(self.run_id, chunks, name)
            assert parsed is not None
            ran = [j for j in group if j.get("Status") not in (None, JobStatus.CREATED)]
            waiting = [j for j in group if j not in ran]
            keep = ran or waiting[-1:]
            adopted += [_rebuilt_attempt(j, *parsed, why=why, at=now) for j in keep]
        if adopted:
            order = {c.file: i for i, c in enumerate(chunks)}
            self.attempts.extend(adopted)
            self.attempts.sort(key=lambda a: (order.get(a.chunk, len(order)), a.number))
            self.rebuilt.append({"at": now, "why": why, "jobs": len(adopted),
                                 "job_ids": [a.job_id for a in adopted]})  # fmt: skip
            self.save()
        return adopted

    def record(self, attempt: Attempt, event: str, **changes: Any) -> None:
        """Apply ``changes`` to the attempt, note ``event`` in its history, and save."""
        for name, value in changes.items():
            setattr(attempt, name, value)
        attempt.history.append({"at": _now(), "event": event})
        self.save()

    def observe(self, attempt: Attempt, job: dict[str, Any]) -> bool:
        """Copy a ``UserImportJob`` (Describe/Create/Start answer) into the attempt.

        Saves and returns True when the status changed; counters alone are copied
        without a save (they change often while a job runs, and Cognito keeps them).
        """
        attempt.apply(job)
        status = job.get("Status")
        if status == attempt.status:
            return False
        changes: dict[str, Any] = {"status": status}
        if status not in (None, JobStatus.CREATED) and attempt.step is not Step.ABANDONED:
            changes["step"] = Step.STARTED  # Cognito says it started, whatever we last wrote
        self.record(attempt, f"status {status}", **changes)
        return True


def _rebuilt_attempt(
    job: dict[str, Any], chunk: RunChunk, number: int, *, why: str, at: str
) -> Attempt:
    """An attempt for a job known only from Cognito's job list (see :meth:`Journal.adopt`)."""
    status = job.get("Status")
    attempt = Attempt(chunk=chunk.file, number=number, job_name=str(job["JobName"]),
                      step=Step.STARTED, job_id=str(job["JobId"]), status=status)  # fmt: skip
    attempt.apply(job)
    known = f"rebuilt from Cognito's job list ({why})"
    if status in (None, JobStatus.CREATED):
        attempt.step = Step.UPLOADING  # the step that means "upload unknown"
        attempt.recovered = (f"{known}; not started, upload unknown: start tries to start it "
                             "and replaces it if Cognito says no file arrived")  # fmt: skip
    elif status == JobStatus.EXPIRED:
        attempt.step = Step.CREATED  # never started, and never will be: start replaces it
        attempt.recovered = f"{known}; expired before it was started"
    elif status == JobStatus.STOPPED and attempt.started is None and attempt.processed == 0:
        # Stopped without ever starting: csvimport sets such jobs aside (never uploaded,
        # or a retried create's duplicate); users only ever come from started jobs.
        attempt.step = Step.ABANDONED
        attempt.abandoned_because = "stopped before it was started"
        attempt.recovered = known
    else:
        # Cognito shows it started (running, or ended after running), so its file was
        # uploaded; only the times of the steps before the start are lost.
        attempt.recovered = f"{known}; started, so uploaded; the earlier steps' times are lost"
    attempt.history.append({"at": at, "event": known})
    return attempt


class JournalLock:
    """Exclusive right to change a run's journal, for as long as the ``with`` lasts."""

    def __init__(self, run: RunDir, *, command: str) -> None:
        self.path = run.path / JOURNAL_LOCK
        self.command = command
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        try:
            f = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot open the run's lock file {self.path}: {exc.strerror or exc}",
                hint=f"It holds no data, only who works on the run: remove it (rm -r "
                f"{self.path}) and run the command again; csvimport makes a new one.",
            ) from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {self.command}\n")
        f.flush()
        self._file = f
        return True

    def holder(self) -> str:
        """Who holds the lock, as written by them (pid and command), for messages."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def refusal(self) -> RefusedError:
        """The error for a command that needs the lock another process holds."""
        pid, _, command = self.holder().partition(" ")
        return RefusedError(
            f"another csvimport is working on {self.path.parent} (pid {pid}: "
            f"{command or 'unknown command'})",
            hint="Wait for it to finish, or follow it with `csvimport status RUN_DIR`. "
            "If that process is gone, the lock is gone with it: run the command again.",
        )

    def __enter__(self) -> JournalLock:
        if not self.try_acquire():
            raise self.refusal()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
