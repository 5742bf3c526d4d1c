"""csvimport's exit statuses and exceptions, and the translation of botocore's errors.

Every exception csvimport raises on purpose is a :class:`CsvImportError`: its message says
what went wrong, its ``hint`` what to do about it, and its ``exit_status`` which code the
command line exits with. The library raises them; only ``csvimport.cli`` prints them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

import botocore.exceptions

from csvimport.redact import mask_credentials


class ExitStatus(IntEnum):
    """The exit codes of the ``csvimport`` command.

    - ``OK`` (0): everything asked for was done; every user was imported.
    - ``USERS_FAILED`` (1): the run finished, but some users failed, were skipped or were
      rejected before upload; the run's report and reject files say which and why.
    - ``USAGE`` (2): a usage or configuration error (bad option, missing file, no region or
      credentials), or csvimport refused to go on because it would be unsafe.
    - ``SERVICE`` (3): AWS or the endpoint failed: an API error, throttling that outlasted
      the retries, or an endpoint that cannot be reached.
    - ``INTERNAL`` (70, sysexits' EX_SOFTWARE): a bug in csvimport. Python's own exit
      code for an uncaught exception would be 1, which reads as "some users failed".
    - ``INTERRUPTED`` (130): stopped by Ctrl-C (SIGINT) or SIGTERM before finishing.
    """

    OK = 0
    USERS_FAILED = 1
    USAGE = 2
    SERVICE = 3
    INTERNAL = 70
    INTERRUPTED = 130


class CsvImportError(Exception):
    """Base of csvimport's errors: a message, an optional hint, and an exit status."""

    # An error not otherwise classified is one the caller can fix: USAGE.
    exit_status: ClassVar[ExitStatus] = ExitStatus.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(CsvImportError):
    """A usage or configuration error: an option, file or setting must be fixed."""

    exit_status = ExitStatus.USAGE


class RefusedError(CsvImportError):
    """csvimport refused to go on because going on would be unsafe or pointless."""

    exit_status = ExitStatus.USAGE


class ServiceError(CsvImportError):
    """AWS (or the endpoint standing in for it) failed or could not be reached."""

    exit_status = ExitStatus.SERVICE

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.operation = operation


class UsersFailedError(CsvImportError):
    """Some users failed, were skipped or were rejected; ``count`` says how many."""

    exit_status = ExitStatus.USERS_FAILED

    def __init__(self, message: str, *, hint: str | None = None, count: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.count = count


# Advice for the AWS error codes whose fix is known. Codes are matched exactly.
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})
NOT_FOUND_HINT = (
    "Check --pool-id and --region: the user pool must exist in that region and account."
)
AUTH_CODES = frozenset(
    {
        "NotAuthorizedException",
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
AUTH_HINT = (
    "Check the AWS credentials (--profile, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY) and that their IAM policy allows {operation}."
)
THROTTLING_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
    }
)
THROTTLING_HINT = (
    "AWS throttled the requests and the retries ran out; retry later, or run fewer "
    "csvimport commands against this account at once (AWS_MAX_ATTEMPTS sets the attempts "
    "per call)."
)
UNREACHABLE_HINT = (
    "Check --endpoint-url (or AWS_ENDPOINT_URL), --region and the network; "
    "if this is a csvimport sandbox, is it still running?"
)
NO_CREDENTIALS_HINT = (
    "Set AWS_PROFILE or pass --profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(any value, e.g. 'testing', works against a csvimport sandbox)."
)
NO_REGION_HINT = "Pass --region or set AWS_REGION (or give the AWS profile a region)."
PROFILE_NOT_FOUND_HINT = (
    "Check --profile or AWS_PROFILE against the profiles in ~/.aws/config "
    "(aws configure list-profiles)."
)


def describe_aws_error(exc: BaseException) -> CsvImportError | None:
    """Translate a botocore exception into a csvimport error whose hint names the fix.

    Returns None for anything that is not a botocore exception, so the caller can let it
    propagate. The original exception is not chained here: raise ``... from exc``.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        return _describe_client_error(exc)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ConfigError("No AWS credentials found.", hint=NO_CREDENTIALS_HINT)
    if isinstance(exc, botocore.exceptions.PartialCredentialsError):
        return ConfigError(str(exc), hint=NO_CREDENTIALS_HINT)
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ConfigError("No AWS region set.", hint=NO_REGION_HINT)
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        profile = exc.kwargs.get("profile", "")
        return ConfigError(f"AWS profile {profile!r} not found.", hint=PROFILE_NOT_FOUND_HINT)
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return ConfigError(str(exc))
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        # EndpointConnectionError, ConnectTimeoutError, SSLError, ProxyConnectionError,
        # ReadTimeoutError, ConnectionClosedError: all name the URL they were sending to.
        endpoint = mask_credentials(str(exc.kwargs.get("endpoint_url") or "the AWS endpoint"))
        if isinstance(exc, botocore.exceptions.ReadTimeoutError):
            message = f"Timed out waiting for an answer from {endpoint}."
        elif isinstance(exc, botocore.exceptions.ConnectionClosedError):
            message = f"{endpoint} closed the connection before answering."
        else:
            message = f"Cannot reach {endpoint}."
        return ServiceError(message, hint=UNREACHABLE_HINT)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return ServiceError(str(exc))
    return None


def _describe_client_error(exc: botocore.exceptions.ClientError) -> ServiceError:
    """Name the operation, AWS's error code and message, how many attempts were made when
    botocore retried, and a hint where one is known."""
    error = exc.response.get("Error", {})
    code = error.get("Code") or "UnknownError"
    detail = error.get("Message") or "no message"
    operation = exc.operation_name
    hint: str | None = None
    if code in NOT_FOUND_CODES:
        hint = NOT_FOUND_HINT
    elif code in AUTH_CODES:
        hint = AUTH_HINT.format(operation=operation)
    elif code in THROTTLING_CODES:
        hint = THROTTLING_HINT
    retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0
    tried = f" ({retries + 1} attempts)" if retries else ""
    return ServiceError(
        f"{operation} failed: {code}: {detail}{tried}", hint=hint, code=code, operation=operation
    )
