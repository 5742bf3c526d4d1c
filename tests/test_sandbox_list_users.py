"""The sandbox's ListUsers as Cognito serves it (facts §9), over HTTP: Limit 0..60, tokens
that survive users added and deleted between pages, the one-attribute filter, and pages
whose cost does not grow with the pool."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from moto.cognitoidp.models import CognitoIdpUser, UserStatus, cognitoidp_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from csvimport.sandbox import PoolInfo, Sandbox
from csvimport.sandbox.responses import ListedUsers


def _add(cognito: Any, pool: PoolInfo, username: str, **attributes: str) -> None:
    cognito.admin_create_user(
        UserPoolId=pool.user_pool_id, Username=username, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
    )  # fmt: skip


def _scan(cognito: Any, pool: PoolInfo, limit: int, between: Any = None, **kw: Any) -> list[str]:
    names: list[str] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool.user_pool_id, "Limit": limit, **kw}
    while True:
        page = cognito.list_users(**kwargs)
        names += [u["Username"] for u in page["Users"]]
        if not page.get("PaginationToken"):
            return names
        kwargs["PaginationToken"] = page["PaginationToken"]
        if between is not None:
            between(len(names))


def test_limit_pages_follow_the_token_and_zero_means_a_full_page(
    cognito: Any, pool: PoolInfo
) -> None:
    for n in range(5):
        _add(cognito, pool, f"user{n}")
    assert _scan(cognito, pool, 2) == [f"user{n}" for n in range(5)]
    assert len(cognito.list_users(UserPoolId=pool.user_pool_id, Limit=2)["Users"]) == 2
    whole = cognito.list_users(UserPoolId=pool.user_pool_id, Limit=0)
    assert len(whole["Users"]) == 5 and "PaginationToken" not in whole
    with pytest.raises(cognito.exceptions.InvalidParameterException):
        cognito.list_users(UserPoolId=pool.user_pool_id, Limit=61)


def test_users_deleted_or_added_between_pages_do_not_break_the_scan(
    cognito: Any, pool: PoolInfo
) -> None:
    for n in range(6):
        _add(cognito, pool, f"user{n}")

    def change(seen: int) -> None:
        if seen == 2:  # the next page's first user goes, a new user arrives
            cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user2")
            _add(cognito, pool, "late")

    names = _scan(cognito, pool, 2, between=change)
    assert names == ["user0", "user1", "user3", "user4", "user5", "late"]


def test_a_bad_token_is_an_invalid_parameter(cognito: Any, pool: PoolInfo) -> None:
    with pytest.raises(cognito.exceptions.InvalidParameterException):
        cognito.list_users(UserPoolId=pool.user_pool_id, PaginationToken="not-a-token")


def test_the_filter_takes_one_standard_attribute_with_equals_or_prefix(
    cognito: Any, pool: PoolInfo
) -> None:
    _add(cognito, pool, "ann", email="ann@example.com", given_name="Ann")
    _add(cognito, pool, "anna", email="anna@example.org", given_name="Anna")
    _add(cognito, pool, "bob", email="bob@example.com", given_name="Bob")
    cognito.admin_disable_user(UserPoolId=pool.user_pool_id, Username="bob")
    sub = next(a["Value"] for a in cognito.admin_get_user(
        UserPoolId=pool.user_pool_id, Username="anna")["UserAttributes"] if a["Name"] == "sub")  # fmt: skip

    def found(filt: str) -> list[str]:
        return _scan(cognito, pool, 1, Filter=filt)  # one per page: the token keeps the filter

    assert found('username = "ann"') == ["ann"]
    assert found('username ^= "ann"') == ["ann", "anna"]
    assert found('email ^= "an"') == ["ann", "anna"]
    assert found('email = "bob@example.com"') == ["bob"]
    assert found('given_name = "Anna"') == ["anna"]
    assert found('family_name ^= ""') == []  # nobody has one
    assert found('status = "Disabled"') == ["bob"]
    assert found('status = "Enabled"') == ["ann", "anna"]
    assert found('cognito:user_status = "FORCE_CHANGE_PASSWORD"') == ["ann", "anna", "bob"]
    assert found(f'sub = "{sub}"') == ["anna"]
    assert found('email = "nobody@example.com"') == []


@pytest.mark.parametrize("filt", ['custom:legacy_id = "7"', 'locale = "en"', "email = ann",
                                  'email > "a"'])  # fmt: skip
def test_other_filters_are_refused_as_invalid_parameters(
    cognito: Any, pool: PoolInfo, filt: str
) -> None:
    with pytest.raises(cognito.exceptions.InvalidParameterException):
        cognito.list_users(UserPoolId=pool.user_pool_id, Filter=filt)


def test_a_page_examines_the_users_it_returns_not_the_pool() -> None:
    users = ListedUsers({f"user{n}": n for n in range(20_000)})
    for n in range(0, 10_000, 2):
        del users[f"user{n}"]  # holes are skipped, then compacted away
    examined: list[int] = []

    def keep(user: int) -> bool:
        examined.append(user)
        return True

    page, last = users.page(15_000, 60, keep)
    assert page == list(range(15_001, 15_061))
    assert len(examined) == 61  # the page and the one that says a further page exists
    assert users.page(last, 60, keep)[0][0] == 15_061
    assert users.page(19_998, 60, keep) == ([19_999], -1)


def _fill(sandbox: Sandbox, pool: PoolInfo, count: int) -> None:
    """``count`` users written straight into the sandbox's backend (no API call each)."""
    backend = cognitoidp_backends[DEFAULT_ACCOUNT_ID][sandbox.region]
    users = backend.user_pools[pool.user_pool_id].users
    for n in range(count):
        users[f"bulk{n:06d}"] = CognitoIdpUser(
            pool.user_pool_id, f"bulk{n:06d}", None, UserStatus.CONFIRMED,
            [{"Name": "email", "Value": f"bulk{n:06d}@example.com"}],
        )  # fmt: skip


def _page_seconds(cognito: Any, pool: PoolInfo, **kwargs: Any) -> float:
    """The best of five timings of one ListUsers page, over HTTP."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        page = cognito.list_users(UserPoolId=pool.user_pool_id, Limit=60, **kwargs)
        times.append(time.perf_counter() - start)
        assert len(page["Users"]) == 60 and page.get("PaginationToken")
    return min(times)


def test_a_page_takes_as_long_in_a_pool_of_50000_as_of_2000(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo]
) -> None:
    small, large = make_pool(), make_pool()
    _fill(sandbox, small, 2_000)
    _fill(sandbox, large, 50_000)
    for kwargs in ({}, {"Filter": 'email ^= "bulk"'}):  # moto filtered the whole pool
        few, many = _page_seconds(cognito, small, **kwargs), _page_seconds(cognito, large, **kwargs)
        assert many < 3 * few + 0.05, (kwargs, few, many)
    # The small pool scanned whole while users come and go: a user there all along comes
    # once, a user deleted before its page never, a user added during the scan once.
    deleted, added = set(), set()

    def change(seen: int) -> None:
        if len(deleted) == 20:
            return
        gone, new = f"bulk{1_999 - len(deleted):06d}", f"late{seen}"  # not reached yet
        cognito.admin_delete_user(UserPoolId=small.user_pool_id, Username=gone)
        _add(cognito, small, new)
        deleted.add(gone)
        added.add(new)

    names = _scan(cognito, small, 60, between=change)
    assert len(names) == len(set(names))
    assert set(names) == {f"bulk{n:06d}" for n in range(2_000)} - deleted | added
