"""Duplicates inside the source: found as the pool compares values, resolved by policy,
each dropped user pointing at the row it collided with."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from csvimport.build.choices import DuplicatePolicy
from csvimport.build.duplicates import DuplicateFinder
from csvimport.pool import Attribute, PoolSnapshot

HEADER = ["email", "email_verified", "phone_number", "phone_number_verified",
          "preferred_username", "cognito:username"]  # fmt: skip


def snapshot(**changes: Any) -> PoolSnapshot:
    base: dict[str, Any] = {"user_pool_id": "p", "name": "p", "header": HEADER,
                            "attributes": [Attribute("email")], "case_sensitive": False}  # fmt: skip
    base.update(changes)
    return PoolSnapshot(**base)


def users(*rows: dict[str, str]) -> pd.DataFrame:
    records = []
    for n, values in enumerate(rows, start=1):
        record = dict.fromkeys(HEADER, "") | {"__row__": n, "__updated__": ""}
        record.update(values)
        records.append(record)
    return pd.DataFrame(records)


def resolve(
    snap: PoolSnapshot, policy: DuplicatePolicy, *frames: pd.DataFrame
) -> dict[int, tuple[str, int]]:
    finder = DuplicateFinder(snap, policy)
    for frame in frames:
        finder.add(frame)
    return {row: (d.attribute, d.collided_with) for row, d in finder.resolve().items()}


def test_usernames_differing_in_case_collide_in_a_case_insensitive_pool() -> None:
    frame = users(
        {"cognito:username": "Ann"}, {"cognito:username": "ann"}, {"cognito:username": "bob"}
    )
    assert resolve(snapshot(), DuplicatePolicy.KEEP_FIRST, frame) == {2: ("cognito:username", 1)}


def test_usernames_differing_in_case_are_distinct_in_a_case_sensitive_pool() -> None:
    frame = users({"cognito:username": "Ann"}, {"cognito:username": "ann"})
    assert resolve(snapshot(case_sensitive=True), DuplicatePolicy.KEEP_FIRST, frame) == {}


def test_duplicates_are_found_across_chunks() -> None:
    first = users({"cognito:username": "a"}, {"cognito:username": "b"})
    second = users({"cognito:username": "c"}, {"cognito:username": "A"})
    second["__row__"] = [3, 4]
    assert resolve(snapshot(), DuplicatePolicy.KEEP_FIRST, first, second) == {
        4: ("cognito:username", 1)
    }


def test_keep_latest_keeps_the_most_recently_updated() -> None:
    frame = users(
        {"cognito:username": "x", "__updated__": "2020-01-01"},
        {"cognito:username": "X", "__updated__": "2023-06-01T10:00:00"},
        {"cognito:username": "x", "__updated__": ""},
    )
    assert resolve(snapshot(), DuplicatePolicy.KEEP_LATEST, frame) == {
        1: ("cognito:username", 2), 3: ("cognito:username", 2)}  # fmt: skip


def test_reject_all_drops_every_member_and_points_to_another() -> None:
    frame = users({"cognito:username": "x"}, {"cognito:username": "y"}, {"cognito:username": "X"})
    assert resolve(snapshot(), DuplicatePolicy.REJECT_ALL, frame) == {
        1: ("cognito:username", 3), 3: ("cognito:username", 1)}  # fmt: skip


def test_emails_collide_case_insensitively_when_email_is_a_username_attribute() -> None:
    snap = snapshot(username_attributes=["email"])
    frame = users({"cognito:username": "a", "email": "Same@Example.com"},
                  {"cognito:username": "b", "email": "same@example.com"})  # fmt: skip
    assert resolve(snap, DuplicatePolicy.KEEP_FIRST, frame) == {2: ("email", 1)}


def test_alias_emails_collide_only_between_verified_users() -> None:
    snap = snapshot(alias_attributes=["email"])
    frame = users(
        {"cognito:username": "a", "email": "s@x.co", "email_verified": "true"},
        {"cognito:username": "b", "email": "s@x.co", "email_verified": "false"},
        {"cognito:username": "c", "email": "s@x.co", "email_verified": "TRUE"},
    )
    assert resolve(snap, DuplicatePolicy.KEEP_FIRST, frame) == {3: ("email", 1)}


def test_emails_do_not_collide_when_the_pool_does_not_make_them_unique() -> None:
    frame = users(
        {"cognito:username": "a", "email": "s@x.co"}, {"cognito:username": "b", "email": "s@x.co"}
    )
    assert resolve(snapshot(), DuplicatePolicy.KEEP_FIRST, frame) == {}


def test_a_dropped_user_does_not_claim_its_other_keys() -> None:
    snap = snapshot(username_attributes=["email"])
    frame = users(
        {"cognito:username": "a", "email": "x@x.co"},
        {"cognito:username": "b", "email": "x@x.co"},  # dropped: email of row 1
        {"cognito:username": "b", "email": "y@x.co"},  # kept: row 2 never got "b"
    )
    assert resolve(snap, DuplicatePolicy.KEEP_FIRST, frame) == {2: ("email", 1)}


@pytest.mark.parametrize("policy", list(DuplicatePolicy))
def test_every_policy_explains_itself(policy: DuplicatePolicy) -> None:
    frame = users({"cognito:username": "x"}, {"cognito:username": "x"})
    finder = DuplicateFinder(snapshot(), policy)
    finder.add(frame)
    reasons = [d.reason(policy) for d in finder.resolve().values()]
    assert reasons and all("source row" in r and policy.value in r for r in reasons)


@pytest.mark.parametrize(
    ("older", "newer"),
    [("1577836800", "1714521600"), ("1577836800000", "1714521600"), ("2020-01-01", "1714521600"),
     ("2020-01-01T00:00:00Z", "2024-05-01 10:00")],
)  # fmt: skip
def test_keep_latest_reads_epoch_seconds_milliseconds_and_iso_dates(older: str, newer: str) -> None:
    frame = users({"cognito:username": "x", "__updated__": newer},
                  {"cognito:username": "x", "__updated__": older})  # fmt: skip
    assert resolve(snapshot(), DuplicatePolicy.KEEP_LATEST, frame) == {2: ("cognito:username", 1)}
