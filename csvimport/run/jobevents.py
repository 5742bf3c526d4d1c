"""What the import workflow tells its caller: each event a value, worded by ``describe()``.

``csvimport.run.jobs.Importer`` reports what it does and sees through an ``on_event``
callback, never by printing. Each event is a small frozen dataclass carrying its data
(the chunk, the attempt, the plan step, ...): a caller decides on an event's type and
fields, and calls ``describe()`` only to show it to a person; ``kind`` says how to show
it (a line, a warning, a progress bar, a job's end).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from csvimport.run.jobstatus import PlanStep, explain_end
from csvimport.run.journal import JOURNAL, Attempt
from csvimport.rundir import RunChunk


class EventKind(StrEnum):
    NOTE = "note"  # something done or decided, worth a line
    WARNING = "warning"
    PROGRESS = "progress"  # a running job's counters
    ENDED = "ended"  # a job reached a terminal status


class Event(ABC):
    """Something the importer did or saw."""

    kind: ClassVar[EventKind] = EventKind.NOTE

    @abstractmethod
    def describe(self) -> str:
        """The event in words, for a person (``RUN_DIR`` stands for the run's path)."""


EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class ChunkEvent(Event):
    """Something that happened to a chunk's import job (``attempt``)."""

    chunk: RunChunk
    attempt: Attempt


# What a dry run says ``start`` would do with a chunk, for each step it may take.
WOULD = {
    PlanStep.CREATE: "create a job, upload and start it",
    PlanStep.WAIT_RUNNING: "wait for the running job",
    PlanStep.RETRY_FAILED: "retry in a new job",
    PlanStep.RESUME_STOPPED: "resume in a new job",
    PlanStep.REPLACE_EXPIRED: "replace the expired job",
    PlanStep.START_UPLOADED: "start the uploaded job",
    PlanStep.REPLACE_NOT_UPLOADED: "replace the job that was never uploaded",
}
# The option that runs a chunk left alone again.
RUN_AGAIN_WITH = {PlanStep.HALT_FAILED: "--retry-failed", PlanStep.HALT_STOPPED: "--resume-stopped"}


@dataclass(frozen=True)
class Planned(Event):
    """A dry run: what ``start`` would do with the chunk."""

    chunk: RunChunk
    step: PlanStep

    def describe(self) -> str:
        return f"{self.chunk.file} ({self.chunk.rows:,} users): would {WOULD[self.step]}"


@dataclass(frozen=True)
class LeftAlone(ChunkEvent):
    """A chunk whose job failed or was stopped, not run again unasked (``step`` says which)."""

    step: PlanStep

    def describe(self) -> str:
        what, _ = explain_end(self.attempt)
        return (f"{self.chunk.file}: job {self.attempt.job_id} {what}; not run again "
                f"without {RUN_AGAIN_WITH[self.step]}")  # fmt: skip


@dataclass(frozen=True)
class AlreadyRunning(ChunkEvent):
    """The chunk's job is running already (started before): ``start`` follows it."""

    def describe(self) -> str:
        return f"{self.chunk.file}: job {self.attempt.job_id} is already running"


@dataclass(frozen=True)
class JobCreated(ChunkEvent):
    """A job was created for the chunk; its file is being uploaded."""

    def describe(self) -> str:
        return (f"{self.chunk.file}: created job {self.attempt.job_id}, uploading "
                f"{self.chunk.bytes:,} bytes")  # fmt: skip


@dataclass(frozen=True)
class JobStarted(ChunkEvent):
    """The chunk's job was started."""

    def describe(self) -> str:
        return f"{self.chunk.file}: started job {self.attempt.job_id} ({self.chunk.rows:,} users)"


@dataclass(frozen=True)
class SetAside(Event):
    """A job that will never import its chunk was set aside; ``why`` is the journal's
    record of it."""

    attempt: Attempt
    why: str

    def describe(self) -> str:
        return f"{self.attempt.chunk}: job {self.attempt.job_id} set aside: {self.why}"


@dataclass(frozen=True)
class StartBlocked:
    """Cognito will not start a job yet: another import job of the account is active."""

    other: dict[str, Any] | None  # that job (UserImportJob), when found and not this run's
    said: str  # Cognito's answer to the start

    def describe(self) -> str:
        if self.other is None:
            return f"Cognito will not start the job yet: {self.said}"
        other = self.other
        return (f"another import job is active in this AWS account: {other['JobId']} "
                f"({other.get('JobName', '')}) in pool {other['UserPoolId']}, "
                f"{other['Status']}")  # fmt: skip


@dataclass(frozen=True)
class WaitingForOtherJob(Event):
    """``--wait-for-others``: the start was blocked; it is tried again after ``seconds``."""

    blocked: StartBlocked
    seconds: float

    def describe(self) -> str:
        return f"{self.blocked.describe()}; waiting {self.seconds:.0f} s (--wait-for-others)"


@dataclass(frozen=True)
class JobProgress(ChunkEvent):
    """A running job's status and counters as just read (copied: the attempt moves on)."""

    kind: ClassVar[EventKind] = EventKind.PROGRESS
    status: str | None
    processed: int

    def describe(self) -> str:
        return self.status or ""


@dataclass(frozen=True)
class JobEnded(ChunkEvent):
    """The chunk's job reached a terminal status (``explain_end`` has the next step)."""

    kind: ClassVar[EventKind] = EventKind.ENDED

    def describe(self) -> str:
        what, _ = explain_end(self.attempt)
        return f"{self.chunk.file}: job {self.attempt.job_id} {what}"


@dataclass(frozen=True)
class JobsTakenIn(Event):
    """Jobs of the run that Cognito lists and the journal lacked were taken into it."""

    kind: ClassVar[EventKind] = EventKind.WARNING
    run_id: str
    job_ids: tuple[str, ...]
    journal_missing: bool  # no journal at all (lost), rather than an old copy
    in_memory: bool  # a read-only look: nothing was written

    def describe(self) -> str:
        ids = ", ".join(self.job_ids)
        if self.journal_missing:
            text = (f"{JOURNAL} was missing: rebuilt it from the {len(self.job_ids)} import "
                    f"jobs Cognito lists for run {self.run_id} ({ids})")  # fmt: skip
        else:
            text = (f"{len(self.job_ids)} import job(s) of run {self.run_id} were not in "
                    f"{JOURNAL} (an old copy put back?); took them in from Cognito's job "
                    f"list: {ids}")  # fmt: skip
        if self.in_memory:
            text += " (in memory only: this look changes nothing in the run directory)"
        return text


@dataclass(frozen=True)
class StrayStopped(Event):
    """A job of the run the journal does not own (a retried create's) was stopped."""

    kind: ClassVar[EventKind] = EventKind.WARNING
    job_id: str
    job_name: str

    def describe(self) -> str:
        return (f"stopped stray job {self.job_id} ({self.job_name}): a retried create made it "
                "and nothing uploaded to it")  # fmt: skip


@dataclass(frozen=True)
class MigrationSetupWarning(Event):
    """``start``'s migration preflight found what may keep the trigger from working for
    some users or apps (``csvimport.run.migrationcheck``: e.g. an SRP-only app client)."""

    kind: ClassVar[EventKind] = EventKind.WARNING
    message: str
    hint: str = ""

    def describe(self) -> str:
        return self.message + (f"\n  {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class Note(Event):
    """A line another stage words itself (the reconciler's notes), shown as it is."""

    text: str

    def describe(self) -> str:
        return self.text
