"""What every legacy source is: the spec that names it, the :class:`Source` protocol, its error.

The first stage of the pipeline reads the legacy users. ``open_source(SourceSpec(...))``
(:mod:`csvimport.sources.opener`) checks the spec and returns a :class:`Source`, whose
``chunks()`` yields DataFrames of text: every value is a ``str`` ("" for missing or NULL,
never NaN), and the extra column :data:`ROW` holds the record's 1-based position in the
source, which is how every rejected or failed user is traced back to the legacy data.

Every problem the user can fix (a missing file, undecodable bytes, a ragged CSV row, an
unknown table, an SQL error, an unreachable database) is a :class:`SourceError` whose hint
names the fix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from csvimport.errors import ConfigError

ROW = "__row__"
"""The column every chunk carries: the record's 1-based position in the source."""
SOURCE_RULE = "__source_rule__"
SOURCE_REASON = "__source_reason__"
"""Columns a chunk has only when some of its rows are not users as the source spells them:
the rule (one of :data:`csvimport.sources.csvlayout.RULES`) and the reason, naming the
physical lines; "" for the other rows. Such a row's values are what could be read ("" for
a line a stray quote swallowed)."""


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
        :mod:`csvimport.sources.csvlayout`). Raises SourceError mid-way if the source turns out to
        be unreadable further on (e.g. undecodable bytes, a quote that never closes).
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
