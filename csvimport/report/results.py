"""``report``'s result files: ``results.jsonl`` for the commands that follow, and
``failed-users.csv`` for people and spreadsheets.

Both are written whole and private (``csvimport.files``); ``results.jsonl`` is read back
by ``csvimport.rundir.read_results``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from csvimport.files import replaced_private
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
                data = r.to_json()
                writer.writerow([neutralise("" if data[c] is None else str(data[c]))
                                 for c in FAILED_COLUMNS])  # fmt: skip
    return path
