"""Read an import job's CloudWatch log: one ``[OUTCOME] Line Number N - message`` per user.

Cognito writes the per-user outcome of an import job only to CloudWatch Logs (facts §5):
log group ``/aws/cognito/userpools/<pool id>/<pool name>``, stream ``<job id>/<job
name>``, no user data. This module pages through the stream (``FilterLogEvents``: an
empty page may still carry a token; the stream ends when no token comes back), waits a
bounded time for lines that lag behind the job, keeps the raw events in the run directory
(the log group's retention may be short), and parses each message with a prefix pattern,
treating the rest of the message as free text. ``classify`` names what a message's
reason means and what to do (``LOG_REASONS``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions

from csvimport.errors import ConfigError, ServiceError
from csvimport.files import replaced_private

LOG_LINE = re.compile(r"^\[(SUCCEEDED|SKIPPED|FAILED)\] Line Number (\d+) - (.*)$", re.DOTALL)
# UNVERIFIED (facts §5): whether "Line Number 1" is the first user (AWS's own mapping file
# numbers the first data row 1) or the header. Detected from a complete log where it can
# be (see ``detect_line_base``); this is what is assumed otherwise.
FIRST_LINE_NUMBER = 1
LOGS_DIR = "logs"  # raw events, one JSON file per job, in the run directory
# An endless run of empty pages that keep returning tokens is a fault, not a log.
MAX_EMPTY_PAGES = 1000


def log_group(pool_id: str, pool_name: str) -> str:
    return f"/aws/cognito/userpools/{pool_id}/{pool_name}"


def log_stream(job_id: str, job_name: str) -> str:
    return f"{job_id}/{job_name}"


@dataclass(frozen=True)
class LogLine:
    number: int  # as logged (see FIRST_LINE_NUMBER)
    outcome: str  # SUCCEEDED | SKIPPED | FAILED
    message: str


@dataclass
class JobLog:
    """The parsed log of one job."""

    job_id: str
    lines: dict[int, LogLine] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)  # messages the pattern did not match
    repeated: int = 0  # lines logged more than once (the last one counts)
    events: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.lines.values() if line.outcome == outcome)

    @classmethod
    def parse(cls, job_id: str, messages: Iterable[str]) -> JobLog:
        log = cls(job_id)
        for message in messages:
            log.events += 1
            match = LOG_LINE.match(message.strip())
            if match is None:
                log.unparsed.append(message)
                continue
            number = int(match.group(2))
            if number in log.lines:
                log.repeated += 1
            log.lines[number] = LogLine(number, match.group(1), match.group(3).strip())
        return log


def detect_line_base(numbers: Iterable[int], rows: int) -> int | None:
    """1 or 2 when the logged line numbers are exactly 1..rows or 2..rows+1, else None."""
    seen = set(numbers)
    if rows == 0 or len(seen) != rows:
        return None
    if min(seen) == 1 and max(seen) == rows:
        return 1
    if min(seen) == 2 and max(seen) == rows + 1:
        return 2
    return None


def fetch_messages(logs: Any, group: str, stream: str) -> Iterator[dict[str, Any]]:
    """Every event of one log stream, oldest first, as ``{"timestamp", "message"}``."""
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNames": [stream]}
    empty = 0
    while True:
        try:
            page = logs.filter_log_events(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return  # no log group (yet): the job has written nothing
            raise
        events = page.get("events", [])
        for event in events:
            yield {"timestamp": event.get("timestamp"), "message": event.get("message", "")}
        token = page.get("nextToken")
        if not token:
            return
        empty = 0 if events else empty + 1
        if empty > MAX_EMPTY_PAGES:
            raise ServiceError(
                f"CloudWatch Logs kept answering empty pages for {stream} in {group}",
                hint="Run `csvimport report RUN_DIR` again later.",
            )
        kwargs["nextToken"] = token


def raw_path(run_dir: Path, job_id: str) -> Path:
    return run_dir / LOGS_DIR / f"{job_id}.jsonl"


def save_raw(path: Path, events: list[dict[str, Any]]) -> None:
    """Keep the raw events (they hold line numbers, no user data), atomically."""
    path.parent.mkdir(exist_ok=True)
    with replaced_private(path) as f:
        for event in events:
            f.write(json.dumps(event) + "\n")


def load_raw(path: Path) -> list[dict[str, Any]] | None:
    """The events ``save_raw`` kept, or None when there are none; damage is a ConfigError
    naming the line (deleting the file makes the report read the log again)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        hint = f"Delete {path} and run `csvimport report` again."
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=hint) from None
    events = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8
            event = None
        if not (isinstance(event, dict) and isinstance(event.get("message"), str)):
            raise ConfigError(
                f"{path} line {number} is damaged: it is not a CloudWatch log event",
                hint=f"Delete {path} and run `csvimport report` again: the job's log is read "
                "again from CloudWatch Logs (as long as the log group's retention keeps it).",
            )
        events.append(event)
    return events


@dataclass(frozen=True)
class LogWait:
    """How long to wait for log lines that lag behind a job's end."""

    seconds: float = 120.0
    first_pause: float = 1.0
    max_pause: float = 10.0


def read_job_log(
    logs: Any,
    *,
    run_dir: Path,
    group: str,
    stream: str,
    job_id: str,
    expected: int,
    wait: LogWait | None = None,
    on_wait: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobLog:
    """The job's parsed log, from the run directory if it was read completely before,
    else from CloudWatch, waiting up to ``wait.seconds`` until it has ``expected`` lines.

    ``logs`` should be paced (a ``csvimport.retry.PacedClient``) so that reading many jobs
    stays under CloudWatch's quota. ``on_wait(found, expected)`` is called before each
    pause. The raw events are saved
    in ``logs/<job id>.jsonl`` each time they are read.
    """
    wait = wait or LogWait()
    path = raw_path(run_dir, job_id)
    stored = load_raw(path)
    if stored is not None:
        log = JobLog.parse(job_id, (e["message"] for e in stored))
        if len(log.lines) >= expected:
            return log
    deadline = time.monotonic() + wait.seconds
    pause = wait.first_pause
    while True:
        events = list(fetch_messages(logs, group, stream))
        save_raw(path, events)
        log = JobLog.parse(job_id, (e["message"] for e in events))
        if len(log.lines) >= expected or time.monotonic() + pause > deadline:
            return log
        if on_wait is not None:
            on_wait(len(log.lines), expected)
        sleep(pause)
        pause = min(pause * 2, wait.max_pause)


# --- what the reasons in a job's log mean ---------------------------------------------
@dataclass(frozen=True)
class KnownReason:
    """A reason Cognito gives in the log, recognised by a loose pattern (its wording is
    not documented, facts §5), with what it means and what to do."""

    pattern: re.Pattern[str]
    rule: str
    explanation: str
    fix: str


LOG_REASONS = [
    KnownReason(
        re.compile(r"already exists", re.I), "exists",
        "A user with this username is already in the pool, so Cognito left the existing "
        "user untouched.",
        "Nothing to do if it is the same person (check existing.csv from `build "
        "--check-existing`); otherwise give one of them another username and import again.",
    ),
    KnownReason(
        re.compile(r"auto.?verified", re.I), "auto_verified",
        "The user has no verified email or phone among the pool's auto-verified "
        "attributes; Cognito imports only users it can reach.",
        "Mark the email (email_verified) or phone (phone_number_verified) as verified "
        "where the legacy system confirmed it, then build and import these users again.",
    ),
    KnownReason(
        re.compile(r"account with the given|alias", re.I), "alias_exists",
        "Another user in the pool already uses this email or phone number, which must be "
        "unique in this pool.",
        "Merge or correct the two accounts, then import this user again.",
    ),
    KnownReason(
        re.compile(r"password.?hash|hash", re.I), "bad_hash",
        "The password hash is not one Cognito can import (format or cost out of bounds).",
        "Import the user without a hash (`build --password-hashes off`); they will reset "
        "their password.",
    ),
    KnownReason(
        re.compile(r"internal", re.I), "internal",
        "Cognito had an internal error with this user.",
        "Import the user again: build from the retry source, or `csvimport start RUN_DIR "
        "--retry-failed`.",
    ),
    KnownReason(
        re.compile(r"schema|format|invalid|not valid|does not match|is not|missing|too long|"
                   r"longer than|constraint|required", re.I), "schema",
        "A value does not fit the pool's attribute rules (format, type, length or a "
        "required attribute).",
        "Fix the value in the legacy data or the mapping and build again; report this to "
        "csvimport's maintainers too, since the build should have caught it.",
    ),
]  # fmt: skip


def classify(message: str) -> KnownReason | None:
    return next((r for r in LOG_REASONS if r.pattern.search(message)), None)
