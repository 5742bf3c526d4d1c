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
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from csvimport.errors import ConfigError, RefusedError
from csvimport.rundir import RunChunk, RunDir

JOURNAL = "journal.json"
JOURNAL_LOCK = "journal.lock"
JOURNAL_VERSION = 1

# Cognito's job statuses (facts §3).
ACTIVE = frozenset({"Pending", "InProgress", "Stopping"})
TERMINAL = frozenset({"Succeeded", "Failed", "Stopped", "Expired"})


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
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["step"] = Step(values["step"])
        return cls(**values)


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

    @classmethod
    def load(cls, run: RunDir) -> Journal:
        """Read the run's journal, or start an empty one."""
        path = run.path / JOURNAL
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path=path, run_id=run.run_id, user_pool_id=run.user_pool_id)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} is damaged ({exc})",
                hint="The journal is only ever replaced whole, so this file was edited or "
                "the disk failed. Restore it from a backup; without it csvimport cannot tell "
                "which import jobs it already ran.",
            ) from None
        if data.get("run_id") != run.run_id:
            raise RefusedError(
                f"{path} belongs to another build (run {data.get('run_id')}, this build is "
                f"{run.run_id})",
                hint="Do not copy journals between run directories; build into a new "
                "directory and start that.",
            )
        attempts = [Attempt.from_json(a) for a in data.get("attempts", [])]
        return cls(path=path, run_id=run.run_id, user_pool_id=data["user_pool_id"],
                   attempts=attempts)  # fmt: skip

    def save(self) -> None:
        """Replace ``journal.json`` atomically and durably (unless read-only)."""
        if self.read_only:
            return
        data = {
            "version": JOURNAL_VERSION,
            "run_id": self.run_id,
            "user_pool_id": self.user_pool_id,
            "attempts": [a.to_json() for a in self.attempts],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def for_chunk(self, chunk: RunChunk) -> list[Attempt]:
        return [a for a in self.attempts if a.chunk == chunk.file]

    def current(self, chunk: RunChunk) -> Attempt | None:
        """The chunk's latest attempt that was not abandoned."""
        kept = [a for a in self.for_chunk(chunk) if a.step is not Step.ABANDONED]
        return kept[-1] if kept else None

    def by_job_id(self, job_id: str) -> Attempt | None:
        return next((a for a in self.attempts if a.job_id == job_id), None)

    def add(self, chunk: RunChunk, job_name: str) -> Attempt:
        """Record (and save) a new attempt, before its job is created."""
        attempt = Attempt(
            chunk=chunk.file,
            number=len(self.for_chunk(chunk)) + 1,
            job_name=job_name,
            step=Step.CREATING,
        )
        self.attempts.append(attempt)
        self.record(attempt, "create requested")
        return attempt

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
        attempt.imported = int(job.get("ImportedUsers") or 0)
        attempt.skipped = int(job.get("SkippedUsers") or 0)
        attempt.failed = int(job.get("FailedUsers") or 0)
        attempt.created = _iso(job.get("CreationDate")) or attempt.created
        attempt.started = _iso(job.get("StartDate")) or attempt.started
        attempt.completed = _iso(job.get("CompletionDate")) or attempt.completed
        attempt.message = job.get("CompletionMessage") or attempt.message
        status = job.get("Status")
        if status == attempt.status:
            return False
        changes: dict[str, Any] = {"status": status}
        if status not in (None, "Created") and attempt.step is not Step.ABANDONED:
            changes["step"] = Step.STARTED  # Cognito says it started, whatever we last wrote
        self.record(attempt, f"status {status}", **changes)
        return True


class JournalLock:
    """Exclusive right to change a run's journal, for as long as the ``with`` lasts."""

    def __init__(self, run: RunDir, *, command: str) -> None:
        self.path = run.path / JOURNAL_LOCK
        self.command = command
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        f = self.path.open("a+", encoding="utf-8")
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
