"""csvimport.retry: one rate limiter per quota bucket, whichever caller asks, and every
operation csvimport calls in a named bucket."""

from __future__ import annotations

import time
from typing import Any

import pytest

from csvimport.retry import QUOTA_OF, PacedClient, Quota, quota_of
from csvimport.sandbox import PoolInfo


def call_times(client: Any, operation: str) -> list[float]:
    """When each ``operation`` call of ``client`` left csvimport's pacing."""
    times: list[float] = []
    client.meta.events.register(
        f"before-call.cognito-idp.{operation}", lambda **_: times.append(time.monotonic())
    )
    return times


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_two_callers_of_one_operation_on_one_pool_share_its_four_calls_a_second(
    cognito: Any, pool: PoolInfo
) -> None:
    times = call_times(cognito, "GetCSVHeader")
    first, second = PacedClient(cognito), PacedClient(cognito)
    asked: list[float] = []  # just before each call was asked for: never after its turn
    for _ in range(3):
        for caller in (first, second):
            asked.append(time.monotonic())
            caller.get_csv_header(UserPoolId=pool.user_pool_id)
    # At 4 a second, a call's turn comes 1 s after the turn of the call four before it (at
    # 5 a second, 0.8 s). Measured from when that earlier call was asked for, which is no
    # later than its turn: under load a call can be seen late, but never early.
    assert len(times) == 6
    spans = [b - a for a, b in zip(asked, times[4:], strict=False)]
    assert min(spans) >= 0.999, (spans, gaps(times))


def test_a_callers_own_rate_never_goes_above_the_quota(cognito: Any, pool: PoolInfo) -> None:
    times = call_times(cognito, "ListUsers")
    users = QUOTA_OF["list_users"]
    paced = PacedClient(cognito, rates={users: 1000.0})
    asked = time.monotonic()  # no later than the first call's turn
    for _ in range(4):
        paced.list_users(UserPoolId=pool.user_pool_id, Limit=1)
    # Measured from before the first call: under load a call can be seen late (which made
    # a span between two seen calls look short), never before its turn.
    assert len(times) == 4 and times[-1] - asked >= 3 / users.account_rps - 1e-6


def test_every_quota_keeps_csvimport_under_the_limit_aws_sets() -> None:
    quotas: set[Quota] = set(QUOTA_OF.values())
    for quota in quotas:
        assert 0 < quota.rate < quota.account_rps, quota
        if quota.pool_operation_rps is not None:
            assert quota.pool_operation_rate is not None
            assert 0 < quota.pool_operation_rate < quota.pool_operation_rps, quota


def test_an_operation_in_no_bucket_is_refused_naming_where_to_add_it(cognito: Any) -> None:
    with pytest.raises(LookupError, match="add it to QUOTA_OF in csvimport/retry.py"):
        quota_of("delete_user_pool")
    with pytest.raises(LookupError):
        PacedClient(cognito).delete_user_pool(UserPoolId="us-east-1_x")
