"""What every legacy export file shares: its path, its encoding, its fingerprint, its errors.

:class:`FileSource` is the base of the CSV (:mod:`csvimport.build.sources.csvfile`) and JSON
(:mod:`csvimport.build.sources.jsonfile`) readers: it opens the file, fingerprints it for the run
manifest (size and SHA-256), and names the first undecodable byte when the encoding is wrong.
"""

from __future__ import annotations

import codecs
import hashlib
import io
from pathlib import Path
from typing import Any

from csvimport.build.sources.base import Source, SourceError, SourceSpec

ENCODING_HINT = "pass --encoding (e.g. --encoding cp1252 or latin-1)"


class FileSource(Source):
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
