"""Reading legacy users from databases: SQLite, and the real MariaDB and PostgreSQL servers.

MariaDB (127.0.0.1:3306, root, no password) and PostgreSQL (127.0.0.1:5432, postgres, trust)
must be running: these tests fail, not skip, when they are not, as they would in CI. Each
server gets its own throw-away database, dropped at the end of the session.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import traceback
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from csvimport.build.sources.base import ROW, SourceError, SourceSpec
from csvimport.build.sources.database import SQL_HINT, URL_HINT, DatabaseSource
from csvimport.build.sources.opener import open_source
from csvimport.errors import RefusedError
from csvimport.redact import mask_credentials
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    LEGACY_COLUMNS,
    LEGACY_MAPPING,
    LOOKUP_HOSTILE,
    csvimport,
    env_for,
    lookup_people,
    offline_snapshot,
    records,
)

MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "s3cr3t-Pa55"


@dataclass(frozen=True)
class Db:
    """A seeded test database and what its driver makes of the seed's values."""

    name: str
    url: str
    kind: str
    database: str
    true: str
    false: str
    scores: tuple[str, str]  # DECIMAL 12.50 and 7.00

    def spec(self, **options: Any) -> SourceSpec:
        return SourceSpec(self.url, **options)

    def count(self, table: str) -> int:
        engine = sa.create_engine(self.url, poolclass=NullPool)
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())


def seed(url: str, quote: str) -> None:
    q = quote
    statements = [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100), active BOOLEAN, "
        "created TIMESTAMP NULL, score DECIMAL(10,2), nickname VARCHAR(100))",
        # Inserted out of key order: a table is read in primary-key order.
        "INSERT INTO users VALUES (3, 'c@x.com', TRUE, '2021-12-24 18:00:05', 7.00, 'NULL')",
        "INSERT INTO users VALUES (1, 'a@x.com', TRUE, '2020-01-31 09:30:00', 12.50, 'Ann')",
        "INSERT INTO users VALUES (2, 'b@x.com', FALSE, NULL, NULL, NULL)",
        "CREATE TABLE many (n INTEGER PRIMARY KEY, label VARCHAR(20))",
        *(f"INSERT INTO many VALUES ({n}, 'user {n}')" for n in range(10, 0, -1)),
        "CREATE TABLE empty (email VARCHAR(100), name VARCHAR(100))",
        f"CREATE TABLE {q}legacy users{q} ({q}e-mail{q} VARCHAR(100), {q}Order{q} INTEGER)",
        f"INSERT INTO {q}legacy users{q} VALUES ('a@x.com', 1)",
    ]
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Db:
    path = tmp_path_factory.mktemp("sqlite") / "legacy.db"
    url = f"sqlite:///{path}"
    seed(url, '"')
    return Db("sqlite", url, "sqlite", "main", "1", "0", ("12.5", "7"))


@pytest.fixture(scope="session")
def mariadb_db() -> Iterator[Db]:
    name = f"csvimport_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(MARIADB_ADMIN, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = f"{MARIADB_ADMIN}{name}"
        seed(url, "`")
        yield Db("mariadb", url, "mysql", name, "1", "0", ("12.50", "7.00"))
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="session")
def postgresql_db() -> Iterator[Db]:
    name = f"csvimport_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        seed(url, '"')
        yield Db("postgresql", url, "postgresql", "public", "true", "false", ("12.50", "7.00"))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def db(request: pytest.FixtureRequest) -> Db:
    found: Db = request.getfixturevalue(f"{request.param}_db")
    return found


# --- reading -----------------------------------------------------------------------------


def test_table_reads_every_row_as_text_in_primary_key_order(db: Db) -> None:
    src = open_source(db.spec(table="users"))
    assert src.kind == db.kind
    assert src.columns() == ["id", "email", "active", "created", "score", "nickname"]
    assert records(src) == [
        {"id": "1", "email": "a@x.com", "active": db.true, "created": "2020-01-31 09:30:00",
         "score": db.scores[0], "nickname": "Ann", ROW: 1},
        {"id": "2", "email": "b@x.com", "active": db.false, "created": "",
         "score": "", "nickname": "", ROW: 2},
        {"id": "3", "email": "c@x.com", "active": db.true, "created": "2021-12-24 18:00:05",
         "score": db.scores[1], "nickname": "NULL", ROW: 3},
    ]  # fmt: skip


def test_null_reads_as_empty_text_and_the_text_null_stays_text(db: Db) -> None:
    src = open_source(db.spec(query="SELECT nickname, created FROM users ORDER BY id"))
    assert [(r["nickname"], r["created"]) for r in records(src)] == [
        ("Ann", "2020-01-31 09:30:00"),
        ("", ""),
        ("NULL", "2021-12-24 18:00:05"),
    ]


def test_timestamps_read_as_iso_8601_with_a_space(db: Db) -> None:
    src = open_source(db.spec(query="SELECT created FROM users WHERE id = 1"))
    assert [r["created"] for r in records(src)] == ["2020-01-31 09:30:00"]


def test_booleans_read_as_true_false_or_the_databases_own_digits(db: Db) -> None:
    src = open_source(db.spec(query="SELECT active FROM users ORDER BY id"))
    assert [r["active"] for r in records(src)] == [db.true, db.false, db.true]


def test_query_runs_as_given_with_colons_percent_signs_and_a_trailing_semicolon(
    db: Db,
) -> None:
    query = (
        "SELECT email, nickname AS nick, 'a:b %s 100%' AS literal FROM users "
        "WHERE email LIKE '%@x.com' ORDER BY id DESC;"
    )
    src = open_source(db.spec(query=query))
    assert src.columns() == ["email", "nick", "literal"]
    assert records(src) == [
        {"email": "c@x.com", "nick": "NULL", "literal": "a:b %s 100%", ROW: 1},
        {"email": "b@x.com", "nick": "", "literal": "a:b %s 100%", ROW: 2},
        {"email": "a@x.com", "nick": "Ann", "literal": "a:b %s 100%", ROW: 3},
    ]


@pytest.mark.parametrize("mode", ["table", "query"])
def test_chunks_of_three_over_ten_rows_number_every_row_once_in_order(db: Db, mode: str) -> None:
    option = {"table": "many"} if mode == "table" else {"query": "SELECT * FROM many ORDER BY n"}
    chunks = list(open_source(db.spec(chunk_rows=3, **option)).chunks())
    assert [len(chunk) for chunk in chunks] == [3, 3, 3, 1]
    combined = pd.concat(chunks)
    assert list(combined[ROW]) == list(range(1, 11))
    assert list(combined["n"]) == [str(n) for n in range(1, 11)]
    assert list(combined["label"]) == [f"user {n}" for n in range(1, 11)]
    assert not combined.isna().any().any()


def test_empty_table_has_its_columns_and_no_rows(db: Db) -> None:
    src = open_source(db.spec(table="empty"))
    assert src.columns() == ["email", "name"]
    assert list(src.chunks()) == []


def test_table_and_column_names_that_need_quoting_are_quoted(db: Db) -> None:
    src = open_source(db.spec(table="legacy users"))
    assert src.columns() == ["e-mail", "Order"]
    assert records(src) == [{"e-mail": "a@x.com", "Order": "1", ROW: 1}]


def test_schema_qualified_table_is_found(db: Db) -> None:
    src = open_source(db.spec(table=f"{db.database}.users"))
    assert [r["email"] for r in records(src)] == ["a@x.com", "b@x.com", "c@x.com"]
    assert src.fingerprint()["rows"] == 3


def test_fingerprint_names_the_table_or_query_and_counts_rows(db: Db) -> None:
    table = open_source(db.spec(table="many"))
    assert table.fingerprint() == {"kind": db.kind, "url": db.url, "table": "many", "rows": 10}
    query = "SELECT email FROM users WHERE id > 1"
    fingerprint = open_source(db.spec(query=query)).fingerprint()
    assert fingerprint == {"kind": db.kind, "url": db.url, "query": query, "rows": 2}


def test_description_names_the_url_and_the_table_or_query(db: Db) -> None:
    assert open_source(db.spec(table="users")).describe() == f"{db.url} table users"
    long = "SELECT email,\n       nickname FROM users WHERE email LIKE '%@x.com' ORDER BY id"
    assert open_source(db.spec(query=long)).describe() == (
        f"{db.url} query SELECT email, nickname FROM users WHERE email LIKE '%@x.com'..."
    )


# --- looking up by key ------------------------------------------------------------------


@pytest.fixture
def people(db: Db) -> Iterator[tuple[Db, str]]:
    """A table of its own (dropped after) holding the hostile lookup values, a NULL and an
    empty email, and a timestamp; rows inserted out of key order."""
    table = f"lookup_{uuid.uuid4().hex[:12]}"
    rows = [{"id": n, **person} for n, person in enumerate(lookup_people(), 1)]
    rows += [{"id": len(rows) + 1, "email": None, "name": "No email"},
             {"id": len(rows) + 2, "email": "", "name": "Empty email"}]  # fmt: skip
    engine = sa.create_engine(db.url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email VARCHAR(200), "
            "name VARCHAR(200), joined TIMESTAMP NULL)"
        )
        insert = sa.text(f"INSERT INTO {table} (id, email, name) VALUES (:id, :email, :name)")
        conn.execute(insert, rows[::-1])
        conn.exec_driver_sql(f"UPDATE {table} SET joined = '2020-01-31 09:30:00' WHERE id = 2")
    try:
        yield db, table
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {table}")


def lookup_spec(people: tuple[Db, str], mode: str) -> SourceSpec:
    db, table = people
    if mode == "table":
        return db.spec(table=table)
    # Colons, percent signs and a trailing semicolon: the query is wrapped, not rewritten.
    return db.spec(query=f"SELECT id, email, name, joined, 'a:b %s 100%' AS literal FROM {table} "
                         "WHERE email IS NULL OR email NOT LIKE '%none%' ORDER BY id;")  # fmt: skip


def without_row(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != ROW} for record in found]


@pytest.mark.parametrize("mode", ["table", "query"])
def test_lookup_finds_exactly_the_records_whose_column_equals_the_value_as_chunks_gives_them(
    people: tuple[Db, str], mode: str
) -> None:
    src = open_source(lookup_spec(people, mode))
    every = records(src)
    for value in [*LOOKUP_HOSTILE, "twice@x.com"]:
        expected = without_row([r for r in every if r["email"] == value])
        assert expected, value
        assert src.lookup("email", value) == expected, value
    assert [r["id"] for r in src.lookup("email", "twice@x.com")] == ["15", "16"]
    for missing in ["nobody@x.com", "%", "_", "a%@x.com", "A_B@X.COM", "\ud800", "a\x00b"]:
        assert src.lookup("email", missing) == [], missing


@pytest.mark.parametrize("mode", ["table", "query"])
@pytest.mark.parametrize("casefold", [False, True])
def test_lookup_asks_the_database_for_the_matching_rows_with_the_value_bound(
    people: tuple[Db, str], mode: str, casefold: bool
) -> None:
    src = open_source(lookup_spec(people, mode))
    sent: list[tuple[str, list[Any]]] = []

    def observe(*args: Any) -> None:  # conn, cursor, statement, parameters, context, many
        statement, parameters = args[2], args[3]
        sent.append((statement, list(parameters.values() if isinstance(parameters, dict)
                                     else parameters or ())))  # fmt: skip

    assert isinstance(src, DatabaseSource)
    sa.event.listen(src.engine, "before_cursor_execute", observe)
    value = "o'brien\"q@x.com"
    assert [r["name"] for r in src.lookup("email", value, casefold=casefold)] == ["User 1"]
    asked = [statement for statement, parameters in sent if value in parameters]
    assert len(asked) == 1 and "WHERE" in asked[0].split(), sent
    assert not any(value in statement for statement, _ in sent)
    assert ("lower(" in asked[0].lower()) is casefold


@pytest.mark.parametrize("mode", ["table", "query"])
def test_lookup_with_casefold_compares_both_sides_lowered(
    people: tuple[Db, str], mode: str
) -> None:
    src = open_source(lookup_spec(people, mode))
    found = src.lookup("email", "ZOË@EXÄMPLE.COM", casefold=True)
    assert [r["email"] for r in found] == ["zoë@exämple.com", "ZOË@exämple.com"]
    assert [r["email"] for r in src.lookup("email", "A_B@X.COM", casefold=True)] == ["a_b@x.com"]
    assert src.lookup("email", "100%@X.COM", casefold=True)[0]["email"] == "100%@x.com"


@pytest.mark.parametrize("mode", ["table", "query"])
def test_lookup_of_an_empty_value_finds_null_and_empty_text(
    people: tuple[Db, str], mode: str
) -> None:
    src = open_source(lookup_spec(people, mode))
    found = src.lookup("email", "")
    assert [(r["email"], r["name"]) for r in found] == [("", "No email"), ("", "Empty email")]
    assert found == without_row([r for r in records(src) if r["email"] == ""])


@pytest.mark.parametrize("mode", ["table", "query"])
def test_lookup_by_a_number_or_a_timestamp_column_compares_their_text(
    people: tuple[Db, str], mode: str
) -> None:
    src = open_source(lookup_spec(people, mode))
    assert [r["email"] for r in src.lookup("id", "3")] == ["a_b@x.com"]
    assert src.lookup("id", "3") == without_row([r for r in records(src) if r["id"] == "3"])
    assert [r["id"] for r in src.lookup("joined", "2020-01-31 09:30:00")] == ["2"]
    for missing in ["abc", "3.0", "03", " 3", ""]:
        assert src.lookup("id", missing) == [], missing


@pytest.mark.parametrize("mode", ["table", "query"])
def test_lookup_by_a_column_the_source_lacks_is_refused_naming_its_columns(
    people: tuple[Db, str], mode: str
) -> None:
    src = open_source(lookup_spec(people, mode))
    for value in ["a@x.com", "a\x00b"]:
        with pytest.raises(SourceError) as info:
            src.lookup("Email", value)
        assert str(info.value).startswith(f"{src.describe()} has no column 'Email' to look up by")
        assert "(its columns: id, email, name, joined" in str(info.value)


# --- refusing ----------------------------------------------------------------------------


def test_missing_table_is_refused_listing_the_existing_tables(db: Db) -> None:
    src = open_source(db.spec(table="customers"))
    for read in (src.columns, lambda: list(src.chunks()), src.fingerprint):
        with pytest.raises(SourceError) as info:
            read()
        assert str(info.value) == (
            f"No table 'customers' in {db.url} (tables there: empty, legacy users, many, users)."
        )
        assert info.value.hint is not None and "--table" in info.value.hint


def test_bad_query_is_refused_with_the_databases_own_message(db: Db) -> None:
    src = open_source(db.spec(query="SELECT no_such_column FROM users"))
    for read in (src.columns, lambda: list(src.chunks()), src.fingerprint):
        with pytest.raises(SourceError) as info:
            read()
        message = str(info.value)
        assert message.startswith(f"{db.url} query SELECT no_such_column FROM users: ")
        assert "no_such_column" in message.split(": ", 1)[1]
        assert "\n" not in message and "[SQL:" not in message
        assert info.value.hint == SQL_HINT


def test_query_that_writes_is_refused_and_changes_nothing(db: Db) -> None:
    src = open_source(db.spec(query="DELETE FROM many"))
    with pytest.raises(SourceError):
        list(src.chunks())
    with pytest.raises(SourceError):
        src.columns()
    assert db.count("many") == 10


def test_query_naming_a_column_twice_is_refused(db: Db) -> None:
    src = open_source(db.spec(query="SELECT id, email, id FROM users"))
    for read in (src.columns, lambda: list(src.chunks())):
        with pytest.raises(SourceError, match="names a column more than once: 'id'") as info:
            read()
        assert info.value.hint is not None and "AS" in info.value.hint


@pytest.mark.parametrize(
    "options",
    [{}, {"table": "users", "query": "SELECT 1"}, {"table": "  "}],
    ids=["neither", "both", "blank-table"],
)
def test_database_needs_exactly_one_of_table_or_query(
    sqlite_db: Db, options: dict[str, str]
) -> None:
    with pytest.raises(SourceError, match="needs exactly one of --table or --query"):
        open_source(sqlite_db.spec(**options))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delimiter": ";"}, "--delimiter only applies to CSV files"),
        ({"encoding": "cp1252"}, "--encoding only applies to files"),
    ],
)
def test_file_options_with_a_database_are_refused(
    sqlite_db: Db, options: dict[str, str], message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(sqlite_db.spec(table="users", **options))


@pytest.mark.parametrize(
    "url",
    [
        "oracle://scott:tiger@db.example.com/legacy",
        "postgresql+psycopg2://u:tiger@127.0.0.1/legacy",
        "mysql+mysqldb://u:tiger@127.0.0.1/legacy",
        "mssql+pyodbc://u:tiger@dsn",
    ],
)
def test_unknown_dialect_or_driver_is_refused_listing_the_supported_urls(url: str) -> None:
    with pytest.raises(SourceError, match="^Unsupported database URL ") as info:
        open_source(SourceSpec(url, table="users"))
    assert "tiger" not in str(info.value)
    assert info.value.hint == URL_HINT
    assert "mysql+pymysql://" in URL_HINT and "postgresql+psycopg://" in URL_HINT


@pytest.mark.parametrize(
    ("bare", "driver"),
    [
        ("mysql://root@127.0.0.1:3306/{database}", "mysql+pymysql"),
        ("postgresql://postgres@127.0.0.1:5432/{database}", "postgresql+psycopg"),
        ("postgres://postgres@127.0.0.1:5432/{database}", "postgresql+psycopg"),
    ],
)
def test_bare_urls_use_the_installed_drivers(
    mariadb_db: Db, postgresql_db: Db, bare: str, driver: str
) -> None:
    target = mariadb_db if bare.startswith("mysql") else postgresql_db
    database = target.url.rsplit("/", 1)[1]
    src = open_source(SourceSpec(bare.format(database=database), table="many"))
    assert src.describe().startswith(f"{driver}://")
    assert src.fingerprint()["rows"] == 10


# --- connecting and passwords ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown", "kind"),
    [
        (
            f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:1/legacy",
            "mysql+pymysql://root:***@127.0.0.1:1/legacy",
            "mysql",
        ),
        (
            f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/legacy",
            "postgresql+psycopg://postgres:***@127.0.0.1:1/legacy",
            "postgresql",
        ),
    ],
    ids=["mariadb", "postgresql"],
)
def test_unreachable_database_is_refused_naming_it_without_the_password(
    url: str, shown: str, kind: str
) -> None:
    src = open_source(SourceSpec(url, table="users"))
    assert src.kind == kind
    assert src.describe() == f"{shown} table users"
    for read in (src.columns, lambda: list(src.chunks()), src.fingerprint):
        with pytest.raises(SourceError) as info:
            read()
        error = info.value
        assert str(error).startswith(f"Cannot connect to {shown}: ")
        assert "refused" in str(error).lower()
        assert error.hint is not None and "credentials" in error.hint
        assert PASSWORD not in f"{error} {error.hint} {error.source} {error!r}"


def test_password_is_hidden_in_description_and_fingerprint(postgresql_db: Db) -> None:
    # PostgreSQL here trusts local connections, so the password is sent and ignored.
    url = postgresql_db.url.replace("postgres@", f"postgres:{PASSWORD}@")
    src = open_source(SourceSpec(url, table="many"))
    fingerprint = src.fingerprint()
    assert fingerprint["rows"] == 10
    assert fingerprint["url"] == postgresql_db.url.replace("postgres@", "postgres:***@")
    assert PASSWORD not in repr(fingerprint) and PASSWORD not in src.describe()


def test_wrong_password_is_refused_without_echoing_it(mariadb_db: Db) -> None:
    url = mariadb_db.url.replace("root@", f"root:{PASSWORD}@")
    with pytest.raises(SourceError, match="Access denied") as info:
        open_source(SourceSpec(url, table="users")).columns()
    assert PASSWORD not in f"{info.value} {info.value.hint} {info.value!r}"


def test_mysql_password_comes_from_MYSQL_PWD_when_not_in_the_url(
    mariadb_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYSQL_PWD", PASSWORD)
    src = open_source(SourceSpec(mariadb_db.url, table="users"))
    with pytest.raises(SourceError, match=r"Access denied .*using password: YES") as info:
        src.columns()
    assert PASSWORD not in f"{info.value} {src.describe()} {info.value!r}"


def test_postgresql_credentials_come_from_the_environment(
    postgresql_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "5432")
    database = postgresql_db.url.rsplit("/", 1)[1]
    src = open_source(SourceSpec(f"postgresql+psycopg:///{database}", table="many"))
    assert src.fingerprint()["rows"] == 10


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql+psycopg://u:S1@h:5432/db?sslpassword=S2&sslmode=require",
         "postgresql+psycopg://u:***@h:5432/db?sslpassword=***&sslmode=require"),
        ("mysql://u@h/db?Password=S1&charset=utf8mb4;token=S2&api_key=S3&x=",
         "mysql://u@h/db?Password=***&charset=utf8mb4;token=***&api_key=***&x="),
        ("mysql://u:p@ss/w?rd S1@h:3306/db", "mysql://u:***@h:3306/db"),  # not %-encoded
        ("sqlite:///a@b.db?pass%77ord=S1", "sqlite:///a@b.db?pass%77ord=***"),
        ("Cannot connect to mysql://u:S1@h/db: user 'u'@'h' denied",
         "Cannot connect to mysql://u:***@h/db: user 'u'@'h' denied"),
        ("dsn: host=h password='S 1' passwd=S2 user=u", "dsn: host=h password=*** passwd=*** user=u"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)  # fmt: skip
def test_every_credential_a_url_or_message_carries_is_masked(text: str, masked: str) -> None:
    assert mask_credentials(text, url="://" in text.split()[0]) == masked


def test_a_password_holding_url_syntax_is_masked_whole(mariadb_db: Db) -> None:
    url = f"mysql+pymysql://root:p@ss/w?rd {PASSWORD}@127.0.0.1:3306/x"  # not %-encoded
    assert mask_credentials(url, url=True) == "mysql+pymysql://root:***@127.0.0.1:3306/x"
    with pytest.raises(SourceError) as info:
        open_source(SourceSpec(url, table="users")).columns()
    assert PASSWORD not in f"{info.value} {info.value.source}" and "w?rd" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://root:p@ss:{secret}@127.0.0.1:3306/x",  # SQLAlchemy: a port "ss:..."
        "postgresql+psycopg://u:{secret}@127.0.0.1:notaport/db",
        "postgresql+psycopg://u:{secret}@[::1/db",
    ],
)
def test_an_unparseable_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(SourceError, match="^Cannot parse the database URL ") as info:
        open_source(SourceSpec(url.format(secret=PASSWORD), table="users"))
    assert PASSWORD not in f"{info.value} {info.value.hint} {info.value.source}"
    assert PASSWORD not in "".join(traceback.format_exception(info.value))  # nor its cause


def test_a_password_in_the_query_string_is_hidden_in_description_and_fingerprint(
    postgresql_db: Db,
) -> None:
    src = open_source(SourceSpec(f"{postgresql_db.url}?password={PASSWORD}", table="many"))
    fingerprint = src.fingerprint()
    assert fingerprint["rows"] == 10
    assert fingerprint["url"] == f"{postgresql_db.url}?password=***"
    assert PASSWORD not in f"{fingerprint} {src.describe()}"


def test_a_wrong_password_in_the_query_string_is_refused_without_echoing_it(
    mariadb_db: Db,
) -> None:
    with pytest.raises(SourceError, match="Access denied") as info:
        open_source(SourceSpec(f"{mariadb_db.url}?password={PASSWORD}", table="users")).columns()
    assert PASSWORD not in f"{info.value} {info.value.hint} {info.value.source} {info.value!r}"


def test_an_option_the_driver_does_not_take_is_refused_naming_it(mariadb_db: Db) -> None:
    src = open_source(SourceSpec(f"{mariadb_db.url}?bogus=1&password={PASSWORD}", table="users"))
    with pytest.raises(SourceError, match="does not take an option .*'bogus'") as info:
        src.columns()
    assert info.value.hint is not None and "'?'" in info.value.hint
    assert PASSWORD not in f"{info.value} {info.value.source}"


def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
    return csvimport(dict(os.environ), *args)


def leaks(secret: str, result: subprocess.CompletedProcess[str], *directories: Path) -> list[str]:
    """Where ``secret`` shows: stdout, stderr, or a file under the directories."""
    found = [name for name, text in (("stdout", result.stdout), ("stderr", result.stderr))
             if secret in text]  # fmt: skip
    for directory in directories:
        found += [str(f) for f in directory.rglob("*")
                  if f.is_file() and secret.encode() in f.read_bytes()]  # fmt: skip
    return found


@pytest.fixture
def offline(tmp_path: Path) -> tuple[Path, Path]:
    """A pool spec and a mapping of the legacy columns, to build without the sandbox."""
    spec, mapping = tmp_path / "pool.json", tmp_path / "mapping.toml"
    offline_snapshot().save(spec)
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    return spec, mapping


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/legacy.db?password={secret}",
        "postgresql+psycopg://u:{secret}@127.0.0.1:5432/nonexistent_db?sslpassword={secret}2",
        "mysql+pymysql://root:{secret}@127.0.0.1:3306/nonexistent_db?passwd={secret}3",
    ],
    ids=["sqlite", "postgresql", "mariadb"],
)
@pytest.mark.parametrize("with_traceback", [False, True], ids=["message", "traceback"])
def test_a_refused_build_shows_no_credential_of_its_url(
    url: str, with_traceback: bool, offline: tuple[Path, Path], tmp_path: Path
) -> None:
    sqlite3.connect(tmp_path / "legacy.db").close()
    spec, mapping = offline
    out = tmp_path / "run"
    result = cli_run("build", url.format(tmp=tmp_path, secret=PASSWORD), "--table", "legacy",
                     "--mapping", str(mapping), "--out", str(out), "--pool-spec", str(spec),
                     *(["--traceback"] if with_traceback else []))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "error: " in result.stderr and "***" in result.stderr
    assert ("Traceback (most recent call last)" in result.stderr) == with_traceback
    assert leaks(PASSWORD, result, tmp_path) == []
    assert not out.exists()


def test_a_build_from_a_url_with_credentials_stores_none_and_retry_asks_for_the_url(
    postgresql_db: Db, offline: tuple[Path, Path], tmp_path: Path
) -> None:
    from csvimport.report.retrysource import write_retry_source
    from csvimport.rundir import RunDir, read_rejects

    with legacy_table(postgresql_db) as table:
        # PostgreSQL here trusts local connections: the password is sent, and ignored.
        url = postgresql_db.url.replace("postgres@", f"postgres:{PASSWORD}@")
        url += f"?password={PASSWORD}x&application_name=csvimport"
        spec, mapping = offline
        out = tmp_path / "run"
        result = cli_run("build", url, "--table", table, "--mapping", str(mapping),
                         "--out", str(out), "--pool-spec", str(spec))  # fmt: skip
        assert result.returncode == 1, result.stderr  # bob is rejected
        starter = tmp_path / "starter.toml"
        mapped = cli_run("map", url, "--table", table, "--pool-spec", str(spec),
                         "--out", str(starter))  # fmt: skip
        assert mapped.returncode == 0, mapped.stderr
        assert leaks(PASSWORD, result, out, tmp_path) == [] and leaks(PASSWORD, mapped) == []
        stored = json.loads((out / "manifest.json").read_text())["source"]["url"]
        assert stored == postgresql_db.url.replace("postgres@", "postgres:***@") + (
            "?application_name=csvimport&password=***"
        )
        run = RunDir.open(out)
        rejected = read_rejects(run)
        with pytest.raises(RefusedError, match="stored without its credentials") as info:
            write_retry_source(run, rejected)
        assert info.value.hint is not None and "--source" in info.value.hint
        retry = write_retry_source(run, rejected, source=url)
        assert retry is not None and "not an email" in retry.read_text()


@contextmanager
def legacy_table(db: Db) -> Iterator[str]:
    """A table of two legacy users, ann and bob (whose email is not one), dropped after."""
    table = f"legacy_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(db.url, poolclass=NullPool)
    columns = ", ".join(f"{c} TEXT" for c in LEGACY_COLUMNS)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} ({columns})")
        conn.exec_driver_sql(f"INSERT INTO {table} VALUES ('1', 'ann', 'ann@example.com', "
                             "'y', '', 'Ann', 'Lee', '2024-01-01'), ('2', 'bob', 'not an "
                             "email', 'y', '', 'Bob', 'Roe', '2024-01-01')")  # fmt: skip
    try:
        yield table
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {table}")


def test_start_and_report_of_a_database_build_show_and_store_no_password(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, postgresql_db: Db, tmp_path: Path
) -> None:
    from csvimport.build.builder import BuildOptions, build
    from csvimport.pool import read_pool

    # PostgreSQL here trusts local connections: the password is sent, and ignored.
    url = postgresql_db.url.replace("postgres@", f"postgres:{PASSWORD}@")
    url += f"?password={PASSWORD}x"
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    out = tmp_path / "run"
    env = env_for(sandbox, pool)
    with legacy_table(postgresql_db) as table:
        build(BuildOptions(SourceSpec(url, table=table), mapping, out),
              read_pool(cognito, pool.user_pool_id))  # fmt: skip
        started = csvimport(env, "start", str(out))
        assert started.returncode == 0, started.stderr  # ann imported (bob never written)
        reported = csvimport(env, "report", str(out), "--source", url)
        assert reported.returncode == 1, reported.stderr
        assert "not an email" in (out / "retry-source.csv").read_text()
        # A wrong password for the source: the report is written, the retry source not.
        wrong = MARIADB_ADMIN.replace("root@", f"root:{PASSWORD}@") + postgresql_db.name
        refused = csvimport(env, "report", str(out), "--source", wrong)
        assert refused.returncode == 1, refused.stderr
        assert "warning: retry-source.csv not written" in refused.stderr
    for result in (started, reported, refused):
        assert leaks(PASSWORD, result, tmp_path) == []


# --- SQLite files ------------------------------------------------------------------------


def test_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    with pytest.raises(SourceError, match="no such database file") as info:
        open_source(SourceSpec(f"sqlite:///{path}", table="users"))
    assert info.value.hint is not None and "never creates" in info.value.hint
    assert not path.exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_sqlite_without_a_file_is_refused(url: str) -> None:
    with pytest.raises(SourceError, match="names no database file"):
        open_source(SourceSpec(url, table="users"))


def test_sqlite_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    path.write_text("email,name\na@x.com,Ann\n" * 100)
    src = open_source(SourceSpec(f"sqlite:///{path}", table="users"))
    with pytest.raises(SourceError, match="^Cannot connect to .*file is not a database"):
        src.columns()


def test_sqlite_database_is_opened_read_only(sqlite_db: Db) -> None:
    path = Path(sa.make_url(sqlite_db.url).database or "")
    before = path.stat().st_mtime_ns, path.read_bytes()
    src = open_source(sqlite_db.spec(query="DELETE FROM users"))
    with pytest.raises(SourceError, match="readonly"):
        list(src.chunks())
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert not Path(f"{path}-journal").exists()


@pytest.mark.parametrize("mode", ["table", "query"])
def test_stopping_after_the_first_chunk_releases_the_connection(db: Db, mode: str) -> None:
    option = {"table": "many"} if mode == "table" else {"query": "SELECT * FROM many"}
    src = open_source(db.spec(chunk_rows=2, **option))
    chunks = src.chunks()
    assert len(next(chunks)) == 2
    assert isinstance(chunks, Generator)
    chunks.close()
    # The same source reads again from the start, on a fresh connection.
    assert len(pd.concat(list(src.chunks()))) == 10
