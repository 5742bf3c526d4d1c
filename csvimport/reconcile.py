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

import csv
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csvimport import __version__
from csvimport.cognito_csv import read_rows
from csvimport.errors import ConfigError
from csvimport.files import replaced_private
from csvimport.journal import Attempt, Journal, Step
from csvimport.logs import (
    FIRST_LINE_NUMBER,
    JobLog,
    LogWait,
    detect_line_base,
    log_group,
    log_stream,
    read_job_log,
)
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
from csvimport.recovery import RecoveryPolicy, reset_verdict
from csvimport.retry import PacedClient
from csvimport.rundir import MANIFEST, PASSWORDS, REJECTS, RunChunk, RunDir
from csvimport.validate import REASONS

RESULTS = "results.jsonl"
RESETS_JOURNAL = "resets.jsonl"  # written by csvimport.resets
RESET_ENTRY_START = b'{"at": "'  # how every line of it begins (ResetJournal.record)
REPORT = "report.html"
FAILED_USERS = "failed-users.csv"
EXAMPLES_PER_REASON = 5
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
OUTCOME_OF = {"SUCCEEDED": Outcome.IMPORTED, "SKIPPED": Outcome.SKIPPED,
              "FAILED": Outcome.FAILED}  # fmt: skip
REJECT_FIX = ("Fix the value in the legacy data (or the mapping) and build again; "
              f"{FAILED_USERS} lists these users.")  # fmt: skip


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


@dataclass(frozen=True)
class WrittenUser:
    """A user written to a chunk, as the chunk file and its line map tell."""

    line: int  # data line in the chunk, 1 = first user
    source_row: int
    legacy_id: str
    username: str
    email: str
    phone: str
    channels: frozenset[str]  # verified_email / verified_phone_number
    has_hash: bool


# --- the build's files, read back: damage is refused naming the file and line ----------
BUILD_AGAIN = ("Build the run again into a new directory (csvimport build ... --out NEW_DIR); "
               "never edit or delete the files of a run directory.")  # fmt: skip


def _damaged(path: Path, line: int, problem: str) -> ConfigError:
    return ConfigError(f"{path} line {line} is damaged: {problem}", hint=BUILD_AGAIN)


def _first_bad_line(path: Path) -> int:
    """The number of the first line of ``path`` that is not UTF-8."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1  # a character cut at the very end: the reader saw it first


def build_records(
    path: Path, columns: Iterable[str], *, missing_ok: bool = False
) -> Iterator[tuple[int, dict[str, str]]]:
    """Each record of a CSV file the build wrote, with the line it ends on.

    ConfigError names the file and line of any damage: a file missing (unless
    ``missing_ok``), not UTF-8, not CSV, lacking ``columns``, or a row of the wrong length.
    """
    try:
        f = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        if missing_ok:
            return
        raise ConfigError(f"{path} is missing from the run directory", hint=BUILD_AGAIN) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=BUILD_AGAIN) from None
    with f:
        reader = csv.DictReader(f)
        try:
            lacking = [c for c in columns if c not in (reader.fieldnames or [])]
            if lacking:
                raise _damaged(path, 1, f"its header lacks {', '.join(lacking)}")
            for record in reader:
                if None in record or None in record.values():  # more or fewer fields
                    raise _damaged(path, reader.line_num, "it has the wrong number of fields")
                yield reader.line_num, record
        except UnicodeDecodeError:
            raise _damaged(path, _first_bad_line(path), "it is not UTF-8 text") from None
        except csv.Error as exc:
            raise _damaged(path, reader.line_num, f"it is not CSV ({exc})") from None


def _whole(path: Path, line: int, record: dict[str, str], name: str) -> int:
    value = record[name]
    if not value.isascii() or not value.isdigit():
        raise _damaged(path, line, f"{name} must be a whole number, not {value!r:.40}")
    return int(value)


def read_line_map(run: RunDir, chunk: RunChunk) -> dict[int, tuple[int, str]]:
    """The chunk's line map: each data line's (source row, legacy id)."""
    path = run.path / chunk.map_file
    lines: dict[int, tuple[int, str]] = {}
    for count, (n, r) in enumerate(build_records(path, ("line", "source_row", "legacy_id")), 1):
        lines[_whole(path, n, r, "line")] = (_whole(path, n, r, "source_row"), r["legacy_id"])
        if len(lines) != count:
            raise _damaged(path, n, f"it maps line {r['line']} a second time")
    if set(lines) != set(range(1, chunk.rows + 1)):
        raise ConfigError(
            f"{path} is damaged: it maps {len(lines):,} lines, but {chunk.file} has "
            f"{chunk.rows:,} users (lines 1 to {chunk.rows:,})",
            hint=BUILD_AGAIN,
        )
    return lines


def written_users(run: RunDir, chunk: RunChunk) -> Iterator[WrittenUser]:
    """The chunk's users in file order; RefusedError when its file or line map is missing
    or changed since the build, ConfigError when the line map is damaged."""
    run.verify_file(chunk.map_file)
    lines = read_line_map(run, chunk)
    rows = read_rows(run.verify_file(chunk.file))
    col = {name: i for i, name in enumerate(next(rows, []))}

    def get(values: list[str], name: str) -> str:
        i = col.get(name)
        return values[i].strip() if i is not None and i < len(values) else ""

    for number, values in enumerate(rows, start=1):
        source_row, legacy_id = lines.get(number, (0, ""))
        # A channel Cognito can send a code to: a value, marked verified.
        channels = {name for attr, name in (("email", "verified_email"),
                                           ("phone_number", "verified_phone_number"))
                    if get(values, attr)
                    and get(values, f"{attr}_verified").lower() == "true"}  # fmt: skip
        yield WrittenUser(
            line=number, source_row=source_row,
            legacy_id=legacy_id, username=get(values, "cognito:username"),
            email=get(values, "email"), phone=get(values, "phone_number"),
            channels=frozenset(channels), has_hash=bool(get(values, "password_hash")),
        )  # fmt: skip


def read_rejects(run: RunDir) -> list[UserResult]:
    """One result per refused source row (a row may break several rules: all are named)."""
    by_row: dict[int, list[dict[str, str]]] = defaultdict(list)
    path = run.verify_file(REJECTS)
    columns = ("source_row", "legacy_id", "attribute", "rule", "reason", "value")
    for line, record in build_records(path, columns):
        if record.get("collided_with_row"):
            _whole(path, line, record, "collided_with_row")
        by_row[_whole(path, line, record, "source_row")].append(record)
    results = []
    for row, records in sorted(by_row.items()):
        first = records[0]
        duplicate = first["rule"] == "duplicate"
        values = {r["attribute"]: r["value"] for r in records}
        results.append(UserResult(
            source_row=row, legacy_id=first["legacy_id"],
            username=values.get("cognito:username", ""),
            outcome=Outcome.DUPLICATE if duplicate else Outcome.REJECTED,
            reason="; ".join(dict.fromkeys(
                f"{r['attribute']}: {r['reason']}" if r["attribute"] else r["reason"]
                for r in records)),
            rule=first["rule"], email=values.get("email", ""),
            phone=values.get("phone_number", ""),
            collided_with_row=int(first["collided_with_row"]) if duplicate
            and first.get("collided_with_row") else None,
        ))  # fmt: skip
    return results


def read_password_classes(run: RunDir) -> dict[int, str]:
    """Each written user's hash classification by source row ("status: reason"); empty
    when the build mapped no password_hash."""
    if PASSWORDS not in run.files:
        return {}
    path = run.verify_file(PASSWORDS)
    records = build_records(path, ("source_row", "password", "reason"))
    return {_whole(path, n, r, "source_row"): ": ".join(filter(None, (r["password"], r["reason"])))
            for n, r in records}  # fmt: skip


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
                "csvimport/logs.py); this report uses the log's numbering."
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


def read_reset_entries(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete line of ``resets.jsonl`` in order.

    A last line without its newline that starts like an entry is torn (the wave was
    killed while writing it) and is left out: it was either an intent whose call was never
    made, or an outcome whose intent line stands before it. Anything else that is not an
    entry is damage no crash explains: ConfigError names its line, rather than a user
    silently losing their record.
    """
    path = run_dir / RESETS_JOURNAL
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}",
            hint=f"{RESETS_JOURNAL} must be a file csvimport can read.",
        ) from None
    *lines, tail = data.split(b"\n")
    if tail and not (RESET_ENTRY_START.startswith(tail) or tail.startswith(RESET_ENTRY_START)):
        lines.append(tail)  # not the start of an entry: damage, reported below
    entries = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        entry = _reset_entry(raw)
        if entry is None:
            raise ConfigError(
                f"{path} line {number} is damaged: it is not a reset-wave record",
                hint="A crash can only tear the last line. Restore the file from a backup, "
                "or delete the damaged line: a user whose only record it was then counts as "
                "never sent a code, and the next `csvimport resets` sends them one.",
            )
        entries.append(entry)
    return entries


def _reset_entry(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not (isinstance(entry, dict) and isinstance(entry.get("username"), str)
            and isinstance(entry.get("at"), str) and entry.get("state") in set(ResetState)
            and isinstance(entry.get("reason", ""), str)):  # fmt: skip
        return None
    return entry


def read_resets(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The last reset-wave outcome per username."""
    return {entry["username"]: entry for entry in read_reset_entries(run_dir)}


# --- files ------------------------------------------------------------------------------
def neutralise(value: str) -> str:
    """Make a value safe to open in a spreadsheet: no cell starts a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def write_results(run_dir: Path, results: list[UserResult]) -> Path:
    """``results.jsonl``: one JSON object per source user, in source order."""
    path = run_dir / RESULTS
    with replaced_private(path) as f:
        for result in results:
            f.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    return path


RESULTS_DAMAGED_HINT = ("Run `csvimport report {run_dir}` again to rewrite it (the report "
                        "writes it whole); do not edit it by hand.")  # fmt: skip


def read_results(run: RunDir, *, needed_for: str) -> list[UserResult]:
    """Every user's result from ``results.jsonl``, in the order the report wrote them.

    ConfigError when the report has not written it yet (``needed_for`` says what needs
    it), when a line is not a result (naming the line), or when it does not hold one
    result per source user; the hint says how to rewrite it.
    """
    run_dir = run.path
    path = run_dir / RESULTS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{run_dir} has no {RESULTS}: {needed_for}",
            hint=f"Run `csvimport report {run_dir}` first.",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}",
                          hint=RESULTS_DAMAGED_HINT.format(run_dir=run_dir)) from None  # fmt: skip
    results = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            results.append(UserResult.from_json(json.loads(raw)))
        except UnicodeDecodeError:
            problem = "it is not UTF-8 text"
        except json.JSONDecodeError:
            problem = "it is not JSON"
        except ValueError as exc:
            problem = str(exc)
        else:
            continue
        raise ConfigError(f"{path} line {number} is damaged: {problem}",
                          hint=RESULTS_DAMAGED_HINT.format(run_dir=run_dir))  # fmt: skip
    source_rows = (run.manifest.get("counts") or {}).get("source_rows")
    if isinstance(source_rows, int) and len(results) != source_rows:
        raise ConfigError(
            f"{path} is damaged: it holds {len(results):,} users' results, but the run has "
            f"{source_rows:,} source users",
            hint=RESULTS_DAMAGED_HINT.format(run_dir=run_dir),
        )
    return results


FAILED_COLUMNS = ["source_row", "legacy_id", "username", "email", "phone", "outcome",
                  "reason", "job_id", "chunk", "line"]  # fmt: skip


def write_failed_users(run_dir: Path, results: list[UserResult]) -> Path:
    """``failed-users.csv``: every user not imported, for people and spreadsheets."""
    path = run_dir / FAILED_USERS
    with replaced_private(path) as f:
        writer = csv.writer(f)
        writer.writerow(FAILED_COLUMNS)
        for r in results:
            if r.outcome.needs_attention:
                data = r.to_json()
                writer.writerow([neutralise("" if data[c] is None else str(data[c]))
                                 for c in FAILED_COLUMNS])  # fmt: skip
    return path


RETRY_SOURCE = "retry-source.csv"
RETRY_OUTCOMES = frozenset({Outcome.REJECTED, Outcome.FAILED, Outcome.NOT_PROCESSED})


def write_retry_source(
    run: RunDir, results: list[UserResult], *, source: str | None = None,
    encoding: str | None = None,
) -> Path | None:  # fmt: skip
    """``retry-source.csv``: the users who can still be imported once fixed (rejected,
    failed, not processed), as the legacy source had them, ready to fix and build again.

    A file source is read again from its recorded path when its bytes still match the
    manifest, with the encoding and delimiter the build used (``encoding`` overrides the
    former); a database needs ``source`` (its URL: passwords are never stored). Rows the
    source garbled (a stray quote, a row with too few or too many fields) are left out:
    their values are not the user's, so they must be fixed in the source itself, where
    rejects.csv names their lines. Returns None when no user needs a retry; raises
    RefusedError when the source cannot be read. An earlier report's retry-source.csv
    never outlives this call: it is replaced, or removed when none is written (an error
    included), since it no longer matches.
    """
    path = run.path / RETRY_SOURCE
    try:
        written = _write_retry_source(run, results, source=source, encoding=encoding)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if written is None:
        path.unlink(missing_ok=True)
    return written


def _write_retry_source(
    run: RunDir, results: list[UserResult], *, source: str | None, encoding: str | None
) -> Path | None:
    from csvimport.errors import RefusedError
    from csvimport.redact import is_masked
    from csvimport.sources.base import ROW, SOURCE_RULE, SourceSpec
    from csvimport.sources.opener import open_source

    wanted = {r.source_row for r in results if r.outcome in RETRY_OUTCOMES}
    if not wanted:
        return None
    recorded = run.manifest.get("source", {})
    if not isinstance(recorded, dict):
        raise ConfigError(f"{run.path / MANIFEST} is damaged: its source is not an object",
                          hint=BUILD_AGAIN)  # fmt: skip
    url = str(recorded.get("url") or "")
    # A database URL is stored with its credentials masked; one without any works as is.
    location = source or recorded.get("path") or (url if url and not is_masked(url) else None)
    if not location:
        raise RefusedError(
            "the legacy source is a database and its URL is stored without its credentials "
            "(they never are)",
            hint="Pass --source with the database URL to write retry-source.csv.",
        )
    as_built = source is None and "path" in recorded
    opened = open_source(SourceSpec(
        location, table=recorded.get("table"), query=recorded.get("query"),
        encoding=encoding or recorded.get("encoding") or "utf-8",
        delimiter=recorded.get("delimiter") if as_built else None,
    ))  # fmt: skip
    if as_built and opened.fingerprint().get("sha256") != recorded.get("sha256"):
        raise RefusedError(
            f"{location} changed since the build, so its rows no longer match the run",
            hint="Pass --source with the file exactly as it was built from.",
        )
    path = run.path / RETRY_SOURCE
    with replaced_private(path) as f:
        writer = csv.writer(f)
        columns = opened.columns()
        writer.writerow(columns)
        for chunk in opened.chunks():
            picked = chunk[chunk[ROW].isin(wanted)]
            if SOURCE_RULE in picked.columns:
                picked = picked[picked[SOURCE_RULE] == ""]
            writer.writerows(picked[columns].itertuples(index=False, name=None))
    return path
