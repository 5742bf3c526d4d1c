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

import heapq
from array import array
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from csvimport import __version__
from csvimport.build.validate import REASONS
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
from csvimport.outcomes import (
    json_string as _json_string,
)
from csvimport.passwords.recovery import RecoveryPolicy, reset_verdict
from csvimport.passwords.resets import LastRecord, ResetJournal
from csvimport.report.logs import (
    FIRST_LINE_NUMBER,
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
    FAILED_USERS,
    MANIFEST,
    RunChunk,
    RunDir,
    WrittenUser,
    iter_deferred,
    iter_rejects,
    read_password_classes,
    written_batches,
)

EXAMPLES_PER_REASON = 5
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
        """Join everything, giving each user's result to ``sink`` as it is made (per part:
        the rejects, then each import file's users, each part in source order), and
        return the report. Memory holds one import file's join at a time (a few bytes a
        line), counters, and the bounded lists the report shows."""
        tally = _Tally(ResetJournal(self.run).last())  # each user's last line only
        sink.begin()
        for result in iter_rejects(self.run):  # two runs in source order: sinks cope
            tally.add(result)
            sink.add(result)
        sink.begin()
        for result in iter_deferred(self.run):  # left out, to migrate at first sign-in
            tally.add(result)
            sink.add(result)
        password_why = read_password_classes(self.run)
        jobs: list[JobSummary] = []
        for chunk in self.run.chunks:
            rows = chunk.rows
            best_code = np.zeros(rows + 1, dtype=np.uint8)  # by data line; 0 = no log line
            best_message = np.zeros(rows + 1, dtype=np.uint32)
            best_attempt = np.zeros(rows + 1, dtype=np.uint16)
            messages: list[str] = []
            message_index: dict[str, int] = {}
            extra: list[int] = []
            attempts = self._ran(chunk)
            for number, attempt in enumerate(attempts):
                log = self._log(attempt)
                base = self._line_base(log, attempt, chunk)
                jobs.append(self._summary(chunk, attempt, log))
                codes = np.frombuffer(log.codes, dtype=np.uint8)
                logged = np.flatnonzero(codes)
                lines = logged - base + 1
                inside = (lines >= 1) & (lines <= rows)
                extra.extend(int(n) for n in lines[~inside][:1])
                extra.extend(n - base + 1 for n in log.sparse)
                extra_count = int((~inside).sum()) + len(log.sparse)
                if extra_count:
                    extra.append(-extra_count)  # how many, after the first example
                lines, logged = lines[inside], logged[inside]
                # a user counts as imported if any job imported them, else the latest job
                take = best_code[lines] != _IMPORTED_CODE
                lines, logged = lines[take], logged[take]
                remap = np.array([message_index.setdefault(m, len(message_index))
                                  for m in log.messages] or [0], dtype=np.uint32)  # fmt: skip
                best_code[lines] = codes[logged]
                best_message[lines] = remap[np.frombuffer(log.message_ids, dtype=np.uint32)[logged]]
                best_attempt[lines] = number
                if log.unparsed_count:
                    self.warnings.append(
                        f"job {attempt.job_id}: {log.unparsed_count} log message(s) did not "
                        f"match the expected pattern, e.g. {log.unparsed[0][:200]!r}"
                    )
            messages = list(message_index)
            codes_by_line = best_code.tolist()
            message_by_line = best_message.tolist()
            attempt_by_line = best_attempt.tolist()
            del best_code, best_message, best_attempt
            last = attempts[-1] if attempts else None
            sink.begin()
            # Users imported are most of a run: with a sink that takes lines, their result
            # line is formatted here directly, without a WrittenUser or UserResult each.
            add_line = getattr(sink, "add_line", None)
            chunk_json = _json_string(chunk.file)
            job_json = [_json_string(a.job_id or "") for a in attempts]
            message_json = [_json_string(m) for m in messages]
            why_json: dict[str, str] = {}
            verdicts: dict[frozenset[str], tuple[Password, str | None]] = {}
            for batch in written_batches(self.run, chunk):
                first = batch.first_line
                for k, username in enumerate(batch.usernames):
                    line = first + k
                    code = codes_by_line[line] if line <= rows else 0
                    row = batch.source_rows[k]
                    why = password_why.get(row, "")
                    if add_line is not None and code == _IMPORTED_CODE:
                        if batch.has_hash[k]:
                            password = Password.HASH
                        else:
                            channels = batch.channels[k]
                            verdict = verdicts.get(channels)
                            if verdict is None:
                                verdict = verdicts[channels] = self._reset_password(channels)
                            password, blocked = verdict
                            if blocked is not None:
                                self.blocked[blocked] += 1
                        tally.add_imported(row, username, password, why)
                        encoded_why = why_json.get(why)
                        if encoded_why is None:
                            encoded_why = why_json[why] = _json_string(why)
                        add_line(row, False, (
                            f'{{"source_row": {row}, "legacy_id": '
                            f'{_json_string(batch.legacy_ids[k])}, "username": '
                            f'{_json_string(username)}, "outcome": "imported", "reason": '
                            f'{message_json[message_by_line[line]]}, "rule": "", "email": '
                            f'{_json_string(batch.emails[k])}, "phone": '
                            f'{_json_string(batch.phones[k])}, "job_id": '
                            f'{job_json[attempt_by_line[line]]}, "chunk": {chunk_json}, '
                            f'"line": {line}, "collided_with_row": null, "password": '
                            f'"{password.value}", "password_why": {encoded_why}}}'
                        ))  # fmt: skip
                        continue
                    user = WrittenUser(
                        line=line, source_row=row, legacy_id=batch.legacy_ids[k],
                        username=username, email=batch.emails[k], phone=batch.phones[k],
                        channels=batch.channels[k], has_hash=batch.has_hash[k],
                    )  # fmt: skip
                    found = None if not code else (
                        OUTCOME_OF[OUTCOMES[code - 1]], messages[message_by_line[line]],
                        attempts[attempt_by_line[line]],
                    )  # fmt: skip
                    result = self._user_result(chunk, user, found, last, why)
                    tally.add(result)
                    sink.add(result)
            counted = [-n for n in extra if n < 0]
            examples = [n for n in extra if n >= 0]
            if counted:
                self.problems.append(
                    f"{chunk.file}: the log names {sum(counted)} line(s) the file does not "
                    f"have (e.g. line {min(examples) if examples else '?'}); the line "
                    "numbering may be off."
                )
        self.retry_rows = tally.retry_rows
        return self._report(tally, jobs)

    def _user_result(
        self, chunk: RunChunk, user: WrittenUser, logged: tuple[Outcome, str, Attempt] | None,
        last: Attempt | None, password_why: str = "",
    ) -> UserResult:  # fmt: skip
        if logged is None:
            if last is None:
                reason = "its import job has not run yet (csvimport start)"
            elif last.live:
                reason = f"its import job {last.job_id} is still running"
            elif last.status == "Succeeded":
                reason = (f"job {last.job_id} counted the file's users but its log has no "
                          "line for this one")  # fmt: skip
            else:
                reason = (f"job {last.job_id} ended ({last.status}) before reaching this "
                          "user")  # fmt: skip
            outcome, message, job_id = Outcome.NOT_PROCESSED, reason, last.job_id if last else None
            rule = "not_processed"
        else:
            outcome, message, attempt = logged
            job_id = attempt.job_id
            known = classify(message) if outcome is not Outcome.IMPORTED else None
            rule = known.rule if known else ("" if outcome is Outcome.IMPORTED else "unknown")
        password = Password.NONE
        if outcome is Outcome.IMPORTED:
            if user.has_hash:
                password = Password.HASH
            else:
                password, blocked = self._reset_password(user.channels)
                if blocked is not None:
                    self.blocked[blocked] += 1
        return UserResult(
            source_row=user.source_row, legacy_id=user.legacy_id, username=user.username,
            outcome=outcome, reason=message, rule=rule, email=user.email, phone=user.phone,
            job_id=job_id, chunk=chunk.file, line=user.line, password=password,
            password_why=password_why,
        )  # fmt: skip

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
                f"{logged['FAILED']:,})."
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
        return RunReport(
            run_dir=str(self.run.path), run_id=self.run.run_id,
            user_pool_id=self.run.user_pool_id, user_pool_name=self.run.snapshot.name,
            generated=datetime.now(UTC).isoformat(timespec="seconds"),
            tool_version=__version__, reconciliation=recon, jobs=jobs,
            job_reasons=tally.groups(lambda o: o in (Outcome.SKIPPED, Outcome.FAILED,
                                                     Outcome.NOT_PROCESSED)),
            reject_reasons=tally.groups(lambda o: o is Outcome.REJECTED),
            duplicates=tally.duplicates.users(), passwords=passwords,
            attention=tally.attention.users(), warnings=self.warnings,
        )  # fmt: skip


_IMPORTED_CODE = OUTCOMES.index("SUCCEEDED") + 1


class ResultSink(Protocol):
    """Where ``Reconciler.reconcile`` puts each result (``report.results.ResultFiles``)."""

    def begin(self) -> None: ...

    def add(self, result: UserResult) -> None: ...


class _Parts:
    """A ResultSink holding the results, for ``Reconciler.build``."""

    def __init__(self) -> None:
        self.parts: list[list[UserResult]] = []

    def begin(self) -> None:
        self.parts.append([])

    def add(self, result: UserResult) -> None:
        self.parts[-1].append(result)  # in any order: merged() sorts

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
    seen: bytearray = field(default_factory=bytearray)  # one byte per source row
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

    def add(self, result: UserResult) -> None:
        outcome = result.outcome
        self.counts[outcome] += 1
        if outcome is Outcome.DEFERRED:
            self.migrate_schemes[result.rule] += 1
        row = result.source_row
        self._see(row)
        if outcome.needs_attention:
            self.attention.add(result)
        if outcome in RETRY_OUTCOMES:
            self.retry_rows.append(row)
        if outcome is Outcome.DUPLICATE:
            self.duplicates.add(result)
        elif outcome is not Outcome.IMPORTED:
            key = (outcome, result.rule)
            group = self.by_reason.get(key)
            if group is None:
                group = self.by_reason[key] = _Group(0, _FirstUsers(EXAMPLES_PER_REASON))
            group.count += 1
            group.examples.add(result)
        self._password(result.password, result.username, result.password_why)

    def add_imported(self, row: int, username: str, password: Password, why: str) -> None:
        """``add`` for an imported user, without their UserResult."""
        self.counts[Outcome.IMPORTED] += 1
        self._see(row)
        self._password(password, username, why)

    def _see(self, row: int) -> None:
        """Note that ``row`` has an outcome; a second one is a repeated row."""
        if row >= len(self.seen):
            self.seen.extend(bytes(max(row + 1, 2 * len(self.seen)) - len(self.seen)))
        if self.seen[row]:
            self.repeated_rows += 1
        self.seen[row] = 1

    def _password(self, password: Password, username: str, why: str) -> None:
        if password is Password.HASH:
            self.imported_hash += 1
        elif password in (Password.RESET, Password.NO_CHANNEL):
            self.reset_reasons[why or "no password hash in the source"] += 1
            if password is Password.NO_CHANNEL:
                self.cannot_reset += 1
                return
            self.must_reset += 1
            entry = self.resets.get(username)
            state = entry.state if entry else None
            if state == ResetState.SENT:
                self.codes_sent += 1
                return
            if state == ResetState.SENDING:
                self.codes_maybe_sent += 1
                return
            self.codes_not_sent += 1
            if state == ResetState.FAILED and entry is not None:
                self.codes_failed[entry.reason] += 1

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
