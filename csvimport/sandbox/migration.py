"""The user migration Lambda trigger, as Cognito runs it (facts §7).

When a password sign-in (USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH) or ForgotPassword
names a user the pool does not have, under its username or an alias, and the pool's
``LambdaConfig.UserMigration`` is set, Cognito calls that function with a
``UserMigration_Authentication`` / ``UserMigration_ForgotPassword`` event and creates the
user from its answer. Here the function is a local handler (``lambdas``); this module builds
the event, reads and checks the answer, and makes the user, which the caller commits only
once nothing else can fail. Every choice AWS does not document is a SANDBOX CHOICE in
``settings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.cognitoidp.models import CognitoIdpUser, UserStatus

from . import settings as S
from .jobs import SandboxError
from .lambdas import LocalFunctions
from .rules import EMAIL, PHONE, PoolRules, fold, parse_bool
from .settings import SandboxSettings

ALIAS_KINDS = {"email": "email", "phone_number": "phone number"}


def trigger_arn(pool: Any) -> str | None:
    """The pool's UserMigration function ARN, if it has one."""
    return (pool.extended_config.get("LambdaConfig") or {}).get("UserMigration") or None


def _active(rules: PoolRules, attr: str, attributes: dict[str, str]) -> bool:
    """Whether a user's value of ``attr`` signs them in (and so must be unique)."""
    if attr in rules.username_attributes or attr in S.ALIASES_WITHOUT_VERIFICATION:
        return True
    return attributes.get(f"{attr}_verified") == "true"


def _same(rules: PoolRules, attr: str, a: str, b: str) -> bool:
    """Compare two values of ``attr`` as the pool does (phone numbers exactly)."""
    if attr == "phone_number":
        return a == b
    return fold(rules.case_sensitive, a) == fold(rules.case_sensitive, b)


def _sign_in_attributes(rules: PoolRules) -> list[str]:
    return [a for a in ("email", "phone_number", "preferred_username")
            if a in rules.username_attributes or a in rules.alias_attributes]  # fmt: skip


def alias_holder(pool: Any, rules: PoolRules, attr: str, value: str) -> Any:
    """The user whose active ``attr`` is ``value``, or None."""
    for user in pool.users.values():
        held = user.attribute_lookup.get(attr)
        if held and _same(rules, attr, held, value) and _active(rules, attr, user.attribute_lookup):
            return user
    return None


def find_user(pool: Any, name: str) -> Any:
    """The user a sign-in name means: the username (case folded where the pool folds it),
    else a UsernameAttributes value, else a verified email/phone alias or a
    preferred_username alias. None when the pool has no such user."""
    user = pool.users.get(name)  # a case-insensitive pool's table folds the name
    if user is not None or not name:
        return user
    rules = PoolRules.from_pool(pool)
    for attr in _sign_in_attributes(rules):
        user = alias_holder(pool, rules, attr, name)
        if user is not None:
            return user
    return None


def moto_name(pool: Any, user: Any, typed: str) -> str:
    """A name moto's own sign-in finds ``user`` by (it knows neither aliases nor case
    folding of attributes): what was typed when it does, else the attribute value the
    typed name matched in a UsernameAttributes pool, else the username."""
    if pool._get_user(typed) is user:
        return typed
    rules = PoolRules.from_pool(pool)
    for attr in rules.username_attributes:
        value = user.attribute_lookup.get(attr)
        if value and _same(rules, attr, value, typed):
            return str(value)
    return str(user.username)


def event(
    pool: Any, client_id: str, source: str, typed: str, password: str | None,
    metadata: dict[str, str] | None,
) -> dict[str, Any]:  # fmt: skip
    """The event Cognito sends the function (MU, and the common trigger parameters)."""
    request: dict[str, Any] = {}
    if password is not None:
        request["password"] = password
    if metadata:
        key = "validationData" if source == "UserMigration_Authentication" else "clientMetadata"
        request[key] = dict(metadata)
    return {
        "version": S.MIGRATION_EVENT_VERSION,
        "triggerSource": source,
        "region": pool.region,
        "userPoolId": pool.id,
        "userName": typed,
        "callerContext": {"awsSdkVersion": S.MIGRATION_SDK_VERSION, "clientId": client_id},
        "request": request,
        "response": dict.fromkeys(S.MIGRATION_RESPONSE_KEYS),
    }


def call(
    functions: LocalFunctions, settings: SandboxSettings, pool: Any, client_id: str,
    payload: dict[str, Any],
) -> Any:  # fmt: skip
    """Invoke the pool's function as Cognito does: timed out calls are retried up to the
    attempts allowed; the answer, or the SandboxError the app gets."""
    arn = trigger_arn(pool)
    if arn is None or functions.get(arn) is None:
        code, text = S.ERR_MIGRATION_NOT_INVOKABLE
        raise SandboxError(code, text.format(client_id=client_id))
    for _ in range(max(1, settings.trigger_attempts)):
        outcome = functions.invoke(arn, payload, settings.trigger_timeout_seconds)
        if not outcome.failed:
            return outcome.result
        if not outcome.timed_out and not S.MIGRATION_RETRY_FUNCTION_ERRORS:
            code, text = S.ERR_MIGRATION_FAILED
            raise SandboxError(code, text.format(error=outcome.error_message))
    if outcome.timed_out:
        code, text = S.ERR_MIGRATION_TIMEOUT
        raise SandboxError(code, text.format(seconds=settings.trigger_timeout_seconds))
    code, text = S.ERR_MIGRATION_FAILED
    raise SandboxError(code, text.format(error=outcome.error_message))


def _invalid(why: str) -> SandboxError:
    code, text = S.ERR_MIGRATION_INVALID_RESPONSE
    return SandboxError(code, text.format(why=why))


@dataclass(frozen=True)
class Answer:
    """The function's answer, checked."""

    attributes: dict[str, str]  # without `username`; *_verified as "true"/"false"
    username: str | None
    final_status: str
    suppress: bool
    delivery: tuple[str, ...]
    force_alias: bool
    sms_mfa: bool


def read_answer(result: Any, pool: Any, rules: PoolRules) -> Answer:
    """Check the function's answer as Cognito does before it creates anybody."""
    response = result.get("response") if isinstance(result, dict) else None
    if not isinstance(response, dict):
        raise _invalid("the function must return the event with its response object")
    given = response.get("userAttributes")
    if not isinstance(given, dict) or not given:
        raise _invalid("userAttributes is required and must be an object of attribute values")
    known = {name for name in pool.schema_attributes if name != "sub"} | {"username"}
    attributes: dict[str, str] = {}
    for name, value in given.items():
        if name not in known:
            raise _invalid(f"userAttributes has {name!r}, which is not an attribute of the pool")
        if not isinstance(value, str):
            raise _invalid(f"the value of userAttributes.{name} must be a string")
        problem = rules.attribute_problem(name, value) if name != "username" else None
        if problem:
            raise _invalid(problem)
        if name.endswith("_verified"):
            value = "true" if parse_bool(value) else "false"
        if value or not S.MIGRATION_DROPS_EMPTY_VALUES:
            attributes[name] = value
    if S.MIGRATION_CHECKS_REQUIRED_ATTRIBUTES:
        missing = [a for a in rules.required if a not in attributes]
        if missing:
            raise _invalid(f"userAttributes lacks the required {', '.join(missing)}")
    status = response.get("finalUserStatus") or S.MIGRATION_DEFAULT_FINAL_STATUS
    if status not in S.MIGRATION_FINAL_STATUSES:
        raise _invalid(f"finalUserStatus {status!r} is not one of "
                       f"{sorted(S.MIGRATION_FINAL_STATUSES)}")  # fmt: skip
    action = response.get("messageAction")
    if action is not None and action not in S.MIGRATION_MESSAGE_ACTIONS:
        raise _invalid(f"messageAction {action!r} is not one of "
                       f"{sorted(S.MIGRATION_MESSAGE_ACTIONS)}")  # fmt: skip
    mediums = response.get("desiredDeliveryMediums")
    if mediums is None:
        mediums = list(S.MIGRATION_DEFAULT_DELIVERY)
    if not isinstance(mediums, list) or not all(m in S.MIGRATION_DELIVERY_MEDIUMS for m in mediums):
        raise _invalid(f"desiredDeliveryMediums {mediums!r} must list some of "
                       f"{sorted(S.MIGRATION_DELIVERY_MEDIUMS)}")  # fmt: skip
    flags = {}
    for key in ("forceAliasCreation", "enableSMSMFA"):
        flag = response.get(key)
        if flag is not None and not isinstance(flag, bool):
            raise _invalid(f"{key} must be true or false, not {flag!r}")
        flags[key] = bool(flag)
    if flags["enableSMSMFA"] and (pool.mfa_config == "OFF" or "phone_number" not in attributes):
        raise _invalid("enableSMSMFA needs MFA turned on in the pool and a phone_number")
    return Answer(
        attributes={k: v for k, v in attributes.items() if k != "username"},
        username=attributes.get("username"),
        final_status=status,
        suppress=action == "SUPPRESS",
        delivery=tuple(dict.fromkeys(mediums)),
        force_alias=flags["forceAliasCreation"],
        sms_mfa=flags["enableSMSMFA"],
    )


def _shape(value: str) -> str | None:
    """Whether a typed name looks like an email address or a phone number."""
    if EMAIL.match(value):
        return "email"
    if PHONE.match(value):
        return "phone_number"
    return None


def _typed_value(rules: PoolRules, attributes: dict[str, str], attr: str, typed: str) -> None:
    """The typed value of a sign-in attribute is the user's value of it."""
    if S.MIGRATION_TYPED_VALUE_FILLS_ATTRIBUTE:
        attributes.setdefault(attr, typed)
    value = attributes.get(attr, "")
    if not _same(rules, attr, value, typed):
        raise _invalid(f"userAttributes.{attr} must be the {ALIAS_KINDS[attr]} the user "
                       "signed in with")  # fmt: skip


def new_user(
    pool: Any, rules: PoolRules, typed: str, answer: Answer, *, password: str | None,
    status: str, now: datetime,
) -> Any:  # fmt: skip
    """The user Cognito makes from the answer (not yet in the pool)."""
    attributes = dict(answer.attributes)
    shape = _shape(typed)
    username: str | None
    if rules.username_attributes:
        if shape not in rules.username_attributes:
            raise SandboxError(*S.ERR_MIGRATION_NOT_A_USERNAME_ATTRIBUTE)
        _typed_value(rules, attributes, shape, typed)
        username = None  # Cognito names the user by its sub
    elif shape is not None and shape in rules.alias_attributes:
        if not answer.username:
            code, text = S.ERR_MIGRATION_ALIAS_AS_USERNAME
            raise SandboxError(code, text.format(kind=ALIAS_KINDS[shape].replace(" ", "_")))
        _typed_value(rules, attributes, shape, typed)
        username = answer.username
    elif answer.username is None or fold(rules.case_sensitive, answer.username) == fold(
        rules.case_sensitive, typed
    ):
        username = typed if S.MIGRATION_USERNAME_KEEPS_CASE else fold(False, typed)
    elif "preferred_username" in rules.alias_attributes and _same(
        rules, "preferred_username", attributes.get("preferred_username", ""), typed
    ):
        username = answer.username
    else:
        raise _invalid("userAttributes.username must be the name the user signed in with, "
                       "unless that name is one of the user's aliases")  # fmt: skip
    if username is not None:
        problem = rules.username_problem(username)
        if problem:
            raise _invalid(f"the username is invalid: {problem}")
    user = CognitoIdpUser(
        pool.id, username, password, UserStatus[status],
        [{"Name": k, "Value": v} for k, v in attributes.items()],
    )  # fmt: skip
    user.create_date = user.last_modified_date = now
    if answer.sms_mfa:
        user.sms_mfa_enabled = True
        user.preferred_mfa_setting = "SMS_MFA"
    return user


def add_user(pool: Any, rules: PoolRules, user: Any, force_alias: bool) -> None:
    """Put a migrated user in the pool, taking its aliases: an email/phone another user
    holds moves to it when ``force_alias`` (else AliasExistsException), as MU says."""
    if user.username in pool.users:
        raise SandboxError(*S.ERR_MIGRATION_USERNAME_EXISTS)
    moves = []
    for attr in _sign_in_attributes(rules):
        value = user.attribute_lookup.get(attr)
        if not value or not _active(rules, attr, user.attribute_lookup):
            continue
        holder = alias_holder(pool, rules, attr, value)
        if holder is None:
            continue
        if not force_alias or attr not in S.MIGRATION_MOVABLE_ALIASES:
            code, text = S.ERR_MIGRATION_ALIAS_EXISTS
            raise SandboxError(code, text.format(attr=attr))
        moves.append((holder, attr))
    for holder, attr in moves:
        if attr in rules.username_attributes or not S.MOVED_ALIAS_STAYS_UNVERIFIED:
            holder.delete_attributes([attr])
        else:
            holder.update_attributes([{"Name": f"{attr}_verified", "Value": "false"}])
    pool.users[user.username] = user
