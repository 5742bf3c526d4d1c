"""csvimport's additions to moto's Cognito and CloudWatch Logs HTTP handlers.

moto's server looks an action up by name on the service's response class at request
time (facts §8), so subclassing ``CognitoIdpResponse`` adds the import-job API, and
overriding a few actions fixes the moto gaps that matter to a migration. Dicts returned
inside ``ActionResult`` are serialised by botocore's own service model.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import itertools
import json
import math
import re
import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.cognitoidp.models import (
    CognitoIdpUserPoolAttribute,
    UserStatus,
    cognitoidp_backends,
    find_account_region_by_value,
)
from moto.cognitoidp.responses import CognitoIdpResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.logs.exceptions import InvalidParameterException
from moto.logs.responses import LogsResponse
from moto.logs.utils import EventMessageFilter

from . import migration
from . import settings as S
from .jobs import ImportJob, JobStore, SandboxError
from .logindex import Key, events_after, index_of, time_range
from .passwords import verify_password
from .rules import PoolRules

# The job store of the sandbox serving requests in this process (one at a time).
STORE: JobStore | None = None


def _store() -> JobStore:
    if STORE is None:  # pragma: no cover - only when used outside a Sandbox
        raise SandboxError("InternalErrorException", "The csvimport sandbox is not running.")
    return STORE


@dataclass
class RecoveryLedger:
    """What a sandbox "sent" for password recovery, and the per-account counters behind
    the daily email limit and ``settings.recovery_rps``. Tests read ``messages`` through
    ``GET /_sandbox/messages``; nothing here is ever logged (it holds reset codes)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    emails: dict[tuple[str, str], int] = field(default_factory=dict)  # (scope, UTC day) -> n
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)  # account -> (sec, n)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def clear(self) -> None:
        """Forget every message and counter (between tests)."""
        with self.lock:
            self.messages.clear()
            self.emails.clear()
            self.windows.clear()

    def select(self, pool_id: str | None = None, username: str | None = None) -> list[Any]:
        with self.lock:
            return [
                dict(m) for m in self.messages
                if (pool_id is None or m["UserPoolId"] == pool_id)
                and (username is None or m["Username"] == username)
            ]  # fmt: skip

    def check_rate(
        self, account: str, now: float, rps: int,
        error: tuple[str, str] = S.ERR_RECOVERY_THROTTLED,
    ) -> None:  # fmt: skip
        """Throttle an operation of a quota bucket called faster than ``rps`` in one second
        (``account`` names the bucket too when it is not the recovery one)."""
        if rps <= 0:
            return
        second = math.floor(now)
        with self.lock:
            window, count = self.windows.get(account, (second, 0))
            if window != second:
                window, count = second, 0
            if count >= rps:
                raise SandboxError(*error)
            self.windows[account] = (window, count + 1)

    def send(self, message: dict[str, Any], email_scope: str | None, limit: int) -> None:
        """Record a delivered message; an email through Cognito's default sender
        (``email_scope`` set) first takes one of the scope's ``limit`` emails of the day."""
        with self.lock:
            if email_scope is not None:
                day = datetime.fromtimestamp(message["SentAt"], tz=UTC).date().isoformat()
                sent = self.emails.get((email_scope, day), 0)
                if sent >= limit:
                    raise SandboxError(*S.ERR_DAILY_EMAIL_LIMIT)
                self.emails[(email_scope, day)] = sent + 1
            self.messages.append(message)


_LEDGERS: weakref.WeakKeyDictionary[JobStore, RecoveryLedger] = weakref.WeakKeyDictionary()
_LEDGERS_LOCK = threading.Lock()


def recovery_ledger(store: JobStore) -> RecoveryLedger:
    """The recovery ledger of a sandbox's store (created on first use)."""
    with _LEDGERS_LOCK:
        ledger = _LEDGERS.get(store)
        if ledger is None:
            ledger = _LEDGERS[store] = RecoveryLedger()
        return ledger


class ListedUsers(dict[str, Any]):
    """A pool's user table that ListUsers pages in time proportional to the page.

    moto's ListUsers copies the whole pool and looks for the token's user in it on every
    page, which makes a scan of a large pool quadratic and fails a scan whose next user
    was deleted meanwhile. This table also remembers the order users arrived in (moto's
    order): one list of (increasing sequence number, key). A page token names the last
    sequence number given, so the next page starts with a bisect; users added between
    pages come later in the scan, deleted ones leave a hole paging skips (holes are
    compacted away once they outnumber users). The sandbox's import jobs add users from
    their own thread while ListUsers pages: the list is only appended to or replaced
    whole, and a page reads the list it started with.
    """

    def __init__(self, items: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._order: list[tuple[int, str]] = []
        self._seq_of: dict[str, int] = {}
        self._next = 0
        for key, value in (items or {}).items():
            self[key] = value

    def _fold(self, key: str) -> str:
        return key

    def __setitem__(self, key: str, value: Any) -> None:
        key = self._fold(key)
        if key not in self._seq_of:
            self._seq_of[key] = self._next
            self._order.append((self._next, key))
            self._next += 1
        super().__setitem__(key, value)

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(self._fold(key))

    def __delitem__(self, key: str) -> None:
        key = self._fold(key)
        super().__delitem__(key)
        del self._seq_of[key]
        if len(self._order) > 2 * len(self._seq_of) + 64:
            self._order = [(q, k) for q, k in self._order if self._seq_of.get(k) == q]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(self._fold(key))

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(self._fold(key), default)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            value = self[key]
            del self[key]
            return value
        return super().pop(self._fold(key), *default)

    def page(self, after: int, limit: int, keep: Callable[[Any], bool]) -> tuple[list[Any], int]:
        """Up to ``limit`` users ``keep`` accepts that arrived after sequence number
        ``after``, and the sequence number to go on after (-1 when no such user is left)."""
        order = self._order
        i = bisect.bisect_right(order, after, key=lambda entry: entry[0])
        users: list[Any] = []
        last = -1
        while i < len(order):
            seq, key = order[i]
            i += 1
            if self._seq_of.get(key) != seq:
                continue  # deleted (or deleted and added again later)
            user = dict.get(self, key)
            if user is None or not keep(user):
                continue
            if len(users) == limit:
                return users, last  # a further user exists: the page gets a token
            users.append(user)
            last = seq
        return users, -1


class CaseInsensitiveUsers(ListedUsers):
    """A pool's user table for a pool with ``UsernameConfiguration.CaseSensitive=false``."""

    def _fold(self, key: str) -> str:
        return key.lower()


def _listed_users(pool: Any) -> ListedUsers:
    """The pool's user table as a ``ListedUsers`` (a pool moto made directly has a dict)."""
    if not isinstance(pool.users, ListedUsers):
        pool.users = ListedUsers(pool.users)
    return pool.users


def _user_filter(filt: str | None) -> Callable[[Any], bool]:
    """ListUsers' one-attribute ``Filter`` (facts §9) as a test of one user: moto's own
    grammar and attributes (checked to match Cognito's), applied a user at a time."""
    if not filt:
        return lambda user: True
    match = re.fullmatch(r'\s*([\w:]+)\s*(=|\^=)\s*"(.*)"\s*', filt)
    if not match:
        raise SandboxError("InvalidParameterException", "Error while parsing filter")
    name, op, value = match.groups()
    if name not in S.LIST_USERS_FILTER_ATTRIBUTES:
        raise SandboxError("InvalidParameterException", f"Invalid search attribute: {name}")
    inherent: dict[str, Callable[[Any], str]] = {
        "cognito:user_status": lambda u: str(getattr(u.status, "value", u.status)),
        "status": lambda u: "Enabled" if u.enabled else "Disabled",
        "username": lambda u: str(u.username),
    }

    def found(user: Any) -> str | None:
        if name in inherent:
            return inherent[name](user)
        return next((a["Value"] for a in user.attributes if a["Name"] == name), None)

    if op == "=":
        return lambda user: found(user) == value
    return lambda user: (got := found(user)) is not None and got.startswith(value)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str | None, what: str) -> int:
    if not token:
        return 0
    try:
        return int(_token_value(token, "offset"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SandboxError("InvalidParameterException", f"The {what} is invalid.") from None


def _token_value(token: str, kind: str) -> str:
    """What an opaque token of ``kind`` holds (ValueError for any other token)."""
    found, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    if found != kind:
        raise ValueError(token)
    return value


def _encode_position(after: Key | None) -> str:
    """A FilterLogEvents token: go on after the event with this (timestamp, event id),
    or from the first event when None."""
    value = "" if after is None else f"{after[0]}:{after[1]}"
    return base64.urlsafe_b64encode(f"{S.LOG_FILTER_TOKEN_KIND}:{value}".encode()).decode()


def _decode_position(token: str | None, what: str) -> Key | None:
    if not token:
        return None
    try:
        value = _token_value(token, S.LOG_FILTER_TOKEN_KIND)
        if not value:
            return None
        timestamp, event_id = value.split(":")
        return int(timestamp), int(event_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SandboxError("InvalidParameterException", f"The {what} is invalid.") from None


class PasswordResetRequiredException(SandboxError):
    def __init__(self) -> None:
        super().__init__("PasswordResetRequiredException", "Password reset required for the user")


class SandboxCognitoResponse(CognitoIdpResponse):
    """moto's Cognito handler plus import jobs and migration-relevant fixes."""

    # -- the import-job API -----------------------------------------------------------
    def get_csv_header(self) -> ActionResult:
        pool_id = self._get_param("UserPoolId")
        pool = _store()._pool(self.current_account, self.region, pool_id)
        return ActionResult({"UserPoolId": pool_id, "CSVHeader": PoolRules.from_pool(pool).header})

    def create_user_import_job(self) -> ActionResult:
        job = _store().create(
            self.current_account,
            self.region,
            self._get_param("UserPoolId"),
            self._get_param("JobName"),
            self._get_param("CloudWatchLogsRoleArn"),
            self._get_param("PasswordHashingAlgorithm"),
        )
        return ActionResult({"UserImportJob": job.to_api()})

    def _on_job(
        self, operation: Callable[[JobStore, str, str, str, str], ImportJob]
    ) -> ActionResult:
        """Run a JobStore operation on the request's UserPoolId and JobId."""
        args = (self.current_account, self.region, self._get_param("UserPoolId"))
        job = operation(_store(), *args, self._get_param("JobId"))
        return ActionResult({"UserImportJob": job.to_api()})

    def describe_user_import_job(self) -> ActionResult:
        return self._on_job(JobStore.describe)

    def list_user_import_jobs(self) -> ActionResult:
        max_results = int(self._get_param("MaxResults") or 0)
        if not 1 <= max_results <= 60:
            raise SandboxError(
                "InvalidParameterException",
                f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to "
                "satisfy constraint: Member must have value between 1 and 60",
            )
        start = _decode_token(self._get_param("PaginationToken"), "PaginationToken")
        jobs = _store().list(self.current_account, self.region, self._get_param("UserPoolId"))
        page = jobs[start : start + max_results]
        result: dict[str, Any] = {"UserImportJobs": [j.to_api() for j in page]}
        if start + max_results < len(jobs):
            result["PaginationToken"] = _encode_token(start + max_results)
        return ActionResult(result)

    def start_user_import_job(self) -> ActionResult:
        return self._on_job(JobStore.start)

    def stop_user_import_job(self) -> ActionResult:
        return self._on_job(JobStore.stop)

    # -- moto gaps --------------------------------------------------------------------
    def create_user_pool(self) -> ActionResult:
        """Keep the standard attributes next to a custom Schema; honour CaseSensitive=false."""
        params = json.loads(self.body)
        result = super().create_user_pool()
        pool_id = result.result["UserPool"]["Id"]  # type: ignore[index]
        pool = cognitoidp_backends[self.current_account][self.region].user_pools[pool_id]
        given = dict(pool.schema_attributes)
        merged: dict[str, Any] = {}
        for name, schema in CognitoIdpUserPoolAttribute.STANDARD_SCHEMA.items():
            merged[name] = given.pop(name, None) or CognitoIdpUserPoolAttribute(name, False, schema)
        merged.update(given)  # the custom attributes, in the order they were declared
        pool.schema_attributes = merged
        if (params.get("UsernameConfiguration") or {}).get("CaseSensitive") is False:
            pool.users = CaseInsensitiveUsers(pool.users)
        else:
            pool.users = ListedUsers(pool.users)
        return ActionResult({"UserPool": pool.to_json(extended=True)})

    def list_users(self) -> ActionResult:
        """ListUsers as Cognito serves it (facts §9), a page in time proportional to the
        page: ``Limit`` 0..60, the one-attribute filter, short pages when the sandbox is
        told to answer them (``settings.list_users_short_pages``)."""
        limit = self._get_param("Limit")
        if limit is not None and not 0 <= int(limit) <= S.LIST_USERS_MAX_LIMIT:
            raise SandboxError(
                "InvalidParameterException",
                f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                "constraint: Member must have value less than or equal to "
                f"{S.LIST_USERS_MAX_LIMIT}",
            )
        asked = int(limit) if limit else S.LIST_USERS_LIMIT_ZERO_MEANS
        keep = _user_filter(self._get_param("Filter"))
        pool = self.backend.describe_user_pool(self._get_param("UserPoolId"))
        token = self._get_param("PaginationToken")
        try:
            after = int(_token_value(token, S.LIST_USERS_TOKEN_KIND)) if token else -1
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise SandboxError("InvalidParameterException", "Invalid pagination token") from None
        if _store().settings.short_list_users_page():
            asked = max(1, asked // 2)  # a short page: its token goes on after its last user
        users, last = _listed_users(pool).page(after, asked, keep)
        wanted = self._get_param("AttributesToGet")
        result: dict[str, Any] = {
            "Users": [u.to_json(extended=True, attributes_to_get=wanted) for u in users]
        }
        if last >= 0:
            result["PaginationToken"] = base64.urlsafe_b64encode(
                f"{S.LIST_USERS_TOKEN_KIND}:{last}".encode()
            ).decode()
        return ActionResult(result)

    def _password_sign_in(
        self, pool: Any, client_id: str, auth_flow: str, params: dict[str, str]
    ) -> dict[str, str]:
        """Cognito's steps before a password sign-in that moto lacks: the app client must
        allow the flow; the user is looked up by username or alias; an unknown user goes to
        the UserMigration trigger; an imported user's hash is checked. Returns the
        AuthParameters for moto's sign-in, naming the user so that moto finds it."""
        if auth_flow not in S.MIGRATION_AUTH_FLOWS:
            return params
        client = pool.clients.get(client_id)
        if client is not None:
            allowed = client.extended_config.get("ExplicitAuthFlows") or S.DEFAULT_CLIENT_FLOWS
            if not S.CLIENT_FLOWS_FOR[auth_flow] & set(allowed):
                raise SandboxError(*(S.ERR_USER_PASSWORD_AUTH_DISABLED
                                     if auth_flow == "USER_PASSWORD_AUTH"
                                     else S.ERR_ADMIN_PASSWORD_AUTH_DISABLED))  # fmt: skip
        typed = params.get("USERNAME", "")
        user = migration.find_user(pool, typed)
        if user is None and migration.trigger_arn(pool):
            password = params.get("PASSWORD", "")
            user = self._migrate(pool, client_id, "UserMigration_Authentication", typed, password)
        if user is None:
            return params
        if user.status == UserStatus.RESET_REQUIRED:
            raise PasswordResetRequiredException()
        imported = getattr(user, "csvimport_hash", None)
        if imported and user.password is None:
            algorithm, stored = imported
            password = params.get("PASSWORD", "")
            if not verify_password(algorithm, stored, password):
                raise SandboxError("NotAuthorizedException", "Incorrect username or password.")
            user.password = password  # as Cognito re-hashes it on first sign-in
        return {**params, "USERNAME": migration.moto_name(pool, user, typed)}

    def _migrate(
        self, pool: Any, client_id: str, source: str, typed: str, password: str | None,
        check: Callable[[Any], object] | None = None,
    ) -> Any:  # fmt: skip
        """Run the pool's UserMigration trigger for a user it does not have and create the
        user from the answer (``check`` may still refuse the user before it is added).
        Nobody is created when anything fails."""
        store = _store()
        metadata = self._get_param("ClientMetadata")
        payload = migration.event(pool, client_id, source, typed, password, metadata)
        result = migration.call(store.functions, store.settings, pool, client_id, payload)
        rules = PoolRules.from_pool(pool)
        answer = migration.read_answer(result, pool, rules)
        status = answer.final_status
        if source == "UserMigration_ForgotPassword":
            status = S.MIGRATION_FORGOT_PASSWORD_STATUS
        user = migration.new_user(
            pool, rules, typed, answer, status=status, now=store.clock.naive_utc(),
            password=password if status == "CONFIRMED" else None,
        )  # fmt: skip
        if check is not None:
            check(user)
        with store.lock:
            existing = migration.find_user(pool, typed)
            if existing is not None:  # a concurrent sign-in migrated the user first
                return existing
            migration.add_user(pool, rules, user, answer.force_alias)
        if not answer.suppress:
            send_welcome(pool, user, answer.delivery, source)
        return user

    def _pool_of_client(self, client_id: str) -> Any:
        account, region = find_account_region_by_value(
            "client_id", client_id, fallback=(self.current_account, self.region)
        )
        for pool in cognitoidp_backends[account][region].user_pools.values():
            if client_id in pool.clients:
                return pool
        return None

    def _client_pool(self) -> Any:
        """The pool of the request's ClientId; moto answers an unknown one with its bare id."""
        client_id = self._get_param("ClientId")
        pool = self._pool_of_client(client_id)
        if pool is None:
            code, text = S.ERR_CLIENT_MISSING
            raise SandboxError(code, text.format(client_id=client_id))
        return pool

    def initiate_auth(self) -> ActionResult:
        pool = self._client_pool()
        client_id, auth_flow = self._get_param("ClientId"), self._get_param("AuthFlow")
        params = self._get_param("AuthParameters") or {}
        params = self._password_sign_in(pool, client_id, auth_flow, params)
        backend = self._get_region_agnostic_backend()
        return ActionResult(backend.initiate_auth(client_id, auth_flow, params))

    def admin_initiate_auth(self) -> ActionResult:
        backend = cognitoidp_backends[self.current_account][self.region]
        pool_id, client_id = self._get_param("UserPoolId"), self._get_param("ClientId")
        auth_flow = self._get_param("AuthFlow")
        params = self._get_param("AuthParameters") or {}
        pool = backend.user_pools.get(pool_id)
        if pool is not None:
            params = self._password_sign_in(pool, client_id, auth_flow, params)
        return ActionResult(backend.admin_initiate_auth(pool_id, client_id, auth_flow, params))

    # -- follow-ups: groups and disabling (facts §9) -------------------------------------
    def _check_user_update_rate(self) -> None:
        store = _store()
        recovery_ledger(store).check_rate(
            f"UserUpdate {self.current_account}", store.clock.now(),
            store.settings.user_update_rps, S.ERR_USER_UPDATE_THROTTLED,
        )  # fmt: skip

    def admin_add_user_to_group(self) -> ActionResult:
        """moto's, with the UserUpdate quota and Cognito's 100 groups per user."""
        self._check_user_update_rate()
        backend = cognitoidp_backends[self.current_account][self.region]
        pool_id = self._get_param("UserPoolId")
        group = backend.get_group(pool_id, self._get_param("GroupName"))
        user = backend.admin_get_user(pool_id, self._get_param("Username"))
        if group not in user.groups and len(user.groups) >= S.MAX_GROUPS_PER_USER:
            raise SandboxError(*S.ERR_USER_GROUP_LIMIT)
        return super().admin_add_user_to_group()

    def admin_disable_user(self) -> ActionResult:
        self._check_user_update_rate()
        return super().admin_disable_user()

    def admin_delete_user(self) -> ActionResult:
        """moto's, under the UserUpdate quota (``csvimport undo``)."""
        self._check_user_update_rate()
        return super().admin_delete_user()

    def admin_update_user_attributes(self) -> ActionResult:
        self._check_user_update_rate()
        return super().admin_update_user_attributes()

    def create_group(self) -> ActionResult:
        """moto's, with Cognito's 10,000 groups per pool."""
        backend = cognitoidp_backends[self.current_account][self.region]
        pool = backend.describe_user_pool(self._get_param("UserPoolId"))
        if len(pool.groups) >= S.MAX_GROUPS_PER_POOL:
            raise SandboxError(*S.ERR_POOL_GROUP_LIMIT)
        return super().create_group()

    # -- password recovery (facts §6) -------------------------------------------------
    def _check_recovery_rate(self, account: str) -> None:
        store = _store()
        recovery_ledger(store).check_rate(account, store.clock.now(), store.settings.recovery_rps)

    def forgot_password(self) -> ActionResult:
        """Deliver the code through the first recovery channel the user has verified."""
        pool = self._client_pool()
        self._check_recovery_rate(pool.account_id)
        typed = self._get_param("Username")
        user = migration.find_user(pool, typed)
        if user is None and migration.trigger_arn(pool):
            # The answer must give the user a channel for the code, or nobody is created.
            user = self._migrate(
                pool, self._get_param("ClientId"), "UserMigration_ForgotPassword", typed, None,
                check=lambda new: _delivery(pool, new, "ForgotPassword"),
            )  # fmt: skip
        if user is None:
            return super().forgot_password()  # moto's answer for unknown users
        details = send_reset_code(pool, user, "ForgotPassword")
        self.response_headers["x-moto-forgot-password-confirmation-code"] = user.confirmation_code
        return ActionResult({"CodeDeliveryDetails": details})

    def admin_reset_user_password(self) -> ActionResult:
        """Send a reset code like ForgotPassword (moto sends none for RESET_REQUIRED users)."""
        self._check_recovery_rate(self.current_account)
        backend = cognitoidp_backends[self.current_account][self.region]
        user = backend.admin_get_user(self._get_param("UserPoolId"), self._get_param("Username"))
        pool = backend.user_pools[self._get_param("UserPoolId")]
        if not user.enabled:
            raise SandboxError("NotAuthorizedException", "User is disabled")
        if user.status not in (UserStatus.RESET_REQUIRED, UserStatus.CONFIRMED):
            raise SandboxError(
                "NotAuthorizedException", "User password cannot be reset in the current state."
            )
        send_reset_code(pool, user, "AdminResetUserPassword")
        user.status = UserStatus.RESET_REQUIRED
        return EmptyResult()

    def admin_set_user_password(self) -> ActionResult:
        self._check_recovery_rate(self.current_account)
        result = super().admin_set_user_password()
        return result if result is not None else EmptyResult()

    def confirm_forgot_password(self) -> ActionResult:
        """Also move the user out of RESET_REQUIRED, as Cognito does."""
        pool = self._client_pool()
        self._check_recovery_rate(pool.account_id)
        user = pool._get_user(self._get_param("Username"))
        if user is None:  # moto names the client as if it were missing
            raise SandboxError(*S.ERR_USER_NOT_IN_CLIENTS_POOL)
        result = super().confirm_forgot_password()
        user.status = UserStatus.CONFIRMED
        if hasattr(user, "csvimport_hash"):
            del user.csvimport_hash
        return result if result is not None else EmptyResult()


def _delivery(pool: Any, user: Any, operation: str) -> dict[str, str]:
    """Where Cognito sends a reset code: the first mechanism by priority the user can use."""
    setting = pool.extended_config.get("AccountRecoverySetting") or {}
    mechanisms = sorted(
        setting.get("RecoveryMechanisms") or S.DEFAULT_RECOVERY_MECHANISMS,
        key=lambda m: m["Priority"],
    )
    attrs = user.attribute_lookup
    for mechanism in mechanisms:
        name = mechanism["Name"]
        if name == "admin_only":
            if operation == "AdminResetUserPassword":
                raise SandboxError(*S.ERR_ADMIN_ONLY_ADMIN_RESET)
            raise SandboxError(*S.ERR_ADMIN_ONLY_FORGOT)
        attr = "email" if name == "verified_email" else "phone_number"
        if attrs.get(attr) and attrs.get(f"{attr}_verified") == "true":
            return _destination(attr, attrs[attr])
    raise SandboxError(*S.ERR_NO_RECOVERY_CHANNEL)


def _destination(attr: str, value: str) -> dict[str, str]:
    """Cognito's CodeDeliveryDetails for a message to this email address or phone number."""
    if attr == "email":
        local, _, domain = value.partition("@")
        return {"Destination": f"{local[:1]}***@{domain[:1]}***",
                "DeliveryMedium": "EMAIL", "AttributeName": "email"}  # fmt: skip
    return {"Destination": "+" + "*" * (len(value) - 5) + value[-4:],
            "DeliveryMedium": "SMS", "AttributeName": "phone_number"}  # fmt: skip


def _email_scope(pool: Any) -> str | None:
    """Whose daily email limit an email from this pool counts toward (None: not limited)."""
    sending = (pool.extended_config.get("EmailConfiguration") or {}).get(
        "EmailSendingAccount"
    ) or "COGNITO_DEFAULT"
    if sending not in S.DEFAULT_EMAIL_SENDING_ACCOUNTS:
        return None
    return f"{pool.account_id}/{pool.region}" if S.EMAIL_LIMIT_PER_REGION else pool.account_id


def send_reset_code(pool: Any, user: Any, operation: str) -> dict[str, str]:
    """Pick the user's recovery channel, "send" a new reset code through it (recorded in
    the sandbox's ledger, subject to the daily email limit) and make it the code
    ConfirmForgotPassword accepts. Returns Cognito's CodeDeliveryDetails."""
    details = _delivery(pool, user, operation)
    store = _store()
    email_scope = None
    if details["DeliveryMedium"] == "SMS":
        sms = pool.extended_config.get("SmsConfiguration") or {}
        if operation in S.SMS_CONFIG_REQUIRED_FOR and not sms.get("SnsCallerArn"):
            raise SandboxError(*S.ERR_SMS_NOT_CONFIGURED)
    else:
        email_scope = _email_scope(pool)
    code = user.confirmation_code
    while code == user.confirmation_code:  # a new code always invalidates the last one
        code = f"{S.RESET_CODE_PREFIX}{secrets.randbelow(900_000) + 100_000}"
    message = {
        "Operation": operation,
        "Account": pool.account_id,
        "Region": pool.region,
        "UserPoolId": pool.id,
        "Username": user.username,
        "DeliveryMedium": details["DeliveryMedium"],
        "AttributeName": details["AttributeName"],
        "Destination": details["Destination"],
        "Code": code,
        "SentAt": store.clock.now(),
    }
    recovery_ledger(store).send(message, email_scope, store.settings.daily_email_limit)
    user.confirmation_code = code
    return details


def send_welcome(pool: Any, user: Any, mediums: tuple[str, ...], source: str) -> None:
    """Record the welcome message a migrated user gets when the answer does not suppress
    it: once per desired medium the user has an address for; past the daily email limit
    an email is not sent (settings' MIGRATION_WELCOME_* choices)."""
    store = _store()
    for medium in mediums:
        attr = "email" if medium == "EMAIL" else "phone_number"
        value = user.attribute_lookup.get(attr)
        if not value:
            continue
        details = _destination(attr, value)
        message = {
            "Operation": S.MIGRATION_WELCOME_OPERATION,
            "TriggerSource": source,
            "Account": pool.account_id,
            "Region": pool.region,
            "UserPoolId": pool.id,
            "Username": user.username,
            **details,
            "Code": None,
            "SentAt": store.clock.now(),
        }
        scope = _email_scope(pool) if medium == "EMAIL" else None
        try:
            recovery_ledger(store).send(message, scope, store.settings.daily_email_limit)
        except SandboxError:
            if S.MIGRATION_WELCOME_OVER_LIMIT_FAILS:
                raise


class SandboxLogsResponse(LogsResponse):
    """moto's CloudWatch Logs handler with FilterLogEvents as AWS pages it, and faults."""

    def filter_log_events(self) -> str:
        """Pages the group's events in time order across its streams; a page costs its
        size: each stream resumes by bisection after the token's event, merged lazily."""
        names = self._get_param("logStreamNames") or []
        prefix = self._get_param("logStreamNamePrefix")
        if names and prefix:
            raise SandboxError(
                "InvalidParameterException",
                "logStreamNames and logStreamNamePrefix cannot both be specified.",
            )
        group = self._group()
        start_time = self._get_param("startTime")
        end_time = self._get_param("endTime")
        pattern = self._get_param("filterPattern")
        matcher = EventMessageFilter(pattern) if pattern else None
        limit = int(self._get_param("limit") or 10_000)
        after = _decode_position(self._get_param("nextToken"), "nextToken")
        streams = [
            s for name, s in group.streams.items()
            if (not names or name in names) and (not prefix or name.startswith(prefix))
        ]  # fmt: skip
        merged = heapq.merge(
            *(events_after(s, after, start_time, end_time) for s in streams),
            key=lambda item: item[0],
        )
        matching = (item for item in merged if matcher is None or matcher.matches(item[2].message))
        searched = [
            {"logStreamName": s.log_stream_name, "searchedCompletely": True} for s in streams
        ]
        first = next(matching, None)
        if first is not None and _store().faults.empty_log_page():
            body = {
                "events": [],
                "nextToken": _encode_position(after),
                "searchedLogStreams": searched,
            }
            return json.dumps(body)
        page = [] if first is None else [first, *itertools.islice(matching, max(0, limit - 1))]
        body = {
            "events": [
                dict(event.to_filter_dict(), logStreamName=stream_name)
                for _, stream_name, event in page
            ],
            "searchedLogStreams": searched,
        }
        if page and next(matching, None) is not None:
            # The next page resumes after this page's last event: events logged late
            # (after this token) that sort after it are on a later page, exactly once.
            body["nextToken"] = _encode_position(page[-1][0])
        return json.dumps(body)

    def _group(self) -> Any:
        """The request's log group, by logGroupName or logGroupIdentifier (a name or an ARN).

        moto's own lookup by identifier answers the last group it has when none matches."""
        name = self._get_param("logGroupName")
        identifier = self._get_param("logGroupIdentifier") or ""
        groups = self.logs_backend.groups
        if name:
            group = groups.get(name)
        else:
            group = next((g for g in groups.values()
                          if identifier in (g.name, g.arn, f"{g.arn}:*")), None)  # fmt: skip
        if group is None:
            raise SandboxError("ResourceNotFoundException", S.ERR_LOG_GROUP_MISSING)
        return group

    def _stream(self, group: Any) -> str:
        """The request's log stream name, which must exist (moto says "log group" then)."""
        name = str(self._get_param("logStreamName"))
        if name not in group.streams:
            raise SandboxError("ResourceNotFoundException", S.ERR_LOG_STREAM_MISSING)
        return name

    def delete_log_stream(self) -> str:
        group = self._group()
        del group.streams[self._stream(group)]
        return ""

    def get_log_events(self) -> str:
        group = self._group()
        stream = self._stream(group)
        if not self._get_param("nextToken") and _store().faults.empty_log_page():
            # An empty first page whose forward token starts from the head again.
            return json.dumps(
                {
                    "events": [],
                    "nextForwardToken": f"f/{-1:056d}",
                    "nextBackwardToken": f"b/{0:056d}",
                }
            )
        limit = self._get_param("limit")
        if limit and int(limit) > 10_000:
            raise SandboxError(
                "InvalidParameterException",
                f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                "constraint: Member must have value less than or equal to 10000",
            )
        events, backward, forward = _log_events_page(
            group.streams[stream], self._get_param("startTime"), self._get_param("endTime"),
            limit, self._get_param("nextToken"), self._get_param("startFromHead", False),
        )  # fmt: skip
        return json.dumps(
            {"events": events, "nextBackwardToken": backward, "nextForwardToken": forward}
        )


def _log_events_page(
    stream: Any,
    start_time: int | None,
    end_time: int | None,
    limit: int | None,
    next_token: str | None,
    start_from_head: bool,
) -> tuple[list[dict[str, Any]], str, str]:
    """moto's ``LogStream.get_log_events``, token for token, on the stream's index: its
    tokens are positions among the stream's events in the time range, which the index
    finds by bisection instead of filtering and sorting the whole stream for each page."""
    if limit is None:
        limit = 10000
    if next_token is not None:
        try:
            direction: str | None = next_token[0]
            index = int(next_token[2:])
        except Exception:
            raise InvalidParameterException("The specified nextToken is invalid.") from None
    else:
        direction, index = None, 0
    ordered = index_of(stream).ordered(stream)
    span = time_range(ordered, start_time, end_time)
    limit_index = limit - 1
    final_index = len(span) - 1
    if direction is None:
        if start_from_head:
            start_index = 0
            end_index = start_index + limit_index
        else:
            end_index = final_index
            start_index = end_index - limit_index
    elif direction == "f":
        start_index = index + 1
        end_index = start_index + limit_index
    elif direction == "b":
        end_index = index - 1
        start_index = end_index - limit_index
    else:
        raise InvalidParameterException("The specified nextToken is invalid.")
    if start_index < 0:
        start_index = 0
    elif start_index > final_index:
        return [], f"b/{final_index:056d}", f"f/{final_index:056d}"
    if end_index > final_index:
        end_index = final_index
    elif end_index < 0:
        return [], f"b/{0:056d}", f"f/{0:056d}"
    page = ordered[span.start + start_index : span.start + end_index + 1]
    index_of(stream).count(len(page))
    events = [event.to_response_dict() for event in page]
    return events, f"b/{start_index:056d}", f"f/{end_index:056d}"
