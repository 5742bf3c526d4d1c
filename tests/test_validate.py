"""The pandera schema made from a pool snapshot: each Cognito rule, and agreement with the
sandbox (a row the validator passes is a row the sandbox imports, and vice versa)."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from csvimport.build.reasons import REASONS
from csvimport.build.validate import WHITESPACE, PoolValidator
from csvimport.pool import Attribute, PoolSnapshot, read_pool
from csvimport.sandbox import Sandbox
from csvimport.sandbox.settings import ROW_MESSAGES as SANDBOX_MESSAGES

from .helpers import Importer, cognito_csv, pool_spec

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


# The pool the agreement test imports into: every rule both sides implement can fire in it
# (two auto-verified channels, a required standard attribute, an email alias, MFA on, and
# custom attributes with bounds).
AGREEMENT_POOL_SPEC = {
    "AutoVerifiedAttributes": ["email", "phone_number"],
    "AliasAttributes": ["email"],
    "MfaConfiguration": "ON",
    "Schema": [
        {"Name": "family_name", "AttributeDataType": "String", "Required": True,
         "Mutable": True},
        {"Name": "legacy_id", "AttributeDataType": "String",
         "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "16"}},
        {"Name": "credits", "AttributeDataType": "Number",
         "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "1000"}},
    ],
}  # fmt: skip
# Every rule both the validator and the sandbox implement; the test asserts each is hit by
# both sides. Not here: "newline" and "backslash" (the validator's refusals of what the CSV
# dialect cannot carry: such a row never reaches Cognito as written).
AGREEMENT_RULES = {
    "username_missing", "username_whitespace", "username_too_long", "username_characters",
    "username_looks_like_alias", "value_too_long", "boolean", "email", "phone", "birthdate",
    "updated_at", "number", "number_range", "length", "required", "auto_verified",
    "email_verified_without_email", "phone_verified_without_phone", "mfa", "row_too_long",
}  # fmt: skip
# Each column both sides check, with values at every edge of its rule; the first is good.
AGREEMENT_VALUES: dict[str, list[str]] = {
    "cognito:username": ["ok", "", "a b", "a\tb", "a\u3000b", "bell\x07", "zw\u200b", "x" * 128,
                         "x" * 129, "é-ü", "a@b.co", "+14325551212", "a,b", "ünï©ødé"],
    "email": ["a@example.com", "", "nope", "a@b", "a b@c.de", "A@Example.COM", "a,b@c.de"],
    "email_verified": ["true", "", "false", "TRUE", "True", "FALSE", "yes", "1", "t"],
    "phone_number": ["", "+14325551212", "4325551212", "+1", "+12", "+0123456", "+1 432 555",
                     "+1234567890123456", "+123456789012345", "(415) 555-2671"],
    "phone_number_verified": ["", "false", "true", "TRUE", "no", "0"],
    "birthdate": ["", "02/01/1985", "1985-02-01", "13/01/1985", "02/30/1985", "2/1/1985",
                  "02/29/2000", "02/29/1900", "12/31/9999"],
    "updated_at": ["", "1700000000", "0", "soon", "1.5", "-1", "1e9", "17000000000000", "١٧٠٠"],
    "custom:credits": ["", "5", "0", "1000", "1001", "-1", "x", "2.5", "1e3", "1e4", "-0", "inf", "nan", "١٢", "Infinity", ".5", "5."],
    "custom:legacy_id": ["L1", "", "x" * 16, "x" * 17, "ünïcødé, comma"],
    "cognito:mfa_enabled": ["", "true", "false", "TRUE", "False", "on"],
    "family_name": ["Lee", "", "O'Neil, Jr.", "Zoë\u200f", 'say "hi"', "x" * 2048, "x" * 2049],
    "address": ["", "x" * 2048, "x" * 2049, "1 Main St, Apt 2", ",,,,"],
}  # fmt: skip
# Where the two sides knowingly differ: a value with leading or trailing whitespace. Cognito
# trims it (facts §2), and so does the sandbox; the validator checks the value as written and
# refuses it (build's mapping trims its columns first, so build never meets one). Each is
# sent in a good row; the test asserts the validator refuses and the sandbox imports it.
PADDED_VALUES = {"cognito:username": " lead", "email_verified": "true ",
                 "phone_number": " +14325551212", "birthdate": "02/01/1985 ",
                 "updated_at": " 1700000000"}  # fmt: skip
# Rows long enough to pass 16,000 written characters only with their escaped commas.
_LONG_TEXT = {
    c: "," * 1000 + "y" * 1000
    for c in ("name", "given_name", "middle_name", "nickname", "profile", "picture", "website")
}


def agreement_rows() -> list[dict[str, str]]:
    """A good row with each edge value in turn (one fault a row: each rule fires alone),
    then rows mixing values of every column (faults meeting), then rows near the row limit."""
    good = {column: values[0] for column, values in AGREEMENT_VALUES.items()}
    rows = [dict(good)]
    for column, values in AGREEMENT_VALUES.items():
        rows += [{**good, column: value} for value in values[1:]]
    for i in range(150):
        rows.append({column: values[(i * (j + 3) + i // 7) % len(values)]
                     for j, (column, values) in enumerate(AGREEMENT_VALUES.items())})  # fmt: skip
    rows.append({**good, **_LONG_TEXT})  # 16,000 raw characters less a few: fits unescaped
    rows.append({**good, **_LONG_TEXT, "address": "," * 1000})
    rows += [{**good, column: value} for column, value in PADDED_VALUES.items()]
    for i, r in enumerate(rows):  # unique usernames: duplicates are another module's job
        if r["cognito:username"] == "ok":
            r["cognito:username"] = f"user{i}"
        if r["email"] == "a@example.com":
            r["email"] = f"user{i}@example.com"
    return rows


def sandbox_rule(message: str) -> str:
    """The validator's rule id for the sandbox's log message of a failed row."""
    if message.startswith("The cognito:username is invalid"):
        for words, rule in (("longer than", "username_too_long"),
                            ("space or tab", "username_whitespace"),
                            ("the character", "username_characters"),
                            ("looks like", "username_looks_like_alias")):  # fmt: skip
            if words in message:
                return rule
    if "is outside its constraints" in message:
        return "number_range" if "below" in message or "above" in message else "length"
    m = SANDBOX_MESSAGES
    patterns = {
        "username_missing": m["no_username"], "value_too_long": m["value_too_long"],
        "boolean": m["bad_boolean"], "email": m["bad_email"], "phone": m["bad_phone"],
        "birthdate": m["bad_birthdate"], "updated_at": m["bad_updated_at"],
        "number": m["custom_type"], "required": m["required"], "mfa": m["mfa"],
        "auto_verified": m["auto_verified"], "row_too_long": m["row_too_long"],
        "email_verified_without_email": m["verified_without_value"].replace("{attr}", "email"),
        "phone_verified_without_phone":
            m["verified_without_value"].replace("{attr}", "phone_number"),
    }  # fmt: skip
    for rule, template in patterns.items():
        if re.fullmatch(re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
                        .replace("{attr}", ".*").replace("{type}", ".*")
                        .replace("{value}", ".*").replace("{mfa}", ".*"), message):  # fmt: skip
            return rule
    raise AssertionError(f"no rule for the sandbox's message {message!r}")


def test_the_validator_and_the_sandbox_agree_row_by_row_on_every_rule(
    cognito: Any, logs: Any, sandbox: Sandbox
) -> None:
    info = sandbox.create_pool(pool_spec(**AGREEMENT_POOL_SPEC))
    importer = Importer(cognito, logs, info)
    snap = read_pool(cognito, info.user_pool_id)
    assert snap.required() == ["family_name"] and snap.mfa == "ON", snap
    rows = [{**dict.fromkeys(snap.header, ""), **r} for r in agreement_rows()]
    found = PoolValidator(snap).validate(pd.DataFrame(rows, columns=snap.header))
    refused: dict[int, set[str]] = {}
    for f in found:
        refused.setdefault(f.position, set()).add(f.rule)
    # Send every row, refused ones too, and let no job-level threshold hide row outcomes.
    sandbox.settings.update(fail_job_after_bad_rows=10**6)
    run = importer.run(cognito_csv(snap.header, rows))
    outcome: dict[int, str] = {}
    for line in importer.log_lines(run.job_id):
        parsed = re.fullmatch(r"\[(\w+)\] Line Number (\d+) - (.*)", line)
        assert parsed, line
        status, number, message = parsed.groups()
        outcome[int(number) - 1] = "" if status == "SUCCEEDED" else sandbox_rule(message)
    assert len(outcome) == len(rows)
    padded = range(len(rows) - len(PADDED_VALUES), len(rows))
    assert [(i, outcome[i]) for i in padded if i not in refused or outcome[i]] == []
    disagree = [
        (i, sorted(refused.get(i, ())), outcome[i], {c: v[:20] for c, v in rows[i].items() if v})
        for i in range(len(rows) - len(PADDED_VALUES))
        if bool(outcome[i]) != (i in refused) or (outcome[i] and outcome[i] not in refused[i])
    ]
    assert disagree == [], "\n".join(map(repr, disagree))
    hit_by_validator = set().union(*refused.values())
    hit_by_sandbox = set(outcome.values()) - {""}
    assert AGREEMENT_RULES - hit_by_validator == set()
    assert AGREEMENT_RULES - hit_by_sandbox == set()
    assert "" in outcome.values()  # some rows import


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
