"""Read the legacy users from a table or a query in SQLite, MySQL/MariaDB or PostgreSQL.

:func:`open_database` checks the URL and builds an engine whose sessions are read-only
(SQLite is opened with ``mode=ro``; MySQL and PostgreSQL sessions are set read-only) and
hold no pooled connections; :class:`DatabaseSource` streams the rows through a server-side
cursor. Database credentials (a password in the URL, or an option such as ?password= or
?sslpassword=) never appear in messages or fingerprints: every URL and driver message goes
through :func:`csvimport.redact.mask_credentials`. :meth:`DatabaseSource.lookup` finds
the records with a given key through a WHERE whose value is a bound parameter.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from csvimport.build.sources.base import (
    SUPPORTED_URLS,
    Source,
    SourceError,
    SourceSpec,
    check_column_names,
    check_lookup,
    check_lookup_column,
    holdable,
)
from csvimport.build.sources.frames import as_text, columns_frame, texts
from csvimport.redact import MASK, SECRET_NAME, mask_credentials

CONNECT_TIMEOUT_SECONDS = 10

URL_HINT = f"Use one of the supported URL forms: {SUPPORTED_URLS}."
CONNECT_HINT = (
    "Check the host, port, database name and credentials in the URL (or PGHOST, PGPORT, "
    "PGUSER, PGPASSWORD for PostgreSQL), and that the database server is running."
)
SQL_HINT = "Check --query or --table against the database; the message above is the database's."
# SQLite's own lower() folds ASCII letters only: lookups fold with Python's, by this name,
# as every file source does (the value rendered as chunks() renders it, then lowered).
SQLITE_LOWER = "csvimport_lower"
TABLE_HINT = "Check --table (names are case-sensitive on some databases), or pass --query instead."


def open_database(location: str, spec: SourceSpec) -> Source:
    """Check a database URL and the spec's options; return its source, not yet connected."""
    shown = mask_credentials(location, url=True)
    try:
        url = sa.make_url(location)
    except (sa_exc.ArgumentError, ValueError):
        # Not "from": SQLAlchemy's message quotes the whole URL, credentials and all.
        raise SourceError(
            f"Cannot parse the database URL {shown}.",
            hint=f"{URL_HINT} Percent-encode special characters in the password "
            "(@ as %40, : as %3A, / as %2F).",
            source=shown,
        ) from None
    url, kind = _supported_url(url, shown)
    shown = mask_credentials(url.render_as_string(hide_password=True), url=True)
    table = spec.table.strip() if spec.table is not None else None
    query = spec.query.strip().rstrip(";").rstrip() if spec.query is not None else None
    if bool(table) == bool(query):
        given = "both --table and --query" if table and query else "neither --table nor --query"
        raise SourceError(
            f"{shown} is a database: it needs exactly one of --table or --query, got {given}.",
            hint="Pass --table TABLE to read a whole table, or --query 'SELECT ...'.",
            source=shown,
        )
    if spec.delimiter is not None:
        raise SourceError(
            "--delimiter only applies to CSV files, not to a database.",
            hint="Drop --delimiter.",
            source=shown,
        )
    if spec.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise SourceError(
            "--encoding only applies to files, not to a database.",
            hint="Drop --encoding: the database driver decodes the text.",
            source=shown,
        )
    engine = _engine(url, kind, shown)
    return DatabaseSource(engine, kind, shown, table=table, query=query, spec=spec)


def _supported_url(url: URL, shown: str) -> tuple[URL, str]:
    """Return the URL with csvimport's driver filled in, and the source kind."""
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if url.query:
            raise SourceError(
                f"{shown}: csvimport takes no options after '?' in an SQLite URL.",
                hint="Drop them: csvimport opens the SQLite file itself, read-only (and a "
                "SQLite file has no password).",
                source=shown,
            )
        return url, "sqlite"
    if backend in ("mysql", "mariadb") and driver in ("", "pymysql"):
        if url.password is None and os.environ.get("MYSQL_PWD"):
            # Like the mysql client: a password not in the URL may come from MYSQL_PWD.
            url = url.set(password=os.environ["MYSQL_PWD"])
        return url.set(drivername=f"{backend}+pymysql"), "mysql"
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return url.set(drivername="postgresql+psycopg"), "postgresql"
    raise SourceError(
        f"Unsupported database URL {shown}: csvimport reads SQLite, MySQL/MariaDB (pymysql) "
        "and PostgreSQL (psycopg).",
        hint=URL_HINT,
        source=shown,
    )


def _engine(url: URL, kind: str, shown: str) -> Engine:
    """Build an engine whose sessions are read-only and hold no pooled connections."""
    connect_args: dict[str, Any] = {}
    if kind == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise SourceError(
                f"{shown} names no database file.",
                hint="Give the file's path: sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db.",
                source=shown,
            )
        path = Path(database).expanduser()
        if not path.is_file():
            raise SourceError(
                f"{shown}: no such database file {str(path)!r}.",
                hint=f"Check the path (relative paths start at {Path.cwd()}); csvimport "
                "never creates the legacy database.",
                source=shown,
            )
        uri = f"file:{pathname2url(str(path.resolve()))}?mode=ro"
        # mode=ro: never write to, or create, the legacy database.
        return sa.create_engine(url, poolclass=NullPool, creator=lambda: _sqlite_connect(uri))
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    if kind == "mysql":
        connect_args["init_command"] = "SET SESSION TRANSACTION READ ONLY"
    else:
        options = str(url.query.get("options", ""))
        connect_args["options"] = f"{options} -c default_transaction_read_only=on".strip()
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _sqlite_connect(uri: str) -> sqlite3.Connection:
    """Open an SQLite file by its URI, with :data:`SQLITE_LOWER` for case-folded lookups."""
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    connection.create_function(SQLITE_LOWER, 1, _sqlite_lower, deterministic=True)
    return connection


def _sqlite_lower(value: Any) -> str | None:
    return None if value is None else as_text(value).lower()


class DatabaseSource(Source):
    """A table or a query's result in SQLite, MySQL/MariaDB or PostgreSQL, streamed.

    Rows stream through a server-side cursor ``chunk_rows`` at a time. A table is read
    ordered by its primary key when it has one (so ``__row__`` is stable from run to
    run), else in the database's order; a query's rows come in the order it gives.
    Values become text: NULL -> "", datetimes -> ISO 8601 ("2020-01-31 09:30:00"),
    booleans -> "true"/"false", JSON objects and arrays -> JSON text, binary -> UTF-8
    text, or hex when it is not UTF-8, anything else -> ``str()``.
    """

    def __init__(
        self,
        engine: Engine,
        kind: str,
        shown: str,
        *,
        table: str | None,
        query: str | None,
        spec: SourceSpec,
    ) -> None:
        self.kind = kind
        self.engine = engine
        self.url = shown
        self.table = table
        self.query = query
        self.chunk_rows = spec.chunk_rows
        self._secrets = _url_secrets(engine.url)  # what no message may show

    def describe(self) -> str:
        if self.table is not None:
            return f"{self.url} table {self.table}"
        query = " ".join((self.query or "").split())
        return f"{self.url} query {query[:60] + '...' if len(query) > 60 else query}"

    def columns(self) -> list[str]:
        with self._connect() as conn:
            if self.table is not None:
                names = self._table_columns(conn, *self._find_table(conn))
            else:
                names = self._query_columns(conn)
        check_column_names(names, self.describe(), "result")
        return names

    def chunks(self) -> Iterator[pd.DataFrame]:
        first = 1
        with self._connect() as conn:
            streaming = conn.execution_options(
                stream_results=True, yield_per=self.chunk_rows, no_parameters=True
            )
            with self._sql_errors():
                if self.table is not None:
                    statement = self._table_select(conn, *self._find_table(conn))
                    result = streaming.execute(statement)
                else:
                    result = streaming.exec_driver_sql(self._query_text())
                try:
                    names = self._result_keys(result)
                    check_column_names(names, self.describe(), "result")
                    for part in result.partitions(self.chunk_rows):
                        data = [texts(column) for column in zip(*part, strict=True)]
                        yield columns_frame(names, data, len(part), first)
                        first += len(part)
                finally:
                    # Before the connection closes: pymysql must read a streamed result to
                    # its end (MySQL cannot stop sending it) or it fails in its finaliser.
                    result.close()

    def lookup(self, column: str, value: str, *, casefold: bool = False) -> list[dict[str, str]]:
        """Return the records whose ``column`` reads ``value``, asking the database for them.

        The value is always a bound parameter, never part of the SQL: a table is read with
        ``WHERE column = :value`` (in primary-key order), a query is wrapped as ``SELECT *
        FROM (query) AS csvimport_source WHERE column = :value``, so an index on the column
        serves the lookup. ``casefold`` compares ``lower(column) = lower(:value)``:
        MySQL/MariaDB and PostgreSQL fold as their collation and locale do, SQLite as Python
        does. A column that is not text is compared cast to VARCHAR on PostgreSQL; MySQL and
        SQLite convert the value to its type.

        The rows the database returns are rendered as :meth:`chunks` renders them, and only
        those whose text equals the value (both lowered, with ``casefold``) are kept: a case-
        or accent-insensitive collation, MySQL's trailing-space padding or a number
        conversion never widens the result. A column the database writes as text otherwise
        than csvimport does (fractional seconds, binary) may miss. Raises SourceError for a
        column the table or query does not have, or an SQL error.
        """
        check_lookup(column, value)
        if not holdable(value) or (self.kind == "postgresql" and "\x00" in value):
            # Nothing can match it (PostgreSQL text never holds NUL), nor can it be sent.
            check_lookup_column(column, self.columns(), self.describe())
            return []
        try:
            with self._connect() as conn, self._sql_errors():
                names, rows = self._lookup_rows(conn, column, value, casefold)
        except SourceError:
            if self.query is not None:  # a column the query lacks fails in the database
                check_lookup_column(column, self.columns(), self.describe())
            raise
        check_column_names(names, self.describe(), "result")
        # SQLite and MySQL find a column by any case of its name; the result names it.
        check_lookup_column(column, names, self.describe())
        data = [texts(values) for values in zip(*rows, strict=True)]
        found = [dict(zip(names, record, strict=True)) for record in zip(*data, strict=True)]
        if casefold:
            return [record for record in found if record[column].lower() == value.lower()]
        return [record for record in found if record[column] == value]

    def _lookup_rows(
        self, conn: Connection, column: str, value: str, casefold: bool
    ) -> tuple[list[str], list[Any]]:
        """Run the lookup's one SELECT: (column names, rows the database matched)."""
        if self.table is not None:
            schema, name = self._find_table(conn)
            statement = self._table_select(conn, schema, name)
            names = list(statement.selected_columns.keys())
            check_lookup_column(column, names, self.describe())
            target = statement.selected_columns[column]
            cast = self._cast_to_compare(conn, schema, name, column)
        else:
            # Colons escaped: text() would take ":name" for a parameter; it doubles "%" itself.
            query = sa.text(self._query_text().replace(":", "\\:")).columns(sa.column(column))
            wrapped = query.subquery("csvimport_source")
            statement = sa.select(sa.literal_column("*")).select_from(wrapped)
            target = wrapped.c[column]
            # PostgreSQL compares text with text only; a cast of a text column to VARCHAR
            # is a relabel that still lets an index on it serve the lookup.
            cast = self.kind == "postgresql"
        compared: sa.ColumnElement[Any] = sa.cast(target, sa.String()) if cast else target
        bound = sa.bindparam("value", value, type_=sa.String())
        if casefold:
            lower = getattr(sa.func, SQLITE_LOWER) if self.kind == "sqlite" else sa.func.lower
            condition = lower(compared) == lower(bound)
        else:
            condition = compared == bound
        if value == "":
            condition = sa.or_(condition, target.is_(None))
        result = conn.execute(statement.where(condition))
        return self._result_keys(result), list(result.all())

    def _cast_to_compare(
        self, conn: Connection, schema: str | None, name: str, column: str
    ) -> bool:
        """Whether a table's column is compared with the text value only cast to text."""
        if self.kind == "mysql":
            return False  # MySQL converts the text to a number or date column's type
        with warnings.catch_warnings():
            # Reflection may not know some vendor column types: those are cast.
            warnings.simplefilter("ignore", sa_exc.SAWarning)
            found = sa.inspect(conn).get_columns(name, schema=schema)
        type_ = next((c["type"] for c in found if c["name"] == column), sa.types.NULLTYPE)
        if self.kind == "sqlite":
            # SQLite converts the text to the column's affinity, which these lack.
            return isinstance(type_, sa.types.NullType | sa.LargeBinary)
        return not isinstance(type_, sa.String) or isinstance(type_, sa.Enum)

    def fingerprint(self) -> dict[str, Any]:
        with self._connect() as conn, self._sql_errors():
            if self.table is not None:
                schema, name = self._find_table(conn)
                count = sa.select(sa.func.count()).select_from(sa.table(name, schema=schema))
                rows = conn.execute(count).scalar_one()
                what: dict[str, Any] = {"table": self.table}
            else:
                rows = self._query_rows(conn)
                what = {"query": self.query}
        return {"kind": self.kind, "url": self.url, **what, "rows": int(rows)}

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise self._connect_error(exc) from exc
        except TypeError as exc:  # pymysql: an option after "?" it does not take
            raise SourceError(
                f"Cannot connect to {self.url}: the driver does not take an option the URL "
                f"gives ({mask_credentials(str(exc))}).",
                hint="Check the options after '?' in the URL against the driver's "
                "connection arguments, or drop them.",
                source=self.url,
            ) from exc
        with conn:
            if self.kind == "sqlite":
                # sqlite3 opens any file; reading the schema is where a non-database fails.
                try:
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
                except sa_exc.SQLAlchemyError as exc:
                    raise self._connect_error(exc) from exc
            yield conn

    def _connect_error(self, exc: sa_exc.SQLAlchemyError) -> SourceError:
        return SourceError(
            f"Cannot connect to {self.url}: {self._reason(exc)}",
            hint=CONNECT_HINT,
            source=self.url,
        )

    @contextmanager
    def _sql_errors(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.ResourceClosedError as exc:
            raise SourceError(
                f"{self.describe()}: the query returns no rows.",
                hint="--query must be a statement that returns rows, e.g. SELECT ... FROM ...",
                source=self.url,
            ) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise self._sql_error(exc) from exc

    def _sql_error(self, exc: sa_exc.SQLAlchemyError) -> SourceError:
        return SourceError(
            f"{self.describe()}: {self._reason(exc)}", hint=SQL_HINT, source=self.url
        )

    def _reason(self, exc: BaseException) -> str:
        """Return the driver's own message, first line, with any password scrubbed out."""
        orig = getattr(exc, "orig", None) or exc
        args: tuple[Any, ...] = getattr(orig, "args", ())
        if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
            text = f"{args[1]} (error {args[0]})"  # pymysql: (code, message)
        else:
            text = str(orig)
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        reason = lines[0] if lines else type(orig).__name__
        for secret in self._secrets:
            reason = reason.replace(secret, MASK)
        return mask_credentials(reason)

    def _find_table(self, conn: Connection) -> tuple[str | None, str]:
        """Return (schema, table) for --table, accepting "schema.table"; else refuse it."""
        assert self.table is not None
        with self._sql_errors():
            inspector = sa.inspect(conn)
            if inspector.has_table(self.table):
                return None, self.table
            schema, dot, name = self.table.partition(".")
            if dot and inspector.has_table(name, schema=schema):
                return schema, name
            existing = sorted(inspector.get_table_names() + inspector.get_view_names())
        if existing:
            listed = ", ".join(existing[:10])
            more = f" and {len(existing) - 10} more" if len(existing) > 10 else ""
            there = f"tables there: {listed}{more}"
        else:
            there = "the database has no tables"
        raise SourceError(
            f"No table {self.table!r} in {self.url} ({there}).",
            hint=TABLE_HINT,
            source=self.url,
        )

    def _table_columns(self, conn: Connection, schema: str | None, name: str) -> list[str]:
        with self._sql_errors():
            star = sa.select(sa.text("*")).select_from(sa.table(name, schema=schema)).limit(0)
            result = conn.execute(star)
            names = self._result_keys(result)
            result.close()
        return names

    def _table_select(self, conn: Connection, schema: str | None, name: str) -> sa.Select[Any]:
        names = self._table_columns(conn, schema, name)
        source = sa.table(name, *(sa.column(n) for n in names), schema=schema)
        with warnings.catch_warnings():
            # Reflection may not know some vendor column types; only the key is wanted.
            warnings.simplefilter("ignore", sa_exc.SAWarning)
            key = sa.inspect(conn).get_pk_constraint(name, schema=schema)
        order = [source.c[n] for n in key.get("constrained_columns") or [] if n in source.c]
        return sa.select(source).order_by(*order)

    def _query_text(self) -> str:
        assert self.query is not None
        return self.query

    def _query_columns(self, conn: Connection) -> list[str]:
        """Ask for the query's columns without running it to the end.

        PostgreSQL (a server-side cursor) and SQLite (a lazy cursor) describe the result
        before producing rows. MySQL streams every row once the query runs, so it is asked
        through ``LIMIT 0`` first; SQLite is not, as it would rename duplicate columns.
        """
        if self.kind == "mysql":
            wrapped = f"SELECT * FROM ({self._query_text()}) AS csvimport_source LIMIT 0"
            try:
                result = conn.execution_options(no_parameters=True).exec_driver_sql(wrapped)
                names = self._result_keys(result)
                result.close()
                return names
            except sa_exc.DBAPIError:
                pass  # not wrappable (e.g. a column named twice): run it as given below
        with self._sql_errors():
            result = conn.execution_options(
                stream_results=True, yield_per=1, no_parameters=True
            ).exec_driver_sql(self._query_text())
            names = self._result_keys(result)
            result.close()
        return names

    def _query_rows(self, conn: Connection) -> int:
        wrapped = f"SELECT COUNT(*) FROM ({self._query_text()}) AS csvimport_source"
        raw = conn.execution_options(no_parameters=True)
        try:
            # A failed statement aborts a PostgreSQL transaction: a savepoint keeps it usable.
            with conn.begin_nested() if self.kind == "postgresql" else nullcontext():
                return int(raw.exec_driver_sql(wrapped).scalar_one())
        except sa_exc.DBAPIError:
            pass  # not wrappable (e.g. a column named twice in MySQL): count as it streams
        result = conn.execution_options(
            stream_results=True, yield_per=self.chunk_rows, no_parameters=True
        ).exec_driver_sql(self._query_text())
        return sum(len(part) for part in result.partitions(self.chunk_rows))

    @staticmethod
    def _result_keys(result: sa.CursorResult[Any]) -> list[str]:
        keys = result.keys()
        return [str(key) for key in keys]


def _url_secrets(url: URL) -> list[str]:
    """The credentials a URL carries: its password and its secret-named options' values,
    longest first (so that one holding another is masked whole)."""
    found = {url.password or ""}
    for name, values in url.query.items():
        if SECRET_NAME.search(name):
            found.update([values] if isinstance(values, str) else values)
    return sorted(filter(None, found), key=len, reverse=True)
