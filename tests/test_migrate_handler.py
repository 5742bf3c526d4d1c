"""The user-migration function end to end: a migration folder, a real legacy source (SQLite,
MariaDB 127.0.0.1:3306, PostgreSQL 127.0.0.1:5432, or a lookup file), hashes made by the
reference implementations, and the Lambda handler called as Cognito calls it."""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import sqlite3
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import psycopg
import pymysql
import pytest
import sqlalchemy as sa
from aws_lambda_powertools import Logger

from csvimport.build.mapping.spec import Mapping
from csvimport.build.mapping.user import UserMapper
from csvimport.migrate import handler as migration
from csvimport.migrate.handler import MigrationRefused, MigrationUnavailable
from csvimport.migrate.settings import (
    DIR_ENV,
    MAPPING_FILE,
    PASSWORD_ENV,
    POOL_FILE,
    SECRET_ENV,
    MigrationSettings,
    SourceSettings,
    Timeouts,
    database_url,
    lookup_columns,
    prepare_folder,
    write_settings,
)
from csvimport.pool import Attribute, PoolSnapshot
from csvimport.sandbox import Sandbox

from . import helpers
from .helpers import LEGACY_COLUMNS, LEGACY_MAPPING

PASSWORD = "correct horse battery staple"
# The test pools' legacy mapping, with the legacy hash column.
MAPPING = (
    LEGACY_MAPPING
    + """
[attributes.password_hash]
column = "pw"
"""
)
POOL = PoolSnapshot(
    user_pool_id="us-east-1_migrate", name="migrate",
    header=["cognito:username", "email", "email_verified", "phone_number",
            "phone_number_verified", "name", "custom:legacy_id", "cognito:mfa_enabled"],
    attributes=[Attribute("email"), Attribute("phone_number"),
                Attribute("custom:legacy_id", min_length=1, max_length=16)],
    alias_attributes=["email"], case_sensitive=False,
)  # fmt: skip
COLUMNS = [*LEGACY_COLUMNS, "pw"]
MODIFIED = "2024-01-01"


def sha512_crypt(password: str) -> str:
    """A sha512-crypt hash made by OpenSSL, the reference implementation."""
    made = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return made.stdout.strip()


@pytest.fixture(scope="module")
def users() -> list[tuple[str, ...]]:
    bcrypt_13 = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=13)).decode()
    return [
        ("1", "Ann", "Ann@Example.COM", "y", "(415) 555-2671", "Ann", "Lee", MODIFIED,
         sha512_crypt(PASSWORD)),
        ("2", "bob", "bob@example.com", "n", "", "Bob", "", MODIFIED, bcrypt_13),  # unverified
        ("3", "carl x", "carl@example.com", "y", "", "Carl", "", MODIFIED,
         sha512_crypt(PASSWORD)),  # a space: Cognito refuses the username
        ("4", "Dup", "dup1@example.com", "y", "", "", "", MODIFIED, sha512_crypt(PASSWORD)),
        ("5", "DUP", "dup2@example.com", "y", "", "", "", MODIFIED, sha512_crypt(PASSWORD)),
        ("6", "dana", "dana@example.com", "y", "", "", "", MODIFIED, "not-a-hash-of-any-scheme"),
        ("7", "eve", "eve@example.com", "y", "", "", "", MODIFIED, ""),  # no hash
    ]  # fmt: skip


def sqlite_source(tmp: Path, rows: list[tuple[str, ...]]) -> SourceSettings:
    path = tmp / "legacy.db"
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE users ({', '.join(c + ' TEXT' for c in COLUMNS)})")
        db.executemany(f"INSERT INTO users VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    return SourceSettings(url=f"sqlite:///{path}", table="users")


@pytest.fixture
def mariadb_table(users: list[tuple[str, ...]]) -> Iterator[str]:
    table = f"mig_{uuid.uuid4().hex[:10]}"
    db = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, "
                    + ", ".join(f"{c} VARCHAR(255)" for c in COLUMNS[1:])
                    + ", INDEX (login), INDEX (email))")  # fmt: skip
        cur.executemany(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(COLUMNS))})", users)
    db.commit()
    try:
        yield table
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")
        db.close()


@pytest.fixture
def postgres_table(users: list[tuple[str, ...]]) -> Iterator[str]:
    table = f"mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True
    ) as db:
        db.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, "
                   + ", ".join(f"{c} TEXT" for c in COLUMNS[1:]) + ")")  # fmt: skip
        db.execute(f"CREATE INDEX ON {table} (lower(login))")
        with db.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(COLUMNS))})", users
            )
        try:
            yield table
        finally:
            db.execute(f"DROP TABLE {table}")


def lookup_file_source(tmp: Path, rows: list[tuple[str, ...]]) -> SourceSettings:
    with (tmp / "migration" / "lookup.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([COLUMNS, *rows])
    return SourceSettings(file="lookup.csv", delimiter=",")


def migration_folder(tmp: Path, source: SourceSettings, **timeouts: Any) -> Path:
    folder = tmp / "migration"
    folder.mkdir(exist_ok=True)
    (folder / MAPPING_FILE).write_text(MAPPING, encoding="utf-8")
    POOL.save(folder / POOL_FILE)
    mapping = Mapping.load(folder / MAPPING_FILE)
    write_settings(folder, MigrationSettings(
        source=source, lookup=lookup_columns(mapping, POOL), password_column="pw",
        timeouts=Timeouts(**timeouts),
    ))  # fmt: skip
    return folder


@pytest.fixture(params=["sqlite", "mariadb", "postgresql", "lookup-file"])
def legacy(
    request: pytest.FixtureRequest, tmp_path: Path, users: list[tuple[str, ...]],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:  # fmt: skip
    (tmp_path / "migration").mkdir()
    if request.param == "sqlite":
        source = sqlite_source(tmp_path, users)
    elif request.param == "mariadb":
        table = request.getfixturevalue("mariadb_table")
        source = SourceSettings(url="mysql+pymysql://root@127.0.0.1:3306/test", table=table)
    elif request.param == "postgresql":
        table = request.getfixturevalue("postgres_table")
        source = SourceSettings(url="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                                table=table)  # fmt: skip
    else:
        source = lookup_file_source(tmp_path, users)
    folder = migration_folder(tmp_path, source)
    monkeypatch.setenv(DIR_ENV, str(folder))
    migration.reset()
    yield folder
    migration.reset()


def event(
    user: str, password: str | None = PASSWORD, trigger: str = "UserMigration_Authentication"
):  # type: ignore[no-untyped-def]  # noqa: E501
    request: dict[str, Any] = {"validationData": {}, "clientMetadata": {}}
    if password is not None:
        request["password"] = password
    return {
        "version": "1", "triggerSource": trigger, "region": "us-east-1",
        "userPoolId": POOL.user_pool_id, "userName": user,
        "callerContext": {"awsSdkVersion": "aws-sdk", "clientId": "client"},
        "request": request, "response": {},
    }  # fmt: skip


def expected_attributes(row: tuple[str, ...]) -> dict[str, str]:
    """What UserMapper gives the user, as userAttributes carry it."""
    mapper = UserMapper(Mapping.from_dict(tomllib.loads(MAPPING)), POOL)
    user = mapper.map(dict(zip(COLUMNS, row, strict=True)))
    assert user.ok
    return {k: v for k, v in user.attributes.items()
            if v and k not in ("cognito:username", "cognito:mfa_enabled")}  # fmt: skip


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the function logs, line by line (its Logger, writing here instead of stdout)."""
    written = io.StringIO()
    logger = Logger(service=f"migration-test-{uuid.uuid4().hex[:8]}",
                    logger_handler=logging.StreamHandler(written))  # fmt: skip
    monkeypatch.setattr(migration, "LOGGER", logger)
    return written


def log_lines(log: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    log.seek(0)
    log.truncate()
    return lines


def test_the_right_password_migrates_the_user_confirmed_with_the_mapped_attributes(
    legacy: Path,
    users: list[tuple[str, ...]],
    capfd: pytest.CaptureFixture[str],
    log: io.StringIO,
) -> None:
    answer = migration.handler(event("ann"), None)
    assert answer["response"] == {
        "userAttributes": expected_attributes(users[0]),
        "finalUserStatus": "CONFIRMED",
        "messageAction": "SUPPRESS",
    }
    assert answer["response"]["userAttributes"]["email"] == "Ann@example.com"
    # by the email alias too, in any case (the pool is case-insensitive); bcrypt cost 13
    assert migration.handler(event("ANN@example.com"), None)["response"]["finalUserStatus"] == (
        "CONFIRMED"
    )
    assert migration.handler(event("bob"), None)["response"]["userAttributes"] == (
        expected_attributes(users[1])
    )
    text = log.getvalue()
    assert PASSWORD not in text and "callerContext" not in text and "request" not in text
    assert PASSWORD not in str(capfd.readouterr())
    lines = log_lines(log)
    assert [(line["legacy_id"], line["outcome"]) for line in lines] == [
        ("1", "migrated"), ("1", "migrated"), ("2", "migrated"),
    ]  # fmt: skip
    assert all(isinstance(line["ms"], float) for line in lines)


@pytest.mark.parametrize(
    ("user", "password", "outcome", "legacy_id"),
    [
        ("ann", "wrong password", "wrong_password", "1"),
        ("nobody", PASSWORD, "unknown_user", ""),
        ("nobody@example.com", PASSWORD, "unknown_user", ""),
        ("carl x", PASSWORD, "rejected", "3"),  # Cognito refuses a username with a space
        ("dup", PASSWORD, "ambiguous", ""),  # "Dup" and "DUP": the same user to the pool
        ("dana", PASSWORD, "unknown_scheme", "6"),
        ("eve", PASSWORD, "no_hash", "7"),
    ],
)
def test_a_refused_sign_in_raises_one_message_and_logs_why(
    legacy: Path, capfd: pytest.CaptureFixture[str], log: io.StringIO, user: str, password: str,
    outcome: str, legacy_id: str,
) -> None:  # fmt: skip
    with pytest.raises(MigrationRefused) as raised:
        migration.handler(event(user, password), None)
    assert str(raised.value) == migration.REFUSED_MESSAGE
    assert password not in log.getvalue() and password not in str(capfd.readouterr())
    [line] = log_lines(log)
    assert (line["outcome"], line["legacy_id"]) == (outcome, legacy_id)


def test_forgot_password_migrates_only_a_user_with_a_verified_channel(
    legacy: Path, users: list[tuple[str, ...]], log: io.StringIO
) -> None:
    answer = migration.handler(event("ann", None, "UserMigration_ForgotPassword"), None)
    assert answer["response"] == {
        "userAttributes": expected_attributes(users[0]),
        "finalUserStatus": "RESET_REQUIRED",
        "messageAction": "SUPPRESS",
    }
    with pytest.raises(MigrationRefused):  # bob's email is not verified
        migration.handler(event("bob", None, "UserMigration_ForgotPassword"), None)
    outcomes = [line["outcome"] for line in log_lines(log)]
    assert outcomes == ["reset_required", "no_verified_channel"]


def test_the_connection_is_opened_once_for_many_sign_ins(legacy: Path) -> None:
    migration.handler(event("ann"), None)
    migration.handler(event("ann@example.com"), None)
    with pytest.raises(MigrationRefused):
        migration.handler(event("nobody"), None)
    if migration.migrator().settings.source.url is not None:
        assert migration.migrator().users.connects == 1


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://root@127.0.0.1:9/test",  # nothing listens on the discard port
        "postgresql+psycopg://postgres@127.0.0.1:9/test",
        "mysql+pymysql://root@10.255.255.1:3306/test",  # unroutable: no answer at all
    ],
)
def test_an_unreachable_database_fails_the_sign_in_within_the_connect_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: io.StringIO, url: str
) -> None:
    folder = migration_folder(tmp_path, SourceSettings(url=url, table="users"),
                              connect_seconds=1.0)  # fmt: skip
    monkeypatch.setenv(DIR_ENV, str(folder))
    migration.reset()
    start = time.perf_counter()
    with pytest.raises(MigrationUnavailable):
        migration.handler(event("ann"), None)
    assert time.perf_counter() - start < 3.5  # libpq's floor is 2 s; Cognito waits 5
    [line] = log_lines(log)
    assert line["outcome"] == "source_unavailable"
    migration.reset()


def test_the_password_comes_from_the_environment_and_is_never_shown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    log: io.StringIO,
) -> None:
    # root has no password: MariaDB refuses a wrong one, and the message never shows it
    folder = migration_folder(
        tmp_path, SourceSettings(url="mysql+pymysql://csvimport_nobody@127.0.0.1:3306/test",
                                 table="users"))  # fmt: skip
    monkeypatch.setenv(DIR_ENV, str(folder))
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-db-password")
    migration.reset()
    with pytest.raises(MigrationUnavailable) as raised:
        migration.handler(event("ann"), None)
    assert "s3cret" not in str(raised.value) + log.getvalue() + str(capfd.readouterr())
    migration.reset()


def test_settings_refuse_a_url_with_a_password(tmp_path: Path) -> None:
    from csvimport.errors import ConfigError

    with pytest.raises(ConfigError, match="carries a credential"):
        migration_folder(tmp_path, SourceSettings(url="postgresql://u:pw@h/db", table="t"))


def built_run(tmp: Path, rows: list[tuple[str, ...]], deferred: list[int]) -> Path:
    """A run built by csvimport's own build from ``rows``, whose deferred.csv (as
    `build --password-fallback migrate` writes it) lists the source rows ``deferred``."""
    run, _ = helpers.build_rows(tmp, COLUMNS, rows, MAPPING, POOL)
    with (run / "deferred.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["source_row", "legacy_id", "username", "scheme", "reason"])
        out.writerows([[n, rows[n - 1][0], rows[n - 1][1], "sha512_crypt", "not importable"]
                       for n in deferred])  # fmt: skip
    return run


def test_migration_lookup_writes_only_the_deferred_users_records_privately(
    tmp_path: Path, users: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch,
    log: io.StringIO,
) -> None:  # fmt: skip
    run = built_run(tmp_path, users, deferred=[1, 2])
    done = helpers.csvimport(helpers.cli_env(), "migration-lookup", str(run))
    assert done.returncode == 0, done.stderr
    written = run / "migration" / "lookup.csv"
    assert done.stdout.strip() == str(written)
    assert "password hashes" in done.stderr
    assert written.stat().st_mode & 0o777 == 0o600
    with written.open(encoding="utf-8", newline="") as f:
        records = list(csv.DictReader(f))
    assert [r["id"] for r in records] == ["1", "2"]
    assert records[0] == dict(zip(COLUMNS, users[0], strict=True))
    # the function finds ann there, and nobody who was not deferred
    folder = migration_folder(tmp_path, SourceSettings(file="lookup.csv", delimiter=","))
    shutil.copyfile(written, folder / "lookup.csv")
    monkeypatch.setenv(DIR_ENV, str(folder))
    migration.reset()
    assert migration.handler(event("ann"), None)["response"]["finalUserStatus"] == "CONFIRMED"
    with pytest.raises(MigrationRefused):
        migration.handler(event("dana"), None)
    assert [line["outcome"] for line in log_lines(log)] == ["migrated", "unknown_user"]
    migration.reset()


def test_migration_lookup_refuses_a_run_that_defers_nobody(
    tmp_path: Path, users: list[tuple[str, ...]]
) -> None:
    run = built_run(tmp_path, users, deferred=[])
    (run / "deferred.csv").unlink()
    done = helpers.csvimport(helpers.cli_env(), "migration-lookup", str(run))
    assert done.returncode == 2
    assert "defers no users" in done.stderr and "--password-fallback migrate" in done.stderr


def test_prepare_folder_writes_everything_the_function_needs_from_a_run(
    tmp_path: Path, users: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch,
    log: io.StringIO,
) -> None:  # fmt: skip
    run = built_run(tmp_path, users, deferred=[1, 2])
    folder = tmp_path / "package" / "migration"
    settings = prepare_folder(run, folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "lookup.csv", "mapping.toml", "pool.json", "settings.json",
    ]  # fmt: skip
    assert (folder / "lookup.csv").stat().st_mode & 0o777 == 0o600
    assert settings.lookup == {"cognito:username": "login", "email": "email"}
    assert settings.password_column == "pw"
    assert json.loads((folder / "settings.json").read_text())["source"]["file"] == "lookup.csv"
    monkeypatch.setenv(DIR_ENV, str(folder))
    migration.reset()
    assert migration.handler(event("bob"), None)["response"]["finalUserStatus"] == "CONFIRMED"
    assert [line["outcome"] for line in log_lines(log)] == ["migrated"]
    migration.reset()


@pytest.mark.parametrize(
    ("shown", "url"),
    [
        ("postgresql+psycopg://app:***@db.internal:5432/legacy",
         "postgresql+psycopg://app@db.internal:5432/legacy"),
        ("mysql+pymysql://app@db/legacy?charset=utf8mb4", "mysql+pymysql://app@db/legacy?charset=utf8mb4"),
        ("sqlite:////srv/legacy.db", "sqlite:////srv/legacy.db"),
    ],
)  # fmt: skip
def test_the_functions_database_url_is_the_runs_without_its_password(shown: str, url: str) -> None:
    assert database_url(shown) == url


def test_a_run_url_with_a_masked_option_is_refused() -> None:
    from csvimport.errors import ConfigError

    with pytest.raises(ConfigError, match="sslpassword"):
        database_url("postgresql+psycopg://app@db/legacy?sslpassword=***")


def test_the_database_password_comes_from_a_secrets_manager_secret(
    sandbox: Sandbox, mariadb_table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], log: io.StringIO,
) -> None:  # fmt: skip
    account, secret = f"mig_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    db = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
    with db.cursor() as cur:
        cur.execute(f"CREATE USER '{account}'@'%%' IDENTIFIED BY %s", (secret,))
        cur.execute(f"GRANT SELECT ON test.{mariadb_table} TO '{account}'@'%'")
    try:
        arn = sandbox.client("secretsmanager").create_secret(
            Name=account, SecretString=json.dumps({"username": account, "password": secret})
        )["ARN"]
        folder = migration_folder(tmp_path, SourceSettings(
            url=f"mysql+pymysql://{account}@127.0.0.1:3306/test", table=mariadb_table))  # fmt: skip
        for name, value in {DIR_ENV: str(folder), SECRET_ENV: arn,
                            "AWS_ENDPOINT_URL": sandbox.endpoint_url, "AWS_DEFAULT_REGION": sandbox.region,
                            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            }.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        monkeypatch.delenv(PASSWORD_ENV, raising=False)
        migration.reset()
        assert migration.handler(event("ann"), None)["response"]["finalUserStatus"] == "CONFIRMED"
        assert migration.migrator().users.connects == 1
        assert secret not in log.getvalue() + str(capfd.readouterr())
        migration.reset()
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP USER '{account}'@'%'")
        db.close()


@pytest.mark.parametrize(
    ("url", "table_fixture", "slow"),
    [
        ("mysql+pymysql://root@127.0.0.1:3306/test", "mariadb_table", "SLEEP(3)"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/test", "postgres_table",
         "pg_sleep(3)::text"),
    ],
)  # fmt: skip
def test_a_slow_query_is_cut_at_the_statement_timeout(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    log: io.StringIO, url: str, table_fixture: str, slow: str,
) -> None:  # fmt: skip
    table = request.getfixturevalue(table_fixture)
    query = f"SELECT {', '.join(COLUMNS)}, {slow} AS slow FROM {table}"
    folder = migration_folder(tmp_path, SourceSettings(url=url, query=query), statement_ms=500)
    monkeypatch.setenv(DIR_ENV, str(folder))
    migration.reset()
    start = time.perf_counter()
    with pytest.raises(MigrationUnavailable):
        migration.handler(event("ann"), None)
    # cut by the database at 0.5 s, before the socket timeout (2 s) or the sleep (3 s)
    assert time.perf_counter() - start < 1.8
    assert [line["outcome"] for line in log_lines(log)] == ["source_unavailable"]
    migration.reset()


@pytest.mark.parametrize("backend", ["sqlite", "mariadb", "postgresql"])
def test_the_functions_connection_cannot_write(
    request: pytest.FixtureRequest, tmp_path: Path, users: list[tuple[str, ...]],
    monkeypatch: pytest.MonkeyPatch, backend: str,
) -> None:  # fmt: skip
    if backend == "sqlite":
        source = sqlite_source(tmp_path, users)
        table = "users"
    else:
        table = request.getfixturevalue(
            f"{'mariadb' if backend == 'mariadb' else 'postgres'}_table"
        )
        host = {
            "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
            "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        }[backend]
        source = SourceSettings(url=host, table=table)  # fmt: skip
    folder = migration_folder(tmp_path, source)
    monkeypatch.setenv(DIR_ENV, str(folder))
    migration.reset()
    migration.handler(event("ann"), None)
    engine = migration.migrator().users._database().engine
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError):
        conn.exec_driver_sql(f"DELETE FROM {table}")
    migration.reset()


def test_a_sign_in_refused_before_any_check_takes_as_long_as_a_wrong_password(
    tmp_path: Path, users: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch,
    log: io.StringIO,
) -> None:  # fmt: skip
    """Otherwise the answer's timing tells who has a legacy account: after the container's
    first check, an unknown user or one without a hash costs a check of the slowest hash
    seen (bob's bcrypt, cost 13). Lower bounds only: a loaded machine only adds time."""
    monkeypatch.setenv(DIR_ENV, str(migration_folder(tmp_path, sqlite_source(tmp_path, users))))
    migration.reset()

    def refused_seconds(user: str, password: str = "not it") -> float:
        start = time.perf_counter()
        with pytest.raises(MigrationRefused):
            migration.handler(event(user, password), None)
        return time.perf_counter() - start

    try:
        refused_seconds("nobody")  # the first call opens the database
        wrong = refused_seconds("bob")  # a real check: bcrypt cost 13
        assert wrong > 0.05
        assert refused_seconds("nobody") >= 0.3 * wrong
        assert refused_seconds("eve") >= 0.3 * wrong  # no hash at all
        outcomes = [line["outcome"] for line in log_lines(log)]
        assert outcomes == ["unknown_user", "wrong_password", "unknown_user", "no_hash"]
    finally:
        migration.reset()
