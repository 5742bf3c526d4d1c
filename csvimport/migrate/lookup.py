"""Find a legacy user's record by what they typed: in the legacy database, or the lookup file.

:class:`LegacyUsers` is built once per Lambda container and kept: a database source holds
one pooled, read-only connection that every invocation reuses (checked with a ping before
use, so a connection the database dropped while the container slept is replaced), and
learns the table's columns and key once. Every connect and every query is bounded well
inside Cognito's 5 seconds (settings.json ``timeouts``): MariaDB ``max_statement_time``
(MySQL ``max_execution_time``) plus the driver's socket timeouts, PostgreSQL
``statement_timeout``, and the drivers' connect timeouts. A lookup file is read once and
indexed by each looked-up column.

The lookup itself is the build's: :meth:`Source.lookup
<csvimport.build.sources.base.Source.lookup>` with a bound parameter, its values rendered
as the build reads them. Which index the legacy table needs: see the README ("The
migration function"): an index on each looked-up column, and for case-insensitive
lookups on PostgreSQL an index on ``lower(column)``; on MySQL/MariaDB the column's
case-insensitive collation (the default) serves them from the plain index.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from csvimport.build.sources.base import SOURCE_RULE, Source, SourceError, SourceSpec
from csvimport.build.sources.database import DatabaseSource, open_database
from csvimport.build.sources.opener import open_source
from csvimport.errors import ConfigError
from csvimport.migrate.settings import PASSWORD_ENV, SECRET_ENV, MigrationFolder, Timeouts

Record = dict[str, str]


class LegacyUsers:
    """The legacy users the function may migrate, looked up one sign-in at a time.

    ``secrets`` makes the Secrets Manager client when ``CSVIMPORT_LEGACY_DB_SECRET_ARN``
    is set (default: boto3's). Nothing connects until the first :meth:`find`.
    """

    def __init__(
        self,
        folder: MigrationFolder,
        *,
        environ: dict[str, str] | None = None,
        secrets: Callable[[], Any] | None = None,
    ) -> None:
        self.folder = folder
        self.settings = folder.settings
        self._environ = dict(os.environ if environ is None else environ)
        self._secrets = secrets
        self._source: Source | None = None
        self._index: dict[tuple[str, bool], dict[str, list[Record]]] = {}
        self.connects = 0  # connections opened to the legacy database, ever

    def find(self, column: str, value: str, *, casefold: bool) -> list[Record]:
        """The records whose ``column`` reads ``value`` (both lowered, with ``casefold``).

        Raises SourceError when the source cannot be reached or read (the sign-in fails;
        the user may retry).
        """
        if self.settings.source.file is not None:
            index = self._file_index(column, casefold)
            return list(index.get(value.lower() if casefold else value, []))
        return self._database().lookup(column, value, casefold=casefold)

    def close(self) -> None:
        """Close the database connection, if one is open."""
        if isinstance(self._source, DatabaseSource):
            self._source.engine.dispose()
        self._source = None

    # --- a lookup file: read once, indexed by each looked-up column --------------------

    def _file_index(self, column: str, casefold: bool) -> dict[str, list[Record]]:
        key = (column, casefold)
        if key not in self._index:
            path = self.folder.lookup_path
            assert path is not None
            source = self._source or open_source(
                SourceSpec(str(path), encoding=self.settings.source.encoding,
                           delimiter=self.settings.source.delimiter)
            )  # fmt: skip
            self._source = source
            names = source.columns()
            if column not in names:
                source.lookup(column, "")  # raises the build's SourceError naming the columns
            index: dict[str, list[Record]] = {}
            for chunk in source.chunks():
                if SOURCE_RULE in chunk.columns:  # a garbled record is a reject, not a user
                    chunk = chunk[chunk[SOURCE_RULE] == ""]
                for record in chunk[names].to_dict("records"):
                    found = record[column]
                    index.setdefault(found.lower() if casefold else found, []).append(record)
            self._index[key] = index
        return self._index[key]

    # --- a database: one pooled read-only connection, bounded queries -----------------

    def _database(self) -> DatabaseSource:
        if self._source is None:
            self._source = self._open_database()
        assert isinstance(self._source, DatabaseSource)
        return self._source

    def _open_database(self) -> DatabaseSource:
        where = self.settings.source
        assert where.url is not None
        url = sa.make_url(where.url)
        password = self._password()
        if password is not None:
            url = url.set(password=password)
        url = _bounded_url(url, self.settings.timeouts)
        spec = SourceSpec(url.render_as_string(hide_password=False), table=where.table,
                          query=where.query)  # fmt: skip
        checked = open_database(spec.location, spec)
        assert isinstance(checked, DatabaseSource)
        engine = self._pooled(checked)
        return _KnownSchemaSource(
            engine, checked.kind, checked.url, table=checked.table, query=checked.query, spec=spec
        )

    def _pooled(self, checked: DatabaseSource) -> Engine:
        """An engine keeping one connection, opened as the build's read-only engine opens
        one, with the statement timeout set on each new session."""
        unpooled = checked.engine

        def connect() -> Any:
            proxied = unpooled.raw_connection()
            connection = proxied.dbapi_connection
            proxied.detach()  # ours now: the build's engine keeps no connections
            return connection

        engine = sa.create_engine(
            unpooled.url, creator=connect, pool_size=1, max_overflow=0, pool_pre_ping=True
        )
        kind, timeouts = checked.kind, self.settings.timeouts

        @sa.event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            self.connects += 1
            if kind == "mysql":
                _mysql_statement_timeout(dbapi_connection, timeouts.statement_ms)

        return engine

    def _password(self) -> str | None:
        """The database password: the environment's, else the Secrets Manager secret's."""
        given = self._environ.get(PASSWORD_ENV)
        if given:
            return given
        arn = self._environ.get(SECRET_ENV, "").strip()
        if not arn:
            return None
        try:
            if self._secrets is not None:
                client = self._secrets()
            else:
                import boto3

                client = boto3.client("secretsmanager")  # Lambda's region and role
            text = client.get_secret_value(SecretId=arn)["SecretString"]
        except Exception as exc:  # any AWS failure: the sign-in fails, the user may retry
            raise SourceError(
                f"cannot read the database secret {arn} ({type(exc).__name__})",
                hint="Let the function's role call secretsmanager:GetSecretValue on it.",
            ) from None
        try:
            data = json.loads(text)
        except ValueError:
            return str(text)  # a plain-text secret is the password itself
        if isinstance(data, dict) and isinstance(data.get("password"), str):
            return str(data["password"])
        raise ConfigError(
            f"the database secret {arn} is JSON without a password key",
            hint='Store the password as plain text, or as JSON {"password": "..."}.',
        )


class _KnownSchemaSource(DatabaseSource):
    """The build's database source, learning its table's columns and key once: a Lambda
    container asks the same table thousands of times, each lookup then one SELECT."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._found: tuple[str | None, str] | None = None
        self._selects: dict[tuple[str | None, str], sa.Select[Any]] = {}
        self._casts: dict[tuple[str | None, str, str], bool] = {}

    def _find_table(self, conn: Connection) -> tuple[str | None, str]:
        if self._found is None:
            self._found = super()._find_table(conn)
        return self._found

    def _table_select(self, conn: Connection, schema: str | None, name: str) -> sa.Select[Any]:
        if (schema, name) not in self._selects:
            self._selects[schema, name] = super()._table_select(conn, schema, name)
        return self._selects[schema, name]

    def _cast_to_compare(
        self, conn: Connection, schema: str | None, name: str, column: str
    ) -> bool:
        if (schema, name, column) not in self._casts:
            self._casts[schema, name, column] = super()._cast_to_compare(conn, schema, name, column)
        return self._casts[schema, name, column]

    def _lookup_rows(
        self, conn: Connection, column: str, value: str, casefold: bool
    ) -> tuple[list[str], list[Any]]:
        # MySQL/MariaDB compare by the column's collation, case-insensitive by default, so
        # the plain index serves a case-folded lookup; lower(column) would scan the table.
        # The rows are then kept only where lowered alike, as for every source (lookup()).
        if self.kind == "mysql" and casefold:
            casefold = False
        return super()._lookup_rows(conn, column, value, casefold)


def _bounded_url(url: sa.URL, timeouts: Timeouts) -> sa.URL:
    """The URL with the drivers' connect (and, for MySQL, socket) timeouts and PostgreSQL's
    statement_timeout, unless it sets them itself."""
    backend = url.get_backend_name()
    seconds = str(max(1, math.ceil(timeouts.connect_seconds)))
    query = dict(url.query)
    extra: dict[str, str] = {}
    if backend in ("mysql", "mariadb"):
        socket = str(max(1, math.ceil(timeouts.statement_ms / 1000 + 1)))
        extra = {"connect_timeout": seconds, "read_timeout": socket, "write_timeout": socket}
    elif backend in ("postgresql", "postgres"):
        # libpq waits at least 2 seconds, whatever it is given
        extra = {"connect_timeout": str(max(2, int(seconds)))}
        options = f"{query.get('options', '')} -c statement_timeout={timeouts.statement_ms}"
        query["options"] = options.strip()
    for name, value in extra.items():
        query.setdefault(name, value)
    return url.set(query=query)


def _mysql_statement_timeout(dbapi_connection: Any, milliseconds: int) -> None:
    """Bound every statement of the session: MariaDB's max_statement_time (seconds), or
    MySQL's max_execution_time (milliseconds, SELECT only) where MariaDB's is unknown."""
    cursor = dbapi_connection.cursor()
    try:
        try:
            cursor.execute(f"SET SESSION max_statement_time = {milliseconds / 1000:.3f}")
        except Exception:  # MySQL: no such variable
            cursor.execute(f"SET SESSION max_execution_time = {int(milliseconds)}")
    finally:
        cursor.close()
