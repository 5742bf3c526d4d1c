"""Write users in Cognito's CSV dialect, split into import-sized chunks with line maps.

Cognito's dialect is not RFC 4180 (facts §2): values are never quoted, a comma inside a
value is written ``\\,``, the file is UTF-8 without BOM with ``\\n`` line ends and every
header column. pandas' ``to_csv`` would quote, so this module writes the bytes itself.
It is also the one definition of how a line reads back (``split_line``), which the
report's chunk reader and the sandbox share, and of the values the dialect cannot carry
without doubt (``doubtful_backslashes``), which the validator rejects.
Each chunk gets a line map (data line number -> source row, legacy id), so every line of
Cognito's log can be traced back to a legacy user.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from csvimport.files import open_private
from csvimport.pieces import line_pieces, parsed

MAX_USERS_PER_FILE = 500_000  # facts §2, not adjustable
MAX_FILE_BYTES = 100 * 1024 * 1024  # facts §2, not adjustable
# Line end of csvimport's own CSV files (line maps, rejects, ...), not of Cognito's. The
# csv module quotes a field only if it holds a character of the line terminator: with
# "\n" alone, a legacy value holding a bare "\r" went unquoted and split the row on
# reading. With "\r\n" every field holding either is quoted.
SIDE_FILE_LINE_END = "\r\n"


def large_strings(values: Any) -> pa.LargeStringArray:
    """Return ``values`` (a pandas Series, Arrow array or iterable of str) as one Arrow
    large_string array; Arrow-backed Series convert without copying each value."""
    array = pa.array(values, type=pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


SEPARATOR = ","
ESCAPE = "\\"
# UNVERIFIED guess: the facts file documents one escape, "\," for a comma inside a value.
# Guessed: Cognito reads every other backslash literally. Under this guess a value cannot
# be written without doubt when, trimmed as Cognito trims it, it ends with a backslash
# (that backslash and the separator after it would read as a comma), or when it holds a
# backslash right before a comma (is "\\," a backslash and a comma, or a backslash and a
# separator?); the validator rejects such values. Were Cognito seen to read "\\" as one
# backslash, set this False: the writer then doubles every backslash, the readers undo
# it, and no value is refused for its backslashes.
BACKSLASH_IS_LITERAL = True

_COMMA = pa.scalar(SEPARATOR, pa.large_string())
_NOTHING = pa.scalar("", pa.large_string())
_QUOTE = pa.scalar('"', pa.large_string())
# A separator no backslash escapes: with literal backslashes, one not right after a
# backslash; else a field is a run of other characters and escape pairs.
_UNESCAPED_SEPARATOR = re.compile(r"(?<!\\),")
_ESCAPED_FIELD = re.compile(r"(?:[^,\\]|\\.|\\\Z)*", re.DOTALL)
_ESCAPE_PAIR = re.compile(r"\\([\\,])")


def escape_values(values: pa.LargeStringArray) -> pa.LargeStringArray:
    """Return each value as Cognito's dialect writes it (``\\,`` for a comma)."""
    if not BACKSLASH_IS_LITERAL and pc.any(pc.match_substring(values, ESCAPE)).as_py():
        values = pc.replace_substring(values, ESCAPE, ESCAPE * 2)
    if pc.any(pc.match_substring(values, SEPARATOR)).as_py():
        values = pc.replace_substring(values, SEPARATOR, ESCAPE + SEPARATOR)
    return values


def escape_value(value: str) -> str:
    """Return one value as Cognito's dialect writes it; see ``escape_values``."""
    if not BACKSLASH_IS_LITERAL:
        value = value.replace(ESCAPE, ESCAPE * 2)
    return value.replace(SEPARATOR, ESCAPE + SEPARATOR)


def split_line(line: str) -> list[str]:
    """Return the values of one line of an import file (without its line end), unescaped
    but not trimmed: how Cognito reads what ``escape_values`` wrote."""
    if BACKSLASH_IS_LITERAL:
        return [v.replace(ESCAPE + SEPARATOR, SEPARATOR) for v in _UNESCAPED_SEPARATOR.split(line)]
    values, start = [], 0
    while True:
        field = _ESCAPED_FIELD.match(line, start)
        assert field is not None  # the pattern matches the empty string
        values.append(_ESCAPE_PAIR.sub(r"\1", field.group()))
        start = field.end() + 1  # past the separator
        if start > len(line):
            return values


def read_rows(path: Path) -> Iterator[list[str]]:
    """Yield the values of each line of an import file, its header first, as ``split_line``
    reads them. Lines end at "\\n" alone, as the sandbox splits them."""
    with path.open(encoding="utf-8", newline="\n") as f:
        for line in f:
            yield split_line(line.removesuffix("\n"))


# Stands in for an escaped comma while Arrow splits a batch of lines at the others (Arrow's
# regular expressions have no look-behind); a batch holding it is split line by line.
_ESCAPED_COMMA = "\x1e"


def read_columns(
    path: Path, names: Sequence[str], *, batch: int = 50_000
) -> Iterator[list[list[str]]]:
    """Read an import file's named columns in batches of data lines: for each batch, one
    list per name of the values, unescaped as ``split_line`` reads them and stripped ("" for
    a column the file lacks or a line too short); see ``read_column_arrays``."""
    for columns in read_column_arrays(path, names, batch=batch):
        yield [column.to_pylist() for column in columns]


def read_column_arrays(
    path: Path, names: Sequence[str], *, batch: int = 50_000
) -> Iterator[list[pa.LargeStringArray]]:
    """``read_columns`` as Arrow arrays, never a Python string per value: the report reads
    every written user this way. A file Arrow's CSV reader reads as ``split_line`` does
    (no carriage return, every backslash before a comma) is read by it; any other, or the
    rest of one whose line Arrow refuses (too few or many values), line by line."""
    with path.open(encoding="utf-8", newline="\n") as f:
        header = split_line(f.readline().removesuffix("\n"))
    where = [header.index(name) if name in header else None for name in names]
    done = 0  # data lines read
    if _arrow_reads_as_written(path):
        try:
            for columns in _arrow_columns(path, where, len(header)):
                yield columns
                done += len(columns[0]) if columns else 0
            return
        except pa.ArrowInvalid:
            pass  # read the rest line by line, which copes with short and long lines
    with path.open(encoding="utf-8", newline="\n") as f:
        lines = itertools.islice(f, 1 + done, None)
        while True:
            chunk = [line.removesuffix("\n") for line in itertools.islice(lines, batch)]
            if not chunk:
                return
            yield _columns(chunk, where, len(header))


def _arrow_reads_as_written(path: Path, block: int = 1 << 21) -> bool:
    r"""Tell whether Arrow's CSV reader, escaping with a backslash and splitting lines at
    "\n" or "\r", reads the file's values as ``split_line`` does: no "\r", and every
    backslash right before a comma (a "\\," or a lone "\" reads otherwise)."""
    if not BACKSLASH_IS_LITERAL:
        return False
    escape, separator = ESCAPE.encode(), SEPARATOR.encode()
    with path.open("rb") as f:
        carry = b""  # a backslash at the end of a block: its comma is in the next
        while data := f.read(block):
            if carry:
                data = carry + data
            if b"\r" in data:
                return False
            cut = len(data) - 1 if data.endswith(escape) else len(data)
            carry = data[cut:]
            whole = np.frombuffer(data, dtype=np.uint8)
            after = np.flatnonzero(whole[:cut] == escape[0]) + 1  # each < len(data)
            if not np.all(whole[after] == separator[0]):  # two scans in C
                return False
        return not carry


def _arrow_columns(
    path: Path, where: list[int | None], width: int
) -> Iterator[list[pa.LargeStringArray]]:
    wanted = sorted({i for i in where if i is not None})
    names = [str(i) for i in range(width)]
    parse = pa_csv.ParseOptions(quote_char=False, escape_char=ESCAPE, ignore_empty_lines=False)
    convert = pa_csv.ConvertOptions(
        include_columns=[names[i] for i in wanted],
        column_types=dict.fromkeys((names[i] for i in wanted), pa.large_string()),
    )

    def read(data: pa.Buffer, block: int) -> pa.Table:
        options = pa_csv.ReadOptions(column_names=names, block_size=block)
        return pa_csv.read_csv(data, read_options=options, parse_options=parse,
                               convert_options=convert)  # fmt: skip

    with path.open("rb") as f:
        f.readline()  # the header
        for piece in line_pieces(f):  # a value never holds a line break (as written)
            table = parsed(piece, read)
            size = table.num_rows
            if not size:
                continue
            yield [large_strings([""] * size) if i is None
                   else _stripped(table.column(names[i]).chunk(0)) for i in where]  # fmt: skip


def _stripped(values: pa.LargeStringArray) -> pa.LargeStringArray:
    """Each value as ``str.strip()`` leaves it. A value whose first and last characters
    are printable ASCII other than a space is left as it is, and told from its bytes; only
    the others (rare) are stripped in Python, whose idea of white space (Unicode's) Arrow
    does not share exactly."""
    data = values.buffers()[2]
    if data is None or not len(values):
        return values
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
    offsets = offsets[values.offset : values.offset + len(values) + 1]
    raw = np.frombuffer(data, dtype=np.uint8)
    filled = np.flatnonzero(offsets[1:] > offsets[:-1])
    first, last = raw[offsets[filled]], raw[offsets[filled + 1] - 1]
    odd_filled = (first < 0x21) | (first > 0x7E) | (last < 0x21) | (last > 0x7E)
    if not odd_filled.any():
        return values
    odd = np.zeros(len(values), dtype=bool)
    odd[filled[odd_filled]] = True
    mask = pa.array(odd)
    fixed = [value.strip() for value in pc.filter(values, mask).to_pylist()]
    return pc.replace_with_mask(values, mask, pa.array(fixed, pa.large_string()))


def _columns(lines: list[str], where: list[int | None], width: int) -> list[pa.LargeStringArray]:
    values = large_strings(lines)
    fast = BACKSLASH_IS_LITERAL and not pc.any(pc.match_substring(values, _ESCAPED_COMMA)).as_py()
    if fast:
        parts = pc.split_pattern(pc.replace_substring(values, ESCAPE + SEPARATOR, _ESCAPED_COMMA),
                                 SEPARATOR)  # fmt: skip
        fast = pc.min(pc.list_value_length(parts)).as_py() >= width
    if not fast:
        rows = [split_line(line) for line in lines]
        return [large_strings([row[i].strip() if i is not None and i < len(row) else ""
                               for row in rows]) for i in where]  # fmt: skip
    columns = []
    for i in where:
        if i is None:
            columns.append(large_strings([""] * len(lines)))
            continue
        column = pc.replace_substring(pc.list_element(parts, i), _ESCAPED_COMMA, SEPARATOR)
        columns.append(_stripped(column))
    return columns


def written_lengths(values: pd.Series) -> pd.Series:
    """Return the length of each value as ``escape_values`` writes it."""
    lengths = values.str.len() + values.str.count(SEPARATOR)
    if not BACKSLASH_IS_LITERAL:
        lengths += values.str.count(re.escape(ESCAPE))
    return lengths


def may_hold(values: pd.Series, chars: str) -> bool:
    """Tell whether some value may hold one of ``chars`` (ASCII); False is certain.

    Arrow strings are settled by scanning their UTF-8 bytes (memchr, many times faster
    than a search value by value): an ASCII byte there is only ever that character. The
    bytes may include some outside the values (a slice), so True means look closer.
    """
    if not isinstance(values.array, pd.arrays.ArrowStringArray):
        return True
    arrow = values.array.__arrow_array__()  # the Series' own buffers, not a copy
    for chunk in arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]:
        data = chunk.buffers()[2]
        if data is not None:
            raw = data.to_pybytes()
            if any(char.encode() in raw for char in chars):
                return True
    return False


def doubtful_backslashes(values: pd.Series) -> pd.Series:
    """Tell which values this dialect cannot carry without doubt: with literal backslashes
    (BACKSLASH_IS_LITERAL), those ending with one once trimmed, or holding one right
    before a comma.

    A scan of the bytes (``may_hold``) settles a column without backslashes.
    """
    if not BACKSLASH_IS_LITERAL or not may_hold(values, ESCAPE):
        return pd.Series(False, index=values.index)
    has = values.str.contains(ESCAPE, regex=False)
    if not has.any():
        return has
    some = values[has]
    found = pd.Series(False, index=values.index)
    found[has] = some.str.rstrip().str.endswith(ESCAPE) | some.str.contains(
        ESCAPE + SEPARATOR, regex=False
    )
    return found


def _ended(values: pa.LargeStringArray, end: str) -> pa.LargeStringArray:
    """Return each value followed by ``end``."""
    return pc.binary_join_element_wise(values, pa.scalar(end, pa.large_string()), _NOTHING)


def _encoded(values: pa.LargeStringArray) -> tuple[np.ndarray, memoryview]:
    """Return (offsets, data) of a large_string array: value i is the UTF-8 bytes
    data[offsets[i]:offsets[i + 1]], and a run of values one contiguous slice."""
    if len(values) == 0:
        return np.zeros(1, dtype=np.int64), memoryview(b"")
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
    return offsets[values.offset : values.offset + len(values) + 1], memoryview(values.buffers()[2])


def _csv_fields(values: pa.LargeStringArray) -> pa.LargeStringArray:
    """Return values as the csv module writes them with QUOTE_MINIMAL and a "\\r\\n" line
    end: quoted when holding a comma, a quote or a line break, inner quotes doubled."""
    special = pc.match_substring_regex(values, '[,"\r\n]')
    if not pc.any(special).as_py():
        return values
    quoted = pc.binary_join_element_wise(
        _QUOTE, pc.replace_substring(values, '"', '""'), _QUOTE, _NOTHING
    )
    return pc.if_else(special, quoted, values)


def serialize(frame: pd.DataFrame, header: list[str]) -> pd.Series:
    """Return one Cognito CSV line (without newline) per row of ``frame``, in order.

    Every value must be a ``str`` the validator accepted: no line breaks, and no
    backslash the dialect cannot carry (BACKSLASH_IS_LITERAL).
    The lines are built in Arrow, column by column, not per row in Python: at a million
    users that is the difference between a fraction of a second and several.
    """
    if frame.empty:
        return pd.Series([], dtype=object)
    columns = [escape_values(large_strings(frame[column])) for column in header]
    lines = pc.binary_join_element_wise(*columns, _COMMA)
    return str_series(lines, frame.index)


# How Arrow strings become pandas "str" values without a Python object each.
_STR_DTYPE = {pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan)}


def str_series(values: pa.LargeStringArray, index: pd.Index) -> pd.Series:
    """Return Arrow strings as a pandas "str" Series, without a Python object per value."""
    return pd.Series(values.to_pandas(types_mapper=_STR_DTYPE.get).array, index=index)


def constant_strings(value: str, index: pd.Index) -> pd.Series:
    """Return a "str" Series of ``value`` repeated: assigning the scalar to a column would
    convert one Python object per row (13 absent columns cost 50 ms per 50k-row chunk)."""
    return str_series(pa.repeat(pa.scalar(value, pa.large_string()), len(index)), index)


@dataclass
class Chunk:
    """One import file written: its name, users, bytes and digest."""

    file: str
    map_file: str
    rows: int = 0
    bytes: int = 0
    sha256: str = ""
    password_algorithm: str | None = None
    map_sha256: str = ""  # of the line map, so later commands notice an edited one


@dataclass
class ChunkWriter:
    """Append Cognito lines to numbered chunk files no larger than the limits allow."""

    directory: Path
    header: list[str]
    max_rows: int = MAX_USERS_PER_FILE
    max_bytes: int = MAX_FILE_BYTES
    prefix: str = "chunk"
    # Numbering goes on after the chunks already in the list: writers of one run (one per
    # password algorithm) share it.
    chunks: list[Chunk] = field(default_factory=list)
    password_algorithm: str | None = None  # a hash job's chunks: header + password_hash
    _file: IO[bytes] | None = None
    _map_file: IO[bytes] | None = None
    _digest: hashlib._Hash | None = None  # noqa: SLF001
    _map_digest: hashlib._Hash | None = None  # noqa: SLF001

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
            file=f"{self.prefix}-{number:04d}.csv",
            map_file=f"{self.prefix}-{number:04d}.map.csv",
            password_algorithm=self.password_algorithm,
        )
        self._file = open_private(self.directory / chunk.file, "wb")
        self._map_file = open_private(self.directory / chunk.map_file, "wb")
        self._digest = hashlib.sha256()
        self._map_digest = hashlib.sha256()
        self._write_map(f"line,source_row,legacy_id{SIDE_FILE_LINE_END}".encode())
        self._write(chunk, self._header_line.encode("utf-8"))
        self.chunks.append(chunk)
        return chunk

    def _write(self, chunk: Chunk, data: bytes | memoryview) -> None:
        assert self._file is not None and self._digest is not None
        self._file.write(data)
        self._digest.update(data)
        chunk.bytes += len(data)

    def _write_map(self, data: bytes | memoryview) -> None:
        assert self._map_file is not None and self._map_digest is not None
        self._map_file.write(data)
        self._map_digest.update(data)

    def write(self, lines: Iterable[str], rows: Iterable[int], legacy_ids: Iterable[str]) -> None:
        """Append users: their Cognito lines, source rows and legacy ids, in order.

        Vectorised: the lines are encoded once into one Arrow buffer and each chunk file
        gets a slice of it; the line maps are rendered the same way, in the csv module's
        dialect (QUOTE_MINIMAL, "\\r\\n").
        """
        offsets, data = _encoded(_ended(large_strings(lines), "\n"))
        row_numbers = np.fromiter(rows, dtype=np.int64)
        # "source_row,legacy_id" of each user; the line number goes in front per chunk
        tails = pc.binary_join_element_wise(
            pc.cast(pa.array(row_numbers), pa.large_string()),
            _csv_fields(large_strings(legacy_ids)),
            _COMMA,
        )
        if not len(offsets) - 1 == len(row_numbers) == len(tails):
            raise ValueError("lines, rows and legacy_ids differ in length")
        too_large = np.flatnonzero(np.diff(offsets) + self._header_bytes > self.max_bytes)
        end = int(too_large[0]) if too_large.size else len(row_numbers)
        chunk = self.chunks[-1] if self._file is not None else None
        start = 0
        while start < end:
            first_size = int(offsets[start + 1] - offsets[start])
            if (
                chunk is None
                or chunk.rows >= self.max_rows
                or (chunk.bytes + first_size > self.max_bytes)
            ):
                chunk = self._open_next()
            # as many lines as the chunk has room for, by rows and by bytes
            room = int(offsets[start]) + self.max_bytes - chunk.bytes
            stop = min(
                end,
                start + self.max_rows - chunk.rows,
                int(np.searchsorted(offsets, room, side="right")) - 1,
            )
            self._write(chunk, data[offsets[start] : offsets[stop]])
            numbers = np.arange(chunk.rows + 1, chunk.rows + 1 + stop - start)  # line 1 = first
            entries = pc.binary_join_element_wise(
                pc.cast(pa.array(numbers), pa.large_string()), tails[start:stop], _COMMA
            )
            map_offsets, map_data = _encoded(_ended(entries, SIDE_FILE_LINE_END))
            self._write_map(map_data[map_offsets[0] : map_offsets[-1]])
            chunk.rows += stop - start
            start = stop
        if end < len(row_numbers):
            raise ValueError(
                f"source row {row_numbers[end]} alone is larger than the chunk size limit"
            )

    def close(self) -> None:
        """Finish the open chunk (its digests) and close its files."""
        if self._file is not None:
            self._file.close()
            assert self._map_file is not None and self._digest is not None
            assert self._map_digest is not None
            self._map_file.close()
            self.chunks[-1].sha256 = self._digest.hexdigest()
            self.chunks[-1].map_sha256 = self._map_digest.hexdigest()
            self._file = self._map_file = None
            self._digest = self._map_digest = None
