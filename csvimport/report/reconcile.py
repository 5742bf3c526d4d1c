"""Account for every user of a run: rejects, duplicates, and each job's log, joined.

Every source row ends in exactly one outcome (``csvimport.outcomes.Outcome``):
rejected or duplicate (from ``rejects.csv``), or written to a chunk and then imported,
skipped or failed (from the job's log line, traced back through the chunk's line map),
or not processed (its job stopped, failed early, expired or has not run). The sums are
checked both ways and every mismatch is reported, never smoothed over:

- source rows = rejected + duplicates + written + deferred (the build's own promise;
  deferred users, in ``deferred.csv``, migrate at first sign-in);
- written = imported + skipped + failed + not processed;
- per job, Cognito's counters = the outcomes counted in its log.

When a chunk went through several jobs (``--retry-failed``, ``--resume-stopped``), a user
counts as imported if any job imported them, else by the latest job that reached them.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import queue
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csvimport import __version__
from csvimport.build.reasons import REASONS
from csvimport.errors import ConfigError
from csvimport.outcomes import (
    LISTED_USERS,
    JobSummary,
    Outcome,
    Password,
    PasswordState,
    ReasonGroup,
    Reconciliation,
    ResetState,
    RunReport,
    UserResult,
)
from csvimport.passes.followups import followups_done
from csvimport.passes.undo import undo_done
from csvimport.passwords.recovery import Blocked, RecoveryPolicy, reset_verdict
from csvimport.passwords.resets import LastRecord, ResetJournal
from csvimport.report.adoption import read_adoption
from csvimport.report.columns import (
    IMPORTED,
    OUTCOME_INDEX,
    OUTCOME_LIST,
    PASSWORD_INDEX,
    STRING,
    Coded,
    ResultBlock,
)
from csvimport.report.logs import (
    FIRST_LINE_NUMBER,
    LOGS_DIR,
    OUTCOMES,
    JobLog,
    LogWait,
    classify,
    detect_line_base,
    log_group,
    log_stream,
    read_job_log,
)
from csvimport.report.retrysource import RETRY_OUTCOMES
from csvimport.retry import PacedClient
from csvimport.run.journal import Attempt, Journal, Step
from csvimport.rundir import (
    BUILD_AGAIN,
    CHANNEL_SETS,
    FAILED_USERS,
    MANIFEST,
    RunChunk,
    RunDir,
    WrittenColumns,
    iter_deferred,
    legacy_disabled_rows,
    read_password_classes,
    rejected_user_blocks,
    written_columns,
)

EXAMPLES_PER_REASON = 5
DEFERRED_BLOCK = 50_000  # deferred users (deferred.csv) made into a block at a time
OUTCOME_OF = {"SUCCEEDED": Outcome.IMPORTED, "SKIPPED": Outcome.SKIPPED,
              "FAILED": Outcome.FAILED}  # fmt: skip
REJECT_FIX = ("Fix the value in the legacy data (or the mapping) and build again; "
              f"{FAILED_USERS} lists these users.")  # fmt: skip


def _duration(attempt: Attempt) -> float | None:
    if not (attempt.started and attempt.completed):
        return None
    start = datetime.fromisoformat(attempt.started)
    end = datetime.fromisoformat(attempt.completed)
    return (end - start).total_seconds()


def _take_log(
    log: JobLog, base: int, number: int, remap: np.ndarray,
    best_code: np.ndarray, best_message: np.ndarray, best_attempt: np.ndarray,
) -> tuple[int, int | None]:  # fmt: skip
    """Put a job's logged outcomes into its file's best arrays (by data line: line = the
    log's number - base + 1), where no earlier job imported the user; return how many
    logged lines the file does not have, and the first of them (None when none).

    The log's numbers and the file's lines differ by a constant, so this works on slices
    of both, with no array of line numbers: a 500,000-user file's took about 25 MB."""
    codes = np.frombuffer(log.codes, dtype=np.uint8)
    rows = len(best_code) - 1
    shift = base - 1  # log number = line + shift
    low, high = max(1, -shift), min(rows, len(codes) - 1 - shift)  # lines both have
    outside = int(np.count_nonzero(codes)) + len(log.sparse)
    if low <= high:
        logged = codes[low + shift : high + shift + 1]
        take = logged != 0
        outside -= int(np.count_nonzero(take))
        best = best_code[low : high + 1]
        take &= best != _IMPORTED_CODE  # imported by any job, else the latest job's outcome
        np.copyto(best, logged, where=take)
        ids = np.frombuffer(log.message_ids, dtype=np.uint32)[low + shift : high + shift + 1]
        np.copyto(best_message[low : high + 1], remap[ids], where=take)
        np.copyto(best_attempt[low : high + 1], number, where=take)
    if not outside:
        return 0, None
    lines = np.flatnonzero(codes) - shift
    beyond = lines[(lines < 1) | (lines > rows)]
    return outside, int(beyond[0]) if beyond.size else min(log.sparse) - shift


class Reconciler:
    """Builds a run's :class:`RunReport` and writes its result files."""

    def __init__(
        self,
        run: RunDir,
        journal: Journal,
        logs: Any,
        *,
        recovery: RecoveryPolicy,
        wait: LogWait | None = None,
        on_note: Callable[[str], None] = lambda text: None,
    ) -> None:
        # One paced client for every job's log: the pacing spans the whole report.
        self.run, self.journal, self.logs = run, journal, PacedClient(logs)
        # The live pool's recovery settings decide who can reset, as in `csvimport resets`.
        self.recovery = recovery
        self.blocked: Counter[str] = Counter()  # why users cannot reset, in words
        self.wait = wait or LogWait()
        self.note = on_note
        self.warnings: list[str] = []
        self.problems: list[str] = []
        # after reconcile: the source rows a retry source should hold (RETRY_OUTCOMES)
        self.retry_rows: array[int] = array("q")

    def _ran(self, chunk: RunChunk) -> list[Attempt]:
        """The chunk's jobs that were started, oldest first."""
        return [a for a in self.journal.for_chunk(chunk)
                if a.job_id and a.step is Step.STARTED and a.status]  # fmt: skip

    def _log(self, attempt: Attempt) -> JobLog:
        assert attempt.job_id is not None
        expected = attempt.processed

        def waiting(found: int, wanted: int) -> None:
            self.note(f"job {attempt.job_id}: {found:,} of {wanted:,} log lines so far; "
                      "waiting for CloudWatch Logs to catch up")  # fmt: skip

        return read_job_log(
            self.logs, run_dir=self.run.path,
            group=log_group(self.run.user_pool_id, self.run.snapshot.name),
            stream=log_stream(attempt.job_id, attempt.job_name), job_id=attempt.job_id,
            expected=expected, wait=self.wait, on_wait=waiting,
        )  # fmt: skip

    def _line_base(self, log: JobLog, attempt: Attempt, chunk: RunChunk) -> int:
        """The number Cognito gave the chunk's first user, detected when the log covers
        the whole file, else FIRST_LINE_NUMBER."""
        detected = detect_line_base(log, chunk.rows)
        if detected is not None and detected != FIRST_LINE_NUMBER:
            self.warnings.append(
                f"job {attempt.job_id}: the log numbers the first user {detected}, not "
                f"{FIRST_LINE_NUMBER} as csvimport assumes (FIRST_LINE_NUMBER in "
                "csvimport/report/logs.py); this report uses the log's numbering."
            )
        return detected if detected is not None else FIRST_LINE_NUMBER

    def build(self) -> tuple[RunReport, list[UserResult]]:
        """Join everything; return the report and every user's result in source order.

        For small runs (tests, a library user): the results are held in memory. ``write``
        is the same work with the results streamed to the run's files.
        """
        parts = _Parts()
        report = self.reconcile(parts)
        return report, parts.merged()

    def reconcile(self, sink: ResultSink) -> RunReport:
        """Join everything, giving the results to ``sink`` a block of users at a time (per
        part: the rejects, then each import file's users, each part in source order), and
        return the report. Memory holds one import file's join (a few bytes a line), one
        block of users' columns, counters, and the bounded lists the report shows."""
        with _memory_returned(), _young_collections_only():
            return self._reconcile(sink)

    def _reconcile(self, sink: ResultSink) -> RunReport:
        ran = [(chunk, self._ran(chunk)) for chunk in self.run.chunks]
        run = self.run
        tally = _Tally(ResetJournal(self.run).last())
        sink.begin()  # the refused users, by source row, a range of rows at a time
        for table in rejected_user_blocks(self.run):
            rejected = _rejected_block(table)
            del table
            _release_memory()
            tally.add(rejected)
            sink.add(rejected)
            del rejected
            _release_memory()
        # The import files' users are read in a thread while the work before them is done
        # (Arrow and hashlib mostly without the GIL, so on two cores or more they cost the
        # report little wall time); not sooner, for the rejects are the largest block.
        # The jobs' logs are read here: Arrow's reading of one, beside the join, put the
        # report's peak memory up by about 50 MiB at 2,000,000 users.
        written = _ByChunk(_read_ahead(_written_batches(run), depth=READ_AHEAD_BATCHES))
        sink.begin()
        deferred_users = iter_deferred(self.run)  # left out, to migrate at first sign-in
        while deferred := list(itertools.islice(deferred_users, DEFERRED_BLOCK)):
            block = ResultBlock.of_results(deferred)
            tally.add(block)
            sink.add(block)
        password_why = read_password_classes(self.run)
        # A written user's password, and why they cannot reset, by channel code
        verdicts = [self._reset_password(channels) for channels in CHANNEL_SETS]
        verdict_password = np.array([PASSWORD_INDEX[p] for p, _ in verdicts], dtype=np.uint8)
        # users the legacy system had disabled: never sent a code, as in `csvimport resets`
        legacy_off = np.fromiter(legacy_disabled_rows(self.run), dtype=np.int64)
        jobs: list[JobSummary] = []
        for chunk, attempts in ran:
            rows = chunk.rows
            best_code = np.zeros(rows + 1, dtype=np.uint8)  # by data line; 0 = no log line
            best_message = np.zeros(rows + 1, dtype=np.uint32)
            best_attempt = np.zeros(rows + 1, dtype=np.uint16)
            message_index: dict[str, int] = {}
            outside, first_outside = 0, None  # logged lines the file does not have
            for number, attempt in enumerate(attempts):
                log = self._log(attempt)
                base = self._line_base(log, attempt, chunk)
                jobs.append(self._summary(chunk, attempt, log))
                remap = np.array([message_index.setdefault(m, len(message_index))
                                  for m in log.messages] or [0], dtype=np.uint32)  # fmt: skip
                count, first = _take_log(log, base, number, remap, best_code, best_message,
                                         best_attempt)  # fmt: skip
                outside += count
                if first is not None:
                    first_outside = first if first_outside is None else min(first_outside, first)
                if log.unparsed_count:
                    self.warnings.append(
                        f"job {attempt.job_id}: {log.unparsed_count} log message(s) did not "
                        f"match the expected pattern, e.g. {log.unparsed[0][:200]!r}"
                    )
            messages = list(message_index)
            last = attempts[-1] if attempts else None
            # Each column's few values: the logged ones by message or job, then what a user
            # without a log line gets (not processed).
            reasons = [*messages, self._not_processed(last)]
            rules = ["", "not_processed", *(self._rule(m) for m in messages)]
            job_ids = [*(a.job_id for a in attempts), last.job_id if last else None]
            sink.begin()
            for users in written.of(chunk.file):  # checked and read ahead (_written_batches)
                size = len(users)
                line = np.arange(users.first_line, users.first_line + size, dtype=np.int64)
                known = np.flatnonzero(line <= rows)  # a line past the file's count: no log
                code = np.zeros(size, dtype=np.uint8)
                message = np.zeros(size, dtype=np.int64)
                attempt_of = np.zeros(size, dtype=np.int64)
                code[known] = best_code[line[known]]
                message[known] = best_message[line[known]]
                attempt_of[known] = best_attempt[line[known]]
                logged_user = code > 0
                imported = code == _IMPORTED_CODE
                password = np.full(size, PASSWORD_INDEX[Password.NONE], dtype=np.uint8)
                password[imported & users.has_hash] = PASSWORD_INDEX[Password.HASH]
                no_hash = imported & ~users.has_hash
                password[no_hash] = verdict_password[users.channels[no_hash]]
                if legacy_off.size:
                    off = no_hash & np.isin(users.source_rows, legacy_off)
                    password[off] = PASSWORD_INDEX[Password.NO_CHANNEL]
                    if off.any():
                        self.blocked[Blocked.LEGACY_DISABLED.explanation] += int(off.sum())
                    no_hash &= ~off
                for channel, count in enumerate(np.bincount(users.channels[no_hash],
                                                            minlength=len(verdicts))):  # fmt: skip
                    blocked = verdicts[channel][1]
                    if count and blocked is not None:
                        self.blocked[blocked] += int(count)
                block = ResultBlock(
                    source_row=users.source_rows, legacy_id=users.legacy_ids,
                    username=users.usernames, email=users.emails, phone=users.phones,
                    outcome=_OUTCOME_OF_CODE[code],
                    reason=Coded(np.where(logged_user, message, len(messages)), reasons),
                    rule=Coded(np.where(imported, 0, np.where(logged_user, 2 + message, 1)),
                               rules),
                    job_id=Coded(np.where(logged_user, attempt_of, len(attempts)), job_ids),
                    chunk=Coded.constant(chunk.file, size), line=line, collided_with_row=None,
                    password=password,
                    password_why=Coded(password_why.codes(users.source_rows),
                                       password_why.texts),
                )  # fmt: skip
                tally.add(block)
                sink.add(block)
                del block
                _release_memory()
            _release_memory()
            if outside:
                saved = ", ".join(f"{LOGS_DIR}/{a.job_id}.jsonl" for a in attempts)
                self.problems.append(
                    f"{chunk.file}: the log names {outside} line(s) the file does not have "
                    f"(e.g. line {first_outside}); the line numbering may be off, so this "
                    "file's outcomes may be shifted. `csvimport verify` checks its users in "
                    f"the pool; the log as read is in {saved}."
                )
        self.retry_rows = tally.retry_rows
        return self._report(tally, jobs)

    @staticmethod
    def _not_processed(last: Attempt | None) -> str:
        """Why a written user without a log line has no outcome, given the file's last job."""
        if last is None:
            return "its import job has not run yet (csvimport start)"
        if last.live:
            return f"its import job {last.job_id} is still running"
        if last.status == "Succeeded":
            return (f"job {last.job_id} counted the file's users but its log has no line "
                    "for this one")  # fmt: skip
        return f"job {last.job_id} ended ({last.status}) before reaching this user"

    @staticmethod
    def _rule(message: str) -> str:
        """The rule of a user skipped or failed with ``message``."""
        known = classify(message)
        return known.rule if known else "unknown"

    def _reset_password(self, channels: frozenset[str]) -> tuple[Password, str | None]:
        """The password state of an imported user without a hash, and why they cannot
        reset (None when they can)."""
        verdict = reset_verdict(self.recovery, channels)
        password = Password.RESET if verdict.can_reset else Password.NO_CHANNEL
        return password, verdict.blocked.explanation if verdict.blocked is not None else None

    def _summary(self, chunk: RunChunk, attempt: Attempt, log: JobLog) -> JobSummary:
        assert attempt.job_id is not None
        logged = {o: log.count(o) for o in ("SUCCEEDED", "SKIPPED", "FAILED")}
        missing = max(0, attempt.processed - log.size)
        summary = JobSummary(
            chunk=chunk.file, users_in_file=chunk.rows, job_id=attempt.job_id,
            job_name=attempt.job_name, status=attempt.status or "", imported=attempt.imported,
            skipped=attempt.skipped, failed=attempt.failed,
            logged_succeeded=logged["SUCCEEDED"], logged_skipped=logged["SKIPPED"],
            logged_failed=logged["FAILED"], not_processed=max(0, chunk.rows - log.size),
            started=attempt.started, completed=attempt.completed,
            duration_seconds=_duration(attempt), message=attempt.message,
            log_complete=missing == 0, missing_log_lines=missing,
        )  # fmt: skip
        if missing:
            self.problems.append(
                f"job {attempt.job_id} ({chunk.file}): Cognito counted {attempt.processed:,} "
                f"users but its log has {log.size:,} lines; {missing:,} user(s) have no "
                "known outcome. Run `csvimport report` again later: logs can lag."
            )
        elif not summary.counters_match_log:
            self.problems.append(
                f"job {attempt.job_id} ({chunk.file}): Cognito's counters (imported "
                f"{attempt.imported:,}, skipped {attempt.skipped:,}, failed {attempt.failed:,}) "
                f"differ from its log ({logged['SUCCEEDED']:,}, {logged['SKIPPED']:,}, "
                f"{logged['FAILED']:,}). Run `csvimport report` again later (log lines can "
                f"lag); if it stays, `csvimport verify` checks these users in the pool, and "
                f"{LOGS_DIR}/{attempt.job_id}.jsonl holds the log as read."
            )
        return summary

    def _report(self, tally: _Tally, jobs: list[JobSummary]) -> RunReport:
        counts = tally.counts
        source_rows = (self.run.manifest.get("counts") or {}).get("source_rows")
        if type(source_rows) is not int:
            raise ConfigError(
                f"{self.run.path / MANIFEST} is damaged: counts.source_rows is "
                f"{source_rows!r:.40}, not a whole number", hint=BUILD_AGAIN,
            )  # fmt: skip
        written = sum(c.rows for c in self.run.chunks)
        recon = Reconciliation(
            source_rows=source_rows, rejected=counts[Outcome.REJECTED],
            duplicates=counts[Outcome.DUPLICATE], written=written,
            imported=counts[Outcome.IMPORTED], skipped=counts[Outcome.SKIPPED],
            failed=counts[Outcome.FAILED], not_processed=counts[Outcome.NOT_PROCESSED],
            deferred=counts[Outcome.DEFERRED], problems=self.problems,
        )  # fmt: skip
        accounted = recon.rejected + recon.duplicates + recon.written + recon.deferred
        if accounted != recon.source_rows:
            deferred = f" + {recon.deferred:,} deferred" if recon.deferred else ""
            self.problems.insert(0, (
                f"{recon.source_rows:,} source rows, but {recon.rejected:,} rejected + "
                f"{recon.duplicates:,} duplicates + {recon.written:,} written{deferred} = "
                f"{accounted:,}."
            ))  # fmt: skip
        processed = recon.imported + recon.skipped + recon.failed + recon.not_processed
        if processed != recon.written:
            self.problems.insert(0, (
                f"{recon.written:,} users written, but imported + skipped + failed + not "
                f"processed = {processed:,}."
            ))  # fmt: skip
        if tally.repeated_rows:
            self.problems.insert(0, "some source rows have more than one outcome.")
        passwords = PasswordState(
            imported_hash=tally.imported_hash, must_reset=tally.must_reset,
            cannot_reset=tally.cannot_reset,
            cannot_reset_reasons=dict(self.blocked.most_common()),
            codes_sent=tally.codes_sent, codes_failed=dict(tally.codes_failed),
            codes_not_sent=tally.codes_not_sent, codes_maybe_sent=tally.codes_maybe_sent,
            reset_reasons=dict(tally.reset_reasons.most_common()),
            migrate=counts[Outcome.DEFERRED],
            migrate_schemes=dict(tally.migrate_schemes.most_common()),
        )  # fmt: skip
        adoption, unread = read_adoption(self.run.path)
        self.warnings += unread
        return RunReport(
            run_dir=str(self.run.path), run_id=self.run.run_id,
            user_pool_id=self.run.user_pool_id, user_pool_name=self.run.snapshot.name,
            generated=datetime.now(UTC).isoformat(timespec="seconds"),
            tool_version=__version__, reconciliation=recon, jobs=jobs,
            job_reasons=tally.groups(lambda o: o in (Outcome.SKIPPED, Outcome.FAILED,
                                                     Outcome.NOT_PROCESSED)),
            reject_reasons=tally.groups(lambda o: o is Outcome.REJECTED),
            duplicates=tally.duplicates.users(), passwords=passwords,
            attention=tally.attention.users(), warnings=self.warnings, adoption=adoption,
            followups=followups_done(self.run.path), undo=undo_done(self.run.path),
        )  # fmt: skip


_IMPORTED_CODE = OUTCOMES.index("SUCCEEDED") + 1
# A log line's outcome code (0 = no line, then OUTCOMES) as an index into OUTCOME_LIST
_OUTCOME_OF_CODE = np.array(
    [OUTCOME_INDEX[Outcome.NOT_PROCESSED], *(OUTCOME_INDEX[OUTCOME_OF[o]] for o in OUTCOMES)],
    dtype=np.uint8,
)
_RETRY = np.array([OUTCOME_INDEX[o] for o in RETRY_OUTCOMES], dtype=np.uint8)


def _rejected_block(table: pa.Table) -> ResultBlock:
    """The rejected and duplicate users (``rundir.rejected_users``) as a block."""
    size = table.num_rows
    duplicate = table["duplicate"].to_numpy()
    collided = pc.fill_null(table["collided_with_row"], -1).to_numpy()

    def strings(name: str) -> pa.Array:
        return table[name].combine_chunks()

    return ResultBlock(
        source_row=table["source_row"].to_numpy(), legacy_id=strings("legacy_id"),
        username=strings("username"), email=strings("email"), phone=strings("phone"),
        outcome=np.where(duplicate, OUTCOME_INDEX[Outcome.DUPLICATE],
                         OUTCOME_INDEX[Outcome.REJECTED]).astype(np.uint8),
        reason=Coded.of(table["reason"]), rule=Coded.of(table["rule"]),
        job_id=Coded.constant(None, size), chunk=Coded.constant(None, size), line=None,
        collided_with_row=collided, password=np.full(size, PASSWORD_INDEX[Password.NONE],
                                                     dtype=np.uint8),
        password_why=Coded.constant("", size),
    )  # fmt: skip


@contextmanager
def _memory_returned() -> Iterator[None]:
    """Make Arrow allocate from jemalloc meanwhile, where the build has it.

    Arrow's default allocator (mimalloc) keeps what is freed, in huge pages, for reuse:
    each block of users allocates and frees tens of MB, and at 2,000,000 users the report
    held about 560 MiB where jemalloc, which gives memory back, holds about 480 MiB (and
    is no slower). The default is set back afterwards.
    """
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it
        yield
        return
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


_T = TypeVar("_T")


# Batches of users (about 36,000 each) read ahead of the join: enough for the next
# import file's first batch, which takes Arrow longest, to be read while the last few
# of a file are joined; a few MB each.
READ_AHEAD_BATCHES = 2


def _written_batches(run: RunDir) -> Iterator[tuple[str, WrittenColumns | BaseException]]:
    """(file, batch) for each batch of users of each import file in turn; (file, error)
    where reading a file raised, and nothing more of it."""
    for chunk in run.chunks:
        try:
            for users in written_columns(run, chunk):
                yield chunk.file, users
        except Exception as exc:  # noqa: BLE001 - raised again by _ByChunk.of
            yield chunk.file, exc
            return


class _ByChunk:
    """The batches of ``_written_batches``, taken a file at a time (``of``), in order."""

    def __init__(self, batches: Iterator[tuple[str, WrittenColumns | BaseException]]) -> None:
        self._batches = batches
        self._pending: tuple[str, WrittenColumns | BaseException] | None = None

    def of(self, file: str) -> Iterator[WrittenColumns]:
        """The batches of ``file``; what reading it raised is raised here, when reached."""
        while True:
            if self._pending is None:
                self._pending = next(self._batches, None)
                if self._pending is None:
                    return
            name, users = self._pending
            if name != file:
                return
            self._pending = None
            if isinstance(users, BaseException):
                raise users
            yield users


def _read_ahead(items: Iterator[_T], *, depth: int = 1) -> Iterator[_T]:
    """``items``, made in a thread of its own up to ``depth`` ahead of the caller; what
    ``items`` raises is raised here. If the caller stops early, the thread stops once it
    has made the item in hand."""
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(more: bool, value: Any) -> bool:
        """Give the caller ``value``; False when it has stopped taking."""
        while not stop.is_set():
            try:
                ready.put((more, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not hand(True, item):
                    return
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            hand(False, exc)
        else:
            hand(False, None)

    def take() -> Iterator[_T]:
        try:
            while True:
                more, item = ready.get()
                if not more:
                    if item is not None:
                        raise item
                    return
                yield item
        finally:
            stop.set()

    threading.Thread(target=make, name="read-ahead", daemon=True).start()  # now, not at next
    return take()


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """Keep the garbage collector's full passes off the objects that existed before.

    The report makes tens of thousands of small objects (the users the page lists), so
    Python runs a full collection meanwhile, which walks every object the process holds
    (its modules' too: about 0.1 s, a tenth of a 200,000-user report) when none of those
    can have become garbage. ``gc.freeze`` sets them aside for the duration; the report's
    own objects are collected as usual, and the others are collected again afterwards.
    """
    if gc.get_freeze_count():  # a caller froze already: theirs to undo
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _release_memory() -> None:
    """Give back to the system what Arrow's allocator keeps of the memory just freed: it
    would otherwise hold the peak of every stage (hundreds of MB at 2,000,000 users)."""
    pa.default_memory_pool().release_unused()


class ResultSink(Protocol):
    """Where ``Reconciler.reconcile`` puts the results (``report.results.ResultFiles``)."""

    def begin(self) -> None: ...

    def add(self, block: ResultBlock) -> None: ...


class _Parts:
    """A ResultSink holding the results, for ``Reconciler.build``."""

    def __init__(self) -> None:
        self.parts: list[list[UserResult]] = []

    def begin(self) -> None:
        self.parts.append([])

    def add(self, block: ResultBlock) -> None:
        self.parts[-1].extend(block.results())  # in any order: merged() sorts

    def merged(self) -> list[UserResult]:
        return sorted((r for part in self.parts for r in part), key=lambda r: r.source_row)


class _FirstUsers:
    """The ``limit`` users with the lowest source rows among those added."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heap: list[tuple[int, int, UserResult]] = []  # (-source_row, order, user)
        self._order = 0

    def add(self, result: UserResult) -> None:
        self._order += 1
        item = (-result.source_row, -self._order, result)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def add_from(self, block: ResultBlock, users: np.ndarray) -> None:
        """``add`` the block's ``users`` (indexes, in block order) that could be kept: only
        those become UserResult objects."""
        if len(self._heap) >= self.limit:  # only lower rows than the highest kept get in
            users = users[block.source_row[users] < -self._heap[0][0]]
        if not users.size:
            return
        rows = block.source_row[users]
        candidates = np.sort(users[np.argsort(rows, kind="stable")[: self.limit]])
        for result in block.results(candidates):
            self.add(result)

    def users(self) -> list[UserResult]:
        return [r for _, _, r in sorted(self._heap, reverse=True)]


@dataclass
class _Group:
    count: int
    examples: _FirstUsers


@dataclass
class _Tally:
    """What the report needs from every user's result, in bounded memory."""

    resets: Mapping[str, LastRecord]
    counts: Counter[Outcome] = field(default_factory=Counter)
    attention: _FirstUsers = field(default_factory=lambda: _FirstUsers(LISTED_USERS))
    duplicates: _FirstUsers = field(default_factory=lambda: _FirstUsers(LISTED_USERS))
    by_reason: dict[tuple[Outcome, str], _Group] = field(default_factory=dict)
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))  # by row
    repeated_rows: int = 0
    retry_rows: array[int] = field(default_factory=lambda: array("q"))
    imported_hash: int = 0
    must_reset: int = 0
    cannot_reset: int = 0
    codes_sent: int = 0
    codes_maybe_sent: int = 0
    codes_not_sent: int = 0
    codes_failed: Counter[str] = field(default_factory=Counter)
    reset_reasons: Counter[str] = field(default_factory=Counter)
    migrate_schemes: Counter[str] = field(default_factory=Counter)  # deferred, by scheme

    def add(self, block: ResultBlock) -> None:
        """Count a block of results."""
        outcome = block.outcome
        for index, count in enumerate(np.bincount(outcome, minlength=len(OUTCOME_LIST))):
            if count:
                self.counts[OUTCOME_LIST[index]] += int(count)
        deferred = np.flatnonzero(outcome == OUTCOME_INDEX[Outcome.DEFERRED])
        if deferred.size:
            schemes = block.rule.take(deferred).distinct()
            for code, count in enumerate(np.bincount(schemes.codes, minlength=len(schemes.values))):
                if count:
                    self.migrate_schemes[schemes.values[code] or ""] += int(count)
        self._see(block.source_row)
        self.attention.add_from(block, np.flatnonzero(block.attention))
        retry = block.source_row[np.isin(outcome, _RETRY)].astype(np.int64)
        self.retry_rows.frombytes(retry.tobytes())
        self.duplicates.add_from(block, np.flatnonzero(outcome == OUTCOME_INDEX[Outcome.DUPLICATE]))
        grouped = np.flatnonzero((outcome != OUTCOME_INDEX[Outcome.DUPLICATE])
                                 & (outcome != IMPORTED))  # fmt: skip
        if grouped.size:
            rule = block.rule.take(grouped).distinct()
            keys = outcome[grouped].astype(np.int64) * len(rule.values) + rule.codes
            unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            for number, (key, count) in enumerate(zip(unique.tolist(), counts.tolist(),
                                                      strict=True)):  # fmt: skip
                named = (
                    OUTCOME_LIST[key // len(rule.values)],
                    rule.values[key % len(rule.values)] or "",
                )
                group = self.by_reason.get(named)
                if group is None:
                    group = self.by_reason[named] = _Group(0, _FirstUsers(EXAMPLES_PER_REASON))
                group.count += count
                group.examples.add_from(block, grouped[inverse == number])
        self._passwords(block)

    def _see(self, rows: np.ndarray) -> None:
        """Note that ``rows`` have an outcome; a second one is a repeated row."""
        if not rows.size:
            return
        top = int(rows.max()) + 1
        if top > len(self.seen):
            grown = np.zeros(max(top, 2 * len(self.seen)), dtype=np.uint8)
            grown[: len(self.seen)] = self.seen
            self.seen = grown
        rising = rows.size < 2 or bool(np.all(rows[1:] > rows[:-1]))
        unique = rows if rising else np.unique(rows)  # no sort for rows in source order
        self.repeated_rows += len(rows) - int(np.count_nonzero(self.seen[unique] == 0))
        self.seen[unique] = 1

    def _passwords(self, block: ResultBlock) -> None:
        password = block.password
        self.imported_hash += int(np.count_nonzero(password == PASSWORD_INDEX[Password.HASH]))
        must = password == PASSWORD_INDEX[Password.RESET]
        cannot = password == PASSWORD_INDEX[Password.NO_CHANNEL]
        why = block.password_why.take(np.flatnonzero(must | cannot)).distinct()
        for code, count in enumerate(np.bincount(why.codes, minlength=len(why.values))):
            if count:
                self.reset_reasons[why.values[code] or "no password hash in the source"] += int(
                    count
                )
        self.cannot_reset += int(np.count_nonzero(cannot))
        resetting = np.flatnonzero(must)
        self.must_reset += len(resetting)
        if not self.resets or not resetting.size:
            self.codes_not_sent += len(resetting)
            return
        names = list(self.resets)
        found = pc.index_in(block.username.take(pa.array(resetting, pa.int64())),
                            value_set=pa.array(names, STRING))  # fmt: skip
        entries = found.drop_null().to_numpy(zero_copy_only=False)
        self.codes_not_sent += len(resetting) - len(entries)
        for entry, count in zip(*np.unique(entries, return_counts=True), strict=True):
            record = self.resets[names[int(entry)]]
            if record.state == ResetState.SENT:
                self.codes_sent += int(count)
            elif record.state == ResetState.SENDING:
                self.codes_maybe_sent += int(count)
            else:
                self.codes_not_sent += int(count)
                if record.state == ResetState.FAILED:
                    self.codes_failed[record.reason] += int(count)

    def groups(self, wanted: Callable[[Outcome], bool]) -> list[ReasonGroup]:
        return _groups({k: g for k, g in self.by_reason.items() if wanted(k[0])})


def _groups(grouped: dict[tuple[Outcome, str], _Group]) -> list[ReasonGroup]:
    """Users grouped by (outcome, rule), biggest group first, with a few examples each."""
    groups = []
    for (outcome, rule), group in grouped.items():
        examples = group.examples.users()
        first = examples[0]
        if outcome is Outcome.REJECTED:
            explanation, fix = REASONS.get(rule, first.reason), REJECT_FIX
        elif outcome is Outcome.NOT_PROCESSED:
            explanation = ("Cognito never reached these users: their job stopped, failed "
                           "early, expired or has not run.")  # fmt: skip
            fix = ("`csvimport start RUN_DIR --resume-stopped` or `--retry-failed` imports "
                   "them in a new job; or build again from the retry source.")  # fmt: skip
        else:
            known = classify(first.reason)
            explanation = known.explanation if known else "Cognito's own words: " + first.reason
            fix = known.fix if known else ""
        groups.append(ReasonGroup(
            outcome=outcome, rule=rule, count=group.count, reason=first.reason,
            explanation=explanation, fix=fix, examples=examples,
        ))  # fmt: skip
    return sorted(groups, key=lambda g: (-g.count, g.outcome.value, g.rule))
