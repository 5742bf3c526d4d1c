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
    for _ in range(3):
        first.get_csv_header(UserPoolId=pool.user_pool_id)
        second.get_csv_header(UserPoolId=pool.user_pool_id)
    # At 4 a second any five calls span 1 s (at 5 they would span 0.8 s). Spans of four
    # gaps, not single gaps: under load one call can be seen late, shortening one gap.
    assert len(times) == 6
    assert min(b - a for a, b in zip(times, times[4:], strict=False)) >= 0.92, gaps(times)


def test_a_callers_own_rate_never_goes_above_the_quota(cognito: Any, pool: PoolInfo) -> None:
    times = call_times(cognito, "ListUsers")
    users = QUOTA_OF["list_users"]
    paced = PacedClient(cognito, rates={users: 1000.0})
    for _ in range(4):
        paced.list_users(UserPoolId=pool.user_pool_id, Limit=1)
    # Measured over the whole run: one gap alone can look short when the machine delays the
    # moment a call is seen, not the call itself.
    assert len(times) == 4 and times[-1] - times[0] >= 3 / users.account_rps - 0.002


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
