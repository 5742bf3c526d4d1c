"""Before deferred users sign in: will the user migration trigger work for them?

A run built with ``--password-fallback migrate`` leaves users out of the import files
(``deferred.csv``) so that the pool's user migration Lambda trigger creates them at their
first sign-in (facts §7). Three things make that trigger silently useless, and this
module checks each one (``csvimport migration-check``; ``start`` runs the first two):

1. the pool has no ``LambdaConfig.UserMigration`` trigger (:func:`check_trigger`);
2. no app client lets the app send the password (``USER_PASSWORD_AUTH`` or
   ``ADMIN_USER_PASSWORD_AUTH``): with SRP, the SDKs' default, Cognito never calls the
   trigger — the most reported reason it "never fires" (:func:`check_app_clients`);
3. a deferred user's username or alias (email, phone number, preferred username, where
   the pool signs in with them) is already held by a user in the pool: Cognito finds that
   user first and never calls the trigger, or the migration fails on the taken alias
   (:class:`AliasCheck`).

Results are values (:class:`Finding`, :class:`AliasReport`); the caller words and shows
them. ListUsers draws from the UserList quota the pool's applications share, so the alias
check is paced at a third of it unless told otherwise, and says how long it will take
before it starts (:meth:`AliasCheck.plan`).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from csvimport.errors import ExitStatus, RefusedError
from csvimport.legacyhash import TRIGGER_SECONDS, at_risk
from csvimport.outcomes import UserResult
from csvimport.pool import LIST_USERS_PAGE, PoolSnapshot, list_users_filter
from csvimport.redact import mask_email, mask_phone, mask_username
from csvimport.retry import USER_LIST, PacedClient, paced
from csvimport.run.preflight import pool_gone
from csvimport.rundir import RunDir, deferred_aliases_written, iter_deferred

# --- 1. the trigger ---------------------------------------------------------------------
TRIGGER_HINT = (
    "Deploy the migration function with `csvimport migration-package {run}` and its "
    "CloudFormation template, which sets it as the pool's UserMigration trigger (or set "
    "LambdaConfig.UserMigration to the function's ARN yourself)."
)

# --- 2. the app clients -----------------------------------------------------------------
# Flows with which the app sends the password itself, so Cognito can hand it to the
# trigger (facts §7); the last two are the older names of the first two (botocore's
# ExplicitAuthFlowsType).
PASSWORD_FLOWS = frozenset({"ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH",
                            "USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"})  # fmt: skip
# What an app client allows when it was created without ExplicitAuthFlows (botocore's
# documentation of CreateUserPoolClient).
DEFAULT_FLOWS = ("ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_CUSTOM_AUTH")
# UNVERIFIED (facts §7): whether choice-based sign-in (USER_AUTH with the PASSWORD factor)
# calls the trigger. Not counted as a password flow; a client with it is named.
CHOICE_FLOW = "ALLOW_USER_AUTH"
CLIENTS_PAGE = 60  # ListUserPoolClients' maximum
CLIENT_HINT = (
    "Allow ALLOW_USER_PASSWORD_AUTH on the app client the app signs in with (aws "
    "cognito-idp update-user-pool-client ... --explicit-auth-flows ALLOW_USER_PASSWORD_AUTH "
    "ALLOW_REFRESH_TOKEN_AUTH ...; that call resets what it is not given, so pass the "
    "client's other settings too), and have the app sign in with USER_PASSWORD_AUTH instead "
    "of SRP until the migration window ends (`csvimport notice` writes the app team's "
    "checklist)."
)


class Severity(StrEnum):
    ERROR = "error"  # the trigger cannot work: start refuses
    WARNING = "warning"  # it may not work for some users or apps


class Check(StrEnum):
    TRIGGER = "trigger"
    APP_CLIENTS = "app clients"
    ALIASES = "aliases"
    PASSWORD_CHECKS = "password checks"


@dataclass(frozen=True)
class Finding:
    """One thing that keeps the trigger from working, worded for a person."""

    check: Check
    severity: Severity
    message: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.check.value, "severity": self.severity.value,
                "message": self.message, "hint": self.hint}  # fmt: skip


@dataclass(frozen=True)
class AppClient:
    """A user pool app client and the sign-in flows it allows."""

    client_id: str
    name: str
    flows: tuple[str, ...]
    flows_given: bool = True  # False: created without ExplicitAuthFlows (DEFAULT_FLOWS)

    @property
    def password_sign_in(self) -> bool:
        """The app can send the password, so Cognito can call the trigger."""
        return any(flow in PASSWORD_FLOWS for flow in self.flows)

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "name": self.name, "flows": list(self.flows),
                "password_sign_in": self.password_sign_in}  # fmt: skip


def check_trigger(pool: Mapping[str, Any], *, run_dir: str, deferred: int) -> list[Finding]:
    """(1) DescribeUserPool's ``UserPool``: does it name a UserMigration trigger?"""
    arn = (pool.get("LambdaConfig") or {}).get("UserMigration")
    if arn:
        return []
    return [Finding(
        Check.TRIGGER, Severity.ERROR,
        f"the user pool {pool.get('Id', '')} has no user migration trigger "
        f"(LambdaConfig.UserMigration), so the {deferred:,} deferred users cannot sign in: "
        "Cognito only calls the trigger for users it does not know, and they are not imported",
        TRIGGER_HINT.format(run=run_dir),
    )]  # fmt: skip


def read_app_clients(client: Any, pool_id: str) -> list[AppClient]:
    """Every app client of the pool with its flows (ListUserPoolClients, every page, then
    DescribeUserPoolClient for each: the list does not carry the flows), paced."""
    calls = paced(client)
    clients: list[AppClient] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "MaxResults": CLIENTS_PAGE}
    while True:
        page = calls.list_user_pool_clients(**kwargs)
        for listed in page.get("UserPoolClients", []):
            described = calls.describe_user_pool_client(
                UserPoolId=pool_id, ClientId=listed["ClientId"]
            )["UserPoolClient"]
            flows = described.get("ExplicitAuthFlows")
            clients.append(AppClient(
                client_id=str(described["ClientId"]),
                name=str(described.get("ClientName") or listed.get("ClientName") or ""),
                flows=tuple(flows) if flows else DEFAULT_FLOWS, flows_given=bool(flows),
            ))  # fmt: skip
        token = page.get("NextToken")
        if not token:
            return clients
        kwargs["NextToken"] = token


def check_app_clients(clients: list[AppClient], *, pool_id: str) -> list[Finding]:
    """(2) A warning for each app client that cannot send the password (SRP only, as the
    SDKs sign in by default); an error when none can."""
    findings: list[Finding] = []
    for app in clients:
        if app.password_sign_in:
            continue
        flows = ", ".join(app.flows) + ("" if app.flows_given else " (the defaults)")
        choice = (f"; whether its {CHOICE_FLOW} (choice-based sign-in) calls the trigger is "
                  "not documented" if CHOICE_FLOW in app.flows else "")  # fmt: skip
        findings.append(Finding(
            Check.APP_CLIENTS, Severity.WARNING,
            f"app client {app.name or app.client_id!r} ({app.client_id}) does not allow "
            f"USER_PASSWORD_AUTH (it allows {flows}){choice}: an app signing in with it "
            "never reaches the migration trigger, the most reported reason the trigger "
            "\"never fires\"",
            CLIENT_HINT,
        ))  # fmt: skip
    if not any(app.password_sign_in for app in clients):
        what = (f"none of its {len(clients)} app clients allows" if clients
                else "it has no app client that allows")  # fmt: skip
        findings.append(Finding(
            Check.APP_CLIENTS, Severity.ERROR,
            f"no app can sign deferred users in to the user pool {pool_id}: {what} "
            "USER_PASSWORD_AUTH or ADMIN_USER_PASSWORD_AUTH, and Cognito calls the migration "
            "trigger only with the password in hand (never with SRP)",
            CLIENT_HINT,
        ))  # fmt: skip
    return findings


def describe_pool(client: Any, pool_id: str) -> dict[str, Any]:
    """DescribeUserPool's ``UserPool``; RefusedError when the run's pool is gone."""
    calls = paced(client)
    try:
        return dict(calls.describe_user_pool(UserPoolId=pool_id)["UserPool"])
    except calls.exceptions.ResourceNotFoundException:
        raise pool_gone(pool_id, calls.meta.region_name) from None


@dataclass(frozen=True)
class SetupCheck:
    """The trigger and the app clients, as (1) and (2) found them."""

    pool_id: str
    pool_name: str
    trigger_arn: str | None
    clients: list[AppClient]
    findings: list[Finding]
    estimated_users: int | None = None  # DescribeUserPool's EstimatedNumberOfUsers

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def refusal(self, *, deferred: int) -> RefusedError:
        """The error ``start`` refuses with: every error found, each with its fix."""
        lines = "\n  - ".join(f.message for f in self.errors)
        fixes = " ".join(dict.fromkeys(f.hint for f in self.errors if f.hint))
        return RefusedError(
            f"the migration trigger would not work for the {deferred:,} users this run "
            f"leaves to it:\n  - {lines}",
            hint=f"{fixes} To import the other users anyway, pass --skip-migration-check "
            "(the deferred users cannot sign in until this is fixed).",
        )


def check_verify_times(run: RunDir) -> list[Finding]:
    """A warning for each cost label of the deferred users' hashes whose check, timed by
    the build on its machine, risks the trigger's limit (``legacyhash.at_risk``)."""
    timed = (run.manifest.get("password_fallback") or {}).get("verify_seconds") or {}
    return [Finding(
        Check.PASSWORD_CHECKS, Severity.WARNING,
        f"checking a password against a {label} hash took {seconds:.2f} s on the machine "
        f"that built the run; the trigger has {TRIGGER_SECONDS} s for the whole sign-in "
        "(Cognito gives up and the user cannot sign in), and a Lambda function with less "
        "CPU takes longer",
        "Give the function more memory, which brings more CPU (the template's MemorySize "
        "parameter), and time a sign-in after deploying; or build again with "
        "--password-fallback reset so these users reset their password instead.",
    ) for label, seconds in timed.items()
        if isinstance(seconds, (int, float)) and at_risk(float(seconds))]  # fmt: skip


def check_setup(run: RunDir, client: Any, *, deferred: int) -> SetupCheck:
    """(1) and (2) for the run's pool: a few calls, made by ``start`` too; and the
    password checks the build timed (no call)."""
    pool = describe_pool(client, run.user_pool_id)
    clients = read_app_clients(client, run.user_pool_id)
    findings = check_trigger(pool, run_dir=str(run.path), deferred=deferred)
    findings += check_app_clients(clients, pool_id=run.user_pool_id)
    findings += check_verify_times(run)
    estimated = pool.get("EstimatedNumberOfUsers")
    return SetupCheck(
        pool_id=run.user_pool_id, pool_name=str(pool.get("Name", "")),
        trigger_arn=(pool.get("LambdaConfig") or {}).get("UserMigration") or None,
        clients=clients, findings=findings,
        estimated_users=int(estimated) if isinstance(estimated, int) else None,
    )  # fmt: skip


# --- 3. the aliases ---------------------------------------------------------------------
# The names a deferred user may sign in with, as ListUsers filters on them (facts §9:
# username, email, phone_number and preferred_username are all filterable).
USERNAME = "username"
MASKS: dict[str, Callable[[str], str]] = {USERNAME: mask_username, "email": mask_email,
                                          "phone_number": mask_phone,
                                          "preferred_username": mask_username}  # fmt: skip
# Where a deferred user's result (rundir.iter_deferred) holds each name.
FIELD_OF = {USERNAME: "username", "email": "email", "phone_number": "phone"}
TAKEN_EXAMPLES = 10  # taken names a report shows; the count covers them all


class Strategy(StrEnum):
    FILTER = "filter"  # one ListUsers call with a Filter per name of each checked user
    SCAN = "scan"  # list every user of the pool (60 a call), compare here


@dataclass(frozen=True)
class AliasPlan:
    """What the alias check will do, and how long it will take, before it starts."""

    deferred: int  # users the run leaves to the trigger
    checked: int  # of them, the ones checked (all, or a --sample)
    attributes: tuple[str, ...]  # names checked: username, and the pool's aliases
    unchecked: tuple[str, ...]  # aliases the pool signs in with that deferred.csv lacks
    lookups: int  # names to look up (ListUsers calls with the filter strategy)
    scan_calls: int | None  # ListUsers calls to list the whole pool, if its size is known
    strategy: Strategy
    rate: float  # ListUsers calls per second

    @property
    def calls(self) -> int:
        return self.lookups if self.strategy is Strategy.FILTER else self.scan_calls or 0

    @property
    def seconds(self) -> float:
        """At least how long the check takes (paced calls; answers may add to it)."""
        return self.calls / self.rate

    @property
    def sampled(self) -> bool:
        return self.checked < self.deferred

    def to_json(self) -> dict[str, Any]:
        return {"deferred": self.deferred, "checked": self.checked,
                "attributes": list(self.attributes), "unchecked": list(self.unchecked),
                "strategy": self.strategy.value, "calls": self.calls, "rate": self.rate,
                "seconds": round(self.seconds, 1)}  # fmt: skip


@dataclass(frozen=True)
class TakenName:
    """A deferred user's username or alias that a user in the pool already holds."""

    attribute: str
    value: str
    source_row: int
    legacy_id: str
    held_by: str  # the Cognito username of the user holding it

    def describe(self, *, show_pii: bool = False) -> str:
        # The legacy id stays, as in the report: it is how the legacy system finds the user.
        return (f"source row {self.source_row} (legacy id {self.legacy_id}): "
                f"{self.attribute} {_shown(self.attribute, self.value, show_pii)} is held by "
                f"{_shown(USERNAME, self.held_by, show_pii)}")  # fmt: skip

    def to_json(self, *, show_pii: bool = False) -> dict[str, Any]:
        return {"attribute": self.attribute,
                "value": _shown(self.attribute, self.value, show_pii),
                "source_row": self.source_row, "legacy_id": self.legacy_id,
                "held_by": _shown(USERNAME, self.held_by, show_pii)}  # fmt: skip


def _shown(attribute: str, value: str, show_pii: bool) -> str:
    """A person's value as csvimport shares it: masked as the report masks it, unless asked."""
    return value if show_pii else MASKS[attribute](value)


@dataclass(frozen=True)
class AliasReport:
    """What the alias check found: how many names are taken, and the first few."""

    plan: AliasPlan
    taken: int  # names taken
    users: int  # deferred users with at least one name taken
    by_attribute: dict[str, int] = field(default_factory=dict)
    examples: list[TakenName] = field(default_factory=list)  # the first, by source row

    @property
    def estimated_users(self) -> int:
        """Of all deferred users, how many likely have a name taken (a sample scaled up)."""
        if not self.plan.checked:
            return 0
        return round(self.users * self.plan.deferred / self.plan.checked)

    def finding(self) -> Finding | None:
        if not self.taken:
            return None
        counts = ", ".join(f"{n:,} {attribute}" for attribute, n in self.by_attribute.items())
        sample = (f" of {self.plan.checked:,} sampled (about {self.estimated_users:,} of all "
                  f"{self.plan.deferred:,})" if self.plan.sampled else "")  # fmt: skip
        return Finding(
            Check.ALIASES,
            Severity.WARNING,
            f"{self.users:,} deferred users{sample} have a username or alias a user in the "
            f"pool already holds ({counts}): Cognito finds that user at sign-in and never "
            "calls the trigger for them, or the migration fails on the taken alias",
            "Find who holds each one (the examples below; --show-pii shows them whole) and "
            "free it (AdminDeleteUser or AdminUpdateUserAttributes), or leave these users to "
            "support; then run `csvimport migration-check` again.",
        )

    def to_json(self, *, show_pii: bool = False) -> dict[str, Any]:
        return {"plan": self.plan.to_json(), "taken": self.taken, "users": self.users,
                "by_attribute": self.by_attribute,
                "examples": [e.to_json(show_pii=show_pii) for e in self.examples]}  # fmt: skip


Progress = Callable[[int, int], None]  # (calls done, calls planned)


def _no_progress(done: int, total: int) -> None:
    pass


class AliasCheck:
    """(3) Are the deferred users' usernames and aliases free in the pool?

    :meth:`plan` says what will be checked and how long it takes; :meth:`run` does it.
    Two ways, the cheaper one chosen: a ListUsers call with a ``Filter`` per name of each
    user (a sample of ``sample`` users when asked: a big run's full check takes hours at
    the shared quota), or, when the pool holds fewer users than that would make calls, a
    listing of the whole pool (60 users a call) compared here, which checks every deferred
    user whatever the sample.
    """

    def __init__(
        self, run: RunDir, client: Any, *, sample: int | None = None,
        rate: float = USER_LIST.rate, estimated_users: int | None = None,
        on_progress: Progress = _no_progress,
    ) -> None:  # fmt: skip
        self.rundir = run
        self.snapshot: PoolSnapshot = run.snapshot
        self.calls = PacedClient(client.client if isinstance(client, PacedClient) else client,
                                 rates={USER_LIST: rate})  # fmt: skip
        self.sample = sample
        self.rate = rate
        self.estimated_users = estimated_users
        self.on_progress = on_progress
        written = deferred_aliases_written(run)
        aliases = self.snapshot.unique_attributes()
        self.attributes = (USERNAME, *(a for a in aliases if a in written))
        self.unchecked = tuple(a for a in aliases if a not in written)
        self._plan: AliasPlan | None = None

    def plan(self) -> AliasPlan:
        """Count the deferred users and decide how to check them (reads ``deferred.csv``)."""
        if self._plan is not None:
            return self._plan
        deferred = 0
        lookups_all = 0
        for user in iter_deferred(self.rundir):
            deferred += 1
            lookups_all += len(self._names(user))
        checked = min(deferred, self.sample) if self.sample is not None else deferred
        lookups = round(lookups_all * checked / deferred) if deferred else 0
        scan_calls = None
        if self.estimated_users is not None:
            # a page may hold fewer users than asked for (facts §9): a margin of a half
            scan_calls = max(1, -(-self.estimated_users * 3 // (2 * LIST_USERS_PAGE)))
        scan = scan_calls is not None and scan_calls < lookups
        self._plan = AliasPlan(
            deferred=deferred, checked=deferred if scan else checked,
            attributes=self.attributes, unchecked=self.unchecked,
            lookups=lookups_all if scan else lookups, scan_calls=scan_calls,
            strategy=Strategy.SCAN if scan else Strategy.FILTER, rate=self.rate,
        )  # fmt: skip
        return self._plan

    def run(self) -> AliasReport:
        """Check the names as planned: counts of every taken one, the first few kept."""
        plan = self.plan()
        found = self._scan(plan) if plan.strategy is Strategy.SCAN else self._filter(plan)
        order = {attribute: n for n, attribute in enumerate(self.attributes)}

        def first(names: list[TakenName]) -> list[TakenName]:
            names.sort(key=lambda t: (t.source_row, order[t.attribute]))
            return names[:TAKEN_EXAMPLES]

        taken, users, by_attribute = 0, set[int](), Counter[str]()
        examples: list[TakenName] = []
        for name in found:  # a run may have many taken: only counts and a few are kept
            taken += 1
            users.add(name.source_row)
            by_attribute[name.attribute] += 1
            examples.append(name)
            if len(examples) > 4 * TAKEN_EXAMPLES:
                examples = first(examples)
        return AliasReport(
            plan=plan, taken=taken, users=len(users),
            by_attribute={a: by_attribute[a] for a in self.attributes if by_attribute[a]},
            examples=first(examples),
        )  # fmt: skip

    # -- the names ----------------------------------------------------------------------
    def _names(self, user: UserResult) -> list[tuple[str, str]]:
        """(attribute, value) of each name the user may sign in with, as written."""
        return [(attribute, value) for attribute in self.attributes
                if (value := getattr(user, FIELD_OF[attribute]))]  # fmt: skip

    def _fold(self, attribute: str, value: str) -> str:
        """A name as the pool compares it: usernames and aliases ignore case in a
        case-insensitive pool (phone numbers have none). UNVERIFIED: whether ListUsers'
        ``username = "..."`` ignores case there too (the API calls the username filter
        case-sensitive); a pool listing compares folded names whatever it does."""
        return value if self.snapshot.case_sensitive else value.lower()

    def _checked_users(self, plan: AliasPlan) -> Iterator[UserResult]:
        """The deferred users to check: all, or a sample the same for every run of the
        check (seeded by the run's id), in file order."""
        users = iter_deferred(self.rundir)
        if plan.checked >= plan.deferred:
            yield from users
            return
        rng = random.Random(self.rundir.run_id)
        # One pass, memory for the sample only: the smallest random keys win.
        chosen = heapq.nsmallest(plan.checked, ((rng.random(), n, u)
                                                for n, u in enumerate(users)))  # fmt: skip
        for _, _, user in sorted(chosen, key=lambda item: item[1]):
            yield user

    # -- one call per name ----------------------------------------------------------------
    def _filter(self, plan: AliasPlan) -> Iterator[TakenName]:
        done = 0
        self.on_progress(0, plan.lookups)
        for user in self._checked_users(plan):
            for attribute, value in self._names(user):
                holder = self._holder(attribute, value)
                if holder is not None:
                    yield TakenName(attribute, value, user.source_row, user.legacy_id, holder)
                done += 1
                self.on_progress(done, plan.lookups)

    def _holder(self, attribute: str, value: str) -> str | None:
        """The username of a pool user whose ``attribute`` is ``value``, or None."""
        want = self._fold(attribute, value)
        page = self.calls.list_users(
            UserPoolId=self.rundir.user_pool_id, Filter=list_users_filter(attribute, value),
            Limit=LIST_USERS_PAGE, AttributesToGet=[] if attribute == USERNAME else [attribute],
        )  # fmt: skip
        # An exact filter finds at most a few users: one page is enough, and every answer
        # is checked against the value (csvimport.pool.FILTER_ESCAPES is a guess).
        for user in page.get("Users", []):
            if self._fold(attribute, _value(user, attribute)) == want:
                return str(user["Username"])
        return None

    # -- one listing of the pool ----------------------------------------------------------
    def _scan(self, plan: AliasPlan) -> Iterator[TakenName]:
        wanted: dict[str, dict[str, UserResult]] = {a: {} for a in self.attributes}
        for user in iter_deferred(self.rundir):
            for attribute, value in self._names(user):
                wanted[attribute].setdefault(self._fold(attribute, value), user)
        asked = [a for a in self.attributes if a != USERNAME]
        kwargs: dict[str, Any] = {"UserPoolId": self.rundir.user_pool_id,
                                  "Limit": LIST_USERS_PAGE, "AttributesToGet": asked}  # fmt: skip
        done = 0
        self.on_progress(0, plan.calls)
        while True:
            page = self.calls.list_users(**kwargs)
            for user in page.get("Users", []):
                for attribute in self.attributes:
                    value = _value(user, attribute)
                    owner = wanted[attribute].get(self._fold(attribute, value)) if value else None
                    if owner is not None:
                        yield TakenName(attribute, getattr(owner, FIELD_OF[attribute]),
                                        owner.source_row, owner.legacy_id,
                                        str(user["Username"]))  # fmt: skip
            done += 1
            self.on_progress(done, max(done, plan.calls))
            token = page.get("PaginationToken")
            if not token:
                return
            kwargs["PaginationToken"] = token


def _value(user: Mapping[str, Any], attribute: str) -> str:
    """A ListUsers user's ``attribute`` (its Username for ``username``), or ""."""
    if attribute == USERNAME:
        return str(user.get("Username", ""))
    attributes: Iterable[Mapping[str, Any]] = user.get("Attributes") or []
    return next((str(a.get("Value", "")) for a in attributes if a.get("Name") == attribute), "")


# --- the whole check --------------------------------------------------------------------
NO_DEFERRED_HINT = (
    "Nothing to check: this run imports every user. Build with --password-fallback migrate "
    "to leave users whose hash Cognito cannot import to the migration trigger."
)


@dataclass(frozen=True)
class MigrationCheck:
    """Everything ``csvimport migration-check`` found."""

    run_id: str
    deferred: int
    setup: SetupCheck
    aliases: AliasReport | None  # None: not checked (--no-aliases)

    @property
    def findings(self) -> list[Finding]:
        found = self.aliases.finding() if self.aliases is not None else None
        return self.setup.findings + ([found] if found else [])

    @property
    def exit_status(self) -> ExitStatus:
        """USAGE (2) when the trigger cannot work (a setting to fix), USERS_FAILED (1) when
        some deferred users have a name taken, else OK (warnings about app clients alone
        do not fail the check)."""
        if self.setup.errors:
            return ExitStatus.USAGE
        if self.aliases is not None and self.aliases.taken:
            return ExitStatus.USERS_FAILED
        return ExitStatus.OK

    def to_json(self, *, show_pii: bool = False) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "user_pool_id": self.setup.pool_id,
            "user_pool_name": self.setup.pool_name, "deferred": self.deferred,
            "trigger": self.setup.trigger_arn,
            "app_clients": [c.to_json() for c in self.setup.clients],
            "findings": [f.to_json() for f in self.findings],
            "aliases": None if self.aliases is None else self.aliases.to_json(show_pii=show_pii),
            "exit_status": int(self.exit_status),
        }  # fmt: skip


def deferred_or_refuse(run: RunDir) -> int:
    """How many users the run leaves to the trigger; RefusedError when none."""
    deferred = sum(1 for _ in iter_deferred(run))
    if not deferred:
        raise RefusedError(f"the run {run.path} leaves no user to the migration trigger "
                           "(it has no deferred users)", hint=NO_DEFERRED_HINT)  # fmt: skip
    return deferred
