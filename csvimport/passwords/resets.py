"""``csvimport resets``: forced password-reset waves for users imported without a password.

Users a CSV import brings in without a usable password hash are ``RESET_REQUIRED``: they
cannot sign in until they reset their password (facts §6). A wave sends each of them a
reset code with ``AdminResetUserPassword``:

- planned first, from the report's ``results.jsonl`` (run ``csvimport report`` before):
  who must reset, through which channel (the pool's account-recovery order and the
  user's verified email or phone), and who cannot reset at all (among them the users the
  mapping's ``[legacy].disabled`` says the legacy system had disabled: never sent a
  code); users the build deferred (``--password-fallback migrate``) are never sent a
  code: they are not in the pool, and migrate at their first sign-in with their old
  password;
- checked against capacity: Cognito's default email sender sends 50 emails a day per
  account, so a wave larger than what is left of that is refused unless
  ``max_per_day`` says otherwise; SMS needs the pool's SMS configuration;
- paced (``rate``, well under the 30 requests/second the account shares with its users'
  own ForgotPassword calls), retried on throttling by botocore (``csvimport.retry``), and
  resumable: ``resets.jsonl`` in the run directory records, for each user, the intent to
  send (on disk before the call) and then the outcome (sent, failed with the reason, not
  sent for now, or skipped because they cannot reset; one appended line each), so a
  re-run never sends a user a second code unless ``resend`` is asked for. A user whose
  intent has no outcome (the wave was killed between the call and its record) may have
  been sent a code: they are listed as such and not sent another unless ``resend``.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.exceptions

from csvimport.errors import THROTTLING_CODES, ConfigError, RefusedError, ServiceError
from csvimport.outcomes import Outcome, Password, ResetState
from csvimport.passjournal import append_entry, cut_torn_tail, iter_entries
from csvimport.passwords.recovery import Blocked, Channel, RecoveryPolicy, reset_verdict
from csvimport.retry import USER_ACCOUNT_RECOVERY, PacedClient, error_code, error_message
from csvimport.rundir import (
    RESULTS,
    RESULTS_DAMAGED_HINT,
    RunDir,
    iter_results,
    legacy_disabled_rows,
    written_users,
)

# facts §6: Cognito's default email sender sends at most 50 emails a day per account.
DEFAULT_SENDER_EMAILS_PER_DAY = 50
# facts §6: the UserAccountRecovery quota is 30 requests/second per account, shared with
# the users' own ForgotPassword calls: a wave takes a small part of it by default.
DEFAULT_RATE = USER_ACCOUNT_RECOVERY.rate
# GUESS: the daily email limit's error is a LimitExceededException whose message says
# "daily email limit" (facts §6 quotes "Exceeded daily email limit ...").
DAILY_LIMIT_CODES = frozenset({"LimitExceededException"})

RESETS_JOURNAL = "resets.jsonl"  # the wave's journal, in the run directory


@dataclass(frozen=True, slots=True)  # slots: a wave can plan millions of them
class Candidate:
    """An imported user who must reset their password."""

    username: str
    legacy_id: str
    channel: Channel | None  # None: cannot reset, ``blocked`` says why
    blocked: Blocked | None = None

    @property
    def why_not(self) -> str:
        """Why the user cannot reset, in words for people ("" when they can)."""
        return self.blocked.explanation if self.blocked is not None else ""


@dataclass
class ResetPlan:
    to_send: list[Candidate]
    already_sent: int
    cannot_reset: list[Candidate]
    left_out: int  # by --only or --limit
    email_allowance: int | None  # emails csvimport may still send today; None: no limit
    refusal: RefusedError | None = None  # why the wave may not go out as planned
    # an earlier wave stopped between their call and its outcome: not sent again
    # unless resend (then they are in to_send)
    maybe_sent: list[Candidate] = field(default_factory=list)
    # names --only gave that are no imported user who must reset (a typo, another run)
    unknown_only: list[str] = field(default_factory=list)
    # users left out of the import to migrate at first sign-in: never sent a code
    deferred: int = 0
    # names --only gave that are such users
    deferred_only: list[str] = field(default_factory=list)

    @property
    def emails(self) -> int:
        return sum(1 for c in self.to_send if c.channel is Channel.EMAIL)

    @property
    def sms(self) -> int:
        return sum(1 for c in self.to_send if c.channel is Channel.PHONE)

    def to_json(self) -> dict[str, Any]:
        return {
            "to_send": len(self.to_send), "emails": self.emails, "sms": self.sms,
            "already_sent": self.already_sent,
            "may_have_been_sent": {"count": len(self.maybe_sent),
                                   "usernames": [c.username for c in self.maybe_sent]},
            "cannot_reset": dict(Counter(c.why_not for c in self.cannot_reset).most_common()),
            "left_out": self.left_out, "email_allowance": self.email_allowance,
            "refused": self.refusal.message if self.refusal is not None else None,
            "unknown_only": self.unknown_only,
            "deferred": self.deferred, "deferred_only": self.deferred_only,
        }  # fmt: skip


@dataclass
class WaveResult:
    sent: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # reason -> users
    not_sent: int = 0  # left for another day / another run
    stopped_because: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": dict(self.failed.most_common()),
                "not_sent": self.not_sent, "stopped_because": self.stopped_because}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LastRecord:
    """A user's last line in ``resets.jsonl``, as much of it as a wave needs."""

    state: ResetState
    channel: str | None
    day: str  # the UTC date of the line, ISO
    reason: str


class ResetJournal:
    """``resets.jsonl``: one appended, fsynced line per intent and per outcome; the last
    line for a user wins. A torn last line (a crash mid-write) is ignored when read and
    cut off before the next line is written, so that line starts on its own.

    Only each user's last line is kept, and the emails sent per day: a wave of millions of
    users writes two lines each, gigabytes as dicts.
    """

    def __init__(self, run: RunDir) -> None:
        self.path = run.path / RESETS_JOURNAL
        self._last: dict[str, LastRecord] = {}
        self._emails_sent: Counter[str] = Counter()  # day -> emails sent that day
        self._shared: dict[str, str] = {}  # one copy of each day, channel and reason
        for entry in iter_reset_entries(run.path):
            self._note(entry)
        self._tail_checked = False

    def last(self) -> Mapping[str, LastRecord]:
        """Each user's last record, by username (live: a record changes it)."""
        return self._last

    def emails_sent_on(self, day: str) -> int:
        """Emails csvimport sent (or may have sent) on ``day`` (UTC, ISO date)."""
        pending = sum(1 for r in self._last.values()  # an intent last: it may have gone out
                      if r.state is ResetState.SENDING and r.channel == Channel.EMAIL
                      and r.day == day)  # fmt: skip
        return self._emails_sent[day] + pending

    def record(
        self, username: str, state: ResetState, *, channel: str | None, reason: str = ""
    ) -> None:
        """Append one line and fsync it (and the folder when the file is new)."""
        if not self._tail_checked:
            cut_torn_tail(self.path)
            self._tail_checked = True
        self._note(append_entry(self.path, {"username": username, "state": state.value,
                                            "channel": channel, "reason": reason}))  # fmt: skip

    def _note(self, entry: dict[str, Any]) -> None:
        state = ResetState(entry["state"])
        channel = entry.get("channel")
        day = str(entry["at"])[:10]
        if state is ResetState.SENT and channel == Channel.EMAIL:
            self._emails_sent[day] += 1
        share = self._shared.setdefault
        self._last[entry["username"]] = LastRecord(
            state, share(channel, channel) if isinstance(channel, str) else None,
            share(day, day), share(entry.get("reason", ""), entry.get("reason", "")),
        )  # fmt: skip


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


# The verified channels a written user can have, as written_users() names them: every
# user of a run has one of these four, so a chunk keeps one byte a user (_verified_channels).
_CHANNEL_SETS: tuple[frozenset[str], ...] = (
    frozenset(), frozenset({"verified_email"}), frozenset({"verified_phone_number"}),
    frozenset({"verified_email", "verified_phone_number"}),
)  # fmt: skip


def candidates(
    run: RunDir, pool: dict[str, Any], *, deferred: set[str] | None = None
) -> list[Candidate]:
    """Imported users who must reset, in the order of ``results.jsonl``, each with the
    channel their code will go through. ``deferred`` gets the usernames of the users the
    build left out to migrate at first sign-in: never candidates, they are not in the pool.

    The results are read one at a time and the chunks' users kept as one byte each: a run
    of millions of users holds in memory only the users who must reset.
    """
    results = iter_results(run, needed_for="resets are planned from the report's results")
    # Read its first line before the chunks: a run the report has not seen yet is told so
    # at once, not after reading millions of users.
    first = next(results, None)
    channels = _verified_channels(run)
    disabled = legacy_disabled_rows(run)  # never sent a code: the legacy system shut them out
    policy = RecoveryPolicy.of_pool(pool)
    verdicts = [reset_verdict(policy, verified) for verified in _CHANNEL_SETS]
    found: list[Candidate] = []
    for result in itertools.chain([first] if first is not None else [], results):
        if result.outcome is Outcome.DEFERRED:
            if deferred is not None:
                deferred.add(result.username)
            continue
        if result.outcome is not Outcome.IMPORTED or result.password is Password.HASH:
            continue
        codes = channels.get(result.chunk or "")
        line = result.line or 0
        code = codes[line] if codes is not None and 0 < line < len(codes) else 0
        if not code:
            raise ConfigError(
                f"{run.path / RESULTS} is damaged: {result.username!r} is imported from "
                f"{result.chunk} line {result.line}, which is no user of this run",
                hint=RESULTS_DAMAGED_HINT.format(run_dir=run.path),
            )
        if result.source_row in disabled:
            found.append(Candidate(result.username, result.legacy_id, None,
                                   Blocked.LEGACY_DISABLED))  # fmt: skip
            continue
        verdict = verdicts[code - 1]
        found.append(Candidate(result.username, result.legacy_id, verdict.channel,
                               verdict.blocked))  # fmt: skip
    return found


def _verified_channels(run: RunDir) -> dict[str, bytearray]:
    """Each written user's verified channels by chunk file, indexed by line: one plus the
    index of the user's set in _CHANNEL_SETS; 0 where no user has that line."""
    by_file: dict[str, bytearray] = {}
    for chunk in run.chunks:
        codes = bytearray(chunk.rows + 1)
        for user in written_users(run, chunk):
            if user.line >= len(codes):
                codes.extend(bytes(user.line + 1 - len(codes)))
            codes[user.line] = 1 + _CHANNEL_SETS.index(user.channels)
        by_file[chunk.file] = codes
    return by_file


ONLY_HINT = "Give --only a text file (UTF-8) with one username a line."


def read_usernames(path: Path) -> list[str]:
    """The usernames of an ``--only`` file: one a line, blank lines ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", hint=ONLY_HINT) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=ONLY_HINT) from None
    return [name.strip() for name in text.splitlines() if name.strip()]


def plan_resets(
    run: RunDir, pool: dict[str, Any], journal: ResetJournal, *, limit: int | None = None,
    only: Iterable[str] | None = None, resend: bool = False, max_per_day: int | None = None,
    enforce: bool = True,
) -> ResetPlan:  # fmt: skip
    """Who gets a code in this wave, and who cannot; refuse a wave the email sender
    cannot carry today (unless ``max_per_day`` caps it). With ``enforce`` False the
    refusal is only kept in ``plan.refusal`` (a dry run shows the plan, then it)."""
    migrating: set[str] = set()
    everyone = candidates(run, pool, deferred=migrating)
    last = journal.last()
    wanted = set(only) if only is not None else None
    named: set[str] = set()  # the names of --only that are candidates
    to_send, cannot, maybe, left_out, already = [], [], [], 0, 0
    for candidate in everyone:
        if wanted is not None:
            if candidate.username not in wanted:
                left_out += 1
                continue
            named.add(candidate.username)
        if candidate.channel is None:
            cannot.append(candidate)
        elif resend:
            to_send.append(candidate)
        elif (record := last.get(candidate.username)) and record.state is ResetState.SENT:
            already += 1
        elif record and record.state is ResetState.SENDING:
            maybe.append(candidate)
        else:
            to_send.append(candidate)
    if limit is not None and len(to_send) > limit:
        left_out += len(to_send) - limit
        to_send = to_send[:limit]
    sender = (pool.get("EmailConfiguration") or {}).get("EmailSendingAccount", "COGNITO_DEFAULT")
    allowance = None
    if sender == "COGNITO_DEFAULT" or max_per_day is not None:
        per_day = max_per_day if max_per_day is not None else DEFAULT_SENDER_EMAILS_PER_DAY
        allowance = max(0, per_day - journal.emails_sent_on(_today()))
    unknown = sorted((wanted or set()) - named - migrating)
    plan = ResetPlan(to_send, already, cannot, left_out, allowance, maybe_sent=maybe,
                     unknown_only=unknown, deferred=len(migrating),
                     deferred_only=sorted((wanted or set()) & migrating))  # fmt: skip
    if allowance is not None and max_per_day is None and plan.emails > allowance:
        plan.refusal = RefusedError(
            f"this wave would send {plan.emails:,} emails, but the pool sends email with "
            f"Cognito's default sender, which allows {DEFAULT_SENDER_EMAILS_PER_DAY} a day per "
            f"AWS account ({allowance} left today as far as csvimport knows)",
            hint="Configure the pool to send email with Amazon SES (EmailSendingAccount "
            "DEVELOPER) for a wave this size; or send a pilot with --limit N; or pass "
            "--max-per-day N to send N a day and run `csvimport resets` again each day.",
        )
        if enforce:
            raise plan.refusal
    return plan


def run_wave(
    run: RunDir, client: Any, plan: ResetPlan, journal: ResetJournal, *, rate: float = DEFAULT_RATE,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> WaveResult:  # fmt: skip
    """Send the plan's codes at most ``rate`` per second, recording each intent before its
    call and each outcome after it.

    An answer that says no code went out (an error from Cognito, throttling that outlasted
    the retries) is recorded as such. A 5xx answer, a lost connection or a kill leaves
    the intent alone: Cognito may have sent the code, so the user is not sent another
    unless ``resend``."""
    # The recovery quota is per account, not per pool: ``rate`` is the wave's share of it.
    paced = PacedClient(client, rates={USER_ACCOUNT_RECOVERY: rate})
    result = WaveResult()
    last = journal.last()
    for candidate in plan.cannot_reset:  # recorded once, with why, not at every run
        before = last.get(candidate.username)
        if before is None or (before.state, before.reason) != (ResetState.SKIPPED,
                                                               candidate.why_not):  # fmt: skip
            journal.record(candidate.username, ResetState.SKIPPED, channel=None,
                           reason=candidate.why_not)  # fmt: skip
    emails_left = plan.email_allowance
    total = len(plan.to_send)
    for done, candidate in enumerate(plan.to_send):
        if candidate.channel is Channel.EMAIL and emails_left is not None and emails_left <= 0:
            result.not_sent = total - done
            result.stopped_because = "today's email allowance is used up"
            break
        # The turn first, then the intent, then the call: a wave killed while it waits
        # leaves no intent behind.
        paced.wait_turn("admin_reset_user_password", run.user_pool_id)
        journal.record(candidate.username, ResetState.SENDING, channel=candidate.channel)
        try:
            paced.send("admin_reset_user_password", UserPoolId=run.user_pool_id,
                       Username=candidate.username)  # fmt: skip
        except botocore.exceptions.ClientError as exc:
            code, said = error_code(exc), error_message(exc)
            reason = f"{code}: {said}"
            if code in DAILY_LIMIT_CODES and "limit" in said.lower():
                journal.record(candidate.username, ResetState.NOT_SENT,
                               channel=candidate.channel, reason=reason)  # fmt: skip
                result.not_sent = total - done
                result.stopped_because = f"Cognito refused more email today: {said}"
                break
            journal.record(candidate.username, ResetState.FAILED, channel=candidate.channel,
                           reason=reason)  # fmt: skip
            result.failed[reason] += 1
        except ServiceError as exc:
            # botocore's attempts ran out. Throttling is a refusal: nothing was sent. (A 5xx
            # or a lost connection is not: the intent stays, the user may have been sent a
            # code. Only the last attempt's answer is seen here: a 5xx before the last,
            # throttled attempt of the same call is not, a second code the price of that
            # rare case.)
            if exc.code in THROTTLING_CODES:
                journal.record(candidate.username, ResetState.NOT_SENT,
                               channel=candidate.channel, reason=exc.message)  # fmt: skip
            raise
        else:
            journal.record(candidate.username, ResetState.SENT, channel=candidate.channel)
            result.sent += 1
            if candidate.channel is Channel.EMAIL and emails_left is not None:
                emails_left -= 1
        on_progress(done + 1, total)
    return result


# --- the journal read back (by the next wave and by `csvimport report`) ------------------
def read_reset_entries(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete line of ``resets.jsonl`` in order: :func:`iter_reset_entries`, whole."""
    return list(iter_reset_entries(run_dir))


def iter_reset_entries(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Each complete line of ``resets.jsonl``, in order, one at a time.

    A last line without its newline that starts like an entry is torn (the wave was
    killed while writing it) and is left out: it was either an intent whose call was never
    made, or an outcome whose intent line stands before it. Anything else that is not an
    entry is damage no crash explains: ConfigError names its line, rather than a user
    silently losing their record (``csvimport.passjournal.iter_entries``).
    """
    return iter_entries(
        run_dir / RESETS_JOURNAL, _reset_entry, what="a reset-wave record",
        damaged_hint="A crash can only tear the last line. Restore the file from a backup, "
        "or delete the damaged line: a user whose only record it was then counts as never "
        "sent a code, and the next `csvimport resets` sends them one.",
    )  # fmt: skip


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
