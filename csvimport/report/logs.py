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
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

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


OUTCOMES = ("SUCCEEDED", "SKIPPED", "FAILED")  # codes 1, 2, 3; 0 is "no line"
_CODE = {name: code for code, name in enumerate(OUTCOMES, start=1)}
# Line numbers up to this are kept in flat arrays (a byte and an int a line); a log
# naming a larger one (a damaged or foreign log) keeps those few in a dict instead of
# growing the arrays to match.
DENSE_LINES = 1 << 24


class JobLog:
    """The parsed log of one job, compact: for each line number the outcome's code and the
    message's index in ``messages``, which holds each distinct message once (an import's
    messages repeat: 500,000 lines hold a handful). A 500,000-line log takes a few MB."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.codes = bytearray()  # index: line number as logged; 0 = no line
        self.message_ids = array("I")
        self.sparse: dict[int, tuple[int, int]] = {}  # numbers beyond DENSE_LINES
        self.messages: list[str] = []
        self._message_index: dict[str, int] = {}
        self.unparsed: list[str] = []  # a few messages the pattern did not match
        self.unparsed_count = 0
        self.repeated = 0  # lines logged more than once (the last one counts)
        self.events = 0
        self.size = 0  # distinct line numbers

    def add(self, message: str) -> None:
        """Parse one event's message and keep its line."""
        self.events += 1
        match = LOG_LINE.match(message.strip())
        if match is None:
            self.unparsed_count += 1
            if len(self.unparsed) < UNPARSED_KEPT:
                self.unparsed.append(message)
            return
        number = int(match.group(2))
        text = match.group(3).strip()
        index = self._message_index.get(text)
        if index is None:
            index = self._message_index[text] = len(self.messages)
            self.messages.append(text)
        code = _CODE[match.group(1)]
        if number >= DENSE_LINES:
            if number in self.sparse:
                self.repeated += 1
            else:
                self.size += 1
            self.sparse[number] = (code, index)
            return
        if number >= len(self.codes):
            grow = max(number + 1, 2 * len(self.codes)) - len(self.codes)
            self.codes.extend(bytes(grow))
            self.message_ids.extend(array("I", bytes(4 * grow)))
        if self.codes[number]:
            self.repeated += 1
        else:
            self.size += 1
        self.codes[number] = code
        self.message_ids[number] = index

    def numbers(self) -> Iterator[int]:
        """The logged line numbers, in increasing order."""
        yield from (int(n) for n in np.flatnonzero(np.frombuffer(self.codes, dtype=np.uint8)))
        yield from sorted(self.sparse)

    def get(self, number: int) -> tuple[str, str] | None:
        """(outcome, message) of a logged line number, or None."""
        if 0 <= number < len(self.codes):
            code = self.codes[number]
            if not code:
                return None
            return OUTCOMES[code - 1], self.messages[self.message_ids[number]]
        found = self.sparse.get(number)
        return None if found is None else (OUTCOMES[found[0] - 1], self.messages[found[1]])

    @property
    def lines(self) -> dict[int, LogLine]:
        """Every line as a LogLine (for small logs and tests: this builds them all)."""
        found = {}
        for number in self.numbers():
            line = self.get(number)
            assert line is not None
            found[number] = LogLine(number, *line)
        return found

    def count(self, outcome: str) -> int:
        code = _CODE[outcome]
        return self.codes.count(code) + sum(1 for c, _ in self.sparse.values() if c == code)

    @classmethod
    def parse(cls, job_id: str, messages: Iterable[str]) -> JobLog:
        log = cls(job_id)
        for message in messages:
            log.add(message)
        return log


UNPARSED_KEPT = 5  # examples of messages the pattern did not match


def detect_line_base(numbers: Iterable[int] | JobLog, rows: int) -> int | None:
    """1 or 2 when the logged line numbers are exactly 1..rows or 2..rows+1, else None."""
    if isinstance(numbers, JobLog):
        log = numbers
        if rows == 0 or log.size != rows or log.sparse:
            return None
        present = np.flatnonzero(np.frombuffer(log.codes, dtype=np.uint8))
        low, high, count = int(present[0]), int(present[-1]), log.size
    else:
        seen = set(numbers)
        if rows == 0 or len(seen) != rows:
            return None
        low, high, count = min(seen), max(seen), len(seen)
    if count != rows:
        return None
    if low == 1 and high == rows:
        return 1
    if low == 2 and high == rows + 1:
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


def stored_log(path: Path, job_id: str) -> JobLog | None:
    """The log kept in ``path`` by an earlier read, or None when there is none; damage is
    a ConfigError naming the line (deleting the file makes the report read the log again).

    A log as csvimport saved it and Cognito wrote it is read in columns with Arrow; any
    other (damage, messages the pattern does not match, odd whitespace) event by event.
    """
    try:
        columnar = _columnar_log(path, job_id)
    except (pa.ArrowException, OSError, ValueError, KeyError):
        columnar = None
    return columnar if columnar is not None else _stored_log_by_event(path, job_id)


# Python's str.strip() and Arrow's ASCII trim agree on ASCII text without these.
_STRIP_DISAGREES = range(0x1C, 0x20)


def _plain_ascii(messages: pa.Array) -> bool:
    """Tell whether the messages (a string array, no nulls) are ASCII without the
    characters that str.strip() and Arrow's trim disagree on: one scan of their bytes."""
    offsets = np.frombuffer(messages.buffers()[1], dtype=np.int32)
    start, end = offsets[messages.offset], offsets[messages.offset + len(messages)]
    data = messages.buffers()[2]
    if data is None or start == end:
        return True
    text = np.frombuffer(data, dtype=np.uint8)[start:end]
    low, size = _STRIP_DISAGREES.start, len(_STRIP_DISAGREES)
    # a byte of 0x80 or more is not ASCII; uint8 wraps, so (b - low) < size is b in range
    return int(text.max()) < 0x80 and not bool(np.any((text - np.uint8(low)) < size))


# Bytes of a saved log Arrow parses at a time (about 5,000 events). Its streaming reader
# reads up to 32 blocks ahead in threads of its own (csvimport.pieces), which holds about
# 20 MiB at this size (40 MiB at 1 MiB) and is faster than parsing the pieces in turn.
LOG_BLOCK = 1 << 19


def _columnar_log(path: Path, job_id: str) -> JobLog | None:
    if not path.exists():
        return None
    outcomes = _ByNumber()
    messages: dict[str, int] = {}
    # a block at a time: a 500,000-event log is never whole
    reader = pa_json.open_json(path, read_options=pa_json.ReadOptions(block_size=LOG_BLOCK))
    for batch in reader:
        if "message" not in batch.schema.names:
            return None
        block = batch.column("message")
        if block.type != pa.string() or block.null_count:
            return None
        if not _plain_ascii(block):
            return None
        parts = _split_messages(pc.ascii_trim_whitespace(block))
        if parts is None:
            return None  # a message the pattern does not match: the event-by-event path
        codes, numbers, text = parts
        texts = pc.ascii_trim_whitespace(text).dictionary_encode()
        known = [messages.setdefault(m, len(messages)) for m in texts.dictionary.to_pylist()]
        remap = np.array(known or [0], dtype=np.uint32)
        if not outcomes.add(pc.cast(numbers, pa.int64()).to_numpy(), codes,
                            remap[texts.indices.to_numpy()]):  # fmt: skip
            return None
    if not outcomes.events:
        return None
    dense_codes, dense_ids, size = outcomes.finish()
    log = JobLog(job_id)
    log.codes = bytearray(dense_codes.tobytes())
    log.message_ids = array("I", dense_ids.tobytes())
    log.messages = list(messages)
    log._message_index = messages
    log.events = outcomes.events
    log.size = size
    log.repeated = outcomes.events - size
    return log


class _ByNumber:
    """A log's outcome codes and message ids by line number, block by block, the last line
    logged for a number counting (as when read event by event).

    While the numbers keep rising (Cognito logs a file's lines in order) each block goes
    straight into the arrays by number; after a block that does not, the blocks are kept
    and sorted out at the end. A 500,000-line log so holds its two arrays (5 bytes a
    line), not its numbers, codes and ids in parts, joined, and ordered (about 25 MB).
    """

    def __init__(self) -> None:
        self.codes = np.zeros(0, dtype=np.uint8)
        self.ids = np.zeros(0, dtype=np.uint32)
        self.top = -1  # the highest number put in the arrays
        self.events = 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def add(self, numbers: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> bool:
        """Take a block's lines; False when a number is too high to be held by number."""
        if not len(numbers):
            return True
        if int(numbers.max()) >= DENSE_LINES:
            return False
        self.events += len(numbers)
        rising = int(numbers[0]) > self.top and bool(np.all(numbers[1:] > numbers[:-1]))
        if self.parts is None and rising:
            self.top = int(numbers[-1])
            if self.top >= len(self.codes):  # grown, zeros after what is held
                more = max(self.top + 1, 2 * len(self.codes)) - len(self.codes)
                self.codes, self.ids = (np.concatenate([held, np.zeros(more, held.dtype)])
                                        for held in (self.codes, self.ids))  # fmt: skip
            self.codes[numbers] = codes
            self.ids[numbers] = ids
            return True
        if self.parts is None:  # what is held so far, each number once
            held = np.flatnonzero(self.codes[: self.top + 1])
            self.parts = [(held, self.codes[held], self.ids[held])]
        self.parts.append((numbers, codes, ids))
        return True

    def finish(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The codes and message ids by number (up to the highest), and how many numbers
        have a line."""
        if self.parts is None:
            end = self.top + 1
            return self.codes[:end], self.ids[:end], self.events
        numbers, codes, ids = (np.concatenate(column) for column in zip(*self.parts, strict=True))
        unique, last = np.unique(numbers[::-1], return_index=True)
        last = len(numbers) - 1 - last
        dense_codes = np.zeros(int(unique[-1]) + 1, dtype=np.uint8)
        dense_ids = np.zeros(int(unique[-1]) + 1, dtype=np.uint32)
        dense_codes[unique] = codes[last]
        dense_ids[unique] = ids[last]
        return dense_codes, dense_ids, len(unique)


_OUTCOME_HEADS = pa.array([f"[{o}" for o in OUTCOMES])  # LOG_LINE up to "] Line Number "


def _split_messages(messages: pa.Array) -> tuple[np.ndarray, pa.Array, pa.Array] | None:
    """Each message's outcome code, line number (as text) and text, as ``LOG_LINE``
    reads them; None when one does not match. Split at fixed strings, which costs Arrow
    less than the pattern: "[OUTCOME] Line Number N" holds no " - ", so a message matches
    when what comes before its first " - " is exactly that."""
    size = len(messages)
    if not size:
        return None
    head, text = _split_once(messages, " - ")
    if head is None or text is None:
        return None
    outcome, number = _split_once(head, "] Line Number ")
    if outcome is None or number is None:
        return None
    codes = pc.index_in(outcome, value_set=_OUTCOME_HEADS)
    if codes.null_count or not pc.all(pc.ascii_is_decimal(number)).as_py():
        return None  # ascii_is_decimal: [0-9]+, as the pattern's \d+ on ASCII text
    if pc.max(pc.binary_length(number)).as_py() > 18:
        return None  # more digits than an int64 surely holds: the event-by-event path
    return codes.to_numpy() + 1, number, text


def _split_once(values: pa.Array, at: str) -> tuple[pa.Array | None, pa.Array | None]:
    """What comes before and after the first ``at`` in each value; (None, None) when a
    value does not hold it."""
    parts = pc.split_pattern(values, at, max_splits=1)
    if pc.min(pc.list_value_length(parts)).as_py() != 2:
        return None, None
    both = parts.flatten()  # before, after, before, after...
    evens = pa.array(np.arange(0, 2 * len(values), 2, dtype=np.int64))
    odds = pa.array(np.arange(1, 2 * len(values), 2, dtype=np.int64))
    return both.take(evens), both.take(odds)


def _stored_log_by_event(path: Path, job_id: str) -> JobLog | None:
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        hint = f"Delete {path} and run `csvimport report` again."
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=hint) from None
    log = JobLog(job_id)
    loads, add = json.loads, log.add
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                message = loads(raw)["message"]
            except (ValueError, KeyError, TypeError):  # not JSON, UTF-8 or an event
                if not raw.strip():
                    continue
                message = None
            if type(message) is not str:
                raise ConfigError(
                    f"{path} line {number} is damaged: it is not a CloudWatch log event",
                    hint=f"Delete {path} and run `csvimport report` again: the job's log is "
                    "read again from CloudWatch Logs (as long as the log group's retention "
                    "keeps it).",
                )
            add(message)
    return log


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
    stored = stored_log(path, job_id)
    if stored is not None and stored.size >= expected:
        return stored
    deadline = time.monotonic() + wait.seconds
    pause = wait.first_pause
    while True:
        # Each event goes to the file and into the log as it comes: a 500,000-user job's
        # events are never all in memory.
        log = JobLog(job_id)
        path.parent.mkdir(exist_ok=True)
        with replaced_private(path) as f:
            for event in fetch_messages(logs, group, stream):
                f.write(json.dumps(event) + "\n")
                log.add(event["message"])
        if log.size >= expected or time.monotonic() + pause > deadline:
            return log
        if on_wait is not None:
            on_wait(log.size, expected)
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
