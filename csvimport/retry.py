"""Retries and pacing of every AWS call csvimport makes: one layer, in one place.

Retrying is botocore's. Every client csvimport builds (``csvimport.aws.AwsOptions``) uses
botocore's standard retry mode (:func:`botocore_config`): throttling, 5xx answers and lost
connections are retried with exponential backoff and jitter, up to ``AWS_MAX_ATTEMPTS``
HTTP attempts per call in all, the first one included (:data:`DEFAULT_MAX_ATTEMPTS`, 6,
when unset). csvimport wraps no retry loop of its own around botocore's, so that number is
the bound on the attempts of one call. Three refinements, never more attempts:

- an endpoint the client never heard from that cannot be connected to gets
  :data:`UNREACHED_TRIES` (2) attempts (:func:`install`), so a wrong ``--endpoint-url``
  is named at once instead of after a minute of backoff;
- a Cognito answer that a limit on resources was reached (:data:`NOT_RETRIED_CODES`,
  e.g. the daily email limit) is not retried: waiting does not lift it;
- the upload to a presigned URL is not a botocore call: it gets as many attempts as a
  call of the Cognito client that made the job (:func:`max_attempts`), with botocore's
  schedule of waits (:class:`Backoff`).

Pacing is csvimport's. Each operation belongs to one of Cognito's (or CloudWatch Logs')
quota buckets (:data:`QUOTA_OF`); one :class:`RateLimiter` per process spaces the calls of
each bucket so that csvimport takes only its share (:class:`Quota`): per account, and per
pool and operation where AWS sets such a limit. :class:`PacedClient` wraps a boto3 client
so that every call waits its turn; callers name no intervals.

A retryable error that reaches csvimport means botocore's attempts ran out:
:class:`PacedClient` turns it into a :class:`~csvimport.errors.ServiceError` naming the
operation (exit 3). Other AWS errors (an answer that says no) pass through unchanged, for
the caller to decide on with :func:`error_code` and :func:`error_message`.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import botocore.exceptions
from botocore.config import Config

from csvimport.errors import THROTTLING_CODES, ConfigError, describe_aws_error

# --- retrying: botocore's, bounded -----------------------------------------------------
# HTTP attempts per call, the first one included, when AWS_MAX_ATTEMPTS is not set. With
# standard mode's backoff (a random wait up to 1, 2, 4, 8, 16 s) the 5 retries wait about
# 15 s in all, at most 31 s, before the call fails.
DEFAULT_MAX_ATTEMPTS = 6
RETRY_MODE: Final = "standard"
# Attempts of a call (the first included) while the endpoint has never answered the
# client and cannot be connected to. A wrong --endpoint-url, a stopped sandbox or no route
# does not heal in seconds: say "cannot reach" at once instead of after a minute of
# backoff. Once it has answered, a lost connection is a blip and gets every attempt.
UNREACHED_TRIES = 2
# Codes botocore's standard mode retries as throttling that, from Cognito (and CloudWatch
# Logs), mean a limit on resources, not on the request rate: the default sender's daily
# emails (facts §6), a user's password resets per hour, a pool's 1,000 import jobs
# (facts §3). Waiting seconds does not lift them: one attempt, and the caller decides.
NOT_RETRIED_CODES = frozenset({"LimitExceededException"})
# botocore's own default attempts per retry mode, for clients built without csvimport's
# configuration and without AWS_MAX_ATTEMPTS (botocore.retries.standard, _retry.json).
BOTOCORE_DEFAULT_ATTEMPTS = {"standard": 3, "adaptive": 3, "legacy": 5}


def max_attempts_from(environ: Mapping[str, str]) -> int:
    """The attempts per call ``AWS_MAX_ATTEMPTS`` asks for (the SDKs' variable: total
    attempts, first one included), else :data:`DEFAULT_MAX_ATTEMPTS`. Empty is unset."""
    raw = environ.get("AWS_MAX_ATTEMPTS") or ""
    if not raw:
        return DEFAULT_MAX_ATTEMPTS
    try:
        attempts = int(raw)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise ConfigError(
            f"AWS_MAX_ATTEMPTS must be a whole number of at least 1, not {raw!r}.",
            hint=f"Unset AWS_MAX_ATTEMPTS or set it to e.g. {DEFAULT_MAX_ATTEMPTS}.",
        )
    return attempts


def botocore_config(max_attempts: int) -> Config:
    """The retry part of a client's botocore ``Config``: standard mode, ``max_attempts``
    attempts per call in all (merge it with the rest: ``Config(...).merge(...)``)."""
    return Config(retries={"mode": RETRY_MODE, "total_max_attempts": max_attempts})


def install(client: Any) -> None:
    """Give ``client`` csvimport's two rules: at most :data:`UNREACHED_TRIES` attempts for
    an endpoint it never reached, and no retry of :data:`NOT_RETRIED_CODES`; botocore's
    retry mode decides the rest."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"needs-retry.{service}", _RetryRules())


def max_attempts(client: Any) -> int:
    """The HTTP attempts per call ``client`` makes at most (its botocore retry config)."""
    retries = getattr(client.meta.config, "retries", None) or {}
    if retries.get("total_max_attempts"):
        return int(retries["total_max_attempts"])
    if retries.get("max_attempts") is not None:  # botocore's old key: retries only
        return int(retries["max_attempts"]) + 1
    mode = str(retries.get("mode") or RETRY_MODE)
    return BOTOCORE_DEFAULT_ATTEMPTS.get(mode, BOTOCORE_DEFAULT_ATTEMPTS[RETRY_MODE])


def cannot_connect(exc: BaseException | None) -> bool:
    """The connection itself failed (refused, no route, DNS, connect timeout, proxy): the
    request never reached the endpoint. A read timeout or a dropped answer did reach it."""
    return isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ProxyConnectionError,
    )


class _RetryRules:
    """A botocore ``needs-retry`` handler: no retries past ``UNREACHED_TRIES`` for a call
    that cannot connect to an endpoint this client never heard from, none for an answer in
    ``NOT_RETRIED_CODES``; no opinion otherwise (botocore's retry mode decides)."""

    def __init__(self) -> None:
        self.answered = False

    def __call__(
        self, *, attempts: int, response: Any = None, caught_exception: Any = None, **_: Any
    ) -> bool | None:
        if response is not None:  # (http response, parsed answer)
            self.answered = True
            if response[1].get("Error", {}).get("Code") in NOT_RETRIED_CODES:
                return False
        elif not self.answered and cannot_connect(caught_exception) and attempts >= UNREACHED_TRIES:
            return False  # botocore: do not retry (the first answer that is not None wins)
        return None


@dataclass
class Backoff:
    """The waits between the attempts of the one call botocore does not make, the upload
    to a presigned URL: botocore standard mode's schedule, a random wait up to
    ``base * 2**n`` capped at ``cap`` (full jitter)."""

    base: float = 1.0
    cap: float = 20.0  # botocore's standard mode caps its waits at 20 s too
    rng: random.Random = field(default_factory=random.Random)

    def delays(self, attempts: int) -> Iterator[float]:
        """The wait after each failed attempt but the last: ``attempts - 1`` of them."""
        for n in range(attempts - 1):
            yield self.rng.uniform(0, min(self.cap, self.base * 2**n))


# --- errors ------------------------------------------------------------------------------
def error_code(exc: botocore.exceptions.ClientError) -> str:
    """AWS's error code of an answer that said no (e.g. ``ResourceNotFoundException``)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def retryable(exc: BaseException) -> bool:
    """Throttling, a 5xx answer or a lost connection: what botocore retries. Reaching
    csvimport, such an error means the attempts ran out."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = error_code(exc)
        return code in THROTTLING_CODES or code == "InternalErrorException" or status >= 500
    return isinstance(
        exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError
    )


# --- pacing: one rate limiter per quota bucket ---------------------------------------------
@dataclass(frozen=True)
class Quota:
    """A bucket of AWS's request-rate quotas, and the share of it csvimport takes.

    ``account_rps`` is AWS's limit for all the bucket's operations of an account (and
    region); ``rate`` is how many csvimport makes per second at most. Where AWS also limits
    each pool and operation, ``pool_operation_rps`` is that limit and ``pool_operation_rate``
    csvimport's.
    """

    name: str
    account_rps: float
    rate: float
    pool_operation_rps: float | None = None
    pool_operation_rate: float | None = None


# Cognito's quotas (facts §3, §6, §9). csvimport keeps a margin under each: at most 4 of
# the 5 calls per second per pool and operation, 15 of the 20 reads per second of the
# account. The user-level quotas are shared with the applications using the pool, so a
# migration takes a small part of them.
USER_POOL_RESOURCE_READ = Quota("UserPoolResourceRead", 20.0, 15.0, 5.0, 4.0)
USER_POOL_RESOURCE_UPDATE = Quota("UserPoolResourceUpdate", 15.0, 10.0, 5.0, 4.0)
# UNVERIFIED guess: the bucket of DescribeUserPool and ListUserPools and its limits are not
# in the facts; assumed the same as UserPoolResourceRead.
USER_POOL_READ = Quota("UserPoolRead", 20.0, 15.0, 5.0, 4.0)
# UNVERIFIED guess: the bucket of ListUserPoolClients and DescribeUserPoolClient
# (UserPoolClientRead) and its limits are not in the facts; assumed 15 RPS per account and
# 5 per pool and operation. The preflight makes one call per app client.
USER_POOL_CLIENT_READ = Quota("UserPoolClientRead", 15.0, 10.0, 5.0, 4.0)
# Shared with the applications using the pool (facts §9): csvimport takes a third.
USER_LIST = Quota("UserList", 30.0, 10.0)
USER_ACCOUNT_RECOVERY = Quota("UserAccountRecovery", 30.0, 5.0)
USER_UPDATE = Quota("UserUpdate", 25.0, 10.0)
# CloudWatch Logs: FilterLogEvents allows 5 transactions per second per account and region,
# not adjustable (AWS knowledge-center article "cloudwatch-logs-throttling").
LOG_EVENTS_READ = Quota("FilterLogEvents", 5.0, 4.0)

# Which bucket each boto3 operation csvimport calls draws from.
OPERATIONS: dict[Quota, tuple[str, ...]] = {
    USER_POOL_RESOURCE_READ: (
        "describe_user_import_job", "list_user_import_jobs", "get_csv_header",
        # UNVERIFIED guess: ListGroups's bucket is not in the facts; assumed this one.
        "list_groups",
    ),
    USER_POOL_RESOURCE_UPDATE: (
        "create_user_import_job", "start_user_import_job", "stop_user_import_job",
        # facts §9: CreateGroup 15 RPS per account, 5 per pool: this bucket's limits.
        "create_group",
    ),
    USER_POOL_READ: ("describe_user_pool", "list_user_pools"),
    USER_POOL_CLIENT_READ: ("list_user_pool_clients", "describe_user_pool_client"),
    USER_LIST: ("list_users",),
    USER_ACCOUNT_RECOVERY: (
        "admin_reset_user_password", "admin_set_user_password", "forgot_password",
        "confirm_forgot_password",
    ),
    USER_UPDATE: (
        "admin_add_user_to_group", "admin_disable_user", "admin_delete_user",
        "admin_update_user_attributes",
    ),
    LOG_EVENTS_READ: ("filter_log_events", "get_log_events"),
}  # fmt: skip
QUOTA_OF = {operation: quota for quota, names in OPERATIONS.items() for operation in names}


def quota_of(operation: str) -> Quota:
    """The quota bucket of a boto3 operation name (``describe_user_import_job``)."""
    try:
        return QUOTA_OF[operation]
    except KeyError:
        raise LookupError(
            f"no quota bucket for the AWS operation {operation!r}: add it to QUOTA_OF in "
            "csvimport/retry.py"
        ) from None


class RateLimiter:
    """Spaces the calls of each quota bucket: per account, and per pool and operation.

    Each call reserves the first moment its bucket allows and sleeps until then, so
    callers in several threads share the rate too.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def wait(self, quota: Quota, *, operation: str, pool_id: str = "",
             rate: float | None = None) -> float:  # fmt: skip
        """Wait for the call's turn; return how long it waited. ``rate`` replaces the
        bucket's own share for this call (never above AWS's limit)."""
        account_gap = 1 / min(rate or quota.rate, quota.account_rps)
        keys: list[tuple[tuple[str, ...], float]] = [((quota.name,), account_gap)]
        if quota.pool_operation_rate and pool_id:
            keys.append(((quota.name, pool_id, operation), 1 / quota.pool_operation_rate))
        with self._lock:
            now = time.monotonic()
            turn = max([now] + [self._next.get(key, now) for key, _ in keys])
            for key, gap in keys:
                self._next[key] = turn + gap
        if turn > now:
            time.sleep(turn - now)
        return max(0.0, turn - now)


# The process's one limiter: the quotas are per account, whichever client or caller asks.
LIMITER = RateLimiter()


class PacedClient:
    """A boto3 client whose calls wait their turn in their quota bucket (attributes pass
    through), and whose retryable errors, botocore's attempts spent, become ServiceErrors.

    ``rates`` lowers (or raises, never above AWS's limit) csvimport's share of a bucket for
    this client's calls, e.g. ``csvimport resets --rate``.
    """

    def __init__(self, client: Any, *, rates: Mapping[Quota, float] | None = None) -> None:
        self.client = client
        self.rates = dict(rates or {})

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name in ("exceptions", "meta") or not callable(attribute):
            return attribute
        return functools.partial(self.call, name)

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Wait for the operation's turn, then make the call."""
        self.wait_turn(operation, str(kwargs.get("UserPoolId", "")))
        return self.send(operation, **kwargs)

    def wait_turn(self, operation: str, pool_id: str = "") -> float:
        """Wait until ``operation`` may be called (for a caller that records something
        between its turn and the call; then :meth:`send`)."""
        quota = quota_of(operation)
        return LIMITER.wait(quota, operation=operation, pool_id=pool_id,
                            rate=self.rates.get(quota))  # fmt: skip

    def send(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Make the call now (its turn taken with :meth:`wait_turn`)."""
        try:
            return dict(getattr(self.client, operation)(**kwargs))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if retryable(exc):
                raise (describe_aws_error(exc) or exc) from exc
            raise


def paced(client: Any) -> Any:
    """``client`` as a :class:`PacedClient` (itself when it already is one)."""
    return client if isinstance(client, PacedClient) else PacedClient(client)
