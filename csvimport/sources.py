"""Read the legacy users, in chunks, from a CSV/JSONL/JSON file or a database.

``open_source(SourceSpec(...))`` checks the spec and returns a :class:`Source`, whose
``chunks()`` yields DataFrames of text: every value is a ``str`` ("" for missing or NULL,
never NaN), and the extra column ``__row__`` holds the record's 1-based position in the
source, which is how every rejected or failed user is traced back to the legacy data.

Every problem the user can fix (a missing file, undecodable bytes, a ragged CSV row, an
unknown table, an SQL error, an unreachable database) is a :class:`SourceError` whose hint
names the fix. Database credentials (a password in the URL, or an option such as
?password= or ?sslpassword=) never appear in messages or fingerprints, and the legacy
database is only ever read: sessions are opened read-only.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
import sqlite3
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.request import pathname2url
from uuid import UUID

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from csvimport.csvlayout import (
    FIX_QUOTE,
    ROW,
    SOURCE_REASON,
    SOURCE_RULE,
    STRAY_QUOTE,
    CsvLayout,
    RawLines,
    skipped_rows,
)
from csvimport.errors import ConfigError
from csvimport.redact import MASK, SECRET_NAME, mask_credentials

__all__ = [
    "ROW",
    "SOURCE_REASON",
    "SOURCE_RULE",
    "CsvSource",
    "DatabaseSource",
    "JsonSource",
    "JsonlSource",
    "Source",
    "SourceError",
    "SourceSpec",
    "open_source",
]

SNIFF_BYTES = 64 * 1024
JSONL_COLUMN_LINES = 1000
CONNECT_TIMEOUT_SECONDS = 10

FILE_KINDS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}

SUPPORTED_URLS = (
    "sqlite:///path/to/legacy.db, "
    "mysql+pymysql://USER:PASSWORD@HOST:3306/DATABASE (MySQL or MariaDB), or "
    "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE (the password may instead "
    "come from PGPASSWORD or ~/.pgpass, and for MySQL from MYSQL_PWD)"
)
UNKNOWN_KIND_HINT = f"Give a .csv, .tsv, .jsonl or .json file, or a database URL: {SUPPORTED_URLS}."
URL_HINT = f"Use one of the supported URL forms: {SUPPORTED_URLS}."
ENCODING_HINT = "pass --encoding (e.g. --encoding cp1252 or latin-1)"
QUOTING = (
    "a field that contains the delimiter, a quote or a line break must be in double "
    'quotes, its own quotes doubled ("say ""hi""").'
)
DELIMITER_HINT = (
    "Check --delimiter (this file was read with {delimiter!r}) and the quoting: " + QUOTING
)
CONNECT_HINT = (
    "Check the host, port, database name and credentials in the URL (or PGHOST, PGPORT, "
    "PGUSER, PGPASSWORD for PostgreSQL), and that the database server is running."
)
SQL_HINT = "Check --query or --table against the database; the message above is the database's."
TABLE_HINT = "Check --table (names are case-sensitive on some databases), or pass --query instead."


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
        :mod:`csvimport.csvlayout`). Raises SourceError mid-way if the source turns out to
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


def open_source(spec: SourceSpec) -> Source:
    """Check the spec and return the Source it names.

    Files must exist and be readable and have a known suffix; databases need a supported
    URL and exactly one of table/query. Nothing is read yet beyond opening the file (a
    database is not contacted until the first method call). Raises SourceError.
    """
    if isinstance(spec.chunk_rows, bool) or not isinstance(spec.chunk_rows, int):
        raise SourceError(f"chunk_rows must be a whole number, not {spec.chunk_rows!r}.")
    if spec.chunk_rows < 1:
        raise SourceError(f"chunk_rows must be at least 1, not {spec.chunk_rows}.")
    location = os.fspath(spec.location).strip()
    if not location:
        raise SourceError("No source given.", hint=UNKNOWN_KIND_HINT)
    if _looks_like_url(location):
        return _open_database(location, spec)
    return _open_file(location, spec)


# --- files -------------------------------------------------------------------------------


def _open_file(location: str, spec: SourceSpec) -> Source:
    if spec.table is not None or spec.query is not None:
        raise SourceError(
            f"{location} is a file: --table and --query only apply to database URLs.",
            hint="Drop --table/--query, or give a database URL such as sqlite:///legacy.db.",
            source=location,
        )
    path = Path(location).expanduser()
    kind = FILE_KINDS.get(path.suffix.lower())
    if not path.exists():
        raise SourceError(
            f"{location}: no such file.",
            hint=f"Check the path (relative paths start at {Path.cwd()}).",
            source=location,
        )
    if path.is_dir():
        raise SourceError(
            f"{location} is a directory, not a file.",
            hint="Give the path of the legacy export file itself.",
            source=location,
        )
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise SourceError(
            f"Cannot read {location}: {exc.strerror or exc}.",
            hint="Check the file's permissions: csvimport needs to read it.",
            source=location,
        ) from exc
    if kind is None:
        raise SourceError(
            f"{location}: unknown kind of source {path.suffix or '(no suffix)'!r}.",
            hint=UNKNOWN_KIND_HINT,
            source=location,
        )
    try:
        codecs.lookup(spec.encoding)
    except LookupError as exc:
        raise SourceError(
            f"Unknown encoding {spec.encoding!r}.",
            hint="Pass an encoding Python knows, e.g. --encoding utf-8, cp1252 or latin-1.",
            source=location,
        ) from exc
    if kind != "csv" and spec.delimiter is not None:
        raise SourceError(
            f"--delimiter only applies to CSV files, not to {location}.",
            hint="Drop --delimiter.",
            source=location,
        )
    if kind == "csv":
        return CsvSource(location, path, spec)
    if kind == "jsonl":
        return JsonlSource(location, path, spec)
    return JsonSource(location, path, spec)


class _FileSource(Source):
    """What every file source shares: the path, the encoding, the fingerprint."""

    def __init__(self, location: str, path: Path, spec: SourceSpec) -> None:
        self.location = location
        self.path = path
        self.encoding = spec.encoding
        self.chunk_rows = spec.chunk_rows

    def describe(self) -> str:
        return self.location

    def fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        with self._open_binary() as f:
            while block := f.read(1 << 20):
                digest.update(block)
                size += len(block)
        return {
            "kind": self.kind,
            "path": str(self.path.resolve()),
            "bytes": size,
            "sha256": digest.hexdigest(),
            "encoding": self.encoding,
            **self._reading(),
        }

    def _reading(self) -> dict[str, str]:
        """How the file is read, beyond its encoding: what reads it the same way again."""
        return {}

    def _open_binary(self) -> io.BufferedReader:
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise self._os_error(exc) from exc

    def _open_text(self) -> io.TextIOWrapper:
        try:
            return self.path.open(encoding=self.encoding, newline="")
        except OSError as exc:
            raise self._os_error(exc) from exc

    def _os_error(self, exc: OSError) -> SourceError:
        return SourceError(
            f"Cannot read {self.location}: {exc.strerror or exc}.",
            hint="Check that the file still exists and that csvimport may read it.",
            source=self.location,
        )

    def _decode_error(self, exc: UnicodeDecodeError) -> SourceError:
        """Name the encoding and where in the file the first undecodable byte is."""
        where = _first_undecodable(self.path, self.encoding)
        if where is None:
            detail, line = exc.reason, None
        else:
            offset, line, bad = where
            detail = f"byte {bad.hex(' ', 1)} at offset {offset} (line {line})"
        return SourceError(
            f"Cannot decode {self.location} as {self.encoding}: {detail}.",
            hint=f"The file is not {self.encoding}; {ENCODING_HINT}.",
            source=self.location,
            line=line,
        )


class CsvSource(_FileSource):
    """A delimited text file whose first record is the header, streamed with pandas."""

    kind = "csv"

    def __init__(self, location: str, path: Path, spec: SourceSpec) -> None:
        super().__init__(location, path, spec)
        self._delimiter = None if spec.delimiter is None else _check_delimiter(spec.delimiter)

    def _reading(self) -> dict[str, str]:
        return {"delimiter": self.delimiter}

    @property
    def delimiter(self) -> str:
        """The delimiter given, or else the one sniffed from the start of the file."""
        if self._delimiter is None:
            self._delimiter = self._sniff()
        return self._delimiter

    def columns(self) -> list[str]:
        return self._read_header()[0]

    def chunks(self) -> Iterator[pd.DataFrame]:
        names, header_records, header_lines = self._read_header()
        delimiter = self.delimiter
        raw = RawLines(self._open_text)
        layout = CsvLayout(names, delimiter, first_line=header_lines + 1,
                           first_index=header_records + 1, raw=raw)  # fmt: skip
        try:
            # Records are counted from the header on, blank lines included (pandas counts
            # them so in its warnings): the layout drops them. index_col=False stops
            # pandas from turning an extra first field into an index; _read_header() has
            # already refused a first record wider than the header. A later wider record
            # is skipped with a warning, which the layout turns into a reject.
            reader = pd.read_csv(
                self.path,
                sep=delimiter,
                header=None,
                skiprows=header_records,
                names=names,
                index_col=False,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                on_bad_lines="warn",
                encoding=self.encoding,
                encoding_errors="strict",
                chunksize=self.chunk_rows,
                engine="c",
            )
            with reader:
                while (chunk := self._next_chunk(reader, layout)) is not None:
                    if len(chunk) and (placed := layout.place(chunk)) is not None:
                        yield placed
            if (rest := layout.finish()) is not None:
                yield rest
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc
        except pd.errors.ParserError as exc:
            raise self._parser_error(exc, delimiter, layout) from exc
        except OSError as exc:
            raise self._os_error(exc) from exc
        finally:
            raw.close()

    def _next_chunk(self, reader: Any, layout: CsvLayout) -> pd.DataFrame | None:
        """Read pandas' next chunk, handing the records it skipped to the layout."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            chunk = next(reader, None)
        messages = []
        for warning in caught:
            if issubclass(warning.category, pd.errors.ParserWarning):
                messages.append(str(warning.message))
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)  # fmt: skip
        skipped = skipped_rows(messages)
        if skipped is None:
            raise SourceError(
                f"Cannot parse {self.location}: {' '.join(messages).strip()}",
                hint=DELIMITER_HINT.format(delimiter=layout.delimiter),
                source=self.location,
            )
        layout.skipped.update(skipped)
        return chunk

    def _sniff(self) -> str:
        try:
            with self._open_text() as f:
                sample = f.read(SNIFF_BYTES)
                if f.read(1):
                    # Cut the sample at the last complete line so that it cannot skew
                    # the per-line delimiter counts.
                    sample = sample[: sample.rfind("\n") + 1] or sample
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc
        # Blank lines are not records: they would make the delimiter look inconsistent.
        sample = "".join(line for line in sample.splitlines(keepends=True) if line.strip())
        try:
            return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            return ","  # one column, or nothing to tell the candidates apart

    def _read_header(self) -> tuple[list[str], int, int]:
        """Read the header with the csv module, and check the first record against it.

        Return the column names, the records up to and including the header (blank lines
        before it included) and the physical lines they span.
        """
        delimiter = self.delimiter
        try:
            with self._open_text() as f:
                reader = csv.reader(f, delimiter=delimiter)
                records = first = 0
                for header in reader:
                    records += 1
                    if not _blank_row(header):
                        break
                    first = reader.line_num
                else:
                    header = None
                first, lines = first + 1, reader.line_num
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc
        except csv.Error as exc:
            raise SourceError(
                f"Cannot parse the header of {self.location}: {exc}.",
                hint=DELIMITER_HINT.format(delimiter=delimiter),
                source=self.location,
            ) from exc
        if header is None:
            raise SourceError(
                f"{self.location} is empty: there is no header line.",
                hint="Export the legacy users with a header line naming the columns.",
                source=self.location,
            )
        names = [name.strip() for name in header]
        names[0] = names[0].lstrip("\ufeff").strip()
        broken = [i for i, name in enumerate(names, 1) if "\n" in name or "\r" in name]
        if broken:
            raise SourceError(
                f"{self.location}, lines {first}-{lines}: the header's column {broken[0]} "
                "spans lines, so a quote in the header likely opens without closing.",
                hint="Fix the header: a column name cannot hold a line break. "
                + QUOTING[0].upper()
                + QUOTING[1:],
                source=self.location,
                line=first,
            )
        _check_column_names(names, self.location, "header")
        self._check_first_record(names, delimiter, lines + 1)
        return names, records, lines

    def _check_first_record(self, names: list[str], delimiter: str, line: int) -> None:
        """Refuse a first record wider than the header: pandas would take its width for
        the file's, and drop the last values of every row."""
        raw = RawLines(self._open_text)
        try:
            found = raw.next_record(line, delimiter)
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc
        finally:
            raw.close()
        if found is None or found[1].fields <= len(names):
            return
        start, record = found
        layout = CsvLayout(names, delimiter, first_line=start, first_index=1, raw=raw)
        verdict = layout.judge(record, start)
        if verdict is not None and verdict.rule == STRAY_QUOTE:
            message = f"{self.location}, {verdict.reason.removesuffix(' - ' + FIX_QUOTE)}."
        else:
            message = (f"{self.location}, line {start} (record 1): {record.fields} fields, "
                       f"but the header has {len(names)}.")  # fmt: skip
        raise SourceError(
            message, hint=DELIMITER_HINT.format(delimiter=delimiter), source=self.location,
            line=start,
        )  # fmt: skip

    def _parser_error(
        self, exc: pd.errors.ParserError, delimiter: str, layout: CsvLayout
    ) -> SourceError:
        """Name the line and column of a quote that never closes."""
        message = str(exc).strip()
        if "EOF inside string" in message:
            found = layout.unclosed_quote()
            if found is not None:
                line, column, after = found
                swallowed = ""
                if after:
                    were = "was" if after == 1 else "were"
                    swallowed = (f": the {after:,} line{'s' * (after != 1)} after it {were} "
                                 "read as part of this value")  # fmt: skip
                return SourceError(
                    f"{self.location}, line {line}: a quote opened in column {column!r} "
                    f"never closes{swallowed}.",
                    hint=f"Fix the quote on line {line} and build again: {QUOTING}",
                    source=self.location,
                    line=line,
                )
        message = message.removeprefix("Error tokenizing data. C error: ")
        return SourceError(
            f"Cannot parse {self.location}: {message}.",
            hint=DELIMITER_HINT.format(delimiter=delimiter),
            source=self.location,
        )


class JsonlSource(_FileSource):
    """One JSON object per line (blank lines skipped), streamed line by line.

    The columns are the keys of the objects on the first 1,000 lines, in order of first
    appearance; a key first seen further on is not read (a mapping naming it is refused
    as an unknown column), and a missing key reads as "".
    """

    kind = "jsonl"

    def columns(self) -> list[str]:
        names: dict[str, None] = {}
        for lineno, record in self._records():
            if lineno > JSONL_COLUMN_LINES:
                break
            names.update(dict.fromkeys(record))
        if not names:
            raise SourceError(
                f"{self.location} holds no JSON objects.",
                hint="Export the legacy users as one JSON object per line.",
                source=self.location,
            )
        return list(names)

    def chunks(self) -> Iterator[pd.DataFrame]:
        names = self.columns()
        batch: list[dict[str, Any]] = []
        first = 1
        for _, record in self._records():
            batch.append(record)
            if len(batch) == self.chunk_rows:
                yield _records_frame(names, batch, first)
                first += len(batch)
                batch = []
        if batch:
            yield _records_frame(names, batch, first)

    def _records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (line number, object with stripped keys) for each non-blank line."""
        try:
            with self._open_text() as f:
                for lineno, line in enumerate(f, 1):
                    if lineno == 1:
                        line = line.lstrip("\ufeff")
                    if not line.strip():
                        continue
                    try:
                        value = json.loads(line.rstrip())
                        # A key given twice would be read as its last value, silently:
                        # look closer wherever the line names more keys than were read.
                        if isinstance(value, dict) and len(_KEY.findall(line)) > len(value):
                            value = json.loads(line, object_pairs_hook=_JsonObject.of)
                    except json.JSONDecodeError as exc:
                        raise SourceError(
                            f"{self.location}, line {lineno}: not valid JSON: {exc.msg} "
                            f"(column {exc.colno}).",
                            hint="Each line must hold one complete JSON object.",
                            source=self.location,
                            line=lineno,
                        ) from exc
                    if not isinstance(value, dict):
                        raise SourceError(
                            f"{self.location}, line {lineno}: a JSON {_json_type(value)}, "
                            "not an object.",
                            hint="Each line must hold one JSON object, e.g. "
                            '{"email": "a@example.com"}.',
                            source=self.location,
                            line=lineno,
                        )
                    if "\\u" in line:  # only an escape can make a lone surrogate
                        _refuse_lone_surrogates(value, self.location, f"line {lineno}", lineno)
                    yield lineno, _strip_keys(value, self.location, f"line {lineno}")
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc


class JsonSource(_FileSource):
    """A top-level JSON array of objects.

    The whole file is loaded into memory (JSON has no standard streaming reader in the
    standard library); for large exports use JSON Lines (.jsonl), which is streamed. The
    columns are the union of the objects' keys, in order of first appearance.
    """

    kind = "json"

    def columns(self) -> list[str]:
        names: dict[str, None] = {}
        for record in self._load():
            names.update(dict.fromkeys(record))
        return list(names)

    def chunks(self) -> Iterator[pd.DataFrame]:
        records = self._load()
        names: dict[str, None] = {}
        for record in records:
            names.update(dict.fromkeys(record))
        columns = list(names)
        for start in range(0, len(records), self.chunk_rows):
            yield _records_frame(columns, records[start : start + self.chunk_rows], start + 1)

    def _load(self) -> list[dict[str, Any]]:
        try:
            with self._open_text() as f:
                text = f.read()
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc
        try:
            value = json.loads(text.lstrip("\ufeff"), object_pairs_hook=_JsonObject.of)
        except json.JSONDecodeError as exc:
            hint = "The file must hold one JSON array of objects: [{...}, {...}]."
            if exc.msg == "Extra data":
                hint += " If it holds one object per line, name it .jsonl."
            raise SourceError(
                f"{self.location}, line {exc.lineno} column {exc.colno}: not valid JSON: "
                f"{exc.msg}.",
                hint=hint,
                source=self.location,
                line=exc.lineno,
            ) from exc
        if not isinstance(value, list):
            raise SourceError(
                f"{self.location} holds a JSON {_json_type(value)}, not an array of objects.",
                hint="The file must hold one JSON array of objects: [{...}, {...}]; for one "
                "object per line, use a .jsonl file.",
                source=self.location,
            )
        if not value:
            raise SourceError(
                f"{self.location} holds an empty array: there are no users and no columns.",
                hint="Export at least one legacy user.",
                source=self.location,
            )
        records: list[dict[str, Any]] = []
        escapes = "\\u" in text  # only an escape can make a lone surrogate
        for position, item in enumerate(value, 1):
            if not isinstance(item, dict):
                raise SourceError(
                    f"{self.location}: item {position} of the array is a JSON "
                    f"{_json_type(item)}, not an object.",
                    hint="Every item of the array must be a JSON object.",
                    source=self.location,
                )
            if escapes:
                _refuse_lone_surrogates(item, self.location, f"item {position}")
            records.append(_strip_keys(item, self.location, f"item {position}"))
        return records


# --- databases ---------------------------------------------------------------------------


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _looks_like_url(location: str) -> bool:
    return bool(_URL_SCHEME.match(location))


def _open_database(location: str, spec: SourceSpec) -> Source:
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
        return sa.create_engine(
            url,
            poolclass=NullPool,
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        )
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    if kind == "mysql":
        connect_args["init_command"] = "SET SESSION TRANSACTION READ ONLY"
    else:
        options = str(url.query.get("options", ""))
        connect_args["options"] = f"{options} -c default_transaction_read_only=on".strip()
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


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
        _check_column_names(names, self.describe(), "result")
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
                    _check_column_names(names, self.describe(), "result")
                    for part in result.partitions(self.chunk_rows):
                        data = [_texts(column) for column in zip(*part, strict=True)]
                        yield _columns_frame(names, data, len(part), first)
                        first += len(part)
                finally:
                    # Before the connection closes: pymysql must read a streamed result to
                    # its end (MySQL cannot stop sending it) or it fails in its finaliser.
                    result.close()

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


# --- shared helpers ----------------------------------------------------------------------


def _url_secrets(url: URL) -> list[str]:
    """The credentials a URL carries: its password and its secret-named options' values,
    longest first (so that one holding another is masked whole)."""
    found = {url.password or ""}
    for name, values in url.query.items():
        if SECRET_NAME.search(name):
            found.update([values] if isinstance(values, str) else values)
    return sorted(filter(None, found), key=len, reverse=True)


def _check_column_names(names: Sequence[str], source: str, what: str) -> None:
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


def _blank_row(row: list[str]) -> bool:
    """Whether the csv module's row is a line pandas skips as blank: nothing, or spaces."""
    return not row or (len(row) == 1 and not row[0].strip(" \t"))


def _check_delimiter(delimiter: str) -> str:
    value = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(delimiter, delimiter)
    if len(value) != 1 or value in '"\r\n':
        raise SourceError(
            f"Unusable delimiter {delimiter!r}: it must be one character other than a "
            "quote or line break.",
            hint="Pass one character, e.g. --delimiter ';' or --delimiter '\\t' for tabs.",
        )
    return value


def _refuse_lone_surrogates(
    record: dict[str, Any], location: str, where: str, line: int | None = None
) -> None:
    """Refuse a JSON record holding half a character (a \\uD800-\\uDFFF escape without
    its pair): no UTF-8 file can hold it, so no output could."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SourceError(
            f"{location}, {where}: a \\u escape that is half a character (a lone surrogate, "
            "e.g. \\ud800), which no UTF-8 file can hold.",
            hint="Fix the export: write the whole character (both halves of the surrogate "
            "pair) or remove it.",
            source=location,
            line=line,
        ) from None


# Where a JSON object names a key: a string followed by a colon.
_KEY = re.compile(r'"\s*:')


class _JsonObject(dict[str, Any]):
    """A JSON object as read, naming a key it held more than once (json keeps the last)."""

    twice: str | None = None

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _JsonObject:
        found = cls(pairs)
        if len(found) != len(pairs):
            counts = Counter(key for key, _ in pairs)
            found.twice = next(key for key, count in counts.items() if count > 1)
        return found


def _strip_keys(record: dict[str, Any], location: str, where: str) -> dict[str, Any]:
    twice = getattr(record, "twice", None)
    if twice is not None:
        raise SourceError(
            f"{location}, {where}: the key {twice!r} is given more than once, and JSON "
            "would keep only its last value.",
            hint="Give each key once in every object.",
            source=location,
        )
    stripped = {key.strip(): value for key, value in record.items()}
    if len(stripped) != len(record):
        raise SourceError(
            f"{location}, {where}: keys that differ only in surrounding spaces.",
            hint="Rename the keys so that each name is used once.",
            source=location,
        )
    if ROW in stripped:
        raise SourceError(
            f"{location}, {where}: a key named {ROW!r}, which csvimport reserves.",
            hint=f"Rename the key {ROW!r} in the source.",
            source=location,
        )
    return stripped


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _text(value: Any) -> str:
    """Render one database or JSON value as the text a mapping works on."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
        # Binary that merely happens to decode (a BIT(1) column's b"\x01") reads as hex.
        if text.isprintable() or all(c.isprintable() or c in "\t\n\r" for c in text):
            return text
        return raw.hex()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


# Column types rendered without a call per value: with str() or by a fixed method.
_BY_STR = frozenset({int, float, Decimal, UUID})
_NONE = type(None)


def _texts(column: Sequence[Any]) -> list[str]:
    """Render a column of values as text, fast when the column holds one plain type."""
    types = set(map(type, column))
    types.discard(_NONE)
    if not types or types == {str}:
        return ["" if value is None else value for value in column]
    if len(types) == 1:
        (kind,) = types
        if kind in _BY_STR:
            return ["" if value is None else str(value) for value in column]
        if kind is datetime:
            return ["" if value is None else value.isoformat(" ") for value in column]
        if kind is bool:
            return ["" if value is None else "true" if value else "false" for value in column]
    return [_text(value) for value in column]


def _records_frame(names: list[str], records: list[dict[str, Any]], first: int) -> pd.DataFrame:
    data = [_texts([record.get(name) for record in records]) for name in names]
    return _columns_frame(names, data, len(records), first)


def _columns_frame(names: list[str], data: list[list[str]], count: int, first: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        dict(zip(names, data, strict=True)), index=pd.RangeIndex(first - 1, first - 1 + count)
    )
    frame[ROW] = range(first, first + count)
    return frame


def _first_undecodable(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """Return (byte offset, line, bad bytes) of the first bytes ``encoding`` can't decode."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    newlines = 0
    try:
        with path.open("rb") as f:
            while True:
                block = f.read(1 << 20)
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    start = offset - pending + exc.start
                    line = newlines + block[: max(0, start - offset)].count(b"\n") + 1
                    return start, line, bytes(exc.object[exc.start : exc.end])
                if not block:
                    return None
                offset += len(block)
                newlines += block.count(b"\n")
    except OSError:
        return None
