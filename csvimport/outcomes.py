"""What happened to every user of a run: the data ``csvimport report`` writes and renders.

``csvimport.report.reconcile`` builds a :class:`RunReport` from the run directory (rejects, line
maps, journal, the jobs' CloudWatch logs); ``csvimport.report.render`` renders it as HTML. These
classes hold real values, personal data included: masking is the renderer's job.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """Where a source user ended up."""

    REJECTED = "rejected"  # refused by the build: Cognito would not take the row
    DUPLICATE = "duplicate"  # dropped by the build: another source row is the same user
    IMPORTED = "imported"  # [SUCCEEDED] in the job's log
    SKIPPED = "skipped"  # [SKIPPED]: e.g. the user already exists
    FAILED = "failed"  # [FAILED]: Cognito refused the row
    NOT_PROCESSED = "not processed"  # written, but its job stopped, failed early or expired
    # Left out of the import by `build --password-fallback migrate` (deferred.csv): the
    # pool's user migration trigger creates them at their first sign-in, checking the
    # password against their legacy hash. Planned, so no attention needed.
    DEFERRED = "deferred"

    @property
    def needs_attention(self) -> bool:
        return self not in (Outcome.IMPORTED, Outcome.DEFERRED)


class Password(StrEnum):
    """How a user will sign in after the import."""

    HASH = "imported hash"  # came with a password hash Cognito imported
    RESET = "must reset"  # imported without a password: RESET_REQUIRED
    # must reset but Cognito cannot send them a code (csvimport.passwords.recovery.Blocked says why)
    NO_CHANNEL = "cannot reset"
    NONE = "not in Cognito"  # not imported
    MIGRATE = "migrates at first sign-in"  # deferred: the user migration trigger creates them


class ResetState(StrEnum):
    """A user's state in a run's ``resets.jsonl`` (``csvimport resets``): their last line wins."""

    # The intent, written and fsynced before AdminResetUserPassword is called: as a
    # user's last line it means the wave stopped between the call and its outcome, so the
    # code may have been sent.
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # Cognito refused this user (reason)
    NOT_SENT = "not sent"  # Cognito refused the call for now (daily limit, throttling)
    SKIPPED = "skipped"  # cannot reset: no channel, admin-only recovery, SMS not set up


@dataclass(frozen=True)
class UserResult:
    """One source user's outcome (one line of ``results.jsonl``)."""

    source_row: int
    legacy_id: str
    username: str
    outcome: Outcome
    reason: str  # plain language; Cognito's own log message for skipped/failed
    rule: str = ""  # a stable key for grouping: a build rule, or a log reason key
    email: str = ""
    phone: str = ""
    job_id: str | None = None
    chunk: str | None = None
    line: int | None = None  # the user's data line in the chunk file (1 = first user)
    collided_with_row: int | None = None  # duplicates: the source row that was kept
    password: Password = Password.NONE
    # The build's verdict on the user's password hash (passwords.csv), e.g. "no hash: no
    # password hash" or "out of bounds: BCRYPT: cost 13 ..."; "" when none was mapped.
    password_why: str = ""

    def to_json(self) -> dict[str, Any]:
        # Every field is a scalar or an enum: a shallow copy, where asdict's deep copy of
        # each value cost a report of 100,000 users about a second.
        data = {name: getattr(self, name) for name in _RESULT_FIELD_NAMES}
        data["outcome"] = self.outcome.value
        data["password"] = self.password.value
        return data

    def to_json_line(self) -> str:
        """``json.dumps(self.to_json(), ensure_ascii=False)``, several times faster: the
        report writes one per user (``tests/test_reconcile.py`` proves them equal)."""
        s, n = _json_string, _json_null_or
        return (
            f'{{"source_row": {self.source_row}, "legacy_id": {s(self.legacy_id)}, '
            f'"username": {s(self.username)}, "outcome": {s(self.outcome.value)}, '
            f'"reason": {s(self.reason)}, "rule": {s(self.rule)}, "email": {s(self.email)}, '
            f'"phone": {s(self.phone)}, "job_id": {n(self.job_id, s)}, '
            f'"chunk": {n(self.chunk, s)}, "line": {n(self.line, str)}, '
            f'"collided_with_row": {n(self.collided_with_row, str)}, '
            f'"password": {s(self.password.value)}, "password_why": {s(self.password_why)}}}'
        )

    @classmethod
    def from_json(cls, data: Any) -> UserResult:
        """Read back what :meth:`to_json` wrote; ValueError says, for people, what is wrong."""
        if not isinstance(data, dict):
            shape = JSON_KINDS.get(type(data).__name__, type(data).__name__)
            raise ValueError(f"it holds a JSON {shape}, not a user's result")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        values = {f.name: data[f.name] for f in fields(cls)}  # keys of a later version: ignored
        for name, (kind, nullable) in _RESULT_FIELDS.items():
            value = values[name]
            # type(), not isinstance(): JSON's true is no whole number here
            if type(value) is not kind and not (value is None and nullable):
                what = "a whole number" if kind is int else "text"
                raise ValueError(f"{name} must be {what}, not {value!r:.40}")
        for name, enum in (("outcome", Outcome), ("password", Password)):
            if values[name] not in set(enum):
                choices = ", ".join(repr(e.value) for e in enum)
                raise ValueError(f"{name} {values[name]!r:.40} is not one of {choices}")
            values[name] = enum(values[name])
        return cls(**values)


JSON_KINDS = {"list": "array", "str": "string", "int": "number", "float": "number",
              "bool": "boolean", "NoneType": "null"}  # fmt: skip
# How each field of a result is stored: its JSON type, and whether it may be null.
_RESULT_FIELDS: dict[str, tuple[type, bool]] = {
    "source_row": (int, False), "legacy_id": (str, False), "username": (str, False),
    "outcome": (str, False), "reason": (str, False), "rule": (str, False),
    "email": (str, False), "phone": (str, False), "job_id": (str, True), "chunk": (str, True),
    "line": (int, True), "collided_with_row": (int, True), "password": (str, False),
    "password_why": (str, False),
}  # fmt: skip


_RESULT_FIELD_NAMES = tuple(f.name for f in fields(UserResult))
# json's own string encoder (C), as json.dumps(..., ensure_ascii=False) uses it.
_json_string: Callable[[str], str] = json.encoder.encode_basestring
json_string = _json_string  # a str as json.dumps(..., ensure_ascii=False) writes it


def _json_null_or(value: Any, encode: Callable[[Any], str]) -> str:
    return "null" if value is None else encode(value)


@dataclass(frozen=True)
class JobSummary:
    """One import job of the run: what Cognito's counters say and what its log says."""

    chunk: str
    users_in_file: int
    job_id: str
    job_name: str
    status: str
    imported: int  # DescribeUserImportJob's counters
    skipped: int
    failed: int
    logged_succeeded: int  # lines parsed from the log
    logged_skipped: int
    logged_failed: int
    not_processed: int  # users of the file with no log line (job ended early)
    started: str | None = None
    completed: str | None = None
    duration_seconds: float | None = None
    message: str | None = None  # Cognito's CompletionMessage
    log_complete: bool = True  # parsed lines == imported + skipped + failed
    missing_log_lines: int = 0  # counted by Cognito but not (yet) in the log

    @property
    def counters_match_log(self) -> bool:
        return (self.imported, self.skipped, self.failed) == (
            self.logged_succeeded,
            self.logged_skipped,
            self.logged_failed,
        )


@dataclass(frozen=True)
class ReasonGroup:
    """Users who share one reason, with what it means and how to fix it."""

    outcome: Outcome
    rule: str
    count: int
    reason: str  # the message or rule text as the source said it
    explanation: str  # plain language, for non-engineers
    fix: str  # what to do; empty when csvimport does not know this reason
    examples: list[UserResult] = field(default_factory=list)  # a few, not all


@dataclass(frozen=True)
class Reconciliation:
    """The sums that must hold; ``problems`` lists every one that does not."""

    source_rows: int
    rejected: int
    duplicates: int
    written: int
    imported: int
    skipped: int
    failed: int
    not_processed: int
    # left out of the import, to migrate at first sign-in (build --password-fallback migrate)
    deferred: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def in_cognito(self) -> int:
        return self.imported

    @property
    def need_attention(self) -> int:
        return self.source_rows - self.imported - self.deferred


@dataclass(frozen=True)
class PasswordState:
    imported_hash: int
    must_reset: int
    cannot_reset: int  # must reset, but Cognito cannot send them a code (recovery.py)
    # `csvimport resets` waves so far (resets.jsonl): users sent a code, users whose
    # last attempt failed (by reason), users who must reset and got no code yet, and
    # users whose code may have been sent (a wave stopped between the call and its record).
    codes_sent: int = 0
    codes_failed: dict[str, int] = field(default_factory=dict)
    codes_not_sent: int = 0
    codes_maybe_sent: int = 0
    # why users imported without a usable hash must reset (passwords.csv), by reason
    reset_reasons: dict[str, int] = field(default_factory=dict)
    # why those who cannot reset cannot (csvimport.passwords.recovery.Blocked, in words), by reason
    cannot_reset_reasons: dict[str, int] = field(default_factory=dict)
    # users left out of the import who migrate at first sign-in (deferred.csv), and how
    # many of them by their legacy hash's scheme
    migrate: int = 0
    migrate_schemes: dict[str, int] = field(default_factory=dict)


# A report keeps this many users needing attention, and duplicates, for its tables (the
# first in source order); the result files beside it hold them all.
LISTED_USERS = 5_000


@dataclass
class FollowupState:
    """What `csvimport followups` did to the run's imported users (``followups.jsonl``):
    memberships added by group, users disabled, groups created, calls that failed, and
    calls that may have been made or wait for the next pass."""

    added: dict[str, int] = field(default_factory=dict)
    disabled: int = 0
    created_groups: int = 0
    failed: int = 0
    pending: int = 0


@dataclass
class UndoState:
    """What `csvimport undo` did to the run's imported users (``undo.jsonl``), and what its
    latest plan (``undo-plan.jsonl``) left in the pool and why; ``planned`` counts the
    deletions that plan holds (a dry run plans without deleting)."""

    deleted: int = 0
    already_gone: int = 0
    failed: int = 0
    pending: int = 0  # an intent with no outcome, or throttled: the next undo settles it
    planned: int = 0
    left: dict[str, int] = field(default_factory=dict)  # why -> users left in the pool


@dataclass(frozen=True)
class AdoptionPoint:
    """One ``csvimport verify`` of the run, as its summary counted the pool (counts only)."""

    at: str  # ISO time of the verify, UTC
    must_reset: int  # written users imported without a usable password (RESET_REQUIRED)
    completed_reset: int  # of them, CONFIRMED at this verify
    deferred: int  # users left to the migration function
    migrated: int  # of them, created by the migration function by this verify
    waiting: int  # of them, not in the pool yet
    disabled: int  # the run's users in the pool, disabled
    missing: int  # written users not in the pool

    @property
    def date(self) -> str:
        return self.at[:10]


@dataclass(frozen=True)
class RunReport:
    """Everything the report shows, for one run directory."""

    run_dir: str
    run_id: str
    user_pool_id: str
    user_pool_name: str
    generated: str  # ISO timestamp
    tool_version: str
    reconciliation: Reconciliation
    jobs: list[JobSummary]
    job_reasons: list[ReasonGroup]  # why Cognito skipped or failed users, from the logs
    reject_reasons: list[ReasonGroup]  # why the build refused users
    duplicates: list[UserResult]
    passwords: PasswordState
    attention: list[UserResult]  # every user not imported, in source order
    warnings: list[str] = field(default_factory=list)  # e.g. line-number base disagreement
    # One point per `csvimport verify` of the run, oldest first (verify/*.summary.json).
    adoption: list[AdoptionPoint] = field(default_factory=list)
    followups: FollowupState | None = None  # None: no follow-up pass has run
    undo: UndoState | None = None  # None: `csvimport undo` never ran, not even dry
