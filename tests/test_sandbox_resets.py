"""Password-reset waves against the sandbox: AdminResetUserPassword and ForgotPassword
deliver codes through the pool's recovery channel, within Cognito's quotas (facts §6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from csvimport.sandbox import PoolInfo, Sandbox
from csvimport.sandbox import settings as S

from .helpers import Importer, messages, sign_in, user

NEW_PASSWORD = "N3w-Passw0rd!"
SMS_CONFIG = {"SnsCallerArn": "arn:aws:iam::123456789012:role/cognito-sms", "ExternalId": "x"}
PHONE_ONLY = {"RecoveryMechanisms": [{"Name": "verified_phone_number", "Priority": 1}]}


@pytest.fixture
def idp(sandbox: Sandbox) -> Any:
    """A Cognito client that never retries, so each quota error is seen as it is."""
    return boto3.client(
        "cognito-idp", endpoint_url=sandbox.endpoint_url, region_name=sandbox.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )  # fmt: skip


def status(idp: Any, pool: PoolInfo, username: str) -> str:
    return str(idp.admin_get_user(UserPoolId=pool.user_pool_id, Username=username)["UserStatus"])


def reset(idp: Any, pool: PoolInfo, username: str) -> None:
    idp.admin_reset_user_password(UserPoolId=pool.user_pool_id, Username=username)


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def confirmed_user(idp: Any, pool: PoolInfo, username: str, **attrs: str) -> None:
    """A CONFIRMED user created by an admin (no message sent)."""
    idp.admin_create_user(
        UserPoolId=pool.user_pool_id, Username=username, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": k, "Value": v} for k, v in attrs.items()],
    )  # fmt: skip
    idp.admin_set_user_password(
        UserPoolId=pool.user_pool_id, Username=username, Password="Old-Passw0rd!", Permanent=True
    )
    assert status(idp, pool, username) == "CONFIRMED"


def next_utc_day(sandbox: Sandbox) -> None:
    now = sandbox.clock.now()
    sandbox.clock.advance(86_400 - now % 86_400 + 1)


# -- 1. the code is sent, works with ConfirmForgotPassword, and the user signs in -----
def test_admin_reset_of_an_imported_user_sends_a_code_that_resets_and_signs_in(
    sandbox: Sandbox, importer: Importer, idp: Any, pool: PoolInfo
) -> None:
    importer.run([user("Alice"), user("bob")])
    assert status(idp, pool, "Alice") == "RESET_REQUIRED"

    reset(idp, pool, "Alice")

    assert status(idp, pool, "Alice") == "RESET_REQUIRED"
    [sent] = messages(sandbox, UserPoolId=pool.user_pool_id)
    assert sent["Username"] == "Alice"
    assert sent["Operation"] == "AdminResetUserPassword"
    assert (sent["DeliveryMedium"], sent["AttributeName"]) == ("EMAIL", "email")
    assert sent["Destination"] == "a***@e***"  # masked as in CodeDeliveryDetails
    assert sent["Code"].startswith(S.RESET_CODE_PREFIX)
    assert abs(sent["SentAt"] - sandbox.clock.now()) < 60
    with pytest.raises(ClientError) as before:
        sign_in(idp, pool, "Alice", NEW_PASSWORD)
    assert error(before)[0] == "PasswordResetRequiredException"

    with pytest.raises(ClientError) as wrong:
        idp.confirm_forgot_password(
            ClientId=pool.user_pool_client_id, Username="Alice",
            ConfirmationCode=f"{S.RESET_CODE_PREFIX}000000", Password=NEW_PASSWORD,
        )  # fmt: skip
    assert error(wrong)[0] == "ExpiredCodeException"
    idp.confirm_forgot_password(
        ClientId=pool.user_pool_client_id, Username="Alice",
        ConfirmationCode=sent["Code"], Password=NEW_PASSWORD,
    )  # fmt: skip

    assert status(idp, pool, "Alice") == "CONFIRMED"
    assert sign_in(idp, pool, "Alice", NEW_PASSWORD)["AuthenticationResult"]["AccessToken"]
    assert status(idp, pool, "bob") == "RESET_REQUIRED"  # untouched


def test_admin_reset_of_a_confirmed_user_requires_a_reset_and_a_new_code_replaces_the_old(
    sandbox: Sandbox, idp: Any, pool: PoolInfo
) -> None:
    confirmed_user(idp, pool, "carol", email="carol@example.com", email_verified="true")
    reset(idp, pool, "carol")
    assert status(idp, pool, "carol") == "RESET_REQUIRED"
    with pytest.raises(ClientError) as exc:
        sign_in(idp, pool, "carol", "Old-Passw0rd!")
    assert error(exc)[0] == "PasswordResetRequiredException"

    reset(idp, pool, "carol")
    first, second = messages(sandbox, UserPoolId=pool.user_pool_id, Username="carol")
    with pytest.raises(ClientError) as stale:
        idp.confirm_forgot_password(ClientId=pool.user_pool_client_id, Username="carol",
                                    ConfirmationCode=first["Code"], Password=NEW_PASSWORD)  # fmt: skip
    assert error(stale)[0] == "ExpiredCodeException"
    idp.confirm_forgot_password(ClientId=pool.user_pool_client_id, Username="carol",
                                ConfirmationCode=second["Code"], Password=NEW_PASSWORD)  # fmt: skip
    assert sign_in(idp, pool, "carol", NEW_PASSWORD)["AuthenticationResult"]


def test_forgot_password_records_its_message_through_the_same_channel_logic(
    sandbox: Sandbox, importer: Importer, idp: Any, pool: PoolInfo
) -> None:
    importer.run([user("dave")])
    delivery = idp.forgot_password(ClientId=pool.user_pool_client_id, Username="dave")
    [sent] = messages(sandbox, Username="dave")
    assert sent["Operation"] == "ForgotPassword"
    assert delivery["CodeDeliveryDetails"] == {
        "Destination": sent["Destination"], "DeliveryMedium": "EMAIL", "AttributeName": "email",
    }  # fmt: skip
    idp.confirm_forgot_password(ClientId=pool.user_pool_client_id, Username="dave",
                                ConfirmationCode=sent["Code"], Password=NEW_PASSWORD)  # fmt: skip
    assert sign_in(idp, pool, "dave", NEW_PASSWORD)["AuthenticationResult"]


def test_the_messages_route_filters_and_clears(
    sandbox: Sandbox, importer: Importer, idp: Any, pool: PoolInfo
) -> None:
    importer.run([user("u1"), user("u2")])
    reset(idp, pool, "u1")
    reset(idp, pool, "u2")
    assert [m["Username"] for m in messages(sandbox)] == ["u1", "u2"]
    assert [m["Username"] for m in messages(sandbox, Username="u2")] == ["u2"]
    assert messages(sandbox, UserPoolId="us-east-1_nothere") == []
    cleared = requests.delete(f"{sandbox.endpoint_url}/_sandbox/messages", timeout=5)
    assert cleared.json() == []
    assert messages(sandbox) == []


# -- 2. no channel the recovery setting allows -------------------------------------------
def test_a_user_without_a_verified_channel_cannot_be_reset(
    sandbox: Sandbox, idp: Any, pool: PoolInfo
) -> None:
    confirmed_user(idp, pool, "erin", email="erin@example.com", email_verified="false")
    with pytest.raises(ClientError) as exc:
        reset(idp, pool, "erin")
    assert error(exc) == S.ERR_NO_RECOVERY_CHANNEL
    assert error(exc)[1] == ("Cannot reset password for the user as there is no "
                             "registered/verified email or phone_number")  # fmt: skip
    assert status(idp, pool, "erin") == "CONFIRMED"
    assert messages(sandbox) == []


def test_an_admin_only_pool_sends_no_code(
    sandbox: Sandbox, idp: Any, make_pool: Callable[..., PoolInfo]
) -> None:
    pool = make_pool(AccountRecoverySetting={
        "RecoveryMechanisms": [{"Name": "admin_only", "Priority": 1}]})  # fmt: skip
    confirmed_user(idp, pool, "frank", email="frank@example.com", email_verified="true")
    with pytest.raises(ClientError) as admin:
        reset(idp, pool, "frank")
    assert error(admin) == S.ERR_ADMIN_ONLY_ADMIN_RESET
    with pytest.raises(ClientError) as forgot:
        idp.forgot_password(ClientId=pool.user_pool_client_id, Username="frank")
    assert error(forgot) == S.ERR_ADMIN_ONLY_FORGOT
    assert status(idp, pool, "frank") == "CONFIRMED"
    assert messages(sandbox) == []


def test_a_reset_in_a_state_cognito_refuses_is_refused(idp: Any, pool: PoolInfo) -> None:
    idp.admin_create_user(UserPoolId=pool.user_pool_id, Username="gina", MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": "g@example.com"},
                                          {"Name": "email_verified", "Value": "true"}])  # fmt: skip
    with pytest.raises(ClientError) as exc:
        reset(idp, pool, "gina")  # FORCE_CHANGE_PASSWORD
    assert error(exc)[0] == "NotAuthorizedException"
    with pytest.raises(ClientError) as missing:
        reset(idp, pool, "nobody")
    assert error(missing)[0] == "UserNotFoundException"


def test_an_unknown_client_or_user_is_named_as_what_is_missing(idp: Any, pool: PoolInfo) -> None:
    def attempt(call: Any, **kwargs: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        return error(exc)

    no_client = ("ResourceNotFoundException", "User pool client nope does not exist.")
    assert attempt(idp.forgot_password, ClientId="nope", Username="x") == no_client
    assert attempt(idp.initiate_auth, ClientId="nope", AuthFlow="USER_PASSWORD_AUTH",
                   AuthParameters={"USERNAME": "x", "PASSWORD": "y"}) == no_client  # fmt: skip
    assert attempt(idp.confirm_forgot_password, ClientId="nope", Username="x",
                   ConfirmationCode="123456", Password=NEW_PASSWORD) == no_client  # fmt: skip
    # A user the client's pool does not have: the user is missing, not the client.
    assert attempt(idp.confirm_forgot_password, ClientId=pool.user_pool_client_id,
                   Username="nobody", ConfirmationCode="123456", Password=NEW_PASSWORD) == (
        "UserNotFoundException", "Username/client id combination not found.")  # fmt: skip


# -- 3. the daily email limit of Cognito's default sender ------------------------------
def test_fifty_emails_a_day_per_account_across_pools_then_the_next_day_again(
    sandbox: Sandbox, idp: Any, make_pool: Callable[..., PoolInfo],
    importer_for: Callable[[PoolInfo], Importer],
) -> None:  # fmt: skip
    assert sandbox.settings.daily_email_limit == S.DAILY_EMAIL_LIMIT == 50
    first, second = (
        make_pool(),
        make_pool(EmailConfiguration={"EmailSendingAccount": "COGNITO_DEFAULT"}),
    )
    importer_for(first).run([user(f"a{n}") for n in range(30)])
    importer_for(second).run([user(f"b{n}") for n in range(21)])
    for n in range(30):
        reset(idp, first, f"a{n}")
    for n in range(20):
        reset(idp, second, f"b{n}")

    with pytest.raises(ClientError) as exc:
        reset(idp, second, "b20")
    assert error(exc) == S.ERR_DAILY_EMAIL_LIMIT
    assert error(exc)[1].startswith("Exceeded daily email limit")
    with pytest.raises(ClientError) as forgot:
        idp.forgot_password(ClientId=first.user_pool_client_id, Username="a0")
    assert error(forgot)[0] == "LimitExceededException"
    assert len(messages(sandbox)) == 50

    next_utc_day(sandbox)
    reset(idp, second, "b20")
    idp.forgot_password(ClientId=first.user_pool_client_id, Username="a0")
    assert len(messages(sandbox)) == 52


def test_a_pool_sending_through_its_own_ses_is_not_limited(
    sandbox: Sandbox, idp: Any, make_pool: Callable[..., PoolInfo],
    importer_for: Callable[[PoolInfo], Importer],
) -> None:  # fmt: skip
    sandbox.settings.update(daily_email_limit=2)
    default, ses = make_pool(), make_pool(EmailConfiguration={
        "EmailSendingAccount": "DEVELOPER",
        "SourceArn": "arn:aws:ses:us-east-1:123456789012:identity/no-reply@example.com",
    })  # fmt: skip
    importer_for(default).run([user("d1"), user("d2"), user("d3")])
    importer_for(ses).run([user(f"s{n}") for n in range(5)])
    reset(idp, default, "d1")
    reset(idp, default, "d2")
    with pytest.raises(ClientError) as exc:
        reset(idp, default, "d3")
    assert error(exc)[0] == "LimitExceededException"
    for n in range(5):
        reset(idp, ses, f"s{n}")
    assert len(messages(sandbox, UserPoolId=ses.user_pool_id)) == 5


def test_the_daily_limit_can_be_set_over_the_control_api(sandbox: Sandbox) -> None:
    response = requests.post(f"{sandbox.endpoint_url}/_sandbox/settings",
                             json={"daily_email_limit": 3, "recovery_rps": 5}, timeout=5)  # fmt: skip
    assert response.json()["daily_email_limit"] == 3
    assert response.json()["recovery_rps"] == 5


# -- 4. SMS needs the pool's SmsConfiguration ------------------------------------------
def test_an_sms_reset_needs_the_pools_sms_configuration(
    sandbox: Sandbox, idp: Any, make_pool: Callable[..., PoolInfo]
) -> None:
    without = make_pool(AccountRecoverySetting=PHONE_ONLY)
    confirmed_user(idp, without, "hank", phone_number="+15555550123",
                   phone_number_verified="true")  # fmt: skip
    with pytest.raises(ClientError) as exc:
        reset(idp, without, "hank")
    assert error(exc) == S.ERR_SMS_NOT_CONFIGURED
    assert messages(sandbox) == []

    with_sms = make_pool(AccountRecoverySetting=PHONE_ONLY, SmsConfiguration=SMS_CONFIG)
    confirmed_user(idp, with_sms, "hank", phone_number="+15555550123",
                   phone_number_verified="true")  # fmt: skip
    reset(idp, with_sms, "hank")
    [sent] = messages(sandbox)
    assert (sent["DeliveryMedium"], sent["AttributeName"]) == ("SMS", "phone_number")
    assert sent["Destination"] == "+*******0123"


def test_sms_is_not_counted_against_the_email_limit(
    sandbox: Sandbox, idp: Any, make_pool: Callable[..., PoolInfo]
) -> None:
    sandbox.settings.update(daily_email_limit=0)
    pool = make_pool(AccountRecoverySetting=PHONE_ONLY, SmsConfiguration=SMS_CONFIG)
    confirmed_user(idp, pool, "ivy", phone_number="+15555550199", phone_number_verified="true")
    reset(idp, pool, "ivy")
    assert messages(sandbox)[0]["DeliveryMedium"] == "SMS"


# -- 5. the UserAccountRecovery rate -----------------------------------------------------
def _at_the_start_of_a_sandbox_second(sandbox: Sandbox) -> None:
    time.sleep(1.02 - sandbox.clock.now() % 1)


def test_recovery_rps_throttles_the_four_recovery_operations_together(
    sandbox: Sandbox, importer: Importer, idp: Any, pool: PoolInfo
) -> None:
    importer.run([user("r1"), user("r2"), user("r3")])
    sandbox.settings.update(recovery_rps=3)
    _at_the_start_of_a_sandbox_second(sandbox)
    reset(idp, pool, "r1")
    idp.admin_set_user_password(UserPoolId=pool.user_pool_id, Username="r2",
                                Password=NEW_PASSWORD, Permanent=True)  # fmt: skip
    idp.forgot_password(ClientId=pool.user_pool_client_id, Username="r3")
    with pytest.raises(ClientError) as exc:
        idp.confirm_forgot_password(ClientId=pool.user_pool_client_id, Username="r3",
                                    ConfirmationCode="x", Password=NEW_PASSWORD)  # fmt: skip
    assert error(exc) == S.ERR_RECOVERY_THROTTLED
    with pytest.raises(ClientError) as again:
        reset(idp, pool, "r3")
    assert error(again)[0] == "TooManyRequestsException"
    idp.list_users(UserPoolId=pool.user_pool_id)  # other operations are not limited

    _at_the_start_of_a_sandbox_second(sandbox)
    [code] = [m["Code"] for m in messages(sandbox, Username="r3")]
    idp.confirm_forgot_password(ClientId=pool.user_pool_client_id, Username="r3",
                                ConfirmationCode=code, Password=NEW_PASSWORD)  # fmt: skip
    assert status(idp, pool, "r3") == "CONFIRMED"


def test_a_client_paced_under_recovery_rps_is_never_throttled(
    sandbox: Sandbox, importer: Importer, idp: Any, pool: PoolInfo
) -> None:
    importer.run([user(f"p{n}") for n in range(6)])
    sandbox.settings.update(recovery_rps=2)
    _at_the_start_of_a_sandbox_second(sandbox)
    for n in range(6):
        reset(idp, pool, f"p{n}")
        time.sleep(0.51)
    assert len(messages(sandbox)) == 6


def test_recovery_rps_is_off_by_default(
    sandbox: Sandbox, importer: Importer, idp: Any, pool: PoolInfo
) -> None:
    assert sandbox.settings.recovery_rps == 0
    importer.run([user(f"q{n}") for n in range(40)])
    for n in range(40):
        reset(idp, pool, f"q{n}")
    assert len(messages(sandbox)) == 40
