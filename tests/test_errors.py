"""describe_aws_error: botocore's exceptions become csvimport errors that name the fix."""

from __future__ import annotations

import botocore.exceptions as boto
import pytest

from csvimport.errors import (
    ConfigError,
    CsvImportError,
    ExitStatus,
    RefusedError,
    ServiceError,
    UsersFailedError,
    describe_aws_error,
)


def client_error(code: str, message: str = "details", operation: str = "GetCSVHeader") -> Exception:
    return boto.ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("code", "hint_part"),
    [
        ("ResourceNotFoundException", "--pool-id"),
        ("NotAuthorizedException", "IAM policy allows GetCSVHeader"),
        ("AccessDeniedException", "AWS_PROFILE"),
        ("TooManyRequestsException", "retry later"),
    ],
)
def test_a_client_error_is_a_service_error_with_a_hint(code: str, hint_part: str) -> None:
    error = describe_aws_error(client_error(code, "User pool x does not exist."))
    assert isinstance(error, ServiceError)
    assert error.exit_status == ExitStatus.SERVICE
    assert str(error) == f"GetCSVHeader failed: {code}: User pool x does not exist."
    assert (error.code, error.operation) == (code, "GetCSVHeader")
    assert error.hint is not None and hint_part in error.hint


def test_an_unknown_client_error_keeps_code_and_message_without_a_hint() -> None:
    error = describe_aws_error(client_error("InternalErrorException", "boom"))
    assert isinstance(error, ServiceError)
    assert str(error) == "GetCSVHeader failed: InternalErrorException: boom"
    assert error.hint is None


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (boto.EndpointConnectionError(endpoint_url="http://h:1/"), "Cannot reach http://h:1/."),
        (
            boto.ConnectTimeoutError(endpoint_url="http://h:1/", error="t"),
            "Cannot reach http://h:1/.",
        ),
        (
            boto.ReadTimeoutError(endpoint_url="http://h:1/", error="t"),
            "Timed out waiting for an answer from http://h:1/.",
        ),
    ],
    ids=["refused", "connect-timeout", "read-timeout"],
)
def test_a_connection_error_names_the_endpoint(exc: Exception, message: str) -> None:
    error = describe_aws_error(exc)
    assert isinstance(error, ServiceError)
    assert str(error) == message
    assert error.hint is not None and "--endpoint-url" in error.hint


@pytest.mark.parametrize(
    ("exc", "message", "hint_part"),
    [
        (boto.NoCredentialsError(), "No AWS credentials found.", "AWS_ACCESS_KEY_ID"),
        (boto.NoRegionError(), "No AWS region set.", "--region"),
        (boto.ProfileNotFound(profile="work"), "AWS profile 'work' not found.", "--profile"),
    ],
)
def test_missing_configuration_is_a_config_error(
    exc: Exception, message: str, hint_part: str
) -> None:
    error = describe_aws_error(exc)
    assert isinstance(error, ConfigError)
    assert error.exit_status == ExitStatus.USAGE
    assert str(error) == message
    assert error.hint is not None and hint_part in error.hint


@pytest.mark.parametrize("exc", [ValueError("x"), KeyboardInterrupt(), ConfigError("ours")])
def test_anything_but_a_botocore_error_is_not_translated(exc: BaseException) -> None:
    assert describe_aws_error(exc) is None


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (CsvImportError, ExitStatus.USAGE),
        (ConfigError, ExitStatus.USAGE),
        (RefusedError, ExitStatus.USAGE),
        (ServiceError, ExitStatus.SERVICE),
        (UsersFailedError, ExitStatus.USERS_FAILED),
    ],
)
def test_each_error_carries_its_exit_status_message_and_hint(
    cls: type[CsvImportError], status: ExitStatus
) -> None:
    error = cls("what went wrong", hint="what to do")
    assert error.exit_status == status
    assert str(error) == "what went wrong"
    assert error.hint == "what to do"


def test_exit_codes_are_the_documented_numbers() -> None:
    assert {s.name: int(s) for s in ExitStatus} == {
        "OK": 0,
        "USERS_FAILED": 1,
        "USAGE": 2,
        "SERVICE": 3,
        "INTERNAL": 70,
        "INTERRUPTED": 130,
    }
