"""Property: whatever mess the legacy rows hold, build accounts for every row, and every
row it writes is imported by the sandbox (Cognito's rules, independently implemented)."""

from __future__ import annotations

import csv
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from csvimport import cognito_csv
from csvimport.build.builder import BuildOptions, build
from csvimport.build.mapping.spec import Mapping
from csvimport.build.mapping.transforms import Context, convert, convert_value
from csvimport.build.mapping.user import UserMapper
from csvimport.build.sources.base import SourceSpec
from csvimport.build.sources.opener import open_source
from csvimport.build.validate import PoolValidator
from csvimport.pool import Attribute, PoolSnapshot, read_pool
from csvimport.sandbox import Sandbox

from . import helpers
from .helpers import LEGACY_COLUMNS, LEGACY_MAPPING, Importer, pool_spec

messy_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)
logins = st.one_of(st.sampled_from(["ann", "ANN", "bob", "b ob", "", "zoë", "x" * 130]), messy_text)
emails = st.one_of(
    st.sampled_from(["a@example.com", "A@Example.COM", "bad", "", "c@x"]), messy_text
)
flags = st.sampled_from(["Y", "n", "1", "0", "yes", "TRUE", "maybe", ""])
phones = st.one_of(
    st.sampled_from(["", "(415) 555-2671", "+44 20 7946 0958", "12", "+1"]), messy_text
)
names = st.one_of(st.sampled_from(["Ann", "O'Neil, Jr.", "", "Zoë\u200f"]), messy_text)
dates = st.sampled_from(["", "2020-01-01", "2024-05-01T10:00:00", "soon", "1700000000"])


# Values at every edge of Cognito's CSV dialect and limits, for users the build writes:
# commas (written `\,`), quotes, backslashes inside a value, any script, emoji, combining
# marks, and names that join to exactly the 2,048-character limit (or one past it).
edgy_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(",\\\"' .-é中ü\u0301😀ß")),
        st.characters(categories=["L", "M", "N", "P", "S", "Zs"], exclude_characters="\x85"),
    ),
    max_size=14,
)
good_names = st.one_of(
    edgy_text, st.sampled_from(["O'Neil, Jr.", 'say "hi"', "C:\\dir\\x", "a\\ ,b"])
)
good_logins = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "S"]), min_size=1, max_size=10
)
good_rows = st.tuples(
    st.sampled_from(
        ["", "", "", "", "", "long", "toolong", "dup", "wide", "wider", "endslash"]
    ),  # legacy_line
    good_logins,
    st.sampled_from(["a", "first.last", "x+tag", "o'neil", "UPPER"]),
    st.sampled_from(["Y", "y", "1", "yes", "TRUE"]),
    st.sampled_from(["", "(415) 555-2671", "+44 20 7946 0958", "+1 415 555 0100"]),
    good_names,
    good_names,
    st.sampled_from(["", "2020-01-01", "2024-05-01T10:00:00", "1700000000"]),
)
# A messy legacy user's login, email, verified, mobile, first, last and modified columns.
messy_fields = (logins, emails, flags, phones, names, names, dates)
messy_rows = st.tuples(
    st.sampled_from(["", "long", "id", "space", "nologin", "newline"]), *messy_fields
)
# Mostly users the build writes, then messy ones to be refused.
legacy_rows = st.tuples(
    st.lists(good_rows, min_size=2, max_size=7), st.lists(messy_rows, min_size=1, max_size=6)
).map(lambda parts: parts[0] + parts[1])


def legacy_line(n: int, row: tuple[str, ...]) -> list[object]:
    """The legacy CSV line of generated ``row`` as the ``n``-th user. A login is made unique
    by its number; "long" pads it to the 128-character limit, "toolong" one past it; "wide" makes the joined name exactly 2,048 characters, "wider"
    one more; "endslash" ends the last name with a backslash; "id" gives a legacy id one
    past custom:legacy_id's 16 characters; "space" puts a space in the login, "nologin"
    leaves it empty, "newline" puts a line break in the first name. A good email local
    part gets its own address."""
    shape, login, email, flag, phone, first, last, modified = row
    legacy_id: object = "1" * 17 if shape == "id" else n
    if shape in ("long", "toolong") and login:
        login = (login + "x" * 129)[: 128 + (shape == "toolong") - len(str(n))]
    if shape in ("wide", "wider"):
        first, last = "x" * (1023 + (shape == "wider")), "y" * 1024
    if shape == "space":
        login = f"b {login}"
    if shape == "nologin":
        login = ""
    if shape == "newline":
        first = f"{first}\nx"
    if shape == "endslash":
        last += "\\"
    if "@" not in email and email in {"a", "first.last", "x+tag", "o'neil", "UPPER"}:
        email = f"{email}{n}@example.com"
    return [legacy_id, f"{login}{n}" if login else login, email, flag, phone, first, last, modified]


def legacy_lines(legacy: list[tuple[str, ...]]) -> list[list[object]]:
    """The legacy CSV lines of generated rows; a row of shape "dup" takes the first row's
    login in upper case (the pool is case-insensitive: a duplicate)."""
    lines: list[list[object]] = []
    for n, row in enumerate(legacy, 1):
        line = legacy_line(n, row)
        if row[0] == "dup" and lines:
            line[1] = str(lines[0][1]).upper()
        lines.append(line)
    return lines


# What one run of the property must exercise (rules of rejects.csv, edges in written rows).
EXPECTED_RULES = {
    "duplicate", "email", "phone", "boolean", "auto_verified", "email_verified_without_email", "username_missing", "username_whitespace",
    "username_too_long", "username_characters", "value_too_long", "newline", "backslash",
    "length",
}  # fmt: skip
EXPECTED_EDGES = {"comma", "backslash", "quote", "non_ascii", "value_at_limit",
                  "username_at_limit"}  # fmt: skip


def written_edges(header: list[str], values: list[str]) -> set[str]:
    """Which edges of the dialect and limits a written user's values reach."""
    edges = set()
    for column, value in zip(header, values, strict=True):
        edges |= {name for name, hit in (
            ("comma", "," in value), ("backslash", "\\" in value),
            ("quote", '"' in value or "'" in value), ("non_ascii", not value.isascii()),
            ("value_at_limit", len(value) == 2048),
            ("username_at_limit", column == "cognito:username" and len(value) == 128),
        ) if hit}  # fmt: skip
    return edges


def test_messy_rows_are_all_accounted_for_and_written_rows_import(
    sandbox: Sandbox, cognito: Any, logs: Any
) -> None:
    """Build accounts for every generated row and the sandbox imports every written one;
    over the (fixed-seed) run most examples write users, every rule refuses some row, and
    written users reach every edge of the dialect."""
    writing_examples, examples = 0, 0
    rules: set[str] = set()
    edges: set[str] = set()

    @settings(max_examples=16, derandomize=True, database=None, deadline=None)
    @given(legacy=legacy_rows)
    def example(legacy: list[tuple[str, ...]]) -> None:
        nonlocal writing_examples, examples
        info = sandbox.create_pool(pool_spec())
        importer = Importer(cognito, logs, info)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            source = work / "legacy.csv"
            with source.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(LEGACY_COLUMNS)
                writer.writerows(legacy_lines(legacy))
            mapping = work / "mapping.toml"
            mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
            result = build(
                BuildOptions(SourceSpec(str(source)), mapping, work / "run"),
                read_pool(cognito, info.user_pool_id),
            )
            assert result.source_rows == len(legacy)
            assert result.source_rows == result.written + result.rejected + result.duplicates
            with (work / "run" / "rejects.csv").open(encoding="utf-8", newline="") as f:
                rejects = list(csv.DictReader(f))
            assert len({r["source_row"] for r in rejects}) == result.rejected + result.duplicates
            sandbox.settings.update(fail_job_after_bad_rows=10**6)
            for chunk in result.chunks:
                lines = cognito_csv.read_rows(work / "run" / chunk.file)
                header = next(lines)
                for values in lines:
                    edges.update(written_edges(header, values))
                run = importer.run((work / "run" / chunk.file).read_bytes())
                assert run.job["FailedUsers"] == 0, importer.log_lines(run.job_id)
                assert run.job["SkippedUsers"] == 0
                assert run.job["ImportedUsers"] == chunk.rows
        examples += 1
        writing_examples += result.written > 0
        rules.update(r["rule"] for r in rejects)

    example()
    assert writing_examples >= 0.7 * examples, (writing_examples, examples)
    assert EXPECTED_RULES - rules == set(), rules
    assert EXPECTED_EDGES - edges == set(), edges


# --- the single-user mapper agrees with build -------------------------------------------

# A pool whose every rule a messy source can break: an alias attribute, a required one,
# MFA on, two auto-verified channels, custom attributes with bounds.
AGREEMENT_POOL = PoolSnapshot(
    user_pool_id="us-east-1_agree", name="agree",
    header=["name", "given_name", "family_name", "middle_name", "nickname",
            "preferred_username", "profile", "picture", "website", "email", "email_verified",
            "gender", "birthdate", "zoneinfo", "locale", "phone_number", "phone_number_verified",
            "address", "updated_at", "custom:legacy_id", "custom:credits",
            "cognito:mfa_enabled", "cognito:username"],
    attributes=[Attribute("email"), Attribute("phone_number"),
                Attribute("family_name", required=True),
                Attribute("custom:legacy_id", min_length=1, max_length=16),
                Attribute("custom:credits", data_type="Number", min_value=0, max_value=1000)],
    auto_verified=["email", "phone_number"], alias_attributes=["email"], case_sensitive=False,
    mfa="ON",
)  # fmt: skip
AGREEMENT_COLUMNS = [*helpers.LEGACY_COLUMNS, "address", "born", "credits", "mfa"]
AGREEMENT_MAPPING = (
    helpers.LEGACY_MAPPING
    + """
[attributes.phone_number_verified]
value = false
transform = "boolean"

[attributes.nickname]
column = "first"
transform = "lower"

[attributes.family_name]
column = "last"
transform = "upper"

[attributes.address]
column = "address"
fold_line_breaks = "; "

[attributes.birthdate]
column = "born"
transform = "date"

[attributes.updated_at]
column = "modified"
transform = "timestamp"

[attributes.locale]
value = "en"

[attributes."custom:credits"]
column = "credits"
default = "0"

[attributes."cognito:mfa_enabled"]
column = "mfa"
transform = "boolean"
default = "true"
"""
)
# One row for each rule the mapping or the pool can refuse a user for, and a duplicate.
AGREEMENT_ROWS = [
    # id, login, email, verified, mobile, first, last, modified, address, born, credits, mfa
    ("1", "ann", "Ann@Example.COM", "Y", "(415) 555-2671", "Ann", "Lee", "2020-01-01",
     "1 Main St\r\nApt 2", "1985-02-01", "5", ""),  # written
    ("2", "ANN", "ann2@example.com", "y", "", "Ann", "Two", "", "", "", "", ""),  # duplicate
    ("3", "cy", "not an email", "y", "12", "Cy", "Ng", "soon", "", "30/02/1985", "", "perhaps"),
    ("4", "", "di@example.com", "y", "", "Di", "Ho", "", "", "", "", ""),  # username_missing
    ("5", "e d", "ed@example.com", "y", "", "Ed", "Oh", "", "", "", "", ""),
    ("6", "x" * 129, "fx@example.com", "y", "", "F", "X", "", "", "", "", ""),
    ("7", "g\u200b", "g@example.com", "y", "", "G", "Ma", "", "", "", "", ""),
    ("8", "hal@example.com", "hal@example.com", "y", "", "Hal", "Ba", "", "", "", "", ""),
    ("9", "ivy", "ivy@example.com", "n", "", "Ivy", "Do", "", "", "", "", ""),  # auto_verified
    ("10", "jo", "jo@example.com", "y", "", "Jo", "", "", "", "", "", ""),  # required
    ("11", "kim", "kim@example.com", "y", "", "Kim", "Ko", "", "", "", "", "no"),  # mfa
    ("12", "lu", "lu@example.com", "y", "", "Lu\nLa", "Li", "", "", "", "", ""),  # newline
    ("13", "mo", "mo@example.com", "y", "", "Mo", "Mu\\", "", "", "", "", ""),  # backslash
    ("14", "ned", "ned@example.com", "y", "", "Ned", "Ny", "", "x" * 2049, "", "", ""),
    ("15", "ola", "ola@example.com", "y", "", "Ola", "Oz", "", "", "", "x", ""),  # number
    ("16", "pia", "pia@example.com", "y", "", "Pia", "Po", "", "", "", "1001", ""),
    ("17" * 9, "quin", "q@example.com", "y", "", "Q", "Qu", "", "", "", "", ""),  # length
    ("18", "rio", "rio@example.com", "", "+44 20 7946 0958", "Rio", "Ra", "1e3", "a,\n b", "85",
     "7", "1"),
]  # fmt: skip

agreement_rows = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["1", "17" * 9, ""]), messy_text),
        *messy_fields,
        st.one_of(st.sampled_from(["", "a\r\n\r\n b", "x" * 2049]), messy_text),
        st.one_of(st.sampled_from(["", "1985-02-01", "02/30/1985", "85"]), messy_text),
        st.sampled_from(["", "0", "1000", "1001", "-1", "x", "2.5"]),
        flags,
    ),
    max_size=20,
)


def assert_single_users_map_as_build_writes(rows: list[tuple[str, ...]]) -> set[str]:
    """Build ``rows`` (AGREEMENT_COLUMNS) and check that UserMapper gives every source row
    the values its chunk line holds, or the reject lines rejects.csv holds; a row the
    duplicate policy dropped (the mapper cannot know) it must find valid. Both its paths
    (map, and map_as_chunk through pandera) must say the same. Return what became of the
    rows: "written", and the rules of the rejects."""
    mapper = UserMapper(Mapping.from_dict(tomllib.loads(AGREEMENT_MAPPING)), AGREEMENT_POOL)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run, result = helpers.build_rows(
            work, AGREEMENT_COLUMNS, rows, AGREEMENT_MAPPING, AGREEMENT_POOL
        )
        source = work / "legacy.csv"
        written: dict[int, tuple[str, dict[str, str]]] = {}
        for chunk in result.chunks:
            lines = cognito_csv.read_rows(run / chunk.file)
            header = next(lines)
            with (run / chunk.map_file).open(encoding="utf-8", newline="") as f:
                for line_map, values in zip(csv.DictReader(f), lines, strict=True):
                    written[int(line_map["source_row"])] = (
                        line_map["legacy_id"],
                        dict(zip(header, values, strict=True)),
                    )
        rejected: dict[int, list[dict[str, str]]] = {}
        with (run / "rejects.csv").open(encoding="utf-8", newline="") as f:
            for reject in csv.DictReader(f):
                rejected.setdefault(int(reject["source_row"]), []).append(reject)
        records = helpers.records(open_source(SourceSpec(str(source))))
    assert len(records) == len(rows)
    for record in records:
        row = record.pop("__row__")
        user = mapper.map(record)
        # The fast single-user path and the build's own one-row chunk path agree exactly.
        assert user == mapper.map_as_chunk(record), row
        if row in written:
            assert (user.legacy_id, user.attributes) == written[row], row
            assert user.ok, (row, user.problems)
            continue
        rejects = rejected[row]
        if [r["rule"] for r in rejects] == ["duplicate"]:
            assert user.ok, (row, user.problems)
            continue
        assert [(p.attribute, p.rule, p.reason, p.value) for p in user.problems] == [
            (r["attribute"], r["rule"], r["reason"], r["value"]) for r in rejects
        ], row
        assert {r["legacy_id"] for r in rejects} == {user.legacy_id}, row
    outcomes = {r["rule"] for lines in rejected.values() for r in lines}
    return outcomes | {"written"} if written else outcomes


def test_the_single_user_mapper_gives_each_row_what_build_writes_or_rejects_it_alike() -> None:
    outcomes = assert_single_users_map_as_build_writes(AGREEMENT_ROWS)
    assert outcomes >= {
        "written", "duplicate", "email", "phone", "date", "timestamp", "boolean", "username_missing",
        "username_whitespace", "username_too_long", "username_characters",
        "username_looks_like_alias", "auto_verified", "required", "mfa", "newline",
        "backslash", "value_too_long", "number", "number_range", "length",
    }  # fmt: skip


@settings(max_examples=20, deadline=None)
@given(legacy=agreement_rows)
def test_for_messy_rows_the_single_user_mapper_agrees_with_build(
    legacy: list[tuple[str, ...]],
) -> None:
    assert_single_users_map_as_build_writes(legacy)


hostile_values = st.one_of(
    messy_text,
    st.sampled_from(["a@b.co\n", "+14155552671\n", "12\n", "1e3", "-1.5", "1001", "TRUE",
                     "true\n", "x\\", "a\\,b", "İ", "ǅ", "\x1c", "k@\u212aa.co", "٣"]),
    st.text(alphabet=st.sampled_from(list("0123456789+-.eE@a \n\\")), max_size=8),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(value=hostile_values)
def test_each_rules_plain_python_verdict_is_the_schemas(value: str) -> None:
    validator = PoolValidator(AGREEMENT_POOL)
    column = pd.Series([value], dtype="str")
    for name, rules in validator._value_rules.items():
        for rule in rules:
            verdict = rule.one(value) if rule.one is not None else None
            if verdict is not None:
                assert verdict == bool(rule.passes(column).iloc[0]), (name, rule.rule, value)


@settings(max_examples=300, deadline=None)
@given(value=hostile_values, context=st.sampled_from([
    Context("boolean"), Context("email"), Context("phone", region="US"), Context("phone"),
    Context("timestamp"), Context("lower"), Context("upper"), Context("text"),
    Context("date"), Context("date", format="%d/%m/%Y"),
]))  # fmt: skip
def test_one_value_converts_as_its_column_does(value: str, context: Context) -> None:
    value = value.strip()

    def outcome(fn: Any) -> tuple[str, ...]:
        try:
            return tuple(fn())
        except Exception as exc:  # e.g. "\\1" as a timestamp: the build's pandas raises too
            return (type(exc).__name__,)

    def column() -> tuple[str, str]:
        mapped, reasons = convert(pd.Series([value], dtype="str"), context)
        return str(mapped.iat[0]), str(reasons.iat[0])

    assert outcome(lambda: convert_value(value, context)) == outcome(column)
