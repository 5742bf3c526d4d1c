"""The sandbox runs a pool's UserMigration trigger like Cognito (facts §7): a local handler
(tests/migration_handler.py) named in the pool spec is called for users the pool lacks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from csvimport.sandbox import PoolInfo, Sandbox
from csvimport.sandbox import settings as S
from csvimport.sandbox.server import load_pool_spec

from .helpers import messages, pool_spec, sign_in

ARN = "arn:aws:lambda:us-east-1:123456789012:function:legacy-migrate"
HANDLER = "tests.migration_handler:handler"
PASSWORD = "Legacy-Pass-1"


def verified(email: str, **more: str) -> dict[str, str]:
    return {"email": email, "email_verified": "true", **more}


LEGACY: dict[str, dict[str, Any]] = {
    "alice": {"password": PASSWORD, "response": {
        "userAttributes": verified("alice@example.com", **{"custom:legacy_id": "L-1"}),
        "finalUserStatus": "CONFIRMED", "messageAction": "SUPPRESS"}},
    "bob": {"password": PASSWORD, "response": {
        "userAttributes": verified("bob@example.com"), "messageAction": "SUPPRESS"}},
    "wendy": {"password": PASSWORD, "response": {
        "userAttributes": verified("wendy@example.com"), "finalUserStatus": "CONFIRMED",
        "desiredDeliveryMediums": ["EMAIL"]}},
    "slow": {"password": PASSWORD, "sleep": 3, "response": {
        "userAttributes": verified("slow@example.com"), "finalUserStatus": "CONFIRMED"}},
    "dave": {"password": PASSWORD, "response": {
        "userAttributes": verified("shared@example.com"), "finalUserStatus": "CONFIRMED",
        "messageAction": "SUPPRESS"}},
    "erin": {"password": PASSWORD, "response": {
        "userAttributes": verified("Shared@Example.com"), "finalUserStatus": "CONFIRMED",
        "messageAction": "SUPPRESS", "forceAliasCreation": True}},
    "frank": {"password": PASSWORD, "response": {
        "userAttributes": verified("frank@example.com"), "finalUserStatus": "CONFIRMED",
        "messageAction": "SUPPRESS"}},
    "gina": {"password": PASSWORD, "response": {
        "userAttributes": {"email": "gina@example.com", "email_verified": "false"},
        "messageAction": "SUPPRESS"}},
    "hank@example.com": {"password": PASSWORD, "response": {
        "userAttributes": {"email_verified": "true"}, "finalUserStatus": "CONFIRMED",
        "messageAction": "SUPPRESS"}},
    "ivy@example.com": {"password": PASSWORD, "response": {
        "userAttributes": verified("ivy@example.com", username="ivy"),
        "finalUserStatus": "CONFIRMED", "messageAction": "SUPPRESS"}},
    "jack@example.com": {"password": PASSWORD, "response": {
        "userAttributes": verified("jack@example.com"), "finalUserStatus": "CONFIRMED",
        "messageAction": "SUPPRESS"}},
}  # fmt: skip
BAD_ANSWERS: dict[str, tuple[dict[str, Any], str]] = {
    "bad-status": ({"finalUserStatus": "ACTIVE"}, "finalUserStatus 'ACTIVE'"),
    "bad-action": ({"messageAction": "RESEND"}, "messageAction 'RESEND'"),
    "bad-medium": ({"desiredDeliveryMediums": ["PIGEON"]}, "desiredDeliveryMediums"),
    "bad-attribute": ({"userAttributes": {"shoe_size": "44"}}, "'shoe_size'"),
    "bad-email": ({"userAttributes": {"email": "not-an-email"}}, "not a valid email"),
    "bad-mfa": ({"enableSMSMFA": True}, "enableSMSMFA"),
    "no-attributes": ({"userAttributes": {}}, "userAttributes is required"),
}
for name, (change, _) in BAD_ANSWERS.items():
    LEGACY[name] = {"password": PASSWORD, "response": {
        "userAttributes": verified(f"{name}@example.com"), **change}}  # fmt: skip


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The handler's environment: the legacy directory and the file its calls go to."""
    folder = tmp_path_factory.mktemp("legacy")
    (folder / "legacy.json").write_text(json.dumps(LEGACY), encoding="utf-8")
    (folder / "calls.jsonl").write_text("", encoding="utf-8")
    return {"MIGRATION_LEGACY_FILE": str(folder / "legacy.json"),
            "MIGRATION_CALLS_FILE": str(folder / "calls.jsonl")}  # fmt: skip


@pytest.fixture
def migration_pool(sandbox: Sandbox, legacy: dict[str, str]) -> Callable[..., PoolInfo]:
    """A pool whose UserMigration trigger is the test handler (one warm function for all)."""

    def make(**overrides: Any) -> PoolInfo:
        extra = {"password_hash_import": True,
                 "lambda_functions": {ARN: {"handler": HANDLER, "environment": legacy}}}  # fmt: skip
        extra.update(overrides.pop("extra", {}))
        spec = pool_spec(LambdaConfig={"UserMigration": ARN}, **{"x-csvimport": extra})
        spec.update(overrides)
        return sandbox.create_pool(spec)

    return make


@pytest.fixture
def mpool(migration_pool: Callable[..., PoolInfo]) -> PoolInfo:
    return migration_pool()


def calls(legacy: dict[str, str], pool: PoolInfo) -> list[dict[str, Any]]:
    lines = Path(legacy["MIGRATION_CALLS_FILE"]).read_text(encoding="utf-8").splitlines()
    return [c for c in map(json.loads, lines) if c["userPoolId"] == pool.user_pool_id]


def admin_user(cognito: Any, pool: PoolInfo, username: str) -> dict[str, Any]:
    user = cognito.admin_get_user(UserPoolId=pool.user_pool_id, Username=username)
    return {"status": user["UserStatus"], "username": user["Username"],
            **{a["Name"]: a["Value"] for a in user["UserAttributes"]}}  # fmt: skip


def usernames(cognito: Any, pool: PoolInfo) -> list[str]:
    return [u["Username"] for u in cognito.list_users(UserPoolId=pool.user_pool_id)["Users"]]


def error_of(call: Callable[..., Any], **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_an_unknown_user_signs_in_and_is_created_confirmed_with_the_answers_attributes(
    cognito: Any, mpool: PoolInfo, legacy: dict[str, str]
) -> None:
    tokens = sign_in(cognito, mpool, "alice", PASSWORD)["AuthenticationResult"]
    assert tokens["AccessToken"] and tokens["IdToken"] and tokens["RefreshToken"]
    alice = admin_user(cognito, mpool, "alice")
    assert alice["status"] == "CONFIRMED"
    assert alice["email"] == "alice@example.com" and alice["email_verified"] == "true"
    assert alice["custom:legacy_id"] == "L-1"
    assert cognito.get_user(AccessToken=tokens["AccessToken"])["Username"] == "alice"
    [event] = calls(legacy, mpool)
    assert event["version"] == "1" and event["triggerSource"] == "UserMigration_Authentication"
    assert event["region"] == "us-east-1" and event["userName"] == "alice"
    assert event["callerContext"] == {"awsSdkVersion": S.MIGRATION_SDK_VERSION,
                                      "clientId": mpool.user_pool_client_id}  # fmt: skip
    assert event["request"] == {"password": "***"}
    assert event["response"] == dict.fromkeys(S.MIGRATION_RESPONSE_KEYS)
    assert event["function_name"] == "legacy-migrate"
    assert 0 < event["remaining_ms"] <= S.TRIGGER_TIMEOUT_SECONDS * 1000
    # The password the user typed is now theirs: the next sign-in needs no trigger.
    assert sign_in(cognito, mpool, "alice", PASSWORD)["AuthenticationResult"]
    assert len(calls(legacy, mpool)) == 1


def test_a_wrong_password_fails_the_sign_in_and_creates_nobody(
    cognito: Any, mpool: PoolInfo, legacy: dict[str, str]
) -> None:
    code, message = error_of(sign_in, cognito=cognito, pool=mpool, username="alice",
                             password="wrong")  # fmt: skip
    assert (code, message) == (S.ERR_MIGRATION_FAILED[0],
                               S.ERR_MIGRATION_FAILED[1].format(error="Bad password"))  # fmt: skip
    assert usernames(cognito, mpool) == []
    assert len(calls(legacy, mpool)) == 1  # a function error is not retried


def test_a_user_unknown_to_the_legacy_directory_too_is_not_created(
    cognito: Any, mpool: PoolInfo
) -> None:
    code, _ = error_of(sign_in, cognito=cognito, pool=mpool, username="nobody", password="x")
    assert code == S.ERR_MIGRATION_FAILED[0]
    assert usernames(cognito, mpool) == []


def test_an_existing_user_never_calls_the_handler_in_any_case_of_the_name(
    cognito: Any, mpool: PoolInfo, legacy: dict[str, str]
) -> None:
    sign_in(cognito, mpool, "Alice", PASSWORD)
    assert usernames(cognito, mpool) == ["Alice"]  # the name as typed
    for name in ("alice", "ALICE", "Alice"):
        assert sign_in(cognito, mpool, name, PASSWORD)["AuthenticationResult"]
    code, _ = error_of(sign_in, cognito=cognito, pool=mpool, username="alice", password="bad")
    assert code == "NotAuthorizedException"
    cognito.forgot_password(ClientId=mpool.user_pool_client_id, Username="ALICE")
    assert len(calls(legacy, mpool)) == 1


def test_srp_sign_in_never_calls_the_handler(
    cognito: Any, mpool: PoolInfo, legacy: dict[str, str]
) -> None:
    code, _ = error_of(cognito.initiate_auth, ClientId=mpool.user_pool_client_id,
                       AuthFlow="USER_SRP_AUTH",
                       AuthParameters={"USERNAME": "alice", "SRP_A": "abc123"})  # fmt: skip
    assert code == "UserNotFoundException"
    assert calls(legacy, mpool) == [] and usernames(cognito, mpool) == []


def test_admin_password_sign_in_migrates_and_passes_client_metadata_as_validation_data(
    cognito: Any, mpool: PoolInfo, legacy: dict[str, str]
) -> None:
    result = cognito.admin_initiate_auth(
        UserPoolId=mpool.user_pool_id, ClientId=mpool.user_pool_client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH", ClientMetadata={"app": "shop"},
        AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD},
    )  # fmt: skip
    assert result["AuthenticationResult"]["AccessToken"]
    [event] = calls(legacy, mpool)
    assert event["request"] == {"password": "***", "validationData": {"app": "shop"}}
    assert admin_user(cognito, mpool, "alice")["status"] == "CONFIRMED"


def test_an_answer_without_final_status_creates_the_user_reset_required(
    cognito: Any, mpool: PoolInfo
) -> None:
    code, _ = error_of(sign_in, cognito=cognito, pool=mpool, username="bob", password=PASSWORD)
    assert code == "PasswordResetRequiredException"
    assert admin_user(cognito, mpool, "bob")["status"] == "RESET_REQUIRED"


def test_without_message_action_the_welcome_message_is_sent(
    cognito: Any, mpool: PoolInfo, sandbox: Sandbox
) -> None:
    sign_in(cognito, mpool, "wendy", PASSWORD)
    [welcome] = messages(sandbox, UserPoolId=mpool.user_pool_id)
    assert welcome["Operation"] == S.MIGRATION_WELCOME_OPERATION
    assert (welcome["Username"], welcome["DeliveryMedium"]) == ("wendy", "EMAIL")
    sign_in(cognito, mpool, "alice", PASSWORD)  # SUPPRESS: nothing more
    assert len(messages(sandbox, UserPoolId=mpool.user_pool_id)) == 1


@pytest.mark.parametrize("name", sorted(BAD_ANSWERS))
def test_an_answer_cognito_cannot_use_fails_the_sign_in_and_creates_nobody(
    cognito: Any, mpool: PoolInfo, name: str
) -> None:
    code, message = error_of(sign_in, cognito=cognito, pool=mpool, username=name,
                             password=PASSWORD)  # fmt: skip
    assert code == S.ERR_MIGRATION_INVALID_RESPONSE[0]
    assert BAD_ANSWERS[name][1] in message
    assert usernames(cognito, mpool) == []


def test_a_handler_that_times_out_is_tried_three_times_then_the_sign_in_fails(
    cognito: Any, mpool: PoolInfo, sandbox: Sandbox, legacy: dict[str, str]
) -> None:
    sandbox.settings.update(trigger_timeout_seconds=0.5)
    code, message = error_of(sign_in, cognito=cognito, pool=mpool, username="slow",
                             password=PASSWORD)  # fmt: skip
    assert (code, message) == (S.ERR_MIGRATION_TIMEOUT[0],
                               S.ERR_MIGRATION_TIMEOUT[1].format(seconds=0.5))  # fmt: skip
    attempts = calls(legacy, mpool)
    assert len(attempts) == S.TRIGGER_ATTEMPTS
    assert len({a["process"] for a in attempts}) == S.TRIGGER_ATTEMPTS  # each one restarted
    assert usernames(cognito, mpool) == []


def test_a_client_without_user_password_auth_is_refused_before_any_trigger(
    cognito: Any, migration_pool: Callable[..., PoolInfo], legacy: dict[str, str]
) -> None:
    pool = migration_pool(extra={"client": {"ClientName": "srp-only",
                                            "ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH"]}})  # fmt: skip
    assert error_of(sign_in, cognito=cognito, pool=pool, username="alice",
                    password=PASSWORD) == S.ERR_USER_PASSWORD_AUTH_DISABLED  # fmt: skip
    bare = cognito.create_user_pool_client(UserPoolId=pool.user_pool_id, ClientName="bare")
    code, _ = error_of(cognito.admin_initiate_auth, UserPoolId=pool.user_pool_id,
                       ClientId=bare["UserPoolClient"]["ClientId"],
                       AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                       AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD})  # fmt: skip
    assert code == S.ERR_ADMIN_PASSWORD_AUTH_DISABLED[0]
    assert calls(legacy, pool) == []


def test_a_trigger_arn_without_a_local_handler_is_cognitos_cannot_invoke_error(
    cognito: Any, sandbox: Sandbox
) -> None:
    other = "arn:aws:lambda:us-east-1:123456789012:function:not-deployed"
    pool = sandbox.create_pool(pool_spec(LambdaConfig={"UserMigration": other}))
    code, message = error_of(sign_in, cognito=cognito, pool=pool, username="alice",
                             password=PASSWORD)  # fmt: skip
    assert (code, message) == (S.ERR_MIGRATION_NOT_INVOKABLE[0],
                               f"Exception migrating user in app client {pool.user_pool_client_id}")  # fmt: skip


def test_a_handler_module_that_does_not_import_fails_each_sign_in(
    cognito: Any, sandbox: Sandbox
) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:broken"
    pool = sandbox.create_pool(pool_spec(
        LambdaConfig={"UserMigration": arn},
        **{"x-csvimport": {"lambda_functions": {arn: {"handler": "tests.no_such_module:handler"}}}},
    ))  # fmt: skip
    code, message = error_of(sign_in, cognito=cognito, pool=pool, username="alice",
                             password=PASSWORD)  # fmt: skip
    assert code == S.ERR_MIGRATION_FAILED[0]
    assert "Unable to import tests.no_such_module:handler" in message
    assert usernames(cognito, pool) == []


def test_a_trigger_set_later_by_update_user_pool_is_called(
    cognito: Any, sandbox: Sandbox, migration_pool: Callable[..., PoolInfo]
) -> None:
    migration_pool()  # registers the handler's ARN
    pool = sandbox.create_pool(pool_spec())
    cognito.update_user_pool(UserPoolId=pool.user_pool_id, LambdaConfig={"UserMigration": ARN})
    assert sign_in(cognito, pool, "alice", PASSWORD)["AuthenticationResult"]


# --- aliases ---------------------------------------------------------------------------


@pytest.fixture
def alias_pool(migration_pool: Callable[..., PoolInfo], cognito: Any) -> Iterator[PoolInfo]:
    """A pool with email as an alias, where "carol" holds shared@example.com (verified)."""
    pool = migration_pool(AliasAttributes=["email"])
    cognito.admin_create_user(
        UserPoolId=pool.user_pool_id, Username="carol", MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": "shared@example.com"},
                        {"Name": "email_verified", "Value": "true"}],
    )  # fmt: skip
    cognito.admin_set_user_password(UserPoolId=pool.user_pool_id, Username="carol",
                                    Password="Carol-Pass-1", Permanent=True)  # fmt: skip
    yield pool


def test_a_user_found_by_a_verified_email_alias_is_not_migrated(
    cognito: Any, alias_pool: PoolInfo, legacy: dict[str, str]
) -> None:
    result = sign_in(cognito, alias_pool, "SHARED@example.com", "Carol-Pass-1")
    assert result["AuthenticationResult"]["AccessToken"]
    assert calls(legacy, alias_pool) == []


def test_a_phone_alias_finds_its_user_only_once_verified(
    cognito: Any, migration_pool: Callable[..., PoolInfo], legacy: dict[str, str]
) -> None:
    pool = migration_pool(AliasAttributes=["phone_number"])
    phones = {"paula": "+15550100101", "quinn": "+15550100102"}
    for name, verified_phone in (("paula", "true"), ("quinn", "false")):
        cognito.admin_create_user(
            UserPoolId=pool.user_pool_id, Username=name, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "phone_number", "Value": phones[name]},
                            {"Name": "phone_number_verified", "Value": verified_phone}],
        )  # fmt: skip
    code, _ = error_of(sign_in, cognito=cognito, pool=pool, username=phones["paula"],
                       password="not-hers")  # fmt: skip
    assert code == "NotAuthorizedException"  # paula's alias: her password is checked
    assert calls(legacy, pool) == []
    code, _ = error_of(sign_in, cognito=cognito, pool=pool, username=phones["quinn"],
                       password="x")  # fmt: skip
    assert code == S.ERR_MIGRATION_FAILED[0]  # an unverified phone is no alias: the trigger ran
    assert [c["userName"] for c in calls(legacy, pool)] == [phones["quinn"]]


def test_a_case_sensitive_pool_migrates_another_case_as_another_user(
    cognito: Any, migration_pool: Callable[..., PoolInfo], legacy: dict[str, str]
) -> None:
    pool = migration_pool(UsernameConfiguration={"CaseSensitive": True})
    sign_in(cognito, pool, "alice", PASSWORD)
    sign_in(cognito, pool, "ALICE", PASSWORD)
    assert sorted(usernames(cognito, pool)) == ["ALICE", "alice"]
    assert len(calls(legacy, pool)) == 2


def test_an_answer_with_a_taken_alias_fails_unless_it_forces_the_alias_over(
    cognito: Any, alias_pool: PoolInfo
) -> None:
    code, message = error_of(sign_in, cognito=cognito, pool=alias_pool, username="dave",
                             password=PASSWORD)  # fmt: skip
    assert (code, message) == ("AliasExistsException",
                               "An account with the given email already exists.")  # fmt: skip
    assert usernames(cognito, alias_pool) == ["carol"]
    assert sign_in(cognito, alias_pool, "erin", PASSWORD)["AuthenticationResult"]  # forced
    assert admin_user(cognito, alias_pool, "carol")["email_verified"] == "false"
    assert admin_user(cognito, alias_pool, "erin")["email_verified"] == "true"
    # The alias now signs erin in.
    assert sign_in(cognito, alias_pool, "shared@example.com", PASSWORD)["AuthenticationResult"]


def test_an_email_typed_in_an_email_alias_pool_needs_a_username_in_the_answer(
    cognito: Any, alias_pool: PoolInfo
) -> None:
    assert sign_in(cognito, alias_pool, "ivy@example.com", PASSWORD)["AuthenticationResult"]
    assert admin_user(cognito, alias_pool, "ivy")["email"] == "ivy@example.com"
    code, message = error_of(sign_in, cognito=cognito, pool=alias_pool,
                             username="jack@example.com", password=PASSWORD)  # fmt: skip
    assert code == "InvalidParameterException" and "email alias" in message
    assert sorted(usernames(cognito, alias_pool)) == ["carol", "ivy"]


def test_in_an_email_as_username_pool_the_user_is_named_by_its_sub(
    cognito: Any, migration_pool: Callable[..., PoolInfo]
) -> None:
    pool = migration_pool(UsernameAttributes=["email"])
    tokens = sign_in(cognito, pool, "Hank@Example.com", PASSWORD)["AuthenticationResult"]
    [name] = usernames(cognito, pool)
    hank = admin_user(cognito, pool, name)
    assert hank["sub"] == name and hank["email"] == "Hank@Example.com"
    assert cognito.get_user(AccessToken=tokens["AccessToken"])["Username"] == name
    assert sign_in(cognito, pool, "hank@example.com", PASSWORD)["AuthenticationResult"]


# --- forgot password -------------------------------------------------------------------


def test_forgot_password_migrates_the_user_reset_required_and_sends_a_code(
    cognito: Any, mpool: PoolInfo, sandbox: Sandbox, legacy: dict[str, str]
) -> None:
    delivery = cognito.forgot_password(ClientId=mpool.user_pool_client_id, Username="frank",
                                       ClientMetadata={"app": "shop"})  # fmt: skip
    assert delivery["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    [event] = calls(legacy, mpool)
    assert event["triggerSource"] == "UserMigration_ForgotPassword"
    assert event["request"] == {"clientMetadata": {"app": "shop"}}  # no password
    assert admin_user(cognito, mpool, "frank")["status"] == "RESET_REQUIRED"
    [sent] = messages(sandbox, UserPoolId=mpool.user_pool_id, Username="frank")
    cognito.confirm_forgot_password(
        ClientId=mpool.user_pool_client_id, Username="frank",
        ConfirmationCode=sent["Code"], Password="N3w-Passw0rd!",
    )  # fmt: skip
    assert sign_in(cognito, mpool, "frank", "N3w-Passw0rd!")["AuthenticationResult"]
    assert len(calls(legacy, mpool)) == 1


def test_forgot_password_of_a_user_without_a_verified_channel_creates_nobody(
    cognito: Any, mpool: PoolInfo
) -> None:
    code, message = error_of(cognito.forgot_password, ClientId=mpool.user_pool_client_id,
                             Username="gina")  # fmt: skip
    assert (code, message) == S.ERR_NO_RECOVERY_CHANNEL
    assert usernames(cognito, mpool) == []


# --- the pool spec ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("functions", "why"),
    [
        ({"not-an-arn": {"handler": HANDLER}}, "'not-an-arn' is not a function ARN"),
        ({ARN: {"handler": "no_function_named"}}, 'must be "module:function"'),
        ({ARN: {"handler": HANDLER, "environment": {"A": 1}}}, "must map names to strings"),
        ({ARN: {"handler": HANDLER, "memory": 512}}, "is not such an object"),
    ],
)
def test_a_bad_local_function_in_a_pool_spec_is_refused_naming_the_form(
    tmp_path: Path, functions: dict[str, Any], why: str
) -> None:
    spec = tmp_path / "pool.json"
    spec.write_text(json.dumps({"PoolName": "p", "x-csvimport": {"lambda_functions": functions}}))
    with pytest.raises(ValueError) as exc:
        load_pool_spec(spec)
    assert why in str(exc.value) and '"handler": "module:function"' in str(exc.value)
