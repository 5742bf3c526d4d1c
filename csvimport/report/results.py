"""``report``'s result files: ``results.jsonl`` for the commands that follow, and
``failed-users.csv`` for people and spreadsheets.

Both are written whole and private (``csvimport.files``); ``results.jsonl`` is read back
by ``csvimport.rundir.read_results``. ``ResultFiles`` writes them as results come, never
holding them: each part (the rejects, then each import file's users) arrives in source
order, goes to a private part file, and the parts are merged by source row at the end.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.files import (
    fsync_folder,
    open_private,
    private_work_folder,
    remove_abandoned,
    replaced_private,
)
from csvimport.outcomes import Outcome, UserResult
from csvimport.report.columns import (
    OUTCOME_LIST,
    STRING,
    Coded,
    ResultBlock,
    first_bytes,
    holds,
    segments,
    text,
    value_bytes,
)
from csvimport.rundir import FAILED_USERS, RESULTS

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Make a value safe to open in a spreadsheet: no cell starts a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def write_results(run_dir: Path, results: list[UserResult]) -> Path:
    """``results.jsonl``: one JSON object per source user, in source order."""
    path = run_dir / RESULTS
    with replaced_private(path) as f:
        for result in results:
            f.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    return path


FAILED_COLUMNS = ["source_row", "legacy_id", "username", "email", "phone", "outcome",
                  "reason", "job_id", "chunk", "line"]  # fmt: skip


def write_failed_users(run_dir: Path, results: list[UserResult]) -> Path:
    """``failed-users.csv``: every user not imported, for people and spreadsheets."""
    path = run_dir / FAILED_USERS
    with replaced_private(path) as f:
        writer = csv.writer(f)
        writer.writerow(FAILED_COLUMNS)
        for r in results:
            if r.outcome.needs_attention:
                writer.writerow(_failed_row(r.to_json()))
    return path


def _failed_row(data: dict[str, object]) -> list[str]:
    """A result's failed-users.csv row, safe to open in a spreadsheet."""
    return [neutralise("" if data[c] is None else str(data[c])) for c in FAILED_COLUMNS]


# What a spreadsheet would run as a formula, and what csv.writer quotes (the excel
# dialect's delimiter, quote character and line terminator), for Arrow's regular expressions.
_FORMULA = "^[=+@\t\r-]"
_QUOTED = '[,"\r\n]'
_QUOTED_BYTES = b',"\r\n'
assert set(FORMULA_PREFIXES) == set("=+@\t\r-")


def _csv_field(value: str) -> str:
    """One value as csv.writer writes it (excel dialect, minimal quoting)."""
    if any(c in value for c in _QUOTED_BYTES.decode()):
        return '"' + value.replace('"', '""') + '"'
    return value


def _spreadsheet_fields(values: pa.Array) -> pa.Array:
    """Each value neutralised and quoted as csv.writer writes it (``_csv_field``)."""
    if np.isin(first_bytes(values), np.frombuffer("".join(FORMULA_PREFIXES).encode(),
                                                  dtype=np.uint8)).any():  # fmt: skip
        values = pc.if_else(pc.match_substring_regex(values, _FORMULA),
                            pc.binary_join_element_wise(text("'"), values, text("")),
                            values)  # fmt: skip
    if not holds(values, _QUOTED_BYTES):
        return values
    quoted = pc.binary_join_element_wise(
        text('"'), pc.replace_substring(values, '"', '""'), text('"'), text("")
    )
    return pc.if_else(pc.match_substring_regex(values, _QUOTED), quoted, values)


def failed_lines(block: ResultBlock) -> pa.Array:
    """Each user's failed-users.csv row (``_failed_row`` as csv.writer writes it), with
    its line end."""

    def field(value: str | None) -> str:
        return _csv_field(neutralise("" if value is None else value))

    outcome = Coded(block.outcome, [o.value for o in OUTCOME_LIST])
    middle = segments([outcome, block.reason, block.job_id, block.chunk],
                      lambda *values: "," + ",".join(map(field, values)) + ",")  # fmt: skip
    if block.line is None:
        lines = Coded.constant("", len(block)).texts()
    else:
        lines = pc.fill_null(pc.cast(pa.array(block.line, pa.int64(), mask=block.line < 0),
                                     STRING), text(""))  # fmt: skip
    comma = text(",")
    pieces = [
        pc.cast(pa.array(block.source_row, pa.int64()), STRING), comma,
        _spreadsheet_fields(block.legacy_id), comma, _spreadsheet_fields(block.username),
        comma, _spreadsheet_fields(block.email), comma, _spreadsheet_fields(block.phone),
        middle, lines, text("\r\n"),
    ]  # fmt: skip
    return pc.binary_join_element_wise(*pieces, text(""))


# The most users whose lines are made at once (about 20 MB of them, with their rows),
# and the users of a part file's batch (the merge holds one batch of each part)
BLOCK_USERS = 50_000
PART_BATCH = 10_000
# What the result files' thread writes before it has it put on disk (``_Output``)
SYNC_BYTES = 16 << 20
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
_PART = pa.schema([("row", pa.int64()), ("line", STRING), ("failed", STRING)])


class ResultFiles:
    """Write ``results.jsonl`` and ``failed-users.csv`` from results that come in parts,
    each part in source order (``begin``, ``add``...), merged by source row.

    Memory stays flat, and each line is written once where it can be: the first part (a
    report's rejects) goes to a part file (an Arrow stream of source row, JSON line and
    failed-users.csv row or null). From the next part on, while blocks keep coming in
    source order (a run's import files do), each block is merged at once with the part
    files' rows up to its last and written straight to the result files. A block out of
    order turns what was written into a part file, and every part is then merged at
    ``finish``. Use it as a context manager: the part files go whatever happens, and a
    killed report's are removed by the next.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # a killed report's parts (personal data) go when the next one starts
        self._folder = private_work_folder(run_dir, "report-parts")
        self._parts: list[Path] = []
        self._file: IO[bytes] | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._last_row = -1
        self._begun = 0
        self._output: _Output | None = None  # the result files, once written straight
        self._spilled: _Merge | None = None  # the part files the output merges in
        self._streaming = True  # False once a block came out of order

    def __enter__(self) -> ResultFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def begin(self) -> None:
        """Start a part: the results added next are in source order among themselves."""
        self._end()
        self._begun += 1
        self._last_row = -1

    def add(self, block: ResultBlock) -> None:
        """Write a block of results (their order does not matter)."""
        if len(block) > BLOCK_USERS:  # its lines are made a slice at a time
            for start in range(0, len(block), BLOCK_USERS):
                stop = min(start + BLOCK_USERS, len(block))
                self.add(block.take(np.arange(start, stop)))
            return
        if not len(block):
            return
        batch = _part_batch(block)
        first = batch.column(0)[0].as_py()
        if self._streaming and self._begun > 1 and not self._parts_open():
            if self._output is None:
                self._output = _Output(self._folder)
                self._spilled = _Merge(self._parts)
            if first > self._output.last_row:
                assert self._spilled is not None
                self._output.write(_in_order([*self._spilled.upto(int(batch.column(0)[-1].as_py())),
                                              batch]))  # fmt: skip
                return
            self._stop_streaming()
        if self._writer is None or first < self._last_row:
            self._new_part()  # each part must be in source order: out of order starts another
        assert self._writer is not None
        for start in range(0, batch.num_rows, PART_BATCH):  # the merge holds one per part
            self._writer.write_batch(batch.slice(start, PART_BATCH))
        self._last_row = batch.column(0)[-1].as_py()

    def _parts_open(self) -> bool:
        return self._writer is not None

    def _new_part(self) -> None:
        self._end()
        path = self._folder / f"part-{len(self._parts):05d}"
        self._parts.append(path)
        self._file = open_private(path, "wb")
        self._writer = pa.ipc.new_stream(self._file, _PART)
        self._last_row = -1

    def _stop_streaming(self) -> None:
        """Turn what was written straight (with the rest of the part files it merges)
        into one part file: every part is merged at ``finish``."""
        self._streaming = False
        output, spilled = self._output, self._spilled
        self._output = self._spilled = None
        if output is None or spilled is None:
            return
        for rest in spilled.upto(None):
            output.write(rest)
        output.close()
        self._parts.clear()
        self._new_part()
        assert self._writer is not None
        for batch in output.read_back():
            self._writer.write_batch(batch)
        self._end()

    def _end(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish(self) -> list[Path]:
        """Write the result files whole (each replacing the last); return their paths."""
        self._end()
        if self._output is None:
            self._output = _Output(self._folder)
            self._spilled = _Merge(self._parts)
        assert self._spilled is not None
        for rest in self._spilled.upto(None):
            self._output.write(rest)
        paths = self._output.put_in(self.run_dir)
        self._output = None
        return paths

    def close(self) -> None:
        self._end()
        if self._output is not None:
            self._output.close()
        shutil.rmtree(self._folder, ignore_errors=True)


def _part_batch(block: ResultBlock) -> pa.RecordBatch:
    """A block as a part file holds it (schema ``_PART``), by source row."""
    rows = block.source_row
    attention = np.flatnonzero(block.attention)
    failed = pa.nulls(len(block), STRING)
    if attention.size:
        mask = np.zeros(len(block), dtype=bool)
        mask[attention] = True
        failed = pc.replace_with_mask(failed, pa.array(mask), failed_lines(block.take(attention)))
    batch = pa.record_batch([pa.array(rows, pa.int64()), block.json_lines(), failed],
                            schema=_PART)  # fmt: skip
    if np.any(rows[1:] < rows[:-1]):
        batch = batch.take(pa.array(np.argsort(rows, kind="stable"), pa.int64()))
    return batch


class _Output:
    """The two result files being written, in the work folder until ``put_in``.

    A thread of its own writes them (copying tens of MB into the page cache takes as long
    as making the lines), so the next block is made meanwhile; at most one block waits.
    It also has what it wrote put on disk every ``SYNC_BYTES`` meanwhile, so that the
    fsync before the files are put in place has little left to wait for.
    """

    def __init__(self, folder: Path) -> None:
        self._paths = (folder / RESULTS, folder / FAILED_USERS)
        self._files = [open_private(path, "wb") for path in self._paths]
        self._files[1].write((",".join(FAILED_COLUMNS) + "\r\n").encode())
        self.last_row = -1
        self._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._write_all, name="result-files",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _write_all(self) -> None:
        unsynced = [0, 0]  # bytes written to each file since its last sync
        while (batch := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # keep taking, so that the producer never blocks
            try:
                for n, values in enumerate((batch.column(1), pc.drop_null(batch.column(2)))):
                    unsynced[n] += self._files[n].write(_values(values))
                    if unsynced[n] >= SYNC_BYTES:
                        self._files[n].flush()
                        _datasync(self._files[n].fileno())
                        unsynced[n] = 0
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                self._failure = exc

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self._check()
        self._queue.put(batch)
        self.last_row = max(self.last_row, int(batch.column(0)[-1].as_py()))

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _drain(self) -> None:
        """Wait until every block given is written."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._check()

    def close(self) -> None:
        try:
            self._drain()
        finally:
            for f in self._files:
                f.close()

    def read_back(self) -> Iterator[pa.RecordBatch]:
        """What was written, as part batches (slowly: only when blocks come out of order)."""
        rows: list[int] = []
        lines: list[str] = []
        failed: list[str | None] = []

        def batch() -> pa.RecordBatch:
            return pa.record_batch([pa.array(rows, pa.int64()), pa.array(lines, STRING),
                                    pa.array(failed, STRING)], schema=_PART)  # fmt: skip

        with self._paths[0].open(encoding="utf-8", newline="\n") as f:
            for line in f:
                data = json.loads(line)
                rows.append(data["source_row"])
                lines.append(line)
                attention = Outcome(data["outcome"]).needs_attention
                failed.append(_csv_line(_failed_row(data)) if attention else None)
                if len(rows) == 50_000:
                    yield batch()
                    rows, lines, failed = [], [], []
        if rows:
            yield batch()

    def put_in(self, run_dir: Path) -> list[Path]:
        """Put the files in ``run_dir`` (fsynced, each replacing the last) and return
        their paths there."""
        self._drain()
        placed = []
        for f, path in zip(self._files, self._paths, strict=True):
            f.flush()
            os.fsync(f.fileno())
            f.close()
            remove_abandoned(run_dir / path.name)  # what killed reports left beside it
            os.replace(path, run_dir / path.name)
            placed.append(run_dir / path.name)
        fsync_folder(run_dir)
        return placed


def _csv_line(row: list[str]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out).writerow(row)
    return out.getvalue()


def _values(strings: pa.Array) -> memoryview:
    """The bytes of a string array's values, one after the other."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    return value_bytes(strings).data


def _blocks(path: Path) -> Iterator[pa.RecordBatch]:
    """A part's batches, each ending with a source row the next does not start with."""
    pending: pa.RecordBatch | None = None
    # read, not mapped: a mapped file's pages would stay in the report's memory
    with pa.ipc.open_stream(pa.OSFile(str(path))) as reader:
        for batch in reader:
            if not batch.num_rows:
                continue
            if pending is not None and batch.column(0)[0] == pending.column(0)[-1]:
                pending = pa.Table.from_batches([pending, batch]).combine_chunks().to_batches()[0]
                continue
            if pending is not None:
                yield pending
            pending = batch
    if pending is not None:
        yield pending


class _Merge:
    """The part files' rows in order of (source row, needs attention, JSON line), a block
    at a time: each round takes, from every part, the rows up to the smallest last row of
    the parts' current blocks, and sorts those."""

    def __init__(self, parts: Iterable[Path]) -> None:
        self._heads: list[tuple[Iterator[pa.RecordBatch], pa.RecordBatch, np.ndarray]] = []
        for path in parts:
            self._next(_blocks(path))

    def _next(self, blocks: Iterator[pa.RecordBatch]) -> None:
        for batch in blocks:
            self._heads.append((blocks, batch, batch.column(0).to_numpy()))
            return

    def upto(self, last: int | None) -> Iterator[pa.RecordBatch]:
        """The rows not given yet up to source row ``last`` (all when None)."""
        while self._heads:
            cutoff = min(int(rows[-1]) for _, _, rows in self._heads)
            if last is not None and cutoff >= last:
                cutoff = last
            heads, self._heads = self._heads, []
            pieces = []
            for blocks, batch, rows in heads:
                end = int(np.searchsorted(rows, cutoff, side="right"))
                pieces.append(batch.slice(0, end))
                if end < len(rows):
                    self._heads.append((blocks, batch.slice(end), rows[end:]))
                else:
                    self._next(blocks)
            yield _in_order(pieces)
            if cutoff == last:
                return


def _in_order(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    """The pieces' rows (each piece by source row) in order of (source row, needs
    attention, JSON line)."""
    pieces = [p for p in pieces if p.num_rows]
    if len(pieces) <= 1:
        return pieces[0] if pieces else pa.record_batch([[], [], []], schema=_PART)
    table = pa.Table.from_batches(pieces)  # taken from, never copied whole first
    rows = table.column(0).to_numpy()
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    if np.any(ordered[1:] == ordered[:-1]):  # a row twice: order as the whole line does
        lines = table.column(1).to_pylist()
        attention = table.column(2).is_valid().to_pylist()
        order = np.array(sorted(range(len(rows)),
                                key=lambda i: (rows[i], attention[i], lines[i])))  # fmt: skip
    return table.take(pa.array(order, pa.int64())).combine_chunks().to_batches()[0]
