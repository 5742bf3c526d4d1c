"""Open the legacy source a :class:`~csvimport.build.sources.base.SourceSpec` names.

:func:`open_source` is the stage's one entry point: it tells a database URL from a file
path, checks the spec (the file exists and has a known suffix; a database URL is
supported and names exactly one of table or query), and returns the matching
:class:`~csvimport.build.sources.base.Source`.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from csvimport.build.sources.base import (
    SUPPORTED_URLS,
    Source,
    SourceError,
    SourceSpec,
    looks_like_url,
)
from csvimport.build.sources.csvfile import CsvSource
from csvimport.build.sources.jsonfile import JsonlSource, JsonSource

FILE_KINDS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}

UNKNOWN_KIND_HINT = f"Give a .csv, .tsv, .jsonl or .json file, or a database URL: {SUPPORTED_URLS}."


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
    if looks_like_url(location):
        # SQLAlchemy and the drivers load for a database only
        from csvimport.build.sources.database import open_database

        return open_database(location, spec)
    return _open_file(location, spec)


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
