"""Where a run's chunks stand, and what ``start`` does about each: values, then words.

What ``csvimport status`` shows, read from the journal (``csvimport.run.journal``): a
:class:`ChunkState` per chunk and the :class:`RunStatus` of the run. What ``start`` does
with a chunk is a :class:`PlanStep` (:func:`plan_step`), decided from the same attempt.
:func:`explain_end` says in words how a job ended and what to do next, explaining a job
that failed as a whole from Cognito's (undocumented) completion message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, StrEnum, auto
from typing import Any

from csvimport.run.journal import ACTIVE, Attempt, JobStatus, Step
from csvimport.rundir import RunChunk

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
    if attempt.status == JobStatus.SUCCEEDED:
        if attempt.skipped or attempt.failed:
            return ChunkState.IMPORTED_WITH_PROBLEMS
        return ChunkState.IMPORTED
    if attempt.status == JobStatus.FAILED:
        return ChunkState.FAILED
    if attempt.status == JobStatus.STOPPED:
        return ChunkState.STOPPED
    if attempt.status in ACTIVE:
        return ChunkState.RUNNING
    if attempt.status == JobStatus.EXPIRED:
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
    if attempt.status == JobStatus.SUCCEEDED:
        if not (attempt.skipped or attempt.failed):
            return f"succeeded: {counts}", None
        return (
            f"succeeded with problems: {counts}",
            "`csvimport report RUN_DIR` says which users were skipped or failed and why.",
        )
    if attempt.status == JobStatus.STOPPED:
        return (
            f"stopped: {counts}; a stopped job cannot be restarted",
            "Cognito keeps no per-user state for the users it did not reach: `csvimport "
            "report RUN_DIR` reads the log to tell them apart. `csvimport start RUN_DIR` goes "
            "on with the next chunks; add --resume-stopped to import this chunk again in a new "
            "job (users already imported are then skipped).",
        )
    if attempt.status == JobStatus.EXPIRED:
        return "expired before it was started", "`csvimport start RUN_DIR` makes a new job."
    if attempt.status == JobStatus.FAILED:
        said = attempt.message or "no message"
        for pattern, why, fix in FAILURE_EXPLANATIONS:
            if pattern.search(said):
                return f"failed: {counts}. {why} (Cognito: {said!r})", fix
        return f"failed: {counts} (Cognito: {said!r})", UNKNOWN_FAILURE_HINT
    return f"{attempt.status}: {counts}", None


class PlanStep(Enum):
    """What ``start`` does with a chunk, decided from its current attempt."""

    SKIP_SUCCEEDED = auto()  # its job succeeded: nothing to do
    HALT_FAILED = auto()  # its job failed: left alone without --retry-failed
    HALT_STOPPED = auto()  # its job was stopped: left alone without --resume-stopped
    WAIT_RUNNING = auto()  # its job is running: follow it
    CREATE = auto()  # no job yet: create one, upload and start it
    RETRY_FAILED = auto()  # its job failed: a new job (--retry-failed)
    RESUME_STOPPED = auto()  # its job was stopped: a new job (--resume-stopped)
    REPLACE_EXPIRED = auto()  # its job expired before it was started: set aside, a new job
    START_UPLOADED = auto()  # its job has (or may have) the file: start it
    REPLACE_NOT_UPLOADED = auto()  # its job never got the file: set aside, a new job

    @property
    def halts(self) -> bool:
        """The chunk's job ended badly and is not to be run again unasked."""
        return self in (PlanStep.HALT_FAILED, PlanStep.HALT_STOPPED)


def plan_step(attempt: Attempt | None, *, retry_failed: bool, resume_stopped: bool) -> PlanStep:
    """What ``start`` does with a chunk whose current attempt is ``attempt`` (None: no
    job yet), given whether it was asked to run failed or stopped chunks again."""
    if attempt is None:
        return PlanStep.CREATE
    if attempt.status == JobStatus.SUCCEEDED:
        return PlanStep.SKIP_SUCCEEDED
    if attempt.live:
        return PlanStep.WAIT_RUNNING
    if attempt.status == JobStatus.FAILED:
        return PlanStep.RETRY_FAILED if retry_failed else PlanStep.HALT_FAILED
    if attempt.status == JobStatus.STOPPED:
        return PlanStep.RESUME_STOPPED if resume_stopped else PlanStep.HALT_STOPPED
    if attempt.status == JobStatus.EXPIRED:
        return PlanStep.REPLACE_EXPIRED
    if attempt.step in (Step.UPLOADING, Step.UPLOADED, Step.STARTED):
        return PlanStep.START_UPLOADED
    return PlanStep.REPLACE_NOT_UPLOADED
