"""Read the legacy users from a CSV (or TSV) export: :class:`CsvSource`.

pandas streams the records, chunk by chunk; the csv module reads the header, and
:class:`csvimport.build.sources.csvlayout.CsvLayout` follows pandas' records through the physical
lines to turn stray quotes and ragged rows into rejects instead of garbled users. The
delimiter is sniffed from the first 64 KiB when not given.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from csvimport.build.sources.base import SourceError, SourceSpec, check_column_names
from csvimport.build.sources.csvlayout import (
    FIX_QUOTE,
    STRAY_QUOTE,
    CsvLayout,
    RawLines,
    skipped_rows,
)
from csvimport.build.sources.filesource import FileSource

SNIFF_BYTES = 64 * 1024
QUOTING = (
    "a field that contains the delimiter, a quote or a line break must be in double "
    'quotes, its own quotes doubled ("say ""hi""").'
)
DELIMITER_HINT = (
    "Check --delimiter (this file was read with {delimiter!r}) and the quoting: " + QUOTING
)


class CsvSource(FileSource):
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
        check_column_names(names, self.location, "header")
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
