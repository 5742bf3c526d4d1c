"""Account for every user of a run: rejects, duplicates, and each job's log, joined.

Every source row ends in exactly one outcome (``csvimport.outcomes.Outcome``):
rejected or duplicate (from ``rejects.csv``), or written to a chunk and then imported,
skipped or failed (from the job's log line, traced back through the chunk's line map),
or not processed (its job stopped, failed early, expired or has not run). The sums are
checked both ways and every mismatch is reported, never smoothed over:

- source rows = rejected + duplicates + written (the build's own promise);
- written = imported + skipped + failed + not processed;
- per job, Cognito's counters = the outcomes counted in its log.

When a chunk went through several jobs (``--retry-failed``, ``--resume-stopped``), a user
counts as imported if any job imported them, else by the latest job that reached them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from csvimport import __version__
from csvimport.build.validate import REASONS
from csvimport.errors import ConfigError
from csvimport.outcomes import (
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
from csvimport.passwords.recovery import RecoveryPolicy, reset_verdict
from csvimport.passwords.resets import read_resets
from csvimport.report.logs import (
    FIRST_LINE_NUMBER,
    JobLog,
    LogWait,
    classify,
    detect_line_base,
    log_group,
    log_stream,
    read_job_log,
)
from csvimport.retry import PacedClient
from csvimport.run.journal import Attempt, Journal, Step
from csvimport.rundir import (
    BUILD_AGAIN,
    FAILED_USERS,
    MANIFEST,
    RunChunk,
    RunDir,
    WrittenUser,
    read_password_classes,
    read_rejects,
    written_users,
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
        detected = detect_line_base(log.lines, chunk.rows)
        if detected is not None and detected != FIRST_LINE_NUMBER:
            self.warnings.append(
                f"job {attempt.job_id}: the log numbers the first user {detected}, not "
                f"{FIRST_LINE_NUMBER} as csvimport assumes (FIRST_LINE_NUMBER in "
                "csvimport/report/logs.py); this report uses the log's numbering."
            )
        return detected if detected is not None else FIRST_LINE_NUMBER

    def build(self) -> tuple[RunReport, list[UserResult]]:
        """Join everything; return the report and every user's result in source order."""
        results = read_rejects(self.run)
        password_why = read_password_classes(self.run)
        jobs: list[JobSummary] = []
        for chunk in self.run.chunks:
            users = list(written_users(self.run, chunk))
            best: dict[int, tuple[Outcome, str, Attempt]] = {}
            attempts = self._ran(chunk)
            for attempt in attempts:
                log = self._log(attempt)
                base = self._line_base(log, attempt, chunk)
                jobs.append(self._summary(chunk, attempt, log))
                for number, logged in log.lines.items():
                    line = number - base + 1
                    outcome = OUTCOME_OF[logged.outcome]
                    kept = best.get(line)
                    if kept is None or kept[0] is not Outcome.IMPORTED:
                        best[line] = (outcome, logged.message, attempt)
                if log.unparsed:
                    self.warnings.append(
                        f"job {attempt.job_id}: {len(log.unparsed)} log message(s) did not "
                        f"match the expected pattern, e.g. {log.unparsed[0][:200]!r}"
                    )
            last = attempts[-1] if attempts else None
            for user in users:
                why = password_why.get(user.source_row, "")
                results.append(self._user_result(chunk, user, best.get(user.line), last, why))
            extra = sorted(set(best) - {u.line for u in users})
            if extra:
                self.problems.append(
                    f"{chunk.file}: the log names {len(extra)} line(s) the file does not have "
                    f"(e.g. line {extra[0]}); the line numbering may be off."
                )
        results.sort(key=lambda r: r.source_row)
        return self._report(results, jobs), results

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
                verdict = reset_verdict(self.recovery, user.channels)
                password = Password.RESET if verdict.can_reset else Password.NO_CHANNEL
                if verdict.blocked is not None:
                    self.blocked[verdict.blocked.explanation] += 1
        return UserResult(
            source_row=user.source_row, legacy_id=user.legacy_id, username=user.username,
            outcome=outcome, reason=message, rule=rule, email=user.email, phone=user.phone,
            job_id=job_id, chunk=chunk.file, line=user.line, password=password,
            password_why=password_why,
        )  # fmt: skip

    def _summary(self, chunk: RunChunk, attempt: Attempt, log: JobLog) -> JobSummary:
        assert attempt.job_id is not None
        logged = {o: log.count(o) for o in ("SUCCEEDED", "SKIPPED", "FAILED")}
        missing = max(0, attempt.processed - len(log.lines))
        summary = JobSummary(
            chunk=chunk.file, users_in_file=chunk.rows, job_id=attempt.job_id,
            job_name=attempt.job_name, status=attempt.status or "", imported=attempt.imported,
            skipped=attempt.skipped, failed=attempt.failed,
            logged_succeeded=logged["SUCCEEDED"], logged_skipped=logged["SKIPPED"],
            logged_failed=logged["FAILED"], not_processed=max(0, chunk.rows - len(log.lines)),
            started=attempt.started, completed=attempt.completed,
            duration_seconds=_duration(attempt), message=attempt.message,
            log_complete=missing == 0, missing_log_lines=missing,
        )  # fmt: skip
        if missing:
            self.problems.append(
                f"job {attempt.job_id} ({chunk.file}): Cognito counted {attempt.processed:,} "
                f"users but its log has {len(log.lines):,} lines; {missing:,} user(s) have no "
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

    def _report(self, results: list[UserResult], jobs: list[JobSummary]) -> RunReport:
        counts = Counter(r.outcome for r in results)
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
            problems=self.problems,
        )  # fmt: skip
        accounted = recon.rejected + recon.duplicates + recon.written
        if accounted != recon.source_rows:
            self.problems.insert(0, (
                f"{recon.source_rows:,} source rows, but {recon.rejected:,} rejected + "
                f"{recon.duplicates:,} duplicates + {recon.written:,} written = {accounted:,}."
            ))  # fmt: skip
        processed = recon.imported + recon.skipped + recon.failed + recon.not_processed
        if processed != recon.written:
            self.problems.insert(0, (
                f"{recon.written:,} users written, but imported + skipped + failed + not "
                f"processed = {processed:,}."
            ))  # fmt: skip
        if len({r.source_row for r in results}) != len(results):
            self.problems.insert(0, "some source rows have more than one outcome.")
        must_reset = {r.username for r in results if r.password is Password.RESET}
        resets = read_resets(self.run.path)
        sent = {u for u, e in resets.items() if e["state"] == ResetState.SENT}
        maybe = {u for u, e in resets.items() if e["state"] == ResetState.SENDING}
        passwords = PasswordState(
            imported_hash=sum(1 for r in results if r.password is Password.HASH),
            must_reset=len(must_reset),
            cannot_reset=sum(1 for r in results if r.password is Password.NO_CHANNEL),
            cannot_reset_reasons=dict(self.blocked.most_common()),
            codes_sent=len(sent & must_reset),
            codes_failed=dict(Counter(e.get("reason", "") for u, e in resets.items()
                                      if e["state"] == ResetState.FAILED and u in must_reset)),
            codes_not_sent=len(must_reset - sent - maybe),
            codes_maybe_sent=len(maybe & must_reset),
            reset_reasons=dict(Counter(
                r.password_why or "no password hash in the source"
                for r in results if r.password in (Password.RESET, Password.NO_CHANNEL)
            ).most_common()),
        )  # fmt: skip
        return RunReport(
            run_dir=str(self.run.path), run_id=self.run.run_id,
            user_pool_id=self.run.user_pool_id, user_pool_name=self.run.snapshot.name,
            generated=datetime.now(UTC).isoformat(timespec="seconds"),
            tool_version=__version__, reconciliation=recon, jobs=jobs,
            job_reasons=_groups(r for r in results
                                if r.outcome in (Outcome.SKIPPED, Outcome.FAILED,
                                                 Outcome.NOT_PROCESSED)),
            reject_reasons=_groups(r for r in results if r.outcome is Outcome.REJECTED),
            duplicates=[r for r in results if r.outcome is Outcome.DUPLICATE],
            passwords=passwords,
            attention=[r for r in results if r.outcome.needs_attention],
            warnings=self.warnings,
        )  # fmt: skip


def _groups(results: Iterable[UserResult]) -> list[ReasonGroup]:
    """Users grouped by (outcome, rule), biggest group first, with a few examples each."""
    grouped: dict[tuple[Outcome, str], list[UserResult]] = defaultdict(list)
    for result in results:
        grouped[(result.outcome, result.rule)].append(result)
    groups = []
    for (outcome, rule), members in grouped.items():
        first = members[0]
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
            outcome=outcome, rule=rule, count=len(members), reason=first.reason,
            explanation=explanation, fix=fix, examples=members[:EXAMPLES_PER_REASON],
        ))  # fmt: skip
    return sorted(groups, key=lambda g: (-g.count, g.outcome.value, g.rule))
