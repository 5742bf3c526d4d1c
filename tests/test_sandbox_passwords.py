"""Signing in after an import: hashed users keep their password, others must reset."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from csvimport.sandbox import PoolInfo

from .helpers import PASSWORD, Importer, make_hash, sign_in, user


@pytest.mark.parametrize("algorithm", ["BCRYPT", "SCRYPT", "ARGON2ID", "PBKDF2_SHA256"])
def test_a_user_imported_with_a_hash_signs_in_with_the_original_password(
    importer: Importer, cognito: Any, pool: PoolInfo, algorithm: str
) -> None:
    run = importer.run([user("hashed", password_hash=make_hash(algorithm))], algorithm=algorithm)
    assert run.job["ImportedUsers"] == 1
    assert importer.users()["hashed"]["status"] == "CONFIRMED"
    with pytest.raises(ClientError) as wrong:
        sign_in(cognito, pool, "hashed", "wrong password")
    assert wrong.value.response["Error"]["Code"] == "NotAuthorizedException"
    tokens = sign_in(cognito, pool, "hashed", PASSWORD)
    assert tokens["AuthenticationResult"]["AccessToken"]


@pytest.mark.parametrize(
    ("algorithm", "value", "why"),
    [
        ("BCRYPT", "$2b$13$" + "a" * 53, "cost 13 is outside 4..12"),
        ("BCRYPT", "$2b$10$tooshort", "form"),
        ("SCRYPT", "131072$8$1$00$00", "N=131072"),
        ("SCRYPT", "16384$16$1$00$00", "r=16"),
        ("ARGON2ID", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "m=65536"),
        ("PBKDF2_SHA256", f"$pbkdf2-sha256$600001$c2FsdA${'A' * 43}", "600001 iterations"),
    ],
)
def test_a_malformed_or_out_of_bounds_hash_fails_the_row(
    importer: Importer, algorithm: str, value: str, why: str
) -> None:
    run = importer.run([user("h", password_hash=value)], algorithm=algorithm)
    assert run.job["FailedUsers"] == 1
    [line] = importer.log_lines(run.job_id)
    assert line.startswith(f"[FAILED] Line Number 1 - The password_hash is not a valid {algorithm}")
    assert why in line


def test_an_empty_hash_imports_the_user_as_reset_required(importer: Importer) -> None:
    importer.run([user("nohash", password_hash="")], algorithm="BCRYPT")
    assert importer.users()["nohash"]["status"] == "RESET_REQUIRED"


def test_a_password_hash_column_without_an_algorithm_fails_the_job(importer: Importer) -> None:
    run = importer.run([user("x", password_hash=make_hash("BCRYPT"))],
                       header=[*importer.header(), "password_hash"])  # fmt: skip
    assert run.job["Status"] == "Failed"
    assert "password_hash" in run.job["CompletionMessage"]


def test_a_reset_required_user_resets_the_password_then_signs_in(
    importer: Importer, cognito: Any, pool: PoolInfo
) -> None:
    importer.run([user("resetme")])
    with pytest.raises(ClientError) as exc:
        sign_in(cognito, pool, "resetme", "anything")
    assert exc.value.response["Error"]["Code"] == "PasswordResetRequiredException"
    delivery = cognito.forgot_password(ClientId=pool.user_pool_client_id, Username="resetme")
    assert delivery["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    cognito.confirm_forgot_password(
        ClientId=pool.user_pool_client_id, Username="resetme",
        ConfirmationCode="123456", Password="N3w-Passw0rd!",
    )  # fmt: skip
    assert importer.users()["resetme"]["status"] == "CONFIRMED"
    assert sign_in(cognito, pool, "resetme", "N3w-Passw0rd!")["AuthenticationResult"]


def test_admin_sign_in_of_a_reset_required_user_also_needs_a_reset(
    importer: Importer, cognito: Any, pool: PoolInfo
) -> None:
    importer.run([user("adminflow")])
    with pytest.raises(ClientError) as exc:
        cognito.admin_initiate_auth(
            UserPoolId=pool.user_pool_id, ClientId=pool.user_pool_client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "adminflow", "PASSWORD": "x"},
        )  # fmt: skip
    assert exc.value.response["Error"]["Code"] == "PasswordResetRequiredException"


def test_case_insensitive_pool_finds_the_user_in_any_case_at_sign_in(
    importer: Importer, cognito: Any, pool: PoolInfo
) -> None:
    importer.run([user("MixedCase", password_hash=make_hash("BCRYPT"))], algorithm="BCRYPT")
    assert sign_in(cognito, pool, "mixedcase", PASSWORD)["AuthenticationResult"]


def test_list_users_refuses_a_limit_above_60(cognito: Any, pool: PoolInfo) -> None:
    with pytest.raises(ClientError) as exc:
        cognito.list_users(UserPoolId=pool.user_pool_id, Limit=61)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    assert cognito.list_users(UserPoolId=pool.user_pool_id, Limit=60)["Users"] == []


def test_reset_code_goes_to_the_first_verified_channel_by_priority(
    importer: Importer, cognito: Any, pool: PoolInfo
) -> None:
    importer.run([
        user("both", phone_number="+14325551212", phone_number_verified="true"),
        user("mailonly"),
    ])  # fmt: skip
    both = cognito.forgot_password(ClientId=pool.user_pool_client_id, Username="both")
    mail = cognito.forgot_password(ClientId=pool.user_pool_client_id, Username="mailonly")
    assert both["CodeDeliveryDetails"]["DeliveryMedium"] == "SMS"
    assert both["CodeDeliveryDetails"]["Destination"] == "+*******1212"
    assert mail["CodeDeliveryDetails"] == {
        "Destination": "m***@e***",
        "DeliveryMedium": "EMAIL",
        "AttributeName": "email",
    }
