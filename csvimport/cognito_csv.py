"""Write users in Cognito's CSV dialect, split into import-sized chunks with line maps.

Cognito's dialect is not RFC 4180 (facts §2): values are never quoted, a comma inside a
value is written ``\\,``, the file is UTF-8 without BOM with ``\\n`` line ends and every
header column. pandas' ``to_csv`` would quote, so this module writes the bytes itself.
Each chunk gets a line map (data line number -> source row, legacy id), so every line of
Cognito's log can be traced back to a legacy user.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

MAX_USERS_PER_FILE = 500_000  # facts §2, not adjustable
MAX_FILE_BYTES = 100 * 1024 * 1024  # facts §2, not adjustable
PRIVATE_FILE_MODE = 0o600  # import files and maps hold personal data
# Line end of csvimport's own CSV files (line maps, rejects, ...), not of Cognito's. The
# csv module quotes a field only if it holds a character of the line terminator: with
# "\n" alone, a legacy value holding a bare "\r" went unquoted and split the row on
# reading. With "\r\n" every field holding either is quoted.
SIDE_FILE_LINE_END = "\r\n"


def open_private(path: Path, mode: str = "w") -> IO[str]:
    """Open a file for writing that only the owner may read (it holds personal data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # an existing file keeps its mode otherwise
    return open(fd, mode, encoding="utf-8", newline="")


def serialize(frame: pd.DataFrame, header: list[str]) -> pd.Series:
    """Return one Cognito CSV line (without newline) per row of ``frame``, in order.

    Every value must be a ``str`` without line breaks (the validator refuses those).
    """
    if frame.empty:
        return pd.Series([], dtype=object)
    escaped = [frame[column].str.replace(",", "\\,", regex=False) for column in header]
    line = escaped[0]
    for column in escaped[1:]:
        line = line + "," + column
    return line


@dataclass
class Chunk:
    """One import file written: its name, users, bytes and digest."""

    file: str
    map_file: str
    rows: int = 0
    bytes: int = 0
    sha256: str = ""
    password_algorithm: str | None = None


@dataclass
class ChunkWriter:
    """Append Cognito lines to numbered chunk files no larger than the limits allow."""

    directory: Path
    header: list[str]
    max_rows: int = MAX_USERS_PER_FILE
    max_bytes: int = MAX_FILE_BYTES
    prefix: str = "chunk"
    chunks: list[Chunk] = field(default_factory=list)
    _file: IO[str] | None = None
    _map: Any = None  # a csv writer
    _map_file: IO[str] | None = None
    _digest: hashlib._Hash | None = None  # noqa: SLF001

    def __post_init__(self) -> None:
        self._header_line = ",".join(self.header) + "\n"
        self._header_bytes = len(self._header_line.encode("utf-8"))
        if not 1 <= self.max_rows <= MAX_USERS_PER_FILE:
            raise ValueError(f"max_rows must be 1..{MAX_USERS_PER_FILE}")
        if not self._header_bytes < self.max_bytes <= MAX_FILE_BYTES:
            raise ValueError(
                f"max_bytes must be above the header's size and at most {MAX_FILE_BYTES}"
            )

    def _open_next(self) -> Chunk:
        self.close()
        number = len(self.chunks) + 1
        chunk = Chunk(
            file=f"{self.prefix}-{number:04d}.csv", map_file=f"{self.prefix}-{number:04d}.map.csv"
        )
        self._file = open_private(self.directory / chunk.file)
        self._map_file = open_private(self.directory / chunk.map_file)
        self._map = csv.writer(self._map_file, lineterminator=SIDE_FILE_LINE_END)
        self._map.writerow(["line", "source_row", "legacy_id"])
        self._digest = hashlib.sha256()
        self._write(chunk, self._header_line)
        self.chunks.append(chunk)
        return chunk

    def _write(self, chunk: Chunk, text: str) -> None:
        data = text.encode("utf-8")
        assert self._file is not None and self._digest is not None
        self._file.write(text)
        self._digest.update(data)
        chunk.bytes += len(data)

    def write(self, lines: Iterable[str], rows: Iterable[int], legacy_ids: Iterable[str]) -> None:
        """Append users: their Cognito lines, source rows and legacy ids, in order."""
        chunk = self.chunks[-1] if self._file is not None else None
        for line, row, legacy_id in zip(lines, rows, legacy_ids, strict=True):
            text = line + "\n"
            size = len(text.encode("utf-8"))
            if size + self._header_bytes > self.max_bytes:
                raise ValueError(f"source row {row} alone is larger than the chunk size limit")
            if chunk is None or chunk.rows >= self.max_rows or chunk.bytes + size > self.max_bytes:
                chunk = self._open_next()
            self._write(chunk, text)
            chunk.rows += 1
            assert self._map is not None
            self._map.writerow([chunk.rows, row, legacy_id])  # line 1 = first data row

    def close(self) -> None:
        """Finish the open chunk (its digest) and close its files."""
        if self._file is not None:
            self._file.close()
            assert self._map_file is not None and self._digest is not None
            self._map_file.close()
            self.chunks[-1].sha256 = self._digest.hexdigest()
            self._file = self._map_file = None
            self._map = None
            self._digest = None
