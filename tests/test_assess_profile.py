"""`csvimport assess`: exact profiles of a crafted source, the census by shape, the command.

The crafted CSV's every count is worked out by hand in the comments of LEGACY; PostgreSQL
(127.0.0.1:5432, postgres, trust, database test) must be running, as for test_sources_db.
"""

from __future__ import annotations

import csv
import json
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pandas as pd
import pytest
import sqlalchemy as sa
from passlib import hash as passlib_hash
from sqlalchemy.pool import NullPool

from csvimport.assess.model import Assessment
from csvimport.assess.page import FORMAT_VERSION, render_page
from csvimport.assess.predict import WORK_PREFIX, predict
from csvimport.assess.profile import (
    _DATE_SHAPED,
    _DATES,
    _DJANGO_SHAPE,
    _HASH,
    _NUMBERS,
    _PHONE,
    _Census,
    _classify,
    _matches,
    assess_source,
)
from csvimport.build.builder import BuildOptions, build
from csvimport.build.mapping.spec import Mapping
from csvimport.build.sources.base import SourceSpec

from .helpers import LEGACY_MAPPING, cli_env, csvimport, messy_legacy_csv, offline_snapshot

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

BCRYPT_4 = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
BCRYPT_4B = bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()
BCRYPT_13 = BCRYPT_4.replace("$04$", "$13$", 1)  # over Cognito's cost 12: first sign-in
DJANGO = passlib_hash.django_pbkdf2_sha256.using(rounds=1000).hash("secret")  # convertible
MD5_CRYPT = passlib_hash.md5_crypt.hash("secret")  # first sign-in only
HEX_MD5 = "5f4dcc3b5aa765d61d8327deb882cf99"  # no declared digest: unknown
HEADER = ["id", "login", "email", "email_verified", "mobile", "password", "dob", "groups"]
LEGACY = [
    ["1", "Ada", "ada@example.com", "yes", "+44 20 7946 0001", BCRYPT_4, "1990-01-02", "admin"],
    ["2", "ada", "ADA@example.com", "no", "+1 415 555 0101", BCRYPT_4B, "1991-02-03", ""],
    ["3", "bob", "bob@example.com", "Yes", "(415) 555-0102", BCRYPT_13, "", ""],
    ["4", "bob", "not an email", "yes", "", DJANGO, "1992-13-01", ""],
    ["5", "carol", "carol@example.com", "TRUE", "+44 20 7946 0001", MD5_CRYPT, "05/06/1980", ""],
    ["6", "dave", "dave@example.com", "n", "+44-20-7946-0001", HEX_MD5, "", "users"],
    ["7", "Eve", "eve@example.com", "y", "", "", "", ""],
    ["8", "eve", "eve@example.com", "y", "", "plaintext", "", ""],
]
# users, and per column: (filled, distinct, distinct ignoring case, max length, kinds)
EXPECTED_COLUMNS = {
    "id": (8, 8, 8, 1, {"integer": 8}),
    # Ada ada bob bob carol dave Eve eve: 7 spellings, 5 names ignoring case
    "login": (8, 7, 5, 5, {"text": 8}),
    # eve@ twice; ada@/ADA@ the same ignoring case; "not an email" is text
    "email": (8, 7, 6, 17, {"email": 7, "text": 1}),
    "email_verified": (8, 6, 5, 4, {"boolean": 8}),  # yes no true n y
    "mobile": (5, 4, 4, 16, {"phone": 5}),
    "password": (7, 7, 7, max(len(DJANGO), 60), {"password hash": 6, "text": 1}),
    # 1992-13-01 is no date: text
    "dob": (4, 4, 4, 10, {"date": 3, "text": 1}),
    "groups": (2, 2, 2, 5, {"text": 2}),
}


def write_legacy(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="module")
def assessed(tmp_path_factory: pytest.TempPathFactory) -> Assessment:
    source = write_legacy(tmp_path_factory.mktemp("assess") / "legacy.csv", LEGACY)
    return assess_source(SourceSpec(str(source), chunk_rows=3))  # chunks cut across pairs


@pytest.mark.parametrize("spill_at", [1, 4, 500])
def test_hashes_moved_to_files_count_as_the_ones_kept_in_memory(
    spill_at: int, assessed: Assessment, tmp_path: Path
) -> None:
    source = write_legacy(tmp_path / "legacy.csv", LEGACY)
    moved = assess_source(SourceSpec(str(source), chunk_rows=3), spill_at=spill_at)
    assert {**moved.to_json(), "source": ""} == {**assessed.to_json(), "source": ""}
    # thousands of users, some sharing values within and across the stores' files
    messy_legacy_csv(tmp_path / "messy.csv", 3000)
    spec = SourceSpec(str(tmp_path / "messy.csv"), chunk_rows=400)
    kept = assess_source(spec)
    assert assess_source(spec, spill_at=spill_at).to_json() == kept.to_json()
    login = kept.column("login")
    assert login is not None and login.distinct > login.distinct_folded  # case variants
    assert any(d.exact or d.folded for d in kept.duplicates)


def test_every_column_is_profiled_exactly_across_chunks(assessed: Assessment) -> None:
    assert assessed.rows == 8
    assert [c.name for c in assessed.columns] == HEADER
    for name, (filled, distinct, folded, longest, kinds) in EXPECTED_COLUMNS.items():
        column = assessed.column(name)
        assert column is not None
        found = (column.filled, column.distinct, column.distinct_folded, column.max_length,
                 column.kinds)  # fmt: skip
        assert found == (filled, distinct, folded, longest, kinds), name
        assert column.rows == 8 and column.p99_length == longest


def test_spellings_countries_and_date_formats_are_counted(assessed: Assessment) -> None:
    verified, mobile, dob = (assessed.column(n) for n in ("email_verified", "mobile", "dob"))
    assert verified is not None and mobile is not None and dob is not None
    assert verified.boolean_spellings == {"yes": 2, "no": 1, "Yes": 1, "TRUE": 1, "n": 1, "y": 2}
    assert mobile.phone_countries == {"GB": 3, "US": 1, "unknown": 1}
    assert dob.date_formats == {"%Y-%m-%d": 2, "%m/%d/%Y": 1}


def test_roles_come_from_the_column_names(assessed: Assessment) -> None:
    roles = assessed.roles
    assert (roles.username, roles.email, roles.email_verified, roles.phone_number) == (
        "login", "email", "email_verified", "mobile"
    )  # fmt: skip
    assert (roles.password, roles.legacy_id, roles.groups, roles.disabled) == (
        "password", "id", "groups", None
    )  # fmt: skip
    assert roles.attributes == {"dob": "birthdate"}


def test_duplicates_count_exact_folded_and_what_each_policy_drops(assessed: Assessment) -> None:
    found = {d.role: d for d in assessed.duplicates}
    username, email, phone = found["username"], found["email"], found["phone_number"]
    # bob twice exactly; Ada/ada and Eve/eve only ignoring case
    assert (username.exact, username.folded) == (1, 3)
    assert username.dropped_by_policy == {"keep-first": 3, "keep-latest": 3, "reject-all": 6}
    assert set(username.case_only_examples) == {"A…", "a…", "E…", "e…"}
    assert (email.exact, email.folded) == (1, 2)
    assert email.dropped_by_policy == {"keep-first": 2, "keep-latest": 2, "reject-all": 4}
    assert set(email.case_only_examples) == {"a***@e***.com", "A***@e***.com"}
    # +44 20 7946 0001 three times, once with dashes
    assert (phone.exact, phone.folded) == (2, 2)
    assert phone.dropped_by_policy == {"keep-first": 2, "keep-latest": 2, "reject-all": 3}


def test_the_census_puts_every_row_in_one_bucket(assessed: Assessment) -> None:
    census = assessed.passwords
    buckets = (census.importable, census.convertible, census.at_first_sign_in, census.unknown,
               census.empty)  # fmt: skip
    assert buckets == (2, 1, 2, 2, 1)
    assert census.by_scheme == {"bcrypt": 3, "django_pbkdf2_sha256": 1, "md5_crypt": 1,
                                "unknown": 2}  # fmt: skip
    password = assessed.column("password")
    assert password is not None and password.hash_schemes == census.by_scheme


def _django(rounds: str, salt: str, digest: str = DJANGO.rsplit("$", 1)[1]) -> str:
    return f"pbkdf2_sha256${rounds}${salt}${digest}"


# Django PBKDF2 hashes are classified once per shape (iterations and length): each of these
# differs from the others in what classify_hash or identify make of it, or in its shape.
DJANGO_SHAPES = [
    _django("1000", "abc123"), _django("1000", "zzz999"), _django("600000", "abc123"),
    _django("1", "abc123"), _django("99999999", "abc123"), _django("1000", "a"),
    _django("1000", "a" * 200), _django("0600000", "abc123"), _django("1000", "ab.c12"),
    _django("99999999", "abcd"), _django("1000", "abcd1234"),  # the same length
    _django("1000", "abc123", DJANGO.rsplit("$", 1)[1][:-2] + "=="),
    "pbkdf2_sha1$1000$abc123$" + "A" * 27 + "=", "pbkdf2_sha1$1000$abc123$" + "A" * 26 + "==",
]  # fmt: skip


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_classifying_by_shape_gives_what_classifying_each_value_gives(chunk: int) -> None:
    tail = BCRYPT_4[7:]
    values = [
        BCRYPT_4, BCRYPT_4B, BCRYPT_13, BCRYPT_4.replace("$04$", "$12$", 1),
        BCRYPT_4.replace("$04$", "$31$", 1), BCRYPT_4.replace("$2b$", "$2y$", 1),
        "$2b$10$" + tail[:-1] + "!", "$2b$10$" + tail[:-1], HEX_MD5, HEX_MD5.upper(),
        HEX_MD5[:31], "1234567890", "a" * 40, "b" * 64, DJANGO, MD5_CRYPT, "", " ", "plain",
        *DJANGO_SHAPES,
    ]  # fmt: skip
    census = _Census("pw")
    for start in range(0, len(values), chunk):
        census.add(pd.Series(values[start : start + chunk], dtype="str"))
    expected: dict[str, int] = {}
    for value in values:
        bucket = "empty" if not value.strip() else _classify(value)[0]
        expected[bucket] = expected.get(bucket, 0) + 1
    assert {k: n for k, n in census.buckets.items() if n} == expected
    schemes: dict[str, int] = {}
    for value in values:
        if value.strip():
            scheme = _classify(value)[1] or "unknown"
            schemes[scheme] = schemes.get(scheme, 0) + 1
    assert {k: n for k, n in census.schemes.items() if n} == schemes


def test_assess_writes_the_json_and_the_page_privately(tmp_path: Path) -> None:
    source = write_legacy(tmp_path / "legacy.csv", LEGACY)
    out = tmp_path / "assessment"
    result = csvimport(cli_env(), "assess", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "assessed 8 users in 8 columns" in result.stderr
    assert "strategy: " in result.stderr and "can never change" in result.stderr
    names = ("assessment.json", "assessment.html", "pool-spec.json", "pool.template.json",
             "mapping.toml", "proposal.json")  # fmt: skip
    for name in names:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    data = json.loads((out / "assessment.json").read_text(encoding="utf-8"))
    assert data["format_version"] == FORMAT_VERSION and data["rows"] == 8
    assert data["passwords"]["importable"] == 2
    page = (out / "assessment.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 3
    for row in LEGACY:  # no username, email, phone or hash as it is
        for value in (row[2], row[4], row[5]):
            assert not value or value == "not an email" or value not in page, value
    # the proposal's section, as proposal.json says it
    proposed = json.loads((out / "proposal.json").read_text(encoding="utf-8"))
    assert 'id="proposal"' in page and proposed["strategy"]["name"] in page
    assert Mapping.load(out / "mapping.toml").attributes()


def test_a_proposal_in_the_data_gets_its_section(assessed: Assessment) -> None:
    proposal = {"pool_name": "legacy-pool",
                "choices": [{"name": "case_sensitive", "value": True, "reason": "Because <b>"}],
                "custom_attributes": [], "left_out": {"groups": "memberships"},
                "strategy": {"name": "bulk import only", "reason": "Most import."}}  # fmt: skip
    page = render_page({"format_version": 1, **assessed.to_json(), "proposal": proposal})
    assert 'id="proposal"' in page and "legacy-pool" in page
    assert "Because &lt;b&gt;" in page and "bulk import only" in page


@pytest.mark.parametrize(
    ("make", "args", "expected"),
    [
        (lambda d: d / "missing.csv", [], "no such file"),
        (lambda d: write_legacy(d / "header-only.csv", []), [], "has no users to assess"),
        (lambda d: empty_file(d / "zero.csv"), [], "is empty"),
        (lambda d: write_legacy(d / "legacy.csv", LEGACY), ["--table", "users"],
         "--table and --query only apply to database URLs"),
    ],
    ids=["missing file", "header only", "empty file", "table with a file"],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_fix(
    tmp_path: Path, make: object, args: list[str], expected: str
) -> None:
    source = make(tmp_path)  # type: ignore[operator]
    result = csvimport(cli_env(), "assess", str(source), "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "hint: " in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture
def postgres_table() -> Iterator[str]:
    table = f"assess_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES, poolclass=NullPool)
    columns = ", ".join(f"{name} TEXT" for name in HEADER[1:])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {columns})")
        for row in LEGACY:
            values = [int(row[0]), *(value or None for value in row[1:])]  # "" as NULL
            marks = ", ".join(["%s"] * len(values))
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES ({marks})", tuple(values))
    try:
        yield table
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")


def test_a_postgresql_table_is_assessed_like_the_file(
    postgres_table: str, assessed: Assessment, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    url = POSTGRES.replace("postgres@", "postgres:Secret-Pa55@")  # trust: any password does
    result = csvimport(cli_env(), "assess", url, "--table", postgres_table, "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "assessment.json").read_text(encoding="utf-8"))
    expected = assessed.to_json()
    for key in ("rows", "columns", "roles", "duplicates", "passwords"):
        assert data[key] == expected[key], key
    assert (
        data["source"]
        == f"postgresql+psycopg://postgres:***@127.0.0.1:5432/test table {postgres_table}"
    )
    for name in ("assessment.json", "assessment.html"):
        assert "Secret-Pa55" not in (out / name).read_text(encoding="utf-8")


def test_a_table_the_database_lacks_exits_2(tmp_path: Path) -> None:
    result = csvimport(cli_env(), "assess", POSTGRES, "--table", "no_such_table_here",
                       "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "no_such_table_here" in result.stderr and "hint: " in result.stderr


def test_folded_counts_stay_exact_when_case_first_differs_in_a_later_chunk(
    tmp_path: Path,
) -> None:
    source = tmp_path / "later.csv"
    source.write_text("name\na\nb\nc\nA\nStraße\nstrasse\n", encoding="utf-8")
    found = assess_source(SourceSpec(str(source), chunk_rows=2)).column("name")
    assert found is not None
    assert (found.distinct, found.distinct_folded) == (6, 4)  # a b c straße/strasse


def test_a_prediction_is_what_the_build_then_does_and_keeps_no_run(tmp_path: Path) -> None:
    source, mapping = tmp_path / "legacy.csv", tmp_path / "mapping.toml"
    messy_legacy_csv(source, 400)
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    spec = SourceSpec(str(source))
    before = set(Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*"))
    predicted = predict(spec, mapping, offline_snapshot())
    assert set(Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*")) <= before  # removed
    result = build(BuildOptions(spec, mapping, tmp_path / "run"), offline_snapshot())
    assert result.duplicates > 0 and result.rejected > 0  # the messy data has both
    assert (predicted["written"], predicted["rejected_total"], predicted["duplicates"]) == (
        result.written, result.rejected, result.duplicates)  # fmt: skip
    assert predicted["rejected"] == dict(result.reasons)


def test_assess_with_a_mapping_and_a_pool_shows_the_prediction(tmp_path: Path) -> None:
    source, mapping = tmp_path / "legacy.csv", tmp_path / "mapping.toml"
    messy_legacy_csv(source, 200)
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    out = tmp_path / "out"
    spec = tmp_path / "pool.json"  # a pool snapshot, as a run directory keeps it
    offline_snapshot().save(spec)
    lone = csvimport(cli_env(), "assess", str(source), "--out", str(out), "--mapping",
                     str(mapping))  # fmt: skip
    assert lone.returncode == 2 and "--pool-id (or --pool-spec)" in lone.stderr
    pool_only = csvimport({**cli_env(), "CSVIMPORT_POOL_ID": "us-east-1_x"}, "assess",
                          str(source), "--out", str(out))  # fmt: skip
    assert pool_only.returncode == 0, pool_only.stderr  # a pool alone predicts nothing
    assert "predicted build" not in pool_only.stderr
    done = csvimport(cli_env(), "assess", str(source), "--out", str(out), "--mapping",
                     str(mapping), "--pool-spec", str(spec))  # fmt: skip
    assert done.returncode == 0, done.stderr
    predicted = json.loads((out / "assessment.json").read_text(encoding="utf-8"))["predicted"]
    assert predicted["written"] + predicted["rejected_total"] + predicted["duplicates"] + (
        predicted["deferred"]) == 200  # fmt: skip
    assert f"predicted build ({mapping}): {predicted['written']:,} written" in done.stderr
    page = (out / "assessment.html").read_text(encoding="utf-8")
    assert 'id="predicted"' in page and 'id="predicted-rejects"' in page


TRICKY = ["", " ", "2020-01-01", "2020-01-01x", "x2020-01-01", "12", "1", "-12", "1.5e3",
          "+44 20 7946 0001", "(415) 555-0101\n", "2020-01-01\n", "é2020-01-01", "１２",
          "$2b$10$abc", "{SSHA}abc", "ab$1$x", "pbkdf2:sha256:1$a$b", "a" * 32, "a" * 33,
          "2020-01-01T10:00:00+01:00", "2020-01-01T10:00:00.5Z", "12.03.2020", "١٢"]  # fmt: skip
PATTERNS = [p for _, p in _NUMBERS] + [p for p, _, _ in _DATES] + [
    _DATE_SHAPED, _PHONE, _HASH, _DJANGO_SHAPE, "[0-9]{2}"]  # fmt: skip


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("dtype", ["str", "object"])
def test_matching_on_arrow_answers_what_pandas_fullmatch_and_match_answer(
    pattern: str, dtype: str
) -> None:
    values = pd.Series(TRICKY, dtype=dtype)[1:]  # a slice: the Arrow array has an offset
    whole = values.str.fullmatch(pattern).fillna(False).to_numpy(bool)
    start = values.str.match(pattern).fillna(False).to_numpy(bool)
    assert _matches(values, pattern).tolist() == whole.tolist()
    assert _matches(values, pattern, whole=False).tolist() == start.tolist()
