"""Where each record of a CSV file lies in its physical lines, and which records are garbled.

pandas reads a CSV file fast, but says nothing of the physical lines a record spans, pads
a row that has fewer fields than the header with empty values, and can only skip a row
that has more. :class:`CsvLayout` follows pandas' records chunk by chunk and finds:

- a *stray quote*: a value that opens a quote and is closed, lines later, by a quote that
  does not end a field (a well-quoted value ends with a quote followed by the delimiter or
  the line end), or that leaves its record with the wrong number of fields. The lines after
  the one it opened on were read into that value; each is likely another user;
- a row with *too few* or *too many* fields (pandas skips the latter, and warns);
- blank lines, which are not records.

Garbled records stay in the chunk as rejects (columns ``SOURCE_RULE``/``SOURCE_REASON``,
naming the physical lines), and every line a stray quote swallowed gets a row of its own,
so that the build counts, and reports, each user the file holds. A well-formed file costs
one scan of each column's bytes per chunk: the physical lines are only looked at in chunks
with a value holding a line break, a row pandas skipped, or an empty last field (which a
short row has).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.build.sources.base import ROW, SOURCE_REASON, SOURCE_RULE

STRAY_QUOTE = "stray_quote"  # the record whose value a quote opened
SWALLOWED_LINE = "swallowed_line"  # a line read into that value: likely another user
TOO_FEW_FIELDS = "too_few_fields"
TOO_MANY_FIELDS = "too_many_fields"
RULES = (STRAY_QUOTE, SWALLOWED_LINE, TOO_FEW_FIELDS, TOO_MANY_FIELDS)

FIX_QUOTE = "fix the quote and build again"
FIX_ROW = "fix the row and build again"
# pandas' warning for a row it skips (on_bad_lines="warn"); "line" counts records.
_SKIPPED = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")
# Inside quotes: anything but a quote, or a doubled quote.
_QUOTED = re.compile(r'(?:[^"]|"")*')


def skipped_rows(messages: list[str]) -> dict[int, int] | None:
    """Return {pandas record number: fields} from pandas' "Skipping line" warnings; None
    if a message does not read as one (pandas changed its wording)."""
    found: dict[int, int] = {}
    for message in messages:
        for text in filter(None, (part.strip() for part in message.splitlines())):
            match = _SKIPPED.fullmatch(text)
            if match is None:
                return None
            found[int(match[1])] = int(match[3])
    return found


@dataclass
class RawRecord:
    """One record as the file spells it, read by :func:`tokenize`."""

    lines: int  # physical lines it spans
    fields: int
    # Quoted fields that span lines or whose closing quote does not end the field:
    # (column, line it opens on, line it closes on or None at the end of the file,
    # whether its closing quote ends the field), lines counted from 0 = the record's first.
    quotes: list[tuple[int, int, int | None, bool]] = field(default_factory=list)
    blank: list[int] = field(default_factory=list)  # its blank lines, counted likewise

    def stray(self) -> tuple[int, int, int | None, bool] | None:
        """The quoted field that spans lines, the first badly closed one if any."""
        spanning = [q for q in self.quotes if q[2] is None or q[2] > q[1]]
        return next((q for q in spanning if not q[3]), spanning[0] if spanning else None)


def tokenize(first: str, more: Callable[[], str | None], delimiter: str) -> RawRecord:
    """Read one record starting with the physical line ``first`` (with its line end),
    taking further lines from ``more`` while a quote is open, as pandas' C parser does:
    a quote opens quoting only at the start of a field, "" inside quotes is a quote, and a
    closing quote followed by anything but the delimiter or the line end goes on as
    unquoted text."""
    unquoted = re.compile(f"[^{re.escape(delimiter)}\r\n]*")
    record = RawRecord(lines=1, fields=1)
    text, pos, line = first, 0, 0
    while True:  # at the start of field number record.fields
        column = record.fields - 1
        if text.startswith('"', pos):
            opened, start = line, pos + 1
            while (end := _run(_QUOTED, text, start)) == len(text):
                nxt = more()
                if nxt is None:  # the end of the file, inside quotes
                    record.quotes.append((column, opened, None, False))
                    return record
                text, start, line = nxt, 0, line + 1
                record.lines += 1
                if not nxt.strip():
                    record.blank.append(line)
            after = text[end + 1 : end + 2]
            clean = after in (delimiter, "\r", "\n", "")
            if line > opened or not clean:
                record.quotes.append((column, opened, line, clean))
            pos = end + 1 if clean else _run(unquoted, text, end + 1)
        else:
            pos = _run(unquoted, text, pos)
        if not text.startswith(delimiter, pos):
            return record
        record.fields += 1
        pos += len(delimiter)


def _run(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where a run of what ``pattern`` (which may match nothing) matches from ``pos`` ends."""
    match = pattern.match(text, pos)
    return pos if match is None else match.end()


class RawLines:
    """The file's physical lines, read forward only and on demand; line 1 is the first."""

    def __init__(self, open_text: Callable[[], IO[str]]) -> None:
        self._open = open_text
        self._file: IO[str] | None = None
        self.line = 1  # the number of the next line read

    def _at(self, line: int) -> IO[str]:
        if self._file is None:
            self._file = self._open()
        if line < self.line:
            raise AssertionError(f"line {line} is behind the reader (line {self.line})")
        deque(islice(self._file, line - self.line), maxlen=0)
        self.line = line
        return self._file

    def read(self, line: int, count: int) -> list[str]:
        lines = list(islice(self._at(line), count))
        self.line += len(lines)
        return lines

    def record(self, line: int, delimiter: str) -> RawRecord | None:
        """Tokenize the record that starts on ``line``; None past the end of the file."""
        first = next(self._at(line), None)
        if first is None:
            return None
        self.line += 1
        return tokenize(first, self._more, delimiter)

    def next_record(self, line: int, delimiter: str) -> tuple[int, RawRecord] | None:
        """Tokenize the first record on or after ``line`` that is not a blank line: return
        the line it starts on, and it; None past the end of the file."""
        whitespace = " \t".replace(delimiter, "")
        while (first := next(self._at(line), None)) is not None:
            self.line += 1
            if first.strip("\r\n").strip(whitespace):
                return line, tokenize(first, self._more, delimiter)
            line += 1
        return None

    def _more(self) -> str | None:
        assert self._file is not None
        nxt = next(self._file, None)
        self.line += nxt is not None
        return nxt

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass
class Verdict:
    """A garbled record's reject; a stray quote's also names the lines it swallowed."""

    rule: str
    reason: str
    swallowed: list[int] = field(default_factory=list)  # non-blank physical lines
    opened: int = 0  # the line the stray quote opened on
    column: str = ""


class _Rows:
    """A chunk's rows as placed: their positions in pandas' chunk (-1: a row of its own,
    for a line a stray quote swallowed or a record pandas skipped), and the rejects."""

    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []
        self.count = 0
        self.verdicts: dict[int, Verdict] = {}  # row -> its reject

    def keep(self, positions: np.ndarray) -> None:
        self.pieces.append(positions)
        self.count += len(positions)

    def reject(self, position: int, verdict: Verdict) -> None:
        self.verdicts[self.count] = verdict
        self.keep(np.array([position], dtype=np.int64))


class CsvLayout:
    """Follows pandas' chunks of one CSV file, line by line; see the module docstring.

    ``index`` numbers records as pandas does in its warnings (from 1 at the top of the
    file, blank lines and the header included); ``line`` is the physical line the next
    record starts on; ``row`` the next ``__row__``.
    """

    def __init__(
        self, names: list[str], delimiter: str, *, first_line: int, first_index: int,
        raw: RawLines,
    ) -> None:  # fmt: skip
        self.names = names
        self.width = len(names)
        self.delimiter = delimiter
        self.line = first_line
        self.index = first_index
        self.raw = raw
        self.row = 1
        self.skipped: dict[int, int] = {}  # records pandas skipped: index -> fields
        self._whitespace = " \t".replace(delimiter, "")  # what pandas calls a blank line
        # A record of well-quoted fields: a quoted field ends with a quote followed by the
        # delimiter or the line end; an unquoted one may hold quotes, but not start with one.
        d = re.escape(delimiter)
        one = f'(?:"(?:[^"]|"")*"|[^"{d}\r\n][^{d}\r\n]*|)'
        self._well_formed = f"^{one}(?:{d}{one})*(?:\r\n|\r|\n)?$"

    def place(self, chunk: pd.DataFrame) -> pd.DataFrame | None:
        """Return the chunk numbered (``__row__``), its garbled records as rejects, each
        line a stray quote swallowed as a row of its own, blank lines dropped; None when
        nothing is left. Rows pandas skipped go where they were in the file."""
        count = len(chunk)
        breaks = [name for name in self.names if _has_line_break(chunk[name])]
        skipped_here = bool(self.skipped) and min(self.skipped) < self.index + count
        last = _arrow(chunk[self.names[-1]])
        if not breaks and not skipped_here and not pc.any(self._maybe_short(last)).as_py():
            self.line += count
            self.index += count
            return self._numbered(chunk)
        return self._inspect(chunk, breaks)

    def finish(self) -> pd.DataFrame | None:
        """Return the rows pandas skipped after its last record, as rejects."""
        if not self.skipped:
            return None
        empty = pd.DataFrame({name: pd.Series([], dtype="str") for name in self.names})
        return self._inspect(empty, [])

    def unclosed_quote(self) -> tuple[int, str, int] | None:
        """Find the quote pandas says never closes: (its line, its column, the lines after
        it), reading on from the last record placed; None if it cannot be found."""
        line = self.line
        while (record := self.raw.record(line, self.delimiter)) is not None:
            stray = record.stray()
            if stray is not None and stray[2] is None:
                return line + stray[1], self._column(stray[0]), record.lines - 1 - stray[1]
            line += record.lines
        return None

    # --- the slow path ------------------------------------------------------------------

    def _inspect(self, chunk: pd.DataFrame, breaks: list[str]) -> pd.DataFrame | None:
        count = len(chunk)
        line_breaks = np.zeros(count, dtype=np.int64)
        for name in breaks:
            line_breaks += _line_breaks(_arrow(chunk[name]))
        # Where the rows pandas skipped go: after how many of this chunk's records.
        inserts: list[tuple[int, int]] = []
        for index in sorted(self.skipped):
            before = max(0, index - self.index - len(inserts))
            if count and before >= count:
                break
            inserts.append((before, index))
        rows = _Rows()
        start = 0
        for before, index in inserts:
            self._segment(rows, chunk, breaks, line_breaks, start, before)
            self._skipped(rows, self.skipped.pop(index))
            start = before
        self._segment(rows, chunk, breaks, line_breaks, start, count)
        self.index += count + len(inserts)
        return self._assemble(chunk, rows)

    def _segment(
        self, rows: _Rows, chunk: pd.DataFrame, breaks: list[str], line_breaks: np.ndarray,
        a: int, b: int,
    ) -> None:  # fmt: skip
        """Place pandas' records a..b-1 of the chunk, which follow each other in the file."""
        if a >= b:
            return
        spans = 1 + line_breaks[a:b]
        starts = np.concatenate(([0], np.cumsum(spans)[:-1]))  # lines after the first
        multi = np.flatnonzero(line_breaks[a:b])
        maybe_short = self._maybe_short(_arrow(chunk[self.names[-1]]).slice(a, b - a))
        candidates = np.flatnonzero(
            maybe_short.to_numpy(zero_copy_only=False) & (line_breaks[a:b] == 0)
        )
        first_line, total = self.line, int(spans.sum())
        self.line += total
        decided: dict[int, Verdict | None] = {}  # k -> its reject, None: a blank line
        if len(multi) or len(candidates):
            lines = self.raw.read(first_line, total)
            if len(candidates):
                decided.update(self._short_rows(chunk, a, lines, starts, candidates, first_line))
            if len(multi):
                decided.update(self._multi_line(chunk, a, lines, starts, spans, multi,
                                                first_line))  # fmt: skip
        done = 0
        for k in sorted(decided):
            rows.keep(np.arange(a + done, a + k))
            done = k + 1
            verdict = decided[k]
            if verdict is not None:
                rows.reject(a + k, verdict)
                self._swallowed(rows, verdict)
        rows.keep(np.arange(a + done, b))

    def _maybe_short(self, last: pa.LargeStringArray) -> pa.BooleanArray:
        """Which records may have too few fields, or be blank lines, by their last value:
        it is empty (pandas' padding), or, in a one-column file, blank."""
        if self.width == 1 and self._whitespace:
            last = pc.utf8_trim(last, characters=self._whitespace)
        return pc.equal(last, "")

    def _delimiters_in_values(self, chunk: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
        total = np.zeros(len(positions), dtype=np.int64)
        take = pa.array(positions, type=pa.int64())
        for name in self.names:
            values = _arrow(chunk[name]).take(take)
            total += pc.count_substring(values, self.delimiter).to_numpy(zero_copy_only=False)
        return total

    def _short_rows(
        self, chunk: pd.DataFrame, a: int, lines: list[str], starts: np.ndarray,
        candidates: np.ndarray, first_line: int,
    ) -> dict[int, Verdict | None]:  # fmt: skip
        """One-line records whose last field is empty: blank lines, or too few fields."""
        raw = pa.array(lines, type=pa.large_string()).take(starts[candidates])
        body = pc.utf8_rtrim(raw, characters="\r\n")
        fields = (
            pc.count_substring(body, self.delimiter).to_numpy(zero_copy_only=False)
            + 1
            - self._delimiters_in_values(chunk, a + candidates)
        )
        if self._whitespace:
            body = pc.utf8_trim(body, characters=self._whitespace)
        blank = pc.equal(body, "").to_numpy(zero_copy_only=False)
        decided: dict[int, Verdict | None] = dict.fromkeys(candidates[blank].tolist())
        short = ~blank & (fields < self.width)
        for k, n in zip(candidates[short].tolist(), fields[short].tolist(), strict=True):
            decided[k] = self._ragged(_lines(first_line + int(starts[k]), 1), n)
        return decided

    def _multi_line(
        self, chunk: pd.DataFrame, a: int, lines: list[str], starts: np.ndarray,
        spans: np.ndarray, multi: np.ndarray, first_line: int,
    ) -> dict[int, Verdict | None]:  # fmt: skip
        """Records whose values hold line breaks: well quoted, stray quotes or ragged.

        Each is checked whole, in Arrow: its text must read as well-quoted fields (no
        closing quote followed by anything but the delimiter or the line end), as many
        as the header has; only a record that does not is read again, in Python.
        """
        offsets = pa.array(np.append(starts, len(lines)), type=pa.int32())
        records = pa.ListArray.from_arrays(offsets, pa.array(lines, type=pa.large_string()))
        texts = pc.binary_join(records.take(pa.array(multi)), pa.scalar("", pa.large_string()))
        fields = (
            pc.count_substring(texts, self.delimiter).to_numpy(zero_copy_only=False)
            + 1
            - self._delimiters_in_values(chunk, a + multi)
        )
        well_quoted = pc.match_substring_regex(texts, self._well_formed)
        suspect = (fields != self.width) | ~well_quoted.to_numpy(zero_copy_only=False)
        decided: dict[int, Verdict | None] = {}
        for k in multi[suspect].tolist():
            own = lines[starts[k] : starts[k] + spans[k]]
            record = tokenize(own[0], partial(next, iter(own[1:]), None), self.delimiter)
            verdict = self.judge(record, first_line + int(starts[k]))
            if verdict is not None:
                decided[k] = verdict
        return decided

    def _skipped(self, rows: _Rows, fields: int) -> None:
        """Place a record pandas skipped for its fields: read it again from the file."""
        line = self.line
        record = self.raw.record(line, self.delimiter)
        if record is None:
            raise AssertionError(f"pandas skipped a record, but line {line} is past the end")
        self.line += record.lines
        verdict = self.judge(record, line) or self._ragged(_lines(line, record.lines), fields)
        rows.reject(-1, verdict)
        self._swallowed(rows, verdict)

    def judge(self, record: RawRecord, line: int) -> Verdict | None:
        """The verdict on a record read from the file; None if it is well formed."""
        stray = record.stray()
        if stray is not None and (not stray[3] or record.fields != self.width):
            column, opened, closed, _ = stray
            last = record.lines - 1 if closed is None else closed
            after = [n for n in range(opened + 1, record.lines) if n not in record.blank]
            ragged = ""
            if record.fields != self.width:
                ragged = (f", leaving the row with {record.fields} fields (the header has "
                          f"{self.width})")  # fmt: skip
            spanned = record.lines - 1 - opened
            name = self._column(column)
            reason = (
                f"{_lines(line, record.lines)}: a quote opened in column {name!r} on line "
                f"{line + opened} closes on line {line + last}{ragged}; the {spanned} "
                f"line{_s(spanned)} after it (likely {len(after)} user{_s(len(after))}) "
                f"{'were' if spanned != 1 else 'was'} read as part of this value - {FIX_QUOTE}"
            )
            return Verdict(STRAY_QUOTE, reason, [line + n for n in after], line + opened, name)
        if record.fields != self.width:
            return self._ragged(_lines(line, record.lines), record.fields)
        return None

    def _ragged(self, where: str, fields: int) -> Verdict:
        if fields < self.width:
            rule, why = TOO_FEW_FIELDS, (f"a missing {self.delimiter!r}, or a line break "
                                         "outside double quotes?")  # fmt: skip
        else:
            rule, why = TOO_MANY_FIELDS, (f"a {self.delimiter!r} in a value that is not in "
                                          "double quotes?")  # fmt: skip
        return Verdict(rule, f"{where}: {fields} field{_s(fields)}, but the header has "
                             f"{self.width} ({why}) - {FIX_ROW}")  # fmt: skip

    def _swallowed(self, rows: _Rows, verdict: Verdict) -> None:
        """One reject per line a stray quote swallowed: each is likely a user."""
        for line in verdict.swallowed:
            rows.reject(-1, Verdict(SWALLOWED_LINE, f"line {line}: likely a user, read as part "
                                    f"of the value a quote opened in column "
                                    f"{verdict.column!r} on line {verdict.opened} - "
                                    f"{FIX_QUOTE}"))  # fmt: skip

    def _column(self, index: int) -> str:
        return self.names[index] if index < self.width else f"field {index + 1}"

    def _assemble(self, chunk: pd.DataFrame, rows: _Rows) -> pd.DataFrame | None:
        if not rows.count:
            return None
        positions = np.concatenate(rows.pieces)
        virtual = positions < 0
        if len(chunk):
            out = chunk.take(np.where(virtual, 0, positions))
            if virtual.any():
                for name in self.names:
                    out[name] = out[name].where(~virtual, "")
        else:
            out = pd.DataFrame({name: [""] * rows.count for name in self.names}, dtype="str")
        out = self._numbered(out)
        if rows.verdicts:
            at = list(rows.verdicts)
            for column, attr in ((SOURCE_RULE, "rule"), (SOURCE_REASON, "reason")):
                texts = np.full(rows.count, "", dtype=object)
                texts[at] = [getattr(verdict, attr) for verdict in rows.verdicts.values()]
                out[column] = pd.Series(texts, index=out.index, dtype="str")
        return out

    def _numbered(self, chunk: pd.DataFrame) -> pd.DataFrame:
        count = len(chunk)
        chunk.index = pd.RangeIndex(self.row - 1, self.row - 1 + count)
        chunk[ROW] = range(self.row, self.row + count)
        self.row += count
        return chunk


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _lines(first: int, count: int) -> str:
    return f"line {first}" if count <= 1 else f"lines {first}-{first + count - 1}"


def _arrow(series: pd.Series) -> pa.LargeStringArray:
    array = pa.array(series, type=pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def _has_line_break(series: pd.Series) -> bool:
    """Whether a value holds "\\n" or "\\r": one scan of the column's bytes."""
    array = _arrow(series)
    data = array.buffers()[2] if len(array) else None
    if data is None:
        return False
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)
    first, last = offsets[array.offset], offsets[array.offset + len(array)]
    text = memoryview(data)[first:last].tobytes()
    return b"\n" in text or b"\r" in text


def _line_breaks(values: pa.LargeStringArray) -> np.ndarray:
    """The line breaks in each value: "\\r\\n", "\\r" and "\\n" count one each."""
    lf, cr, crlf = (pc.count_substring(values, s).to_numpy(zero_copy_only=False)
                    for s in ("\n", "\r", "\r\n"))  # fmt: skip
    return np.asarray(lf + cr - crlf, dtype=np.int64)
