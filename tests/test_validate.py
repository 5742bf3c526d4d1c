"""The pandera schema made from a pool snapshot: each Cognito rule, and agreement with the
sandbox (a row the validator passes is a row the sandbox imports, and vice versa)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from csvimport.build.validate import REASONS, WHITESPACE, PoolValidator
from csvimport.pool import Attribute, PoolSnapshot, read_pool
from csvimport.sandbox import Sandbox

from .helpers import Importer, cognito_csv

HEADER = [
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "email_verified", "gender", "birthdate",
    "zoneinfo", "locale", "phone_number", "phone_number_verified", "address", "updated_at",
    "custom:legacy_id", "custom:credits", "cognito:mfa_enabled", "cognito:username",
]  # fmt: skip


def snapshot(**changes: Any) -> PoolSnapshot:
    base: dict[str, Any] = {
        "user_pool_id": "us-east-1_test", "name": "test", "header": HEADER,
        "attributes": [
            Attribute("email"), Attribute("phone_number"),
            Attribute("custom:legacy_id", min_length=1, max_length=16),
            Attribute("custom:credits", data_type="Number", min_value=0, max_value=1000),
        ],
        "auto_verified": ["email"], "case_sensitive": False, "mfa": "OFF",
    }  # fmt: skip
    base.update(changes)
    return PoolSnapshot(**base)


def row(**values: str) -> dict[str, str]:
    out = dict.fromkeys(HEADER, "")
    out.update({"cognito:username": "u1", "email": "u1@example.com", "email_verified": "true"})
    out.update({k.replace("__", ":"): v for k, v in values.items()})
    return out


def failures(snap: PoolSnapshot, rows: list[dict[str, str]]) -> list[tuple[int, str, str]]:
    found = PoolValidator(snap).validate(pd.DataFrame(rows, columns=snap.header))
    return [(f.position, f.attribute, f.rule) for f in found]


def test_a_good_row_passes() -> None:
    assert failures(snapshot(), [row()]) == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"cognito__username": ""}, ("cognito:username", "username_missing")),
        ({"cognito__username": "a b"}, ("cognito:username", "username_whitespace")),
        ({"cognito__username": "x" * 129}, ("cognito:username", "username_too_long")),
        ({"cognito__username": "bell\x07"}, ("cognito:username", "username_characters")),
        ({"email_verified": "yes"}, ("email_verified", "boolean")),
        ({"email": "nope"}, ("email", "email")),
        ({"phone_number": "555-1212"}, ("phone_number", "phone")),
        ({"birthdate": "1985-02-01"}, ("birthdate", "birthdate")),
        ({"birthdate": "02/30/1985"}, ("birthdate", "birthdate")),
        ({"updated_at": "1.5"}, ("updated_at", "updated_at")),
        ({"custom__credits": "many"}, ("custom:credits", "number")),
        ({"custom__credits": "1001"}, ("custom:credits", "number_range")),
        ({"custom__legacy_id": "x" * 17}, ("custom:legacy_id", "length")),
        ({"address": "x" * 2049}, ("address", "value_too_long")),
        ({"address": "line\nbreak"}, ("address", "newline")),
        ({"address": "line\rbreak"}, ("address", "newline")),
        ({"address": "ends\\"}, ("address", "backslash")),
        ({"name": "ends\\ \t"}, ("name", "backslash")),
        ({"address": "a\\,b"}, ("address", "backslash")),
        ({"cognito__username": "ann\\"}, ("cognito:username", "backslash")),
        ({"email_verified": "false"}, ("email_verified", "auto_verified")),
        ({"cognito__mfa_enabled": "true"}, ("cognito:mfa_enabled", "mfa")),
    ],
)  # fmt: skip
def test_each_rule_is_reported_on_its_attribute(
    values: dict[str, str], expected: tuple[str, str]
) -> None:
    assert (0, *expected) in failures(snapshot(), [row(**values)])


def test_validation_is_lazy_every_failure_of_every_row() -> None:
    found = failures(
        snapshot(), [row(), row(email="bad", phone_number="1"), row(cognito__username="")]
    )
    assert (1, "email", "email") in found and (1, "phone_number", "phone") in found
    assert (2, "cognito:username", "username_missing") in found
    assert all(position != 0 for position, _, _ in found)


def test_verified_channels_need_a_value() -> None:
    found = failures(snapshot(auto_verified=["email", "phone_number"]),
                     [row(email="", email_verified="true"), row(phone_number_verified="true")])  # fmt: skip
    assert (0, "email", "email_verified_without_email") in found
    assert (1, "phone_number", "phone_verified_without_phone") in found


def test_required_attributes_are_enforced() -> None:
    snap = snapshot(attributes=[Attribute("family_name", required=True)])
    assert failures(snap, [row()]) == [(0, "family_name", "required")]


def test_a_row_longer_than_16000_characters_is_refused() -> None:
    long = {k: "y" * 2000 for k in ("name", "given_name", "family_name", "middle_name", "nickname",
                                     "profile", "picture", "website", "address")}  # fmt: skip
    assert (0, "", "row_too_long") in failures(snapshot(), [row(**long)])


def test_mfa_on_pool_refuses_false() -> None:
    assert failures(snapshot(mfa="ON"), [row(cognito__mfa_enabled="false")]) == [
        (0, "cognito:mfa_enabled", "mfa")
    ]


def test_usernames_that_look_like_an_alias_are_refused_in_alias_pools() -> None:
    snap = snapshot(alias_attributes=["email"])
    assert failures(snap, [row(cognito__username="a@b.co")]) == [
        (0, "cognito:username", "username_looks_like_alias")
    ]


def test_whitespace_is_exactly_what_pythons_backslash_s_matches() -> None:
    import re
    import sys

    spelt_out, python = re.compile(f"[{WHITESPACE}]"), re.compile(r"\s")
    every = map(chr, range(sys.maxunicode + 1))
    assert [c for c in every if bool(spelt_out.match(c)) != bool(python.match(c))] == []


@pytest.mark.parametrize("username", ["a\u3000b", "a\x1cb", "a\xa0b", "a\u2028b"])
def test_unicode_whitespace_in_a_username_is_refused(username: str) -> None:
    found = failures(snapshot(), [row(cognito__username=username)])
    assert (0, "cognito:username", "username_whitespace") in found


def test_every_rule_has_a_plain_language_reason() -> None:
    found = PoolValidator(snapshot()).validate(pd.DataFrame([row(email="x")], columns=HEADER))
    assert found and all(f.reason in REASONS.values() for f in found)


MESSY_VALUES = {
    "cognito:username": ["ok1", "ok2", "with space", "", "é-ü", "x" * 129],
    "email": ["a@example.com", "", "not-an-email"],
    "email_verified": ["true", "false", "TRUE", "yes", ""],
    "phone_number": ["", "+14325551212", "4325551212"],
    "phone_number_verified": ["", "false", "true"],
    "birthdate": ["", "02/01/1985", "1985-02-01", "13/01/1985"],
    "updated_at": ["", "1700000000", "soon"],
    "custom:credits": ["", "5", "5000", "x"],
    "cognito:mfa_enabled": ["", "false", "true"],
}


def messy_rows(count: int) -> list[dict[str, str]]:
    rows = []
    for i in range(count):
        values = {k: v[(i * (j + 3)) % len(v)] for j, (k, v) in enumerate(MESSY_VALUES.items())}
        if values["cognito:username"].startswith("ok"):
            values["cognito:username"] = f"user{i}"  # unique: duplicates are another module's job
        r = dict.fromkeys(HEADER, "")
        r.update(values)
        rows.append(r)
    return rows


def test_the_validator_and_the_sandbox_agree_row_by_row(
    importer: Importer, cognito: Any, sandbox: Sandbox
) -> None:
    snap = read_pool(cognito, importer.info.user_pool_id)
    rows = messy_rows(120)
    found = PoolValidator(snap).validate(pd.DataFrame(rows, columns=snap.header))
    refused = {f.position for f in found}
    # Send every row, refused ones too, and let no job-level threshold hide row outcomes.
    sandbox.settings.update(fail_job_after_bad_rows=10**6)
    run = importer.run(cognito_csv(snap.header, rows))
    lines = importer.log_lines(run.job_id)
    outcome = {
        int(m.split("Line Number ")[1].split(" ")[0]) - 1: m.split("]")[0][1:] for m in lines
    }
    assert len(outcome) == len(rows)
    succeeded = {i for i, o in outcome.items() if o == "SUCCEEDED"}
    assert succeeded == set(range(len(rows))) - refused


def test_every_rule_the_mapping_can_refuse_with_has_a_plain_language_reason() -> None:
    from csvimport.build.mapping.transforms import TRANSFORMS

    refusing = [t for t in TRANSFORMS if t not in ("text", "lower", "upper")]
    assert [t for t in refusing if t not in REASONS] == []


@pytest.mark.parametrize(
    ("values", "attribute", "words"),
    [
        ({"address": "12 Main St\nSpringfield"}, "address",
         ["The value of address holds a line break", 'add fold_line_breaks = ", "',
          "table for address", "edit the value in the legacy source"]),
        ({"custom__legacy_id": "L1\\"}, "custom:legacy_id",
         ["The value of custom:legacy_id ends with a backslash or has one right before a comma",
          "Edit the value in the legacy source, or map custom:legacy_id from another column"]),
    ],
)  # fmt: skip
def test_a_value_the_csv_format_cannot_carry_is_refused_naming_the_attribute_and_the_fix(
    values: dict[str, str], attribute: str, words: list[str]
) -> None:
    found = PoolValidator(snapshot()).validate(pd.DataFrame([row(**values)], columns=HEADER))
    [failure] = [f for f in found if f.attribute == attribute]
    assert all(word in failure.reason for word in words), failure.reason
    assert "this attribute" in REASONS[failure.rule]  # summaries of many rows name none


@pytest.mark.parametrize("value", ["C:\\Users\\ann", "a\\ ,b", "\\n", "x\\y, z", "\\start"])
def test_other_backslashes_pass(value: str) -> None:
    assert failures(snapshot(), [row(address=value)]) == []
