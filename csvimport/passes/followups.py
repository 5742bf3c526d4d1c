"""``csvimport followups``: what the CSV cannot carry, applied to the imported users.

Cognito's import file has no group membership and no enabled flag (facts §9). The build
lists, per kept user, the Cognito groups the mapping's ``[groups]`` gives them and whether
``[legacy].disabled`` says the legacy system had disabled them (``followups.csv``). This
pass, for the users the report says were IMPORTED only (never a user Cognito SKIPPED
because they existed before, never a failed one, never a user deferred to migrate at first
sign-in, who is not in the pool yet):

- creates the groups the pool lacks, only when asked (``create_groups``); otherwise the
  plan carries a refusal naming them;
- disables the legacy-disabled users first (AdminDisableUser: the sooner the better, as an
  imported user with a password hash can sign in until then), then adds the memberships
  (AdminAddUserToGroup);
- paces every call under the account's UserUpdate quota (25 RPS, shared with the apps:
  ``rate`` is the pass's share) and journals it in ``followups.jsonl``
  (:class:`~csvimport.passjournal.PassJournal`): the intent on disk before the call, the
  outcome after. A re-run skips what is done and what may have been done (an intent with
  no outcome: killed between the call and its record) unless ``retry_uncertain``; both
  calls are idempotent in Cognito, so retrying those is safe when asked.

Throttling that outlasts botocore's retries stops the pass (``stopped_because``): the call
is recorded as not done, and the next run goes on from there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import botocore.exceptions

from csvimport.errors import THROTTLING_CODES, RefusedError, ServiceError
from csvimport.outcomes import FollowupState, Outcome
from csvimport.passjournal import PassJournal, Step
from csvimport.retry import USER_UPDATE, PacedClient, error_code, error_message
from csvimport.rundir import FOLLOWUPS, RunDir, iter_followups, iter_results

FOLLOWUPS_JOURNAL = "followups.jsonl"  # the pass's journal, in the run directory
# The pass's share of the account's 25 RPS UserUpdate quota, which the apps share.
DEFAULT_RATE = USER_UPDATE.rate
# facts §9: at most 10,000 groups per pool.
MAX_GROUPS_PER_POOL = 10_000
DAMAGED_HINT = (
    "A crash can only tear the last line. Restore the file from a backup, or delete the "
    "damaged line: a call whose only record it was is then made again by the next "
    "`csvimport followups` (both calls are idempotent in Cognito)."
)
# Why a user of followups.csv gets no call, by their outcome in the report's results.
NOT_IMPORTED_WHY = {
    Outcome.DEFERRED: "migrates at first sign-in: not in the pool yet",
    Outcome.SKIPPED: "existed in the pool before the import: csvimport changes nothing of theirs",
    Outcome.FAILED: "Cognito did not import them",
}
NOT_PROCESSED_WHY = "not imported by this run"


class Action(StrEnum):
    """What one call of the pass does."""

    CREATE_GROUP = "create-group"
    DISABLE = "disable"
    ADD = "add"


OPERATION = {
    Action.CREATE_GROUP: "create_group",
    Action.DISABLE: "admin_disable_user",
    Action.ADD: "admin_add_user_to_group",
}


@dataclass(frozen=True, slots=True)  # slots: a pass can plan millions of calls
class Call:
    """One call the pass makes: its journal key names the source row, stable for the run."""

    action: Action
    source_row: int = 0  # 0 for CREATE_GROUP
    username: str = ""
    group: str = ""

    @property
    def key(self) -> str:
        if self.action is Action.CREATE_GROUP:
            return f"{self.action}\t{self.group}"
        if self.action is Action.DISABLE:
            return f"{self.action}\t{self.source_row}"
        return f"{self.action}\t{self.source_row}\t{self.group}"


@dataclass
class FollowupPlan:
    """What a pass would do, and what it leaves alone and why."""

    to_create: list[Call]  # groups the pool lacks (created only with create_groups)
    calls: list[Call]  # disables first, then memberships, all still to make
    already_done: int = 0
    maybe_done: list[Call] = field(default_factory=list)  # an intent last: not repeated
    skipped: Counter[str] = field(default_factory=Counter)  # why -> users left alone
    unmapped_roles: Counter[str] = field(default_factory=Counter)  # role -> imported users
    missing_groups: list[str] = field(default_factory=list)
    refusal: RefusedError | None = None

    @property
    def per_group(self) -> Counter[str]:
        return Counter(c.group for c in self.calls if c.action is Action.ADD)

    @property
    def disables(self) -> int:
        return sum(1 for c in self.calls if c.action is Action.DISABLE)

    def to_json(self) -> dict[str, Any]:
        return {
            "groups_to_create": [c.group for c in self.to_create],
            "missing_groups": self.missing_groups,
            "memberships": dict(sorted(self.per_group.items())),
            "disable": self.disables, "already_done": self.already_done,
            "may_have_been_done": [c.key for c in self.maybe_done],
            "skipped": dict(self.skipped.most_common()),
            "unmapped_roles": dict(self.unmapped_roles.most_common()),
            "refused": self.refusal.message if self.refusal is not None else None,
        }  # fmt: skip


@dataclass
class FollowupResult:
    created: list[str] = field(default_factory=list)  # groups created
    added: Counter[str] = field(default_factory=Counter)  # memberships added, by group
    disabled: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # reason -> calls
    not_done: int = 0  # left for the next run
    stopped_because: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"created_groups": self.created, "added": dict(sorted(self.added.items())),
                "disabled": self.disabled, "failed": dict(self.failed.most_common()),
                "not_done": self.not_done, "stopped_because": self.stopped_because}  # fmt: skip


def open_journal(run_dir: Path) -> PassJournal:
    return PassJournal(run_dir / FOLLOWUPS_JOURNAL, what="a follow-up pass record",
                       damaged_hint=DAMAGED_HINT)  # fmt: skip


def pool_groups(client: Any, pool_id: str) -> set[str]:
    """The names of the pool's groups (ListGroups, every page)."""
    paced = PacedClient(client) if not isinstance(client, PacedClient) else client
    names: set[str] = set()
    token: str | None = None
    while True:
        page = paced.list_groups(UserPoolId=pool_id, Limit=60,
                                 **({"NextToken": token} if token else {}))  # fmt: skip
        names.update(g["GroupName"] for g in page.get("Groups", []))
        token = page.get("NextToken")
        if not token:
            return names


def plan_followups(
    run: RunDir, existing_groups: set[str], journal: PassJournal, *,
    create_groups: bool = False, retry_uncertain: bool = False, enforce: bool = True,
) -> FollowupPlan:  # fmt: skip
    """Who gets which call; RefusedError when groups are missing and ``create_groups`` is
    not given (with ``enforce`` False the refusal is only kept in ``plan.refusal``)."""
    if FOLLOWUPS not in run.files:
        raise RefusedError(
            f"{run.path} has no {FOLLOWUPS}: its mapping names neither [groups] nor "
            "[legacy].disabled, so there is nothing to follow up",
            hint="Add [groups] (column, separator, [groups.names]) or [legacy] disabled = "
            '"<column>" to the mapping and build the run again.',
        )
    wanted = {f.source_row: f for f in iter_followups(run)}
    last = journal.last()
    disables: list[Call] = []
    adds: list[Call] = []
    plan = FollowupPlan([], [])
    # Read to the end before acting: iter_results checks the count only after its last line.
    imported: list[tuple[int, str]] = []
    for result in iter_results(run, needed_for="the follow-up pass acts on imported users"):
        if result.source_row not in wanted:
            continue
        if result.outcome is Outcome.IMPORTED:
            imported.append((result.source_row, result.username))
        else:
            plan.skipped[NOT_IMPORTED_WHY.get(result.outcome, NOT_PROCESSED_WHY)] += 1
    for row, username in imported:
        followup = wanted[row]
        plan.unmapped_roles.update(followup.unmapped_roles)
        if followup.disabled:
            disables.append(Call(Action.DISABLE, row, username))
        adds.extend(Call(Action.ADD, row, username, group) for group in followup.groups)
    needed = sorted({c.group for c in adds} - existing_groups)
    plan.missing_groups = needed
    creations = [Call(Action.CREATE_GROUP, group=g) for g in needed] if create_groups else []
    for call in [*creations, *disables, *adds]:
        record = last.get(call.key)
        if record is not None and record.step is Step.DONE:
            plan.already_done += 1
        elif record is not None and record.step is Step.CALLING and not retry_uncertain:
            plan.maybe_done.append(call)
        elif call.action is Action.CREATE_GROUP:
            plan.to_create.append(call)
        else:
            plan.calls.append(call)
    if needed and not create_groups:
        shown = ", ".join(needed[:20]) + (f" and {len(needed) - 20:,} more" if len(needed) > 20
                                          else "")  # fmt: skip
        plan.refusal = RefusedError(
            f"the pool has no group {shown}: {len(needed):,} group(s) the mapping gives "
            "imported users are missing",
            hint="Create them in the pool, or run `csvimport followups RUN_DIR "
            "--create-groups` to let csvimport create them (CreateGroup, no description).",
        )
    elif len(existing_groups) + len(needed) > MAX_GROUPS_PER_POOL:
        plan.refusal = RefusedError(
            f"the pool has {len(existing_groups):,} groups and would need {len(needed):,} "
            f"more; a pool holds at most {MAX_GROUPS_PER_POOL:,} (facts §9)",
            hint="Map several legacy roles to one group in the mapping's [groups.names] "
            "and build again, or delete groups the pool no longer uses.",
        )
    if plan.refusal is not None and enforce:
        raise plan.refusal
    return plan


def run_followups(
    run: RunDir, client: Any, plan: FollowupPlan, journal: PassJournal, *,
    rate: float = DEFAULT_RATE, on_progress: Callable[[int, int], None] = lambda d, t: None,
) -> FollowupResult:  # fmt: skip
    """Make the plan's calls, ``rate`` per second at most (UserUpdate), each intent
    recorded before its call and its outcome after.

    An answer that says no (the user or group is gone, a limit) is recorded as failed with
    Cognito's reason. Throttling that outlasts the retries is recorded as not done and
    stops the pass (``stopped_because``). A 5xx answer, a lost connection or a kill leaves
    the intent: the call may have been made; the ServiceError goes to the caller."""
    if plan.refusal is not None:
        raise plan.refusal
    paced = PacedClient(client, rates={USER_UPDATE: rate})
    pool_id = run.user_pool_id
    result = FollowupResult()
    calls = [*plan.to_create, *plan.calls]
    for done, call in enumerate(calls):
        operation = OPERATION[call.action]
        # The turn first, then the intent, then the call: a pass killed while it waits
        # leaves no intent behind.
        paced.wait_turn(operation, pool_id)
        journal.record(call.key, Step.CALLING)
        try:
            paced.send(operation, **_arguments(call, pool_id))
        except botocore.exceptions.ClientError as exc:
            code, said = error_code(exc), error_message(exc)
            if call.action is Action.CREATE_GROUP and code == "GroupExistsException":
                journal.record(call.key, Step.DONE, "the group already existed")
                continue
            reason = f"{code}: {said}"
            journal.record(call.key, Step.FAILED, reason)
            result.failed[f"{call.action}: {reason}"] += 1
        except ServiceError as exc:
            if exc.code not in THROTTLING_CODES:
                raise  # a 5xx or a lost connection: the call may have been made
            journal.record(call.key, Step.NOT_DONE, exc.message)
            result.not_done = len(calls) - done
            result.stopped_because = (
                f"Cognito kept throttling {operation} past the retries ({exc.message})"
            )
            break
        else:
            journal.record(call.key, Step.DONE)
            if call.action is Action.CREATE_GROUP:
                result.created.append(call.group)
            elif call.action is Action.DISABLE:
                result.disabled += 1
            else:
                result.added[call.group] += 1
        on_progress(done + 1, len(calls))
    return result


def _arguments(call: Call, pool_id: str) -> dict[str, str]:
    if call.action is Action.CREATE_GROUP:
        return {"UserPoolId": pool_id, "GroupName": call.group}
    if call.action is Action.DISABLE:
        return {"UserPoolId": pool_id, "Username": call.username}
    return {"UserPoolId": pool_id, "Username": call.username, "GroupName": call.group}


# --- the journal read back, by `csvimport report` -------------------------------------
def followups_done(run_dir: Path) -> FollowupState | None:
    """The follow-up passes' outcome, None when no pass ran."""
    if not (run_dir / FOLLOWUPS_JOURNAL).exists():
        return None
    summary = FollowupState()
    added: Counter[str] = Counter()
    for key, last in open_journal(run_dir).last().items():
        action, _, rest = key.partition("\t")
        if last.step is Step.DONE:
            if action == Action.ADD:
                added[rest.partition("\t")[2]] += 1
            elif action == Action.DISABLE:
                summary.disabled += 1
            elif action == Action.CREATE_GROUP:
                summary.created_groups += 1
        elif last.step is Step.FAILED:
            summary.failed += 1
        elif last.step in (Step.CALLING, Step.NOT_DONE):
            summary.pending += 1
    summary.added = dict(sorted(added.items()))
    return summary
