"""What every legacy source is: the spec that names it, the :class:`Source` protocol, its error.

The first stage of the pipeline reads the legacy users. ``open_source(SourceSpec(...))``
(:mod:`csvimport.build.sources.opener`) checks the spec and returns a :class:`Source`, whose
``chunks()`` yields DataFrames of text: every value is a ``str`` ("" for missing or NULL,
never NaN), and the extra column :data:`ROW` holds the record's 1-based position in the
source, which is how every rejected or failed user is traced back to the legacy data.

``Source.lookup(column, value)`` returns the records with a given key, as ``chunks()``
renders them: a scan of a file, a WHERE in a database (the user-migration function asks
it at each sign-in).

Every problem the user can fix (a missing file, undecodable bytes, a ragged CSV row, an
unknown table, an SQL error, an unreachable database) is a :class:`SourceError` whose hint
names the fix.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from csvimport.errors import ConfigError

# The database URLs csvimport reads (csvimport.build.sources.database), named here so that
# what only tells a URL from a file need not load SQLAlchemy.
SUPPORTED_URLS = (
    "sqlite:///path/to/legacy.db, "
    "mysql+pymysql://USER:PASSWORD@HOST:3306/DATABASE (MySQL or MariaDB), or "
    "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE (the password may instead "
    "come from PGPASSWORD or ~/.pgpass, and for MySQL from MYSQL_PWD)"
)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def looks_like_url(location: str) -> bool:
    """Whether ``location`` is a URL (``scheme://...``), which names a database, not a file."""
    return bool(_URL_SCHEME.match(location))


ROW = "__row__"
"""The column every chunk carries: the record's 1-based position in the source."""
SOURCE_RULE = "__source_rule__"
SOURCE_REASON = "__source_reason__"
"""Columns a chunk has only when some of its rows are not users as the source spells them:
the rule (one of :data:`csvimport.build.sources.csvlayout.RULES`) and the reason, naming the
physical lines; "" for the other rows. Such a row's values are what could be read ("" for
a line a stray quote swallowed)."""
_NOT_RECORD = frozenset({ROW, SOURCE_RULE, SOURCE_REASON})


class SourceError(ConfigError):
    """The legacy source cannot be opened or read; ``hint`` names the fix.

    ``source`` is the source as shown to the user (a path, or a URL with its credentials
    masked) and ``line`` the line of a file the problem is on, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.source = source
        self.line = line


@dataclass(frozen=True)
class SourceSpec:
    """Where the legacy users are and how to read them.

    ``location`` is a path (.csv, .tsv, .jsonl, .json) or an SQLAlchemy URL. Databases
    take exactly one of ``table`` or ``query``; files take neither. ``delimiter`` is for
    CSV only (None: sniffed from the first 64 KiB, falling back to ","); ``encoding`` for
    files only.
    """

    location: str
    table: str | None = None
    query: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    chunk_rows: int = 50_000


class Source(ABC):
    """A legacy source opened by :func:`open_source`.

    Each method reads the source afresh, so a source can be read several times (columns
    first, then the chunks, then the fingerprint for the manifest).
    """

    kind: str
    """One of "csv", "jsonl", "json", "sqlite", "mysql" or "postgresql"."""

    @abstractmethod
    def columns(self) -> list[str]:
        """Return the source's column names, in source order, without ``__row__``."""

    @abstractmethod
    def chunks(self) -> Iterator[pd.DataFrame]:
        """Yield every record exactly once, in source order, ``chunk_rows`` at a time.

        Every chunk has the columns of :meth:`columns`, all holding ``str`` values, then
        ``__row__`` (int): the record's 1-based position, continuing across chunks. A
        source without records yields no chunk. A chunk holding records the source garbles
        (a CSV stray quote, a row with too few or too many fields) also has the columns
        ``SOURCE_RULE`` and ``SOURCE_REASON``, "" for the other rows: each such row is a
        reject, and a stray quote has one row per line it swallowed (see
        :mod:`csvimport.build.sources.csvlayout`). Raises SourceError mid-way if the source
        turns out to be unreadable further on (e.g. undecodable bytes, a quote that never
        closes).
        """

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Return what identifies the source in a run manifest; never a password.

        Files: ``kind``, ``path`` (absolute), ``bytes``, ``sha256``, ``encoding`` and, for
        CSV, the ``delimiter`` it was read with (what reads it the same way again).
        Databases: ``kind``, ``url`` (every credential shown as ***, see
        :func:`csvimport.redact.mask_credentials`), ``table`` or ``query``, and ``rows``.
        """

    @abstractmethod
    def describe(self) -> str:
        """Return the source as shown in messages, e.g. ``users.csv``."""

    def lookup(self, column: str, value: str, *, casefold: bool = False) -> list[dict[str, str]]:
        """Return the records whose ``column`` reads ``value``, in source order.

        Each record maps the source's columns (those of :meth:`columns`; no ``__row__``) to
        their text exactly as :meth:`chunks` gives it, so a missing or NULL value reads ""
        and looking up "" finds it. The comparison is exact (no wildcards, no trimming);
        ``casefold`` compares both sides lowered (``str.lower``) instead. A record the source
        garbles (``SOURCE_RULE`` set) is a reject, not a user: it is never returned.

        This reads the whole source, O(n) in its records: fine for a lookup file, while a
        database asks the database (:meth:`DatabaseSource.lookup
        <csvimport.build.sources.database.DatabaseSource.lookup>`). Raises SourceError for a
        column the source does not have, or a source that cannot be read.
        """
        check_lookup(column, value)
        if not holdable(value):
            check_lookup_column(column, self.columns(), self.describe())
            return []
        wanted = value.lower() if casefold else value
        names: list[str] | None = None
        found: list[dict[str, str]] = []
        for chunk in self.chunks():
            if names is None:
                names = [name for name in chunk.columns if name not in _NOT_RECORD]
                check_lookup_column(column, names, self.describe())
            texts = chunk[column]
            match = (texts.str.lower() if casefold else texts) == wanted
            if SOURCE_RULE in chunk.columns:
                match &= chunk[SOURCE_RULE] == ""
            found.extend(chunk.loc[match, names].to_dict("records"))
        if names is None:  # no records: the column must still be one of the source's
            check_lookup_column(column, self.columns(), self.describe())
        return found


def check_column_names(names: Sequence[str], source: str, what: str) -> None:
    duplicates = [name for name, count in Counter(names).items() if count > 1]
    if duplicates:
        listed = ", ".join(repr(name) for name in duplicates)
        raise SourceError(
            f"{source}: the {what} names a column more than once: {listed}.",
            hint="Rename the columns so that each name is used once (in a query, use AS).",
            source=source,
        )
    if ROW in names:
        raise SourceError(
            f"{source}: the {what} has a column named {ROW!r}, which csvimport reserves.",
            hint=f"Rename the column {ROW!r} in the source (in a query, use AS).",
            source=source,
        )


def check_lookup(column: str, value: str) -> None:
    """Refuse a lookup whose column or value is not text (a caller's mistake, not the user's)."""
    for name, given in (("column", column), ("value", value)):
        if not isinstance(given, str):
            raise TypeError(f"The lookup {name} must be str, not {type(given).__name__}.")


def holdable(value: str) -> bool:
    """Whether a source's text can hold ``value``: not when it holds half a character (a lone
    surrogate), which files are refused for and no driver returns. Such a value matches
    nothing, and cannot even be sent to a database."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_lookup_column(column: str, names: Sequence[str], source: str) -> None:
    """Refuse a lookup by a column the source does not have, listing those it has."""
    if column in names:
        return
    listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    raise SourceError(
        f"{source} has no column {column!r} to look up by (its columns: {listed}).",
        hint="Look up by one of the source's columns, spelled as its header, keys or "
        "result name it (names are case-sensitive).",
        source=source,
    )
