"""``csvimport undo``: delete the users a run's import created, for rehearsals in a staging pool.

No API undoes an import job (facts §9): undo is ``AdminDeleteUser`` of each user the job
created, and only those. The candidates are the users the report's ``results.jsonl`` says
were IMPORTED (run ``csvimport report`` first); never a user Cognito SKIPPED (it existed
before), one that FAILED or was not processed, nor anyone else in the pool.

A username alone does not say it is the same user: one may have been deleted and created
again since the import. Each candidate is read from the pool with ListUsers (paced under
the UserList quota, never AdminGetUser, which counts as a monthly active user) and deleted
only when its ``UserCreateDate`` lies within the time its import job ran (the job's
StartDate to CompletionDate, from DescribeUserImportJob, or the run's journal when Cognito
no longer has the job). Users the migration function created (deferred users who signed
in) were not created by the import: they are left unless ``include_migrated``.

The pass is journaled in ``undo.jsonl`` (:class:`~csvimport.passjournal.PassJournal`): the
intent with the user's ``sub`` before each call, the outcome after. A rerun deletes no user
twice: a user whose intent is last and who is no longer in the pool, or whose username now
belongs to another ``sub``, is recorded as already gone without a call; one still there
with the recorded ``sub`` is deleted (the first call never reached Cognito). A
``UserNotFoundException`` (a retry of a call that did delete, or a pool read just before a
deletion) counts as done: already gone.

The pool is read before any deletion, so a user deleted and created again between that
read and its own deletion (seconds to hours, for a large run) would be deleted by
username: AdminDeleteUser takes no condition. Undo is for staging pools nobody else uses.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import botocore.exceptions

from csvimport.errors import THROTTLING_CODES, RefusedError, ServiceError
from csvimport.files import open_private
from csvimport.outcomes import Outcome, UndoState
from csvimport.passjournal import PassJournal, Step
from csvimport.pool import LIST_USERS_PAGE, list_users_filter
from csvimport.redact import mask_username
from csvimport.retry import USER_LIST, USER_UPDATE, PacedClient, error_code, error_message
from csvimport.rundir import RunDir, iter_results

UNDO_JOURNAL = "undo.jsonl"  # the pass's journal, in the run directory
UNDO_PLAN = "undo-plan.jsonl"  # every candidate, unmasked, and what undo does with it (0600)
DEFAULT_RATE = USER_UPDATE.rate  # AdminDeleteUser calls a second: a share of the 25/s
# GUESS: Cognito stamps a user's UserCreateDate while its job runs, between the job's
# StartDate and CompletionDate; the margin covers dates rounded to the second (the run's
# journal keeps whole seconds) and clocks that differ by less than that.
WINDOW_MARGIN = timedelta(seconds=1)
USER_NOT_FOUND = "UserNotFoundException"
JOB_NOT_FOUND = "ResourceNotFoundException"
SUB_PREFIX = "sub "  # an intent's reason: the sub of the user the call deletes
ALREADY_GONE = "already gone"
DELETED = "deleted"
DAMAGED_HINT = ("A crash can only tear the last line. Restore the file from a backup; do not "
                "edit it: its intents keep a rerun from deleting a user twice.")  # fmt: skip

Progress = Callable[[int, int], None]  # (done, total)


class Why(StrEnum):
    """Why undo leaves a candidate in the pool."""

    NOT_IN_POOL = "not in the pool (deleted already, or never created)"
    OUTSIDE_JOB = "created outside its import job's time: another user with the same username"
    NO_JOB_TIME = "its import job's start and end are unknown"
    RECREATED = "deleted by an earlier undo; the username now belongs to another user"
    MIGRATED = ("created by the migration function at sign-in, not by the import "
                "(--include-migrated deletes it)")  # fmt: skip
    BEFORE_RUN = "a deferred user's username, created before the run's first import job"


class Lookup(StrEnum):
    """How undo reads the candidates from the pool: whichever takes fewer ListUsers calls."""

    FILTER = "filter"  # one ListUsers call with a username Filter per candidate
    SCAN = "scan"  # every page of the pool (60 users a call)


@dataclass(frozen=True, slots=True)
class Window:
    """When an import job ran (UTC); a user it created has a UserCreateDate in between."""

    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.start - WINDOW_MARGIN <= moment <= self.end + WINDOW_MARGIN


@dataclass(frozen=True, slots=True)
class Candidate:
    username: str
    legacy_id: str
    job_id: str | None  # None: a deferred user (the migration function created it)


@dataclass(frozen=True, slots=True)
class PoolUser:
    username: str
    sub: str
    created: datetime


@dataclass(frozen=True, slots=True)
class Target:
    """A user undo deletes: the candidate and the pool user it was checked to be."""

    candidate: Candidate
    sub: str


@dataclass(frozen=True, slots=True)
class Left:
    candidate: Candidate
    why: Why


@dataclass
class UndoPlan:
    """Who undo deletes, who it leaves and why; ``plan_file`` lists them all unmasked."""

    pool_id: str
    lookup: Lookup
    to_delete: list[Target] = field(default_factory=list)
    left: list[Left] = field(default_factory=list)
    already_deleted: int = 0  # deleted by an earlier undo (the journal says so)
    # Intents last, users no longer in the pool: gone without a call, recorded as such.
    settle: list[Candidate] = field(default_factory=list)
    deferred_not_read: int = 0  # deferred users not looked at (no --include-migrated)
    # The run's other users by outcome (skipped, failed, ...): never candidates.
    not_created: Counter[str] = field(default_factory=Counter)
    lookups: int = 0  # ListUsers calls made
    plan_file: Path | None = None

    def to_json(self, examples: int) -> dict[str, Any]:
        why = Counter(left.why.name.lower() for left in self.left)
        return {
            "pool_id": self.pool_id, "lookup": self.lookup.value,
            "to_delete": len(self.to_delete),
            "to_delete_examples": [mask_username(t.candidate.username)
                                   for t in self.to_delete[:examples]],
            "left": dict(why.most_common()), "already_deleted": self.already_deleted,
            "already_gone": len(self.settle), "deferred_not_read": self.deferred_not_read,
            "not_created": dict(self.not_created.most_common()),
            "list_users_calls": self.lookups,
            "plan_file": str(self.plan_file) if self.plan_file else None,
        }  # fmt: skip


@dataclass
class UndoResult:
    deleted: int = 0
    already_gone: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # reason -> users
    not_done: int = 0  # throttling outlasted the retries: the rest waits for a rerun

    def to_json(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "already_gone": self.already_gone,
                "failed": dict(self.failed.most_common()), "not_done": self.not_done}  # fmt: skip


def open_journal(run: RunDir) -> PassJournal:
    return _journal(run.path)


def _journal(run_dir: Path) -> PassJournal:
    return PassJournal(run_dir / UNDO_JOURNAL, what="an undo record", damaged_hint=DAMAGED_HINT)


def _key(username: str) -> str:
    return f"delete {username}"


def candidates(
    run: RunDir, *, include_migrated: bool, not_created: Counter[str] | None = None
) -> tuple[list[Candidate], int]:
    """The run's IMPORTED users (and, with ``include_migrated``, its deferred ones), in the
    order of ``results.jsonl``; and how many deferred users were left out. ``not_created``
    gets the count of every other outcome (skipped, failed, rejected, ...)."""
    found: list[Candidate] = []
    deferred = 0
    others: Counter[str] = Counter() if not_created is None else not_created
    for result in iter_results(run, needed_for="undo deletes the users the report says "
                               "were imported"):  # fmt: skip
        if result.outcome is Outcome.IMPORTED:
            found.append(Candidate(result.username, result.legacy_id, result.job_id or ""))
        elif result.outcome is Outcome.DEFERRED:
            if include_migrated:
                found.append(Candidate(result.username, result.legacy_id, None))
            else:
                deferred += 1
        else:
            others[result.outcome.value] += 1
    return found, deferred


def job_windows(
    client: Any, pool_id: str, job_ids: set[str], recorded: Mapping[str, Window]
) -> dict[str, Window]:
    """When each job ran, as Cognito says (DescribeUserImportJob), else as the run's
    journal recorded it (``recorded``). RefusedError while a job may still create users."""
    calls = client if isinstance(client, PacedClient) else PacedClient(client)
    windows: dict[str, Window] = {}
    for job_id in sorted(job_ids):
        try:
            job = calls.describe_user_import_job(UserPoolId=pool_id, JobId=job_id)["UserImportJob"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != JOB_NOT_FOUND:
                raise
            if job_id in recorded:
                windows[job_id] = recorded[job_id]
            continue
        start, end = job.get("StartDate"), job.get("CompletionDate")
        if end is None:
            raise RefusedError(
                f"import job {job_id} is {job.get('Status')}: it may still create users",
                hint="Wait for it to end (`csvimport status RUN_DIR --wait`) or stop it "
                "(`csvimport stop RUN_DIR`), run `csvimport report RUN_DIR`, then undo.",
            )
        if isinstance(start, datetime) and isinstance(end, datetime):
            windows[job_id] = Window(_utc(start), _utc(end))
        elif job_id in recorded:
            windows[job_id] = recorded[job_id]
    return windows


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pool_user(user: dict[str, Any]) -> PoolUser:
    attributes = {a["Name"]: a.get("Value", "") for a in user.get("Attributes", [])}
    created = user.get("UserCreateDate")
    return PoolUser(str(user["Username"]), attributes.get("sub", ""),
                    _utc(created) if isinstance(created, datetime)
                    else datetime.min.replace(tzinfo=UTC))  # fmt: skip


class _PoolReader:
    """The pool's users with the candidates' usernames, read with ListUsers either way."""

    def __init__(self, run: RunDir, client: Any, *, rate: float, wanted: set[str],
                 estimated_users: int | None, on_progress: Progress | None) -> None:  # fmt: skip
        self.fold: Callable[[str], str] = (
            (lambda s: s) if run.snapshot.case_sensitive else str.lower
        )
        self.pool_id = run.user_pool_id
        self.calls = PacedClient(client.client if isinstance(client, PacedClient) else client,
                                 rates={USER_LIST: rate})  # fmt: skip
        self.on_progress = on_progress or (lambda done, total: None)
        pages = -(-(estimated_users or 0) // LIST_USERS_PAGE) or 1
        self.lookup = Lookup.FILTER if len(wanted) <= pages else Lookup.SCAN
        self.expected_calls = len(wanted) if self.lookup is Lookup.FILTER else pages
        self.made = 0
        self._found: dict[str, PoolUser] | None = None
        self._wanted = {self.fold(name) for name in wanted}

    def find(self, username: str) -> PoolUser | None:
        folded = self.fold(username)
        if self.lookup is Lookup.SCAN:
            if self._found is None:
                self._found = {}
                for user in self._pages():
                    if self.fold(user.username) in self._wanted:
                        self._found[self.fold(user.username)] = user
            return self._found.get(folded)
        page: Any = self.calls.list_users(
            UserPoolId=self.pool_id, Limit=LIST_USERS_PAGE,
            Filter=list_users_filter("username", username),
        )  # fmt: skip
        self._tick()
        # The filter's escaping is a guess (csvimport.pool): the answer is checked here.
        return next((_pool_user(u) for u in page.get("Users", [])
                     if self.fold(str(u["Username"])) == folded), None)  # fmt: skip

    def _pages(self) -> Iterator[PoolUser]:
        kwargs: dict[str, Any] = {"UserPoolId": self.pool_id, "Limit": LIST_USERS_PAGE}
        while True:
            page: Any = self.calls.list_users(**kwargs)
            self._tick()
            for user in page.get("Users", []):
                yield _pool_user(user)
            token = page.get("PaginationToken")  # a page may be short: follow the token
            if not token:
                return
            kwargs["PaginationToken"] = token

    def _tick(self) -> None:
        self.made += 1
        self.expected_calls = max(self.expected_calls, self.made)
        self.on_progress(self.made, self.expected_calls)


def plan_undo(
    run: RunDir, client: Any, journal: PassJournal, *, include_migrated: bool = False,
    rate: float = USER_LIST.rate, recorded: Mapping[str, Window] | None = None,
    estimated_users: int | None = None, on_progress: Progress | None = None,
) -> UndoPlan:  # fmt: skip
    """Read the candidates from the pool and decide, for each, delete or leave (and why).

    The candidates are read with a username Filter each or with a scan of the whole pool,
    whichever takes fewer ListUsers calls for ``estimated_users`` (DescribeUserPool's
    EstimatedNumberOfUsers; without it, the scan). Writes ``undo-plan.jsonl`` (0600): every
    candidate unmasked with its decision. Makes no change to the pool or the journal."""
    not_created: Counter[str] = Counter()
    found, deferred = candidates(run, include_migrated=include_migrated, not_created=not_created)
    last = journal.last()
    pending = [c for c in found
               if not ((r := last.get(_key(c.username))) and r.step is Step.DONE)]  # fmt: skip
    # Every job of the run, not only the pending users' jobs: a migrated user is told
    # from one created before the run by the first job's start.
    job_ids = {c.job_id for c in found if c.job_id}
    windows = job_windows(client, run.user_pool_id, job_ids, recorded or {})
    first_start = min((w.start for w in windows.values()), default=None)
    reader = _PoolReader(run, client, rate=rate, wanted={c.username for c in pending},
                         estimated_users=estimated_users, on_progress=on_progress)  # fmt: skip
    plan = UndoPlan(run.user_pool_id, reader.lookup, already_deleted=len(found) - len(pending),
                    deferred_not_read=deferred, not_created=not_created)  # fmt: skip
    for candidate in pending:
        user = reader.find(candidate.username)
        record = last.get(_key(candidate.username))
        if record is not None and record.step is Step.CALLING:
            sub = record.reason.removeprefix(SUB_PREFIX)
            if user is not None and user.sub == sub:
                plan.to_delete.append(Target(candidate, sub))  # the call never got there
            else:
                plan.settle.append(candidate)
                if user is not None:
                    plan.left.append(Left(candidate, Why.RECREATED))
            continue
        why = _why_left(candidate, user, windows, first_start)
        if why is None and user is not None:
            plan.to_delete.append(Target(candidate, user.sub))
        elif why is not None:
            plan.left.append(Left(candidate, why))
    plan.lookups = reader.made
    plan.plan_file = _write_plan(run, plan)
    return plan


def _why_left(
    candidate: Candidate, user: PoolUser | None, windows: Mapping[str, Window],
    first_start: datetime | None,
) -> Why | None:  # fmt: skip
    if user is None:
        return Why.NOT_IN_POOL
    if candidate.job_id is None:  # a deferred user, asked for with include_migrated
        if first_start is None or user.created < first_start - WINDOW_MARGIN:
            return Why.BEFORE_RUN
        return None
    window = windows.get(candidate.job_id)
    if window is None:
        return Why.NO_JOB_TIME
    return None if window.holds(user.created) else Why.OUTSIDE_JOB


def _write_plan(run: RunDir, plan: UndoPlan) -> Path:
    path = run.path / UNDO_PLAN
    with open_private(path) as f:
        for target in plan.to_delete:
            f.write(json.dumps({"username": target.candidate.username,
                                "legacy_id": target.candidate.legacy_id, "action": "delete",
                                "sub": target.sub}) + "\n")  # fmt: skip
        for candidate in plan.settle:
            f.write(json.dumps({"username": candidate.username, "legacy_id": candidate.legacy_id,
                                "action": "record", "why": ALREADY_GONE}) + "\n")  # fmt: skip
        for left in plan.left:
            f.write(json.dumps({"username": left.candidate.username,
                                "legacy_id": left.candidate.legacy_id, "action": "leave",
                                "why": left.why.value}) + "\n")  # fmt: skip
    return path


def run_undo(
    run: RunDir, client: Any, plan: UndoPlan, journal: PassJournal, *,
    rate: float = DEFAULT_RATE, on_progress: Progress | None = None,
) -> UndoResult:  # fmt: skip
    """Delete the plan's users at most ``rate`` a second, the intent (with the user's sub)
    on disk before each call and the outcome after it."""
    paced = PacedClient(client.client if isinstance(client, PacedClient) else client,
                        rates={USER_UPDATE: rate})  # fmt: skip
    result = UndoResult()
    for candidate in plan.settle:  # gone since an earlier undo's intent: no call
        journal.record(_key(candidate.username), Step.DONE, ALREADY_GONE)
        result.already_gone += 1
    total = len(plan.to_delete)
    for done, target in enumerate(plan.to_delete):
        key = _key(target.candidate.username)
        # The turn first, then the intent, then the call: an undo killed while it waits
        # leaves no intent behind.
        paced.wait_turn("admin_delete_user", run.user_pool_id)
        journal.record(key, Step.CALLING, SUB_PREFIX + target.sub)
        try:
            paced.send("admin_delete_user", UserPoolId=run.user_pool_id,
                       Username=target.candidate.username)  # fmt: skip
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == USER_NOT_FOUND:
                journal.record(key, Step.DONE, ALREADY_GONE)
                result.already_gone += 1
            else:
                reason = f"{code}: {error_message(exc)}"
                journal.record(key, Step.FAILED, reason)
                result.failed[reason] += 1
        except ServiceError as exc:
            # botocore's attempts ran out. Throttling is a refusal: nothing was deleted. A
            # 5xx or a lost connection may have deleted: the intent stays, and the next
            # undo reads the pool to tell.
            if exc.code in THROTTLING_CODES:
                journal.record(key, Step.NOT_DONE, exc.message)
            raise
        else:
            journal.record(key, Step.DONE, DELETED)
            result.deleted += 1
        if on_progress is not None:
            on_progress(done + 1, total)
    return result


def recorded_window(started: str | None, completed: str | None) -> Window | None:
    """A job's window from the run journal's ISO dates (whole seconds: the end is rounded
    up a second); None when either is missing or not a date."""
    try:
        start = _utc(datetime.fromisoformat(started or ""))
        end = _utc(datetime.fromisoformat(completed or "")) + timedelta(seconds=1)
    except ValueError:
        return None
    return Window(start, end)


# --- the journal read back, by `csvimport report` -------------------------------------
def undo_done(run_dir: Path) -> UndoState | None:
    """Undo's outcome for the report (counts only), None when undo never ran here."""
    journal, plan = run_dir / UNDO_JOURNAL, run_dir / UNDO_PLAN
    if not journal.exists() and not plan.exists():
        return None
    state = UndoState()
    if journal.exists():
        for last in _journal(run_dir).last().values():
            if last.step is Step.DONE:
                if last.reason == DELETED:
                    state.deleted += 1
                else:
                    state.already_gone += 1
            elif last.step is Step.FAILED:
                state.failed += 1
            else:  # CALLING or NOT_DONE
                state.pending += 1
    if plan.exists():
        left: Counter[str] = Counter()
        with plan.open(encoding="utf-8") as f:
            for line in f:
                entry = json.loads(line)
                if entry["action"] == "delete":
                    state.planned += 1
                elif entry["action"] == "leave":
                    left[entry["why"]] += 1
        state.left = dict(left.most_common())
    return state
