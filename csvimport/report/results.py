"""``report``'s result files: ``results.jsonl`` for the commands that follow, and
``failed-users.csv`` for people and spreadsheets.

Both are written whole and private (``csvimport.files``); ``results.jsonl`` is read back
by ``csvimport.rundir.read_results``. ``ResultFiles`` writes them as results come, never
holding them: each part (the rejects, then each import file's users) arrives in source
order, goes to a private part file, and the parts are merged by source row at the end.
"""

from __future__ import annotations

import csv
import heapq
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from csvimport.files import open_private, private_work_folder, replaced_private
from csvimport.outcomes import UserResult
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


class ResultFiles:
    """Write ``results.jsonl`` and ``failed-users.csv`` from results that come in parts,
    each part in source order (``begin``, ``add``...), merged by source row at ``finish``.

    Memory stays flat: a part line is ``source_row<TAB>needs-attention<TAB>json``; only
    the merge's one line per part is held. Use it as a context manager: the part files go
    whatever happens, and a killed report's are removed by the next.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # a killed report's parts (personal data) go when the next one starts
        self._folder = private_work_folder(run_dir, "report-parts")
        self._parts: list[Path] = []
        self._file: IO[str] | None = None
        self._last_row = -1

    def __enter__(self) -> ResultFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def begin(self) -> None:
        """Start a part: the results added next are in source order among themselves."""
        self._end()
        path = self._folder / f"part-{len(self._parts):05d}"
        self._parts.append(path)
        self._file = open_private(path, "w")
        self._last_row = -1

    def add(self, result: UserResult) -> None:
        self.add_line(result.source_row, result.outcome.needs_attention, result.to_json_line())

    def add_line(self, row: int, attention: bool, line: str) -> None:
        """``add`` for a result already formatted as ``UserResult.to_json_line`` does."""
        if self._file is None or row < self._last_row:
            self.begin()  # each part must be in source order: out of order starts another
        assert self._file is not None
        self._last_row = row
        self._file.write(f"{row}\t{'1' if attention else '0'}\t{line}\n")

    def _end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish(self) -> list[Path]:
        """Merge the parts into the two files (each replaced whole); return their paths."""
        self._end()
        results_path, failed_path = self.run_dir / RESULTS, self.run_dir / FAILED_USERS
        with replaced_private(results_path) as results, replaced_private(failed_path) as failed:
            writer = csv.writer(failed)
            writer.writerow(FAILED_COLUMNS)
            for attention, line in _merged(self._parts):
                results.write(line)
                if attention:
                    writer.writerow(_failed_row(json.loads(line)))
        return [results_path, failed_path]

    def close(self) -> None:
        self._end()
        shutil.rmtree(self._folder, ignore_errors=True)


def _merged(parts: Iterable[Path]) -> Iterator[tuple[bool, str]]:
    """(needs attention, JSON line) of every part line, by source row."""

    def read(path: Path) -> Iterator[tuple[int, bool, str]]:
        with path.open(encoding="utf-8", newline="\n") as f:
            for raw in f:
                row, attention, line = raw.split("\t", 2)
                yield int(row), attention == "1", line

    for _, attention, line in heapq.merge(*(read(p) for p in parts)):
        yield attention, line
