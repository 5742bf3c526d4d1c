"""The mapping: the TOML file and its errors, every transform, apply() on chunks, starter mappings.

Everything runs on real data through the real libraries (tomllib, pandas, phonenumbers,
email-validator); the fast paths are checked against those libraries themselves.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import email_validator
import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvimport.build.mapping.apply import Problem, apply_mapping
from csvimport.build.mapping.spec import STANDARD_ATTRIBUTES, Mapping, MappingError
from csvimport.build.mapping.suggest import columns_with_line_breaks, suggest_mapping
from csvimport.build.mapping.transforms import (
    EMAIL_FAST_MAX_LENGTH,
    EMAIL_SHAPE,
    EMAIL_SPECIAL_DOMAIN,
    EMAIL_SPECIAL_LOCAL,
    TRANSFORMS,
    Context,
    _email,
    _phone,
    _phone_slow,
)
from csvimport.build.mapping.user import UserMapper
from csvimport.build.reasons import REASONS
from csvimport.errors import ConfigError, ExitStatus
from csvimport.pool import Attribute, PoolSnapshot


@pytest.fixture(scope="module", autouse=True, params=["pyarrow", "python"])
def string_storage(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test with Arrow-backed strings (pandas' default with pyarrow) and without.

    The transforms use pandas' string methods, which run in pyarrow's RE2 or in Python's
    re depending on the storage; the results must not depend on which.
    """
    if request.param == "pyarrow":
        pytest.importorskip("pyarrow")
    with pd.option_context("mode.string_storage", request.param):
        yield request.param


REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "schemas" / "mappings" / "example-legacy.toml"
POOL_HEADER = [
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "email_verified", "gender", "birthdate",
    "zoneinfo", "locale", "phone_number", "phone_number_verified", "address", "updated_at",
    "custom:legacy_id", "cognito:mfa_enabled", "cognito:username",
]  # fmt: skip
USERNAME = {"cognito:username": {"column": "username"}}


def chunk(
    rows: list[dict[str, str]], *, first_row: int = 1, columns: list[str] | None = None
) -> pd.DataFrame:
    """A source chunk as the readers make it: str values and a 1-based __row__."""
    frame = pd.DataFrame(rows, columns=columns, dtype="str")
    frame["__row__"] = range(first_row, first_row + len(rows))
    return frame


def mapping_of(attributes: dict[str, Any], **tables: Any) -> Mapping:
    return Mapping.from_dict({"attributes": {**USERNAME, **attributes}, **tables})


def map_values(
    spec: dict[str, Any], values: list[str], **tables: Any
) -> tuple[list[str], list[Problem]]:
    """Map ``values`` through one attribute (custom:x unless spec names it); return both."""
    attribute = spec.pop("attribute", "custom:x")
    mapping = mapping_of({attribute: {"column": "v", **spec}}, **tables)
    result = apply_mapping(
        mapping, chunk([{"username": f"u{i}", "v": v} for i, v in enumerate(values)])
    )
    return result.frame[attribute].tolist(), result.problems


def map_one(spec: dict[str, Any], value: str, **tables: Any) -> tuple[str, Problem | None]:
    mapped, problems = map_values(spec, [value], **tables)
    return mapped[0], problems[0] if problems else None


# --- the mapping file ---------------------------------------------------------------


def test_example_mapping_loads_and_uses_every_transform() -> None:
    mapping = Mapping.load(EXAMPLE)
    assert {rule.transform for rule in mapping.rules} == set(TRANSFORMS)
    assert mapping.attributes()[0] == "cognito:username"
    assert mapping.legacy_id == "id"
    assert mapping.legacy_updated == "modified_at"
    assert mapping.phone_region == "US"


def test_example_mapping_maps_a_messy_legacy_row() -> None:
    mapping = Mapping.load(EXAMPLE)
    source = chunk(
        [
            {
                "id": " 42 ", "username": "Bob", "email": "  Bob@Example.COM ",
                "email_confirmed": "Y", "first_name": "Bob", "last_name": "Smith",
                "mobile": "(415) 555-2671", "dob": "1985-02-01", "modified_at": "1600000000123",
                "locale": "", "country": " gb ", "postal_address": "1 Main St \r\n Springfield",
            }
        ]
    )  # fmt: skip
    result = apply_mapping(mapping, source)
    assert result.problems == []
    row = result.frame.iloc[0].to_dict()
    assert row == {
        "__row__": 1, "__legacy_id__": "42", "__updated__": "1600000000",
        "cognito:username": "bob", "email": "Bob@example.com", "email_verified": "true",
        "name": "Bob Smith", "given_name": "Bob", "family_name": "Smith",
        "phone_number": "+14155552671", "birthdate": "02/01/1985", "updated_at": "1600000000",
        "locale": "en-us", "address": "1 Main St, Springfield", "custom:country": "GB",
        "custom:legacy_id": "42", "cognito:mfa_enabled": "false",
    }  # fmt: skip
    assert result.folded == {"address": 1}


def test_load_names_the_file_in_every_error(tmp_path: Path) -> None:
    path = tmp_path / "legacy.toml"
    path.write_text('[attributes."cognito:username"]\ncolum = "username"\n', encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        Mapping.load(path)
    assert str(caught.value).startswith(f'{path}: [attributes."cognito:username"]')
    assert caught.value.origin == str(path)


def test_a_mapping_error_is_a_config_error_that_exits_2() -> None:
    with pytest.raises(ConfigError) as caught:
        Mapping.from_dict({})
    assert isinstance(caught.value, MappingError)
    assert caught.value.exit_status == ExitStatus.USAGE == 2


def test_load_refuses_a_missing_file_and_suggests_csvimport_map(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        Mapping.load(tmp_path / "nope.toml")
    assert str(caught.value) == f"Mapping file {tmp_path / 'nope.toml'} not found."
    assert "csvimport map SOURCE --pool-id ID --out mapping.toml" in (caught.value.hint or "")


def test_load_refuses_bad_toml_with_the_line_and_a_quoting_hint(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[attributes.cognito:username]\ncolumn = "username"\n', encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        Mapping.load(path)
    assert str(caught.value).startswith(f"{path} is not valid TOML: ")
    assert "line 1" in str(caught.value)
    assert '[attributes."cognito:username"]' in (caught.value.hint or "")


def test_load_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_bytes(b'[attributes."cognito:username"]\ncolumn = "nom d\xe9j\xe0"\n')
    with pytest.raises(MappingError, match="is not UTF-8 text") as caught:
        Mapping.load(path)
    assert "UTF-8" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("data", "message", "hint", "attribute", "key"),
    [
        pytest.param(
            {"attribute": {}, "attributes": USERNAME},
            "<mapping>: [attribute] is not a table a mapping file has.",
            "Did you mean 'attributes'? A mapping file has the tables: legacy, options, attributes, legacy_hash, groups.",
            None, "attribute",
            id="unknown-table",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email": {"colum": "email"}}},
            "<mapping>: [attributes.email] has an unknown key 'colum'.",
            "Did you mean 'column'? [attributes.email] takes the keys: column, join, value, transform, default, region, format, separator, fold_line_breaks.",
            "email", "colum",
            id="unknown-key",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email": {"column": "email", "transform": "emial"}}},
            "<mapping>: [attributes.email] transform 'emial' is not a transform.",
            "Did you mean 'email'? Transforms (none = text): text, boolean, email, phone, date, timestamp, lower, upper, none.",
            "email", "transform",
            id="unknown-transform",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "name": {"column": "n", "join": ["a", "b"]}}},
            "<mapping>: [attributes.name] sets column and join; it must set exactly one of column, join or value.",
            'An attribute takes exactly one of: column = "col" (one source column), join = ["a", "b"] (several, joined), value = "constant".',
            "name", "join",
            id="column-and-join",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "name": {"transform": "text"}}},
            "<mapping>: [attributes.name] sets none of column, join or value; it must set exactly one of column, join or value.",
            'An attribute takes exactly one of: column = "col"',
            "name", None,
            id="no-source",
        ),
        pytest.param(
            {"legacy": {"updated": "modified_at"}, "attributes": USERNAME},
            "<mapping>: [legacy] has no id: it must name the source column that identifies a legacy user.",
            'Add id = "<column>" (e.g. id = "user_id"), or remove [legacy]',
            None, "id",
            id="legacy-without-id",
        ),
        pytest.param(
            {"legacy": {"id": "id", "update": "m"}, "attributes": USERNAME},
            "<mapping>: [legacy] has an unknown key 'update'.",
            "Did you mean 'updated'?",
            None, "update",
            id="unknown-legacy-key",
        ),
        pytest.param(
            {"options": {"phone_regoin": "US"}, "attributes": USERNAME},
            "<mapping>: [options] has an unknown key 'phone_regoin'.",
            "Did you mean 'phone_region'?",
            None, "phone_regoin",
            id="unknown-option",
        ),
        pytest.param(
            {"options": {"phone_region": "UK"}, "attributes": USERNAME},
            "<mapping>: [options] phone_region 'UK' is not a region phonenumbers knows.",
            "Use a two-letter ISO 3166 country code, e.g. US, GB, DE, IN.",
            None, "phone_region",
            id="unknown-region",
        ),
        pytest.param(
            {"options": {"date_format": "%Y-%m"}, "attributes": USERNAME},
            "<mapping>: [options] date_format '%Y-%m' is not a usable date format.",
            'e.g. "%d/%m/%Y" for 03/02/2001',
            None, "date_format",
            id="date-format-without-day",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email": {"column": "e", "region": "US"}}},
            "<mapping>: [attributes.email] has region, which only applies with transform = \"phone\" (its transform is 'text').",
            'Remove region, or set transform = "phone".',
            "email", "region",
            id="region-without-phone",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email_verified": {"column": "v", "transform": "boolean", "format": "%d"}}},
            "<mapping>: [attributes.email_verified] has format, which only applies with transform = \"date\" or transform = \"timestamp\" (its transform is 'boolean').",
            "Remove format",
            "email_verified", "format",
            id="format-on-boolean",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "name": {"column": "n", "separator": " "}}},
            "<mapping>: [attributes.name] has a separator but no join.",
            "separator only applies to join = [...]; remove it.",
            "name", "separator",
            id="separator-without-join",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "name": {"join": "first_name"}}},
            "<mapping>: [attributes.name] join must be a list of source column names, not a string 'first_name'.",
            'Write e.g. join = ["first_name", "last_name"].',
            "name", "join",
            id="join-not-a-list",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "name": {"join": []}}},
            "<mapping>: [attributes.name] join must be a list of source column names, not a list [].",
            "join = [",
            "name", "join",
            id="join-empty",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email": {"column": 5}}},
            "<mapping>: [attributes.email] column must be a non-empty string (the name of a source column), not a number 5.",
            'Write column = "..." with double quotes.',
            "email", "column",
            id="column-not-a-string",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email": {"column": " "}}},
            "<mapping>: [attributes.email] column must be a non-empty string (the name of a source column), not a blank string ' '.",
            'Write column = "..."',
            "email", "column",
            id="column-blank",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "cognito:mfa_enabled": {"value": "maybe", "transform": "boolean"}}},
            "<mapping>: [attributes.\"cognito:mfa_enabled\"] value 'maybe' is refused by transform 'boolean': not a boolean (expected true/false, yes/no, y/n, 1/0, t/f or on/off).",
            "Write value the way the boolean transform accepts it.",
            "cognito:mfa_enabled", "value",
            id="constant-refused",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "phone_number": {"column": "p", "transform": "phone", "default": "12"}}},
            "<mapping>: [attributes.phone_number] default '12' is refused by transform 'phone': not a valid phone number (no +country code, and no phone_region set).",
            "Write default the way the phone transform accepts it.",
            "phone_number", "default",
            id="default-refused",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "locale": {"value": "en", "default": "fr"}}},
            "<mapping>: [attributes.locale] has both value and default; a default fills empty source values, and a constant reads no source.",
            "Remove default",
            "locale", "default",
            id="value-and-default",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "emial": {"column": "email"}}},
            "<mapping>: [attributes.emial] is not a Cognito attribute: 'emial'.",
            "Did you mean 'email'? Standard attributes (custom ones are custom:NAME): name, given_name,",
            "emial", None,
            id="not-a-cognito-attribute",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "custom:": {"column": "x"}}},
            "<mapping>: [attributes.\"custom:\"] is not a Cognito attribute: 'custom:'.",
            "custom:NAME",
            "custom:", None,
            id="custom-without-name",
        ),
        pytest.param(
            {"attributes": {"email": {"column": "email"}}},
            '<mapping>: the mapping does not map [attributes."cognito:username"]; every Cognito user needs a username.',
            'Add [attributes."cognito:username"] with column = "<the source column of usernames>"',
            "cognito:username", None,
            id="no-username",
        ),
        pytest.param(
            {"legacy": {"id": "id"}},
            "<mapping>: [attributes] is missing or empty: the mapping maps no Cognito attribute.",
            'Add at least [attributes."cognito:username"]',
            None, None,
            id="no-attributes",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email": "email"}},
            "<mapping>: [attributes.email] must be a table, not a string 'email'.",
            'Write it as a table: [attributes.email] on its own line, then column = "..." below it.',
            "email", None,
            id="attribute-not-a-table",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "email": {"column": "email", "transform": 1}}},
            "<mapping>: [attributes.email] transform must be a string, not a number 1.",
            "Transforms: text, boolean",
            "email", "transform",
            id="transform-not-a-string",
        ),
        pytest.param(
            {"attributes": {"cognito:username": {"column": "TODO: the source column with each user's username"}}},
            "<mapping>: [attributes.\"cognito:username\"] column is still the starter mapping's placeholder \"TODO: the source column with each user's username\".",
            "Replace it with the name of a source column",
            "cognito:username", "column",
            id="placeholder-left",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "address": {"column": "a", "fold_line_breaks": True}}},
            "<mapping>: [attributes.address] fold_line_breaks must be the text that replaces a value's line breaks, without a line break itself, not a boolean True.",
            'Write e.g. fold_line_breaks = ", " or fold_line_breaks = " ".',
            "address", "fold_line_breaks",
            id="fold-not-a-string",
        ),
        pytest.param(
            {"attributes": {**USERNAME, "address": {"column": "a", "fold_line_breaks": ",\n"}}},
            "<mapping>: [attributes.address] fold_line_breaks must be the text that replaces a value's line breaks, without a line break itself, not a string ',\\n'.",
            'Write e.g. fold_line_breaks = ", "',
            "address", "fold_line_breaks",
            id="fold-into-a-line-break",
        ),
        pytest.param(
            {"attributes": "nope"},
            "<mapping>: [attributes] must be a table, not a string 'nope'.",
            "Write [attributes] on a line of its own",
            None, "attributes",
            id="attributes-not-a-table",
        ),
    ],
)  # fmt: skip
def test_mapping_mistakes_raise_mapping_error_naming_attribute_key_and_fix(
    data: dict[str, Any], message: str, hint: str, attribute: str | None, key: str | None
) -> None:
    with pytest.raises(MappingError) as caught:
        Mapping.from_dict(data)
    assert str(caught.value) == message
    assert hint in (caught.value.hint or "")
    assert (caught.value.attribute, caught.value.key) == (attribute, key)
    assert caught.value.origin == "<mapping>"


@pytest.mark.parametrize(
    ("transform", "canonical"), [("none", "text"), ("text", "text"), ("lower", "lower")]
)
def test_none_is_an_alias_of_text(transform: str, canonical: str) -> None:
    mapping = mapping_of({"locale": {"column": "l", "transform": transform}})
    assert mapping.rules[1].transform == canonical


def test_constants_and_defaults_are_stored_transformed() -> None:
    mapping = mapping_of(
        {
            "cognito:mfa_enabled": {"value": "FALSE", "transform": "boolean"},
            "email_verified": {"column": "v", "transform": "boolean", "default": False},
            "phone_number": {"column": "p", "transform": "phone", "default": "(415) 555-2671"},
            "custom:tier": {"value": 3},
        },
        options={"phone_region": "us"},
    )
    rules = {rule.attribute: rule for rule in mapping.rules}
    assert rules["cognito:mfa_enabled"].value == "false"
    assert rules["email_verified"].default == "false"
    assert rules["phone_number"].default == "+14155552671"
    assert rules["custom:tier"].value == "3"
    assert mapping.phone_region == "US"


# --- transforms ---------------------------------------------------------------------

PHONE = {"attribute": "phone_number", "transform": "phone"}


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("415-555-2671", "US", "+14155552671"),
        ("14155552671", "US", "+14155552671"),
        ("1 (415) 555-2671", "US", "+14155552671"),
        ("  +1 (415) 555-2671 ", "US", "+14155552671"),
        ("+14155552671", "US", "+14155552671"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("+44 020 7946 0958", "US", "+442079460958"),
        ("011 44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("0044 20 7946 0958", "GB", "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
        ("+49 030 1234567", "US", "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("8 (495) 123-45-67", "RU", "+74951234567"),
        ("1-800-FLOWERS", "US", "+18003569377"),
        ("+14155552671", None, "+14155552671"),
    ],
)
def test_phone_numbers_become_e164(value: str, region: str | None, expected: str) -> None:
    options = {"options": {"phone_region": region}} if region else {}
    assert map_one(dict(PHONE), value, **options) == (expected, None)


@pytest.mark.parametrize(
    ("value", "region", "reason"),
    [
        ("12", "US", "not a valid phone number for region US (too short)"),
        ("555-2671", "US", "not a valid phone number for region US (a local number without its area code)"),
        ("+15552671", "US", "not a valid phone number (a local number without its area code)"),
        ("not a phone", "US", "not a valid phone number for region US"),
        ("+999 123456789", "US", "not a valid phone number (unknown country code)"),
        ("+1 415 555 2671 ext. 5", "US", "has an extension (5), which a Cognito phone number cannot hold"),
        ("4155552671", None, "not a valid phone number (no +country code, and no phone_region set)"),
        ("+44 20 7946 09581234", "US", "not a valid phone number (too long)"),
    ],
)  # fmt: skip
def test_phone_numbers_that_cannot_be_e164_are_problems(
    value: str, region: str | None, reason: str
) -> None:
    options = {"options": {"phone_region": region}} if region else {}
    mapped, problem = map_one(dict(PHONE), value, **options)
    assert mapped == ""
    assert problem == Problem(1, "phone_number", "phone", reason, value)


def test_an_attributes_region_overrides_the_default_region() -> None:
    spec = {**PHONE, "region": "GB"}
    assert map_one(spec, "020 7946 0958", options={"phone_region": "US"}) == ("+442079460958", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Y", "true"), ("y", "true"), (" yes ", "true"), ("YES", "true"), ("1", "true"),
        ("T", "true"), ("true", "true"), ("True", "true"), ("on", "true"), ("ON", "true"),
        ("N", "false"), ("no", "false"), ("0", "false"), ("f", "false"), ("FALSE", "false"),
        ("Off", "false"), ("\tfalse\n", "false"), ("", ""), ("   ", ""),
    ],
)  # fmt: skip
def test_boolean_spellings_become_true_or_false(value: str, expected: str) -> None:
    assert map_one({"transform": "boolean"}, value) == (expected, None)


@pytest.mark.parametrize("value", ["maybe", "2", "yess", "-1", "1.0", "tru", "nein", "✓"])
def test_other_boolean_spellings_are_problems(value: str) -> None:
    mapped, problem = map_one({"transform": "boolean"}, value)
    assert mapped == ""
    assert problem is not None
    assert (problem.rule, problem.value) == ("boolean", value)
    assert problem.reason == "not a boolean (expected true/false, yes/no, y/n, 1/0, t/f or on/off)"


EMAIL = {"attribute": "email", "transform": "email"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Bob@Example.COM ", "Bob@example.com"),
        ("bob@example.com", "bob@example.com"),
        ("Bob.Smith+tag@Mail.Example.CO.UK", "Bob.Smith+tag@mail.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("Postmaster@Example.com", "postmaster@example.com"),  # RFC 2142: case-insensitive
        ("a.b@xn--mnchen-3ya.de", "a.b@münchen.de"),
        ("josé@Exämple.com", "josé@exämple.com"),
        ("x@my-domain.example", "x@my-domain.example"),
    ],
)
def test_emails_are_trimmed_validated_and_their_domain_lower_cased(
    value: str, expected: str
) -> None:
    assert map_one(dict(EMAIL), value) == (expected, None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("bob@@x", "not a valid email address: the part after the @-sign contains invalid characters: '@'"),
        ("bob", "not a valid email address: an email address must have an @-sign"),
        ("bob@localhost", "not a valid email address: the part after the @-sign is not valid. It should have a period"),
        ("bob@x.test", "not a valid email address: the part after the @-sign is a special-use or reserved name that cannot be used with email"),
        ("bob..smith@example.com", "not a valid email address: an email address cannot have two periods in a row"),
        ("Bob <bob@example.com>", "not a valid email address: a display name and angle brackets around the email address are not permitted here"),
        ("bob smith@example.com", "not a valid email address: the email address contains invalid characters before the @-sign: SPACE"),
    ],
)  # fmt: skip
def test_invalid_emails_are_problems_with_email_validators_reason(value: str, reason: str) -> None:
    mapped, problem = map_one(dict(EMAIL), value)
    assert mapped == ""
    assert problem == Problem(1, "email", "email", reason, value)


DATE = {"attribute": "birthdate", "transform": "date"}


@pytest.mark.parametrize(
    "value",
    [
        "1985-02-01", "02/01/1985", "2/1/1985", "1985/02/01", "19850201", "1985.02.01",
        "1 Feb 1985", "1 February 1985", "Feb 1 1985", "Feb 1, 1985", "February 1, 1985",
        " 1985-02-01 ", "1985-02-01T23:30:00-05:00", "1985-02-01 08:00:00",
    ],
)  # fmt: skip
def test_dates_in_unambiguous_forms_become_mm_dd_yyyy(value: str) -> None:
    assert map_one(dict(DATE), value) == ("02/01/1985", None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1985-02-30", "not a date (expected YYYY-MM-DD, MM/DD/YYYY or e.g. 1 Feb 1985; set the attribute's format for other forms)"),
        ("13/01/1985", "not a date (expected YYYY-MM-DD, MM/DD/YYYY or e.g. 1 Feb 1985; set the attribute's format for other forms)"),
        ("85-02-01", "not a date (expected YYYY-MM-DD, MM/DD/YYYY or e.g. 1 Feb 1985; set the attribute's format for other forms)"),
        ("yesterday", "not a date (expected YYYY-MM-DD, MM/DD/YYYY or e.g. 1 Feb 1985; set the attribute's format for other forms)"),
        ("0085-02-01", "not a date with a four-digit year (Cognito writes mm/dd/yyyy)"),
    ],
)  # fmt: skip
def test_impossible_or_ambiguous_dates_are_problems(value: str, reason: str) -> None:
    mapped, problem = map_one(dict(DATE), value)
    assert mapped == ""
    assert problem == Problem(1, "birthdate", "date", reason, value)


@pytest.mark.parametrize(
    ("value", "expected"), [("02/01/1985", "01/02/1985"), ("31/12/1999", "12/31/1999")]
)
def test_a_date_format_reads_day_first_dates(value: str, expected: str) -> None:
    assert map_one({**DATE, "format": "%d/%m/%Y"}, value) == (expected, None)
    assert map_one(dict(DATE), value, options={"date_format": "%d/%m/%Y"}) == (expected, None)


def test_an_attributes_format_overrides_the_default_date_format() -> None:
    spec = {**DATE, "format": "%Y%m%d"}
    assert map_one(spec, "19850201", options={"date_format": "%d/%m/%Y"}) == ("02/01/1985", None)


def test_a_date_not_in_the_given_format_is_a_problem_naming_the_format() -> None:
    mapped, problem = map_one({**DATE, "format": "%d/%m/%Y"}, "1985-02-01")
    assert mapped == ""
    assert problem is not None
    assert problem.reason == "not a date in the format %d/%m/%Y (e.g. 01/02/1985)"


TIMESTAMP = {"attribute": "updated_at", "transform": "timestamp"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1600000000", "1600000000"),
        ("1600000000123", "1600000000"),
        ("1600000000.9", "1600000000"),
        ("0", "0"),
        ("-1.5", "-2"),
        ("2020-09-13T12:26:40Z", "1600000000"),
        ("2020-09-13T12:26:40.999Z", "1600000000"),
        ("2020-09-13 12:26:40", "1600000000"),  # naive = UTC
        ("2020-09-13T14:26:40+02:00", "1600000000"),
        ("2020-09-13", "1599955200"),
        (" 1600000000 ", "1600000000"),
        ("1066-10-14T09:00:00Z", "-28502722800"),  # beyond nanoseconds' years
        ("9999-12-31T23:59:59Z", "253402300799"),
        ("1969-12-31T23:59:59.5Z", "-1"),  # floored, as epochs are
    ],
)
def test_timestamps_become_epoch_seconds(value: str, expected: str) -> None:
    assert map_one(dict(TIMESTAMP), value) == (expected, None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("16000000001", "an epoch value of 11 digits is neither seconds (up to 10 digits) nor milliseconds (13 digits)"),
        ("16000000001234", "an epoch value of 14 digits is neither seconds (up to 10 digits) nor milliseconds (13 digits)"),
        ("yesterday", "not a timestamp (expected epoch seconds, epoch milliseconds or an ISO 8601 date and time)"),
        ("2020-13-01", "not a timestamp (expected epoch seconds, epoch milliseconds or an ISO 8601 date and time)"),
        # pandas' ISO reader takes this as the year 0, whose nanoseconds overflow
        ("\\1", "not a timestamp (expected epoch seconds, epoch milliseconds or an ISO 8601 date and time)"),
    ],
)  # fmt: skip
def test_unreadable_timestamps_are_problems(value: str, reason: str) -> None:
    mapped, problem = map_one(dict(TIMESTAMP), value)
    assert mapped == ""
    assert problem == Problem(1, "updated_at", "timestamp", reason, value)


def test_a_timestamp_format_reads_other_forms_and_still_takes_epochs() -> None:
    spec = {**TIMESTAMP, "format": "%d/%m/%Y %H:%M"}
    mapped, problems = map_values(spec, ["13/09/2020 12:26", "1600000000", "2020-09-13"])
    assert mapped == ["1599999960", "1600000000", ""]
    assert [p.reason for p in problems] == [
        "not a timestamp in the format %d/%m/%Y %H:%M (or epoch seconds or milliseconds)"
    ]


@pytest.mark.parametrize(
    ("transform", "value", "expected"),
    [
        ("text", "  Ann Lee \t", "Ann Lee"),
        ("none", " x ", "x"),
        ("lower", " EN-US ", "en-us"),
        ("upper", " en-us ", "EN-US"),
    ],
)
def test_text_transforms_trim_and_change_case(transform: str, value: str, expected: str) -> None:
    assert map_one({"transform": transform}, value) == (expected, None)


def test_values_without_a_transform_are_trimmed() -> None:
    assert map_one({}, "  kept as is  ") == ("kept as is", None)


# --- apply ----------------------------------------------------------------------------


def test_a_default_fills_empty_values_but_not_failed_ones() -> None:
    spec = {"attribute": "email_verified", "transform": "boolean", "default": "false"}
    mapped, problems = map_values(spec, ["", "   ", "yes", "maybe"])
    assert mapped == ["false", "false", "true", ""]
    assert [p.value for p in problems] == ["maybe"]


def test_a_default_applies_to_text_columns_too() -> None:
    assert map_values({"default": "en-us"}, ["", " ", "fr"])[0] == ["en-us", "en-us", "fr"]


def test_join_skips_empty_parts_and_trims_each() -> None:
    mapping = mapping_of({"name": {"join": ["first", "middle", "last"]}})
    rows = [
        {"username": "a", "first": " Ann ", "middle": "", "last": "Lee"},
        {"username": "b", "first": "", "middle": " ", "last": "Solo"},
        {"username": "c", "first": "Cher", "middle": "", "last": ""},
        {"username": "d", "first": "", "middle": "", "last": ""},
        {"username": "e", "first": "John", "middle": "Q", "last": "Public"},
    ]
    assert apply_mapping(mapping, chunk(rows)).frame["name"].tolist() == [
        "Ann Lee", "Solo", "Cher", "", "John Q Public"
    ]  # fmt: skip


def test_join_uses_its_separator_and_then_the_transform() -> None:
    mapping = mapping_of(
        {"custom:key": {"join": ["a", "b"], "separator": "-", "transform": "upper", "default": "?"}}
    )
    rows = [{"username": "u", "a": "x", "b": "y"}, {"username": "v", "a": "", "b": ""}]
    assert apply_mapping(mapping, chunk(rows)).frame["custom:key"].tolist() == ["X-Y", "?"]


def test_a_failed_join_reports_the_joined_value() -> None:
    mapping = mapping_of(
        {"birthdate": {"join": ["y", "m", "d"], "separator": "-", "transform": "date"}}
    )
    result = apply_mapping(mapping, chunk([{"username": "u", "y": "1985", "m": "02", "d": "30"}]))
    assert [p.value for p in result.problems] == ["1985-02-30"]


def test_a_constant_fills_every_row() -> None:
    mapping = mapping_of({"cognito:mfa_enabled": {"value": "false"}, "custom:src": {"value": ""}})
    frame = apply_mapping(mapping, chunk([{"username": "a"}, {"username": "b"}])).frame
    assert frame["cognito:mfa_enabled"].tolist() == ["false", "false"]
    assert frame["custom:src"].tolist() == ["", ""]


@pytest.mark.parametrize(
    ("value", "folded"),
    [
        ("12 Main St\r\nSpringfield", "12 Main St, Springfield"),
        ("a\rb\nc", "a, b, c"),
        ("a \r\n\r\n\t b", "a, b"),  # a run of breaks, and the spaces around them, fold once
        ("\n a \n", "a"),  # trimmed first: only inner breaks are folded
        ("a\u2028b", "a\u2028b"),  # not a line break for Cognito's CSV
        ("no break", "no break"),
    ],
)  # fmt: skip
def test_fold_line_breaks_folds_each_run_of_line_breaks(value: str, folded: str) -> None:
    assert map_one({"fold_line_breaks": ", "}, value) == (folded, None)


def test_without_fold_line_breaks_a_value_keeps_its_line_breaks() -> None:
    assert map_one({}, "a\r\nb") == ("a\r\nb", None)  # and the validator rejects it


def test_folded_values_are_counted_per_attribute_and_reach_the_transform_folded() -> None:
    mapping = mapping_of({
        "address": {"column": "a", "fold_line_breaks": ", "},
        "name": {"join": ["f", "l"], "fold_line_breaks": " "},
        "custom:tag": {"column": "a", "transform": "upper", "fold_line_breaks": "\\"},
        "locale": {"value": "en\nus", "fold_line_breaks": "-"},
        "custom:plain": {"column": "a"},
    })  # fmt: skip
    rows = [
        {"username": "u1", "a": "1 Road\nTown", "f": "Ann\nMarie", "l": "Lee"},
        {"username": "u2", "a": "2 Road", "f": "Bob", "l": "Li\r\nWu"},
        {"username": "u3", "a": "x\ry", "f": "", "l": ""},
    ]
    result = apply_mapping(mapping, chunk(rows))
    frame = result.frame
    assert frame["address"].tolist() == ["1 Road, Town", "2 Road", "x, y"]
    assert frame["name"].tolist() == ["Ann Marie Lee", "Bob Li Wu", ""]
    assert frame["custom:tag"].tolist() == ["1 ROAD\\TOWN", "2 ROAD", "X\\Y"]
    assert frame["locale"].tolist() == ["en-us"] * 3  # a constant is folded once, uncounted
    assert frame["custom:plain"].tolist() == ["1 Road\nTown", "2 Road", "x\ry"]
    assert result.folded == {"address": 2, "name": 2, "custom:tag": 2}
    assert mapping.folding() == ["address", "name", "custom:tag", "locale"]


def test_a_transform_sees_the_folded_value() -> None:
    mapped, problems = map_values({"attribute": "email", "transform": "email",
                                   "fold_line_breaks": ""}, ["ann@exam\nple.com"])  # fmt: skip
    assert (mapped, problems) == (["ann@example.com"], [])


def test_row_legacy_id_and_updated_pass_through_with_the_chunks_index() -> None:
    mapping = mapping_of({}, legacy={"id": "user_id", "updated": "changed"})
    source = chunk(
        [
            {"username": "a", "user_id": " 7 ", "changed": "2020-09-13T12:26:40Z"},
            {"username": "b", "user_id": "8", "changed": "garbage"},
            {"username": "c", "user_id": "9", "changed": ""},
        ],
        first_row=1001,
    )
    source.index = pd.RangeIndex(1000, 1003)
    result = apply_mapping(mapping, source)
    assert result.frame.index.tolist() == [1000, 1001, 1002]
    assert result.frame["__row__"].tolist() == [1001, 1002, 1003]
    assert result.frame["__legacy_id__"].tolist() == ["7", "8", "9"]
    # An unreadable update time is no reason to reject a user: it just sorts as oldest.
    assert result.frame["__updated__"].tolist() == ["1600000000", "", ""]
    assert result.problems == []


def test_without_legacy_a_user_is_identified_by_its_username() -> None:
    mapping = Mapping.from_dict(
        {"attributes": {"cognito:username": {"column": "login", "transform": "lower"}}}
    )
    frame = apply_mapping(mapping, chunk([{"login": " Bob "}])).frame
    assert frame["__legacy_id__"].tolist() == ["bob"]
    assert frame["__updated__"].tolist() == [""]


def test_the_frame_has_bookkeeping_columns_then_exactly_the_attributes() -> None:
    mapping = Mapping.load(EXAMPLE)
    columns = {c: "" for c in mapping.source_columns()}
    frame = apply_mapping(mapping, chunk([columns])).frame
    assert list(frame.columns) == ["__row__", "__legacy_id__", "__updated__", *mapping.attributes()]
    assert frame["__row__"].dtype == "int64"
    assert all(frame[c].dtype == "str" for c in frame.columns[1:])


def test_every_failed_value_of_every_row_is_a_problem_ordered_by_row() -> None:
    mapping = mapping_of(
        {
            "email": {"column": "e", "transform": "email"},
            "phone_number": {"column": "p", "transform": "phone"},
            "email_verified": {"column": "v", "transform": "boolean"},
        },
        options={"phone_region": "US"},
    )
    rows = [
        {"username": "a", "e": "bad", "p": "12", "v": "maybe"},
        {"username": "b", "e": "ok@example.com", "p": "4155552671", "v": "y"},
        {"username": "c", "e": " bad ", "p": "12", "v": "maybe"},
    ]
    result = apply_mapping(mapping, chunk(rows))
    assert [(p.row, p.attribute, p.value) for p in result.problems] == [
        (1, "email", "bad"),
        (1, "phone_number", "12"),
        (1, "email_verified", "maybe"),
        (3, "email", " bad "),  # the value as given, untrimmed
        (3, "phone_number", "12"),
        (3, "email_verified", "maybe"),
    ]
    assert result.frame.iloc[1][["email", "phone_number", "email_verified"]].tolist() == [
        "ok@example.com", "+14155552671", "true"
    ]  # fmt: skip


def test_a_value_repeated_in_many_rows_is_a_problem_in_each() -> None:
    mapped, problems = map_values({"transform": "boolean"}, ["x", "1", "x", "x"])
    assert mapped == ["", "true", "", ""]
    assert [p.row for p in problems] == [1, 3, 4]


def test_a_chunk_maps_the_same_whole_or_in_pieces() -> None:
    # Big chunks of nearly distinct values skip finding distinct values; small ones don't.
    mapping = Mapping.load(EXAMPLE)
    rows = [
        {
            "id": str(i), "username": f"User{i}", "email": f"u{i}@Example.com" if i % 7 else f"u{i}@@x",
            "email_confirmed": "yes" if i % 3 else "maybe", "first_name": "Ann", "last_name": "",
            "mobile": f"(415) 555-{i:04d}" if i % 5 else str(i % 100), "dob": f"1985-02-{i % 31 + 1:02d}",
            "modified_at": str(1_600_000_000 + i), "locale": "", "country": "gb",
            "postal_address": f"{i} Road\nTown" if i % 4 else f"{i} Road",
        }
        for i in range(2_500)
    ]  # fmt: skip
    whole = apply_mapping(mapping, chunk(rows))
    pieces = [
        apply_mapping(mapping, chunk(rows[i : i + 300], first_row=i + 1))
        for i in range(0, 2_500, 300)
    ]
    together = pd.concat([p.frame for p in pieces], ignore_index=True)
    pd.testing.assert_frame_equal(whole.frame, together)
    assert whole.problems == [problem for p in pieces for problem in p.problems]
    assert (
        whole.folded == {"address": 1875} == {"address": sum(p.folded["address"] for p in pieces)}
    )
    failed = {p.attribute for p in whole.problems}
    assert failed == {"email", "email_verified", "phone_number", "birthdate"}


def test_a_chunk_whose_index_repeats_labels_maps_row_by_row() -> None:
    mapping = mapping_of({"email": {"column": "e", "transform": "email"}})
    rows = [{"username": f"u{i}", "e": f"U{i}@Example.com"} for i in range(2_500)]
    source = chunk(rows)
    source.index = [i % 10 for i in range(2_500)]
    frame = apply_mapping(mapping, source).frame
    assert frame.index.tolist() == source.index.tolist()
    assert frame["email"].tolist() == [f"U{i}@example.com" for i in range(2_500)]


def test_an_empty_chunk_maps_to_an_empty_frame() -> None:
    mapping = Mapping.load(EXAMPLE)
    empty = pd.DataFrame({c: pd.Series([], dtype="str") for c in mapping.source_columns()})
    empty["__row__"] = pd.Series([], dtype="int64")
    result = apply_mapping(mapping, empty)
    assert len(result.frame) == 0
    assert list(result.frame.columns)[3:] == mapping.attributes()
    assert result.problems == []


def test_apply_forgives_a_reader_that_left_numbers_or_missing_values() -> None:
    mapping = mapping_of({"updated_at": {"column": "t", "transform": "timestamp"}})
    source = pd.DataFrame({"username": ["a", None], "t": [1_600_000_000, None], "__row__": [1, 2]})
    result = apply_mapping(mapping, source)
    assert result.frame["cognito:username"].tolist() == ["a", ""]
    assert result.frame["updated_at"].tolist() == ["1600000000", ""]
    assert result.problems == []


def test_apply_refuses_a_chunk_missing_a_mapped_column() -> None:
    mapping = mapping_of({"email": {"column": "email"}})
    with pytest.raises(MappingError, match="reads 1 column"):
        apply_mapping(mapping, chunk([{"username": "a"}]))


def test_apply_refuses_a_chunk_without_row_positions() -> None:
    with pytest.raises(ValueError, match="__row__"):
        apply_mapping(mapping_of({}), pd.DataFrame({"username": ["a"]}, dtype="str"))


# --- columns, attributes, fingerprint -----------------------------------------------


def test_source_columns_lists_every_column_read_once_legacy_first() -> None:
    mapping = Mapping.load(EXAMPLE)
    assert mapping.source_columns() == [
        "id", "modified_at", "username", "email", "email_confirmed", "first_name",
        "last_name", "mobile", "dob", "locale", "postal_address", "country",
    ]  # fmt: skip


def test_check_columns_passes_when_every_column_is_there() -> None:
    mapping = Mapping.load(EXAMPLE)
    mapping.check_columns([*mapping.source_columns(), "extra"])


def test_check_columns_lists_each_missing_column_with_close_matches() -> None:
    mapping = mapping_of(
        {"email": {"column": "emial"}, "name": {"join": ["First", "lastname"]}},
        legacy={"id": "user_id"},
    )
    with pytest.raises(MappingError) as caught:
        mapping.check_columns(["username", "email", "first", "last_name", "uid", "userid"])
    assert str(caught.value) == (
        "<mapping> reads 4 column(s) the source does not have: "
        "'user_id' (read by [legacy].id); did you mean 'userid' or 'uid'?; "
        "'emial' (read by email); did you mean 'email'?; "
        "'First' (read by name); did you mean 'first'?; "
        "'lastname' (read by name); did you mean 'last_name' or 'username'?"
    )
    assert caught.value.hint == (
        "Fix the column names in <mapping>. The source's columns are: "
        "'username', 'email', 'first', 'last_name', 'uid', 'userid'."
    )
    assert (caught.value.attribute, caught.value.key) == ("[legacy].id", "user_id")


def test_check_columns_without_any_close_match_still_names_the_column() -> None:
    mapping = mapping_of({"email": {"column": "zzz"}})
    with pytest.raises(MappingError, match=r"'zzz' \(read by email\)$"):
        mapping.check_columns(["username"])


def test_fingerprint_ignores_layout_comments_aliases_and_path(tmp_path: Path) -> None:
    first = tmp_path / "a.toml"
    first.write_text(
        '# comment\n[attributes."cognito:username"]\ncolumn = "u"\ntransform = "none"\n',
        encoding="utf-8",
    )
    second = tmp_path / "b.toml"
    second.write_text('attributes = { "cognito:username" = { column = "u" } }\n', encoding="utf-8")
    assert Mapping.load(first).fingerprint() == Mapping.load(second).fingerprint()
    assert len(Mapping.load(first).fingerprint()) == 64


def test_fingerprint_changes_with_anything_that_changes_the_output() -> None:
    base = mapping_of({"email": {"column": "e"}})
    others = [
        mapping_of({"email": {"column": "e", "transform": "email"}}),
        mapping_of({"email": {"column": "f"}}),
        mapping_of({"email": {"column": "e", "default": "x@example.com"}}),
        mapping_of({"email": {"column": "e"}}, legacy={"id": "id"}),
        mapping_of({"email": {"column": "e"}}, options={"phone_region": "GB"}),
        mapping_of({"email": {"column": "e", "fold_line_breaks": " "}}),
        mapping_of({"email": {"column": "e", "fold_line_breaks": ", "}}),
    ]
    assert len({base.fingerprint(), *(m.fingerprint() for m in others)}) == 1 + len(others)


# --- fast paths agree with the libraries ----------------------------------------------

COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


def phone_context(region: str | None) -> Context:
    return Context("phone", region)


@settings(max_examples=100, deadline=None)
@given(
    numbers=st.lists(
        st.tuples(
            st.sampled_from(COUNTRY_CODES),
            st.sampled_from(["", " ", "-", ".", " (0) "]),
            st.text(alphabet="0123456789", min_size=1, max_size=16),
        ),
        min_size=1,
        max_size=30,
    ),
    region=st.sampled_from([None, *REGIONS]),
)
def test_the_international_fast_path_agrees_with_phonenumbers(
    numbers: list[tuple[int, str, str]], region: str | None
) -> None:
    values = [f"+{code}{punctuation}{digits}" for code, punctuation, digits in numbers]
    mapped, reasons = _phone(pd.Series(values, dtype="str"), phone_context(region))
    fast = list(zip(mapped.tolist(), reasons.tolist(), strict=True))
    assert fast == [_phone_slow.__wrapped__(value, region) for value in values]


@settings(max_examples=100, deadline=None)
@given(
    numbers=st.lists(st.text(alphabet="0123456789 -", min_size=1, max_size=18), max_size=30),
    region=st.sampled_from(REGIONS),
)
def test_the_national_fast_path_agrees_with_phonenumbers(numbers: list[str], region: str) -> None:
    values = [n.strip() for n in numbers if n.strip()]
    mapped, reasons = _phone(pd.Series(values, dtype="str"), phone_context(region))
    fast = list(zip(mapped.tolist(), reasons.tolist(), strict=True))
    assert fast == [_phone_slow.__wrapped__(value, region) for value in values]


LOCAL_CHARS = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.\"@ é"
DOMAIN_CHARS = string.ascii_letters + string.digits + "-.ü_"
EMAILS = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.one_of(
        st.text(LOCAL_CHARS, min_size=0, max_size=12),
        st.sampled_from(["info", "Postmaster", "WWW", "x" * 60, "a.b", "a..b"]),
    ),
    st.text(DOMAIN_CHARS, min_size=0, max_size=12),
    st.one_of(
        st.text(string.ascii_letters + string.digits + "-", min_size=0, max_size=6),
        st.sampled_from(["test", "TEST", "local", "localhost", "onion", "arpa", "invalid"]),
    ),
)


def email_validator_says(value: str) -> str:
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError:
        return ""


@settings(max_examples=100, deadline=None)
@given(values=st.lists(EMAILS, min_size=1, max_size=30))
def test_the_email_fast_path_agrees_with_email_validator(values: list[str]) -> None:
    for value in values:
        # What the fast path claims: this shape is valid, normalised by lower-casing the domain.
        if (
            len(value) <= EMAIL_FAST_MAX_LENGTH
            and re.fullmatch(EMAIL_SHAPE, value)
            and not re.match(EMAIL_SPECIAL_LOCAL, value)
            and not re.search(EMAIL_SPECIAL_DOMAIN, value)
        ):
            local, _, domain = value.rpartition("@")
            assert email_validator_says(value) == f"{local}@{domain.lower()}"
    context = Context("email")
    mapped, reasons = _email(pd.Series(values, dtype="str"), context)
    assert mapped.tolist() == [email_validator_says(v) for v in values]
    assert [bool(r) for r in reasons.tolist()] == [not email_validator_says(v) for v in values]


# --- apply never crashes ------------------------------------------------------------

PROPERTY_MAPPING = mapping_of(
    {
        "email": {"column": "a", "transform": "email"},
        "email_verified": {"column": "b", "transform": "boolean", "default": "false"},
        "phone_number": {"column": "c", "transform": "phone"},
        "birthdate": {"column": "d", "transform": "date"},
        "updated_at": {"column": "e", "transform": "timestamp"},
        "custom:x": {"column": "a", "transform": "date", "format": "%d/%m/%Y"},
        "name": {"join": ["a", "b"]},
        "nickname": {"column": "c", "transform": "upper", "default": "?"},
    },
    legacy={"id": "a", "updated": "e"},
    options={"phone_region": "US"},
)
SOURCE_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "1", "0", "yes", "+14155552671", "(415) 555-2671", "bob@example.com",
         "1985-02-01", "02/01/1985", "1600000000", "1600000000123", "2020-09-13T12:26:40Z",
         "٣١", "+١٢٣٤٥٦٧٨٩٠", "\x00", "nan", "NaT", "-", "+", "@", "9" * 30]
    ),
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.fixed_dictionaries({c: SOURCE_VALUES for c in "abcde"}), max_size=12))
def test_apply_never_crashes_keeps_every_row_and_reports_every_failure(
    rows: list[dict[str, str]],
) -> None:
    source = chunk(
        [{"username": f"user{i}", **row} for i, row in enumerate(rows)],
        first_row=11,
        columns=["username", *"abcde"],
    )
    result = apply_mapping(PROPERTY_MAPPING, source)
    frame = result.frame
    assert len(frame) == len(rows)
    assert frame["__row__"].tolist() == list(range(11, 11 + len(rows)))
    failed = {(p.row, p.attribute) for p in result.problems}
    assert len(failed) == len(result.problems)
    # "Empty" as the mapping sees it: trimmed by pandas (whose whitespace is pyarrow's when
    # strings are Arrow arrays).
    blank = {c: (source[c].str.strip() == "").tolist() for c in "abcde"}
    for rule in PROPERTY_MAPPING.rules:
        if rule.column is None or rule.transform in ("text", "lower", "upper"):
            continue
        for position, mapped in enumerate(frame[rule.attribute].tolist()):
            is_blank = blank[rule.column][position]
            # Exactly the non-empty values that came out empty are problems.
            assert ((11 + position, rule.attribute) in failed) == (not is_blank and mapped == "")
            if is_blank:
                assert mapped == (rule.default or "")
    assert all(isinstance(v, str) for c in frame.columns[1:] for v in frame[c])
    assert all(p.value == rows[p.row - 11][_column_of(p.attribute)] for p in result.problems)


def _column_of(attribute: str) -> str:
    rule = next(r for r in PROPERTY_MAPPING.rules if r.attribute == attribute)
    assert rule.column is not None
    return rule.column


# --- starter mappings ---------------------------------------------------------------

LEGACY_COLUMNS = [
    "id", "username", "E-Mail", "email_confirmed", "first_name", "last_name", "mobile",
    "dob", "modified_at", "mfa", "favourite_colour",
]  # fmt: skip


def test_a_starter_mapping_loads_and_maps_what_it_recognises() -> None:
    text = suggest_mapping(LEGACY_COLUMNS, POOL_HEADER, source_name="legacy.csv")
    mapping = Mapping.from_dict(tomllib.loads(text))
    rules = {rule.attribute: rule for rule in mapping.rules}
    assert mapping.attributes()[0] == "cognito:username"
    assert (mapping.legacy_id, mapping.legacy_updated) == ("id", "modified_at")
    expected = {
        "cognito:username": ("username", "text"),
        "email": ("E-Mail", "email"),
        "email_verified": ("email_confirmed", "boolean"),
        "given_name": ("first_name", "text"),
        "family_name": ("last_name", "text"),
        "phone_number": ("mobile", "phone"),
        "birthdate": ("dob", "date"),
        "updated_at": ("modified_at", "timestamp"),
        "custom:legacy_id": ("id", "text"),
        "cognito:mfa_enabled": ("mfa", "boolean"),
    }
    assert {a: (r.column, r.transform) for a, r in rules.items() if r.column} == expected
    assert rules["name"].join == ("first_name", "last_name")
    mapping.check_columns(LEGACY_COLUMNS)


def test_a_starter_mapping_explains_itself() -> None:
    text = suggest_mapping(LEGACY_COLUMNS, POOL_HEADER, source_name="legacy.csv")
    assert text.startswith(
        "# csvimport mapping: Cognito attributes from the columns of legacy.csv."
    )
    assert "review every line" in text
    assert '# [attributes.middle_name]\n# column = ""\n' in text
    assert '# [attributes.phone_number_verified]\n# value = "true"' in text
    assert '# Source columns not used: "favourite_colour"\n' in text


def test_a_starter_mapping_proposes_folding_for_columns_whose_values_span_lines() -> None:
    columns = ["username", "address", "first_name", "last_name", "email"]
    sample = chunk([
        {"username": "a", "address": "1 Road\r\nTown", "first_name": "Ann", "last_name": "Lee",
         "email": "a@example.com"},
        {"username": "b", "address": "2 Road", "first_name": "Bo", "last_name": "Li\nWu",
         "email": "b@example.com"},
    ], columns=columns)  # fmt: skip
    multiline = columns_with_line_breaks(iter([sample, chunk([{"username": "never\nread"}])]))
    assert multiline == ["address", "last_name"]
    text = suggest_mapping(columns, POOL_HEADER, multiline=multiline)
    assert (
        '[attributes.address]\ncolumn = "address"\n'
        "# Some sampled values of address span lines, which Cognito's CSV cannot carry:\n"
        "# such users are rejected, unless their line breaks are folded (uncomment):\n"
        '# fold_line_breaks = ", "\n'
    ) in text
    assert "# Some sampled values of last_name span lines" in text.split("[attributes.name]")[1]
    proposed = Mapping.from_dict(
        tomllib.loads(text.replace("# fold_line_breaks", "fold_line_breaks"))
    )
    folding = {r.attribute: r.fold_line_breaks for r in proposed.rules if r.fold_line_breaks}
    assert folding == {"address": ", ", "name": ", ", "family_name": ", "}
    assert Mapping.from_dict(tomllib.loads(text)).folding() == []  # proposed, not applied


def test_a_starter_mapping_maps_custom_attributes_by_name() -> None:
    text = suggest_mapping(
        ["login", "Tier", "legacy_id"], ["custom:tier", "custom:legacy_id", "cognito:username"]
    )
    rules = {r.attribute: r for r in Mapping.from_dict(tomllib.loads(text)).rules}
    assert (rules["custom:tier"].column, rules["custom:legacy_id"].column) == ("Tier", "legacy_id")
    assert rules["cognito:username"].column == "login"


@pytest.mark.parametrize(
    ("column", "attribute", "transform"),
    [
        ("email", "email", "email"), ("e-mail", "email", "email"), ("Mail", "email", "email"),
        ("email_address", "email", "email"), ("EmailAddress", "email", "email"),
        ("firstname", "given_name", "text"), ("fname", "given_name", "text"),
        ("given", "given_name", "text"), ("Last Name", "family_name", "text"),
        ("surname", "family_name", "text"), ("lname", "family_name", "text"),
        ("phone", "phone_number", "phone"), ("cell", "phone_number", "phone"),
        ("telephone", "phone_number", "phone"), ("MSISDN", "phone_number", "phone"),
        ("user_name", "cognito:username", "text"), ("login", "cognito:username", "text"),
        ("user", "cognito:username", "text"), ("date_of_birth", "birthdate", "date"),
        ("birthday", "birthdate", "date"), ("is_verified", "email_verified", "boolean"),
        ("verified", "email_verified", "boolean"), ("last_modified", "updated_at", "timestamp"),
        ("modified", "updated_at", "timestamp"), ("timezone", "zoneinfo", "text"),
        ("full_name", "name", "text"), ("phone_verified", "phone_number_verified", "boolean"),
    ],
)  # fmt: skip
def test_a_starter_mapping_knows_common_column_names(
    column: str, attribute: str, transform: str
) -> None:
    columns = [column] if attribute == "cognito:username" else ["username", column]
    rules = {
        r.attribute: r
        for r in Mapping.from_dict(tomllib.loads(suggest_mapping(columns, POOL_HEADER))).rules
    }
    assert (rules[attribute].column, rules[attribute].transform) == (column, transform)


@pytest.mark.parametrize("column", ["id", "user_id", "legacy_id", "UserID"])
def test_a_starter_mapping_takes_the_legacy_id_column(column: str) -> None:
    text = suggest_mapping(["username", column], POOL_HEADER)
    mapping = Mapping.from_dict(tomllib.loads(text))
    assert mapping.legacy_id == column
    assert next(r for r in mapping.rules if r.attribute == "custom:legacy_id").column == column


def test_a_starter_mapping_without_a_username_column_parses_but_does_not_load(
    tmp_path: Path,
) -> None:
    text = suggest_mapping(["email", "first_name"], POOL_HEADER, source_name="people.jsonl")
    assert "# TODO: no username column found." in text
    tomllib.loads(text)  # valid TOML: the placeholder stands out only to Mapping
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        Mapping.load(path)
    assert str(caught.value) == (
        f'{path}: [attributes."cognito:username"] column is still the starter mapping\'s '
        'placeholder "TODO: the source column with each user\'s username".'
    )
    assert "the name of a source column" in (caught.value.hint or "")


def test_a_starter_mapping_leaves_out_a_legacy_table_without_an_id_column() -> None:
    text = suggest_mapping(["username"], POOL_HEADER)
    assert "# [legacy]" in text
    assert Mapping.from_dict(tomllib.loads(text)).legacy_id is None


COLUMN_NAMES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(
    columns=st.lists(COLUMN_NAMES, max_size=10, unique=True),
    custom=st.lists(st.text(string.ascii_letters + "_", min_size=1, max_size=8), max_size=3),
    source_name=st.text(max_size=20),
    spans=st.booleans(),
)
def test_any_starter_mapping_is_valid_toml_and_loads_once_it_has_a_username(
    columns: list[str], custom: list[str], source_name: str, spans: bool
) -> None:
    header = POOL_HEADER + [f"custom:{name}" for name in custom]
    text = suggest_mapping(
        columns, header, source_name=source_name, multiline=columns if spans else ()
    )
    if spans:  # the proposal, taken up, is valid too
        text = text.replace("# fold_line_breaks", "fold_line_breaks")
    data = tomllib.loads(text)
    if data["attributes"]["cognito:username"]["column"].startswith("TODO:"):
        with pytest.raises(MappingError, match="placeholder"):
            Mapping.from_dict(data)
        return
    mapping = Mapping.from_dict(data)
    mapping.check_columns(columns)
    assert set(mapping.attributes()) <= set(header)


def test_the_pool_header_constant_matches_the_facts() -> None:
    # The standard attributes of a pool without custom ones (facts §1), plus password_hash.
    assert [a for a in POOL_HEADER if not a.startswith("custom:")] == list(STANDARD_ATTRIBUTES[:-1])


# --- one user at a time (the migration function's entry point) --------------------------

USER_POOL = PoolSnapshot(
    user_pool_id="us-east-1_user", name="user",
    header=[*POOL_HEADER[:-2], "custom:credits", *POOL_HEADER[-2:]],
    attributes=[Attribute("email"),
                Attribute("custom:credits", data_type="Number", min_value=0, max_value=10)],
    auto_verified=["email"], mfa="OPTIONAL",
)  # fmt: skip
USER_MAPPING = {
    "name": {"join": ["first", "last"]},
    "email": {"column": "mail", "transform": "email"},
    "email_verified": {"value": "true", "transform": "boolean"},
    "phone_number": {"column": "phone", "transform": "phone", "default": "+14155552671"},
    "custom:credits": {"column": "credits"},
}


def user_mapper(**attributes: Any) -> UserMapper:
    return UserMapper(mapping_of({**USER_MAPPING, **attributes}), USER_POOL)


@pytest.fixture
def arrow_strings(string_storage: str) -> None:
    """Skip a test that runs the pool's rules with Python strings.

    The build runs them on Arrow strings (pyarrow is a dependency), and pandera settles
    the string type a schema expects once per process, so a switch of pandas' string
    storage within one process cannot be validated.
    """
    if string_storage != "pyarrow":
        pytest.skip("the pool's rules run on Arrow strings, as in the build")


@pytest.mark.usefixtures("arrow_strings")
def test_one_user_maps_to_every_import_column_with_transforms_and_defaults() -> None:
    record = {"username": "ann", "first": " Ann ", "last": None, "mail": "Ann@Example.COM",
              "phone": "", "credits": "3", "not_mapped": "ignored"}  # fmt: skip
    user = user_mapper().map(record)
    assert user.ok and user.problems == []
    assert user.legacy_id == "ann"  # no [legacy] table: the username
    assert list(user.attributes) == USER_POOL.header
    assert {name: value for name, value in user.attributes.items() if value} == {
        "name": "Ann", "email": "Ann@example.com", "email_verified": "true",
        "phone_number": "+14155552671", "custom:credits": "3",
        "cognito:mfa_enabled": "false",  # not mapped: the pool's MFA setting decides
        "cognito:username": "ann",
    }  # fmt: skip


@pytest.mark.usefixtures("arrow_strings")
def test_one_user_gets_every_problem_the_build_would_reject_it_for() -> None:
    record = {"username": "b b", "first": "B", "last": "", "mail": "nope", "phone": "",
              "credits": "11"}  # fmt: skip
    user = user_mapper().map(record)
    assert not user.ok
    assert user.attributes["email"] == ""  # refused by its transform
    assert [(p.row, p.attribute, p.rule, p.value) for p in user.problems] == [
        (1, "email", "email", "nope"),  # the mapping's first, then the pool's rules
        (1, "cognito:username", "username_characters", "b b"),
        (1, "cognito:username", "username_whitespace", "b b"),
        (1, "custom:credits", "number_range", "11"),
    ]
    assert user.problems[2].reason == REASONS["username_whitespace"]


def test_a_record_without_a_mapped_column_raises_mapping_error_naming_it() -> None:
    with pytest.raises(MappingError, match=r"reads 1 column\(s\) the source does not have: 'mail'"):
        user_mapper().map({"username": "u", "first": "", "last": "", "phone": "", "credits": ""})


def test_a_record_value_that_is_not_text_raises_type_error_naming_the_column() -> None:
    record = {"username": "u", "first": "", "last": "", "mail": "", "phone": "", "credits": 3}
    with pytest.raises(TypeError, match="'credits' is int, not text"):
        user_mapper().map(record)


def test_a_user_mapper_refuses_a_mapping_setting_attributes_the_pool_lacks() -> None:
    with pytest.raises(ConfigError) as caught:
        user_mapper(**{"custom:tier": {"column": "first"}})
    assert str(caught.value) == "the mapping sets attributes the pool does not have: custom:tier"
    assert caught.value.exit_status == ExitStatus.USAGE


def test_a_record_value_with_half_a_character_raises_value_error_naming_the_column() -> None:
    record = {"username": "u", "first": "a\ud800", "last": "", "mail": "", "phone": "",
              "credits": ""}  # fmt: skip
    with pytest.raises(ValueError, match=r"'first' holds half a character \(U\+D800, a lone"):
        user_mapper().map(record)
