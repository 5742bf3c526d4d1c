"""The report's results as columns format each user exactly as one UserResult does."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from csvimport.cognito_csv import _stripped
from csvimport.errors import ConfigError
from csvimport.outcomes import Outcome, Password, UserResult
from csvimport.report.columns import ResultBlock
from csvimport.report.results import (
    ResultFiles,
    _failed_row,
    failed_lines,
    write_failed_users,
    write_results,
)
from csvimport.rundir import (
    FAILED_USERS,
    REJECTS,
    RESULTS,
    RunDir,
    _LineMapReader,
    _rejects_as_written,
    _rejects_by_record_table,
    _rejects_grouped,
    read_line_map,
    rejected_user_blocks,
    rejected_users,
)

from .helpers import LEGACY_MAPPING, messy_legacy_csv, offline_snapshot

# Every character json and csv treat specially, at the start, middle and end of a value,
# formula prefixes, Unicode white space and text that is not ASCII.
HOSTILE = [
    "", "plain", 'a "quoted" word', "back\\slash", "\\", '"', "comma, inside", "line\nbreak",
    "carriage\rreturn", "\r\n", "tab\there", "\t", "nul\x00byte", "\x1f\x01\x7f", "=SUM(A1)",
    "+1 555", "-1", "@user", "\tlead", "\rlead", "'quoted", "ünïcödé", "日本語", "emoji 🙂",
    "\u2028\u2029", "\xa0nbsp\xa0", " spaced ", "ends\\", "\\,", "x\x0b", "\x1c\x1d\x1e",
]  # fmt: skip


def hostile_results() -> list[UserResult]:
    results = []
    for n, value in enumerate(HOSTILE):
        for outcome in Outcome:
            imported = outcome is Outcome.IMPORTED
            results.append(UserResult(
                source_row=n * 10 + len(results), legacy_id=value, username=value[::-1],
                outcome=outcome, reason=value + " reason", rule=value[:3],
                email=value, phone=value * 2, job_id=None if n % 3 == 0 else value,
                chunk=None if n % 2 else "chunk-0001.csv", line=None if n % 4 == 0 else n,
                collided_with_row=n if outcome is Outcome.DUPLICATE else None,
                password=Password.RESET if imported else Password.NONE, password_why=value,
            ))  # fmt: skip
    return results


def test_json_lines_are_each_users_to_json_line_for_hostile_values() -> None:
    results = hostile_results()
    block = ResultBlock.of_results(results)
    assert block.json_lines().to_pylist() == [r.to_json_line() + "\n" for r in results]
    assert block.results() == results


def test_failed_lines_are_what_csv_writer_writes_for_hostile_values() -> None:
    results = hostile_results()
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    for r in results:
        writer.writerow(_failed_row(r.to_json()))
    assert "".join(failed_lines(ResultBlock.of_results(results)).to_pylist()) == out.getvalue()


@pytest.mark.parametrize("rows", [[5, 1, 3], [0, 0, 2]])
def test_a_block_taken_in_another_order_holds_the_same_users(rows: list[int]) -> None:
    results = hostile_results()[:6]
    block = ResultBlock.of_results(results)
    assert block.take(np.array(rows)).results() == [results[i] for i in rows]


def test_values_read_from_an_import_file_are_stripped_as_str_strip_does() -> None:
    values = [*HOSTILE, " \u3000wide\u3000 ", "\x85next\x85", "a\u2003"]
    assert _stripped(pa.array(values, pa.large_string())).to_pylist() == [v.strip() for v in values]


def _messy_run(folder: Path, users: int = 700) -> RunDir:
    """A run built from ``users`` messy legacy users (rejects, several chunks of source)."""
    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec

    messy_legacy_csv(folder / "legacy.csv", users)
    (folder / "mapping.toml").write_text(LEGACY_MAPPING, encoding="utf-8")
    build(BuildOptions(SourceSpec(str(folder / "legacy.csv"), chunk_rows=90),
                       folder / "mapping.toml", folder / "run"), offline_snapshot())  # fmt: skip
    return RunDir.open(folder / "run")


@pytest.mark.parametrize("per_bucket", [1, 7, 40, 10_000])
def test_rejects_in_ranges_of_source_rows_are_the_rejects_grouped_whole(
    per_bucket: int, tmp_path: Path
) -> None:
    run = _messy_run(tmp_path)
    whole = rejected_users(run)
    assert whole.num_rows > 40  # refused rows, some breaking several rules
    blocks = list(rejected_user_blocks(run, per_bucket=per_bucket))
    assert len(blocks) > 1 if per_bucket < whole.num_rows else len(blocks) == 1
    assert pa.concat_tables(blocks).combine_chunks().equals(whole.combine_chunks())
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_rejects_grouped_in_columns_are_those_read_record_by_record(tmp_path: Path) -> None:
    path = tmp_path / REJECTS
    records = [
        (7, "7", "email", "email", "not valid", "x@", ""),
        (7, "7", "email_verified", "email", "none verified", "", ""),
        (7, "7", "email", "email", "not valid", "y@", ""),  # said twice: named once
        (3, "3", "cognito:username", "duplicate", "same user", "=user", "1"),
        (3, "3", "phone_number", "duplicate", "same user", "+1 555\r\n", "1"),
        (2, '"two"', "", "source", "no attribute", "", ""),
        (9, "9", "phone_number", "duplicate", "collides", "+1", ""),
        *((n, str(n), "email", "email", value, value, "") for n, value in
          enumerate(HOSTILE, start=100)),
    ]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(["source_row", "legacy_id", "attribute", "rule", "reason", "value",
                         "collided_with_row"])  # fmt: skip
        writer.writerows(records)
    table = _rejects_as_written(path)
    assert table is not None
    assert _rejects_grouped(table).equals(_rejects_by_record_table(path))
    assert (
        _rejects_grouped(table)["reason"][2].as_py()
        == "email: not valid; email_verified: none verified"
    )


@pytest.mark.parametrize(
    "parts",
    [
        [[0, 2], [1, 3], [4, 5]],  # in order after the first part: written straight
        [[0, 2], [4, 5], [1, 3]],  # a part before the last one's rows: merged at the end
        [[5], [4], [3, 1], [0, 2]],  # every part out of order
        [[0, 2], [1, 1]],  # a row twice
    ],
)
def test_result_files_hold_the_results_by_source_row_whatever_order_they_come_in(
    tmp_path: Path, parts: list[list[int]]
) -> None:
    results = hostile_results()
    # six blocks of users, each in source order; a part is a few blocks
    blocks = [results[n::6] for n in range(6)]
    expected_dir, streamed_dir = tmp_path / "expected", tmp_path / "streamed"
    expected_dir.mkdir()
    streamed_dir.mkdir()
    given = [r for part in parts for n in part for r in blocks[n]]
    ordered = sorted(given, key=lambda r: (r.source_row, r.outcome.needs_attention,
                                           r.to_json_line()))  # fmt: skip
    write_results(expected_dir, ordered)
    write_failed_users(expected_dir, ordered)
    with ResultFiles(streamed_dir) as files:
        for part in parts:
            files.begin()
            for n in part:
                files.add(ResultBlock.of_results(blocks[n]))
        files.finish()
    for name in (RESULTS, FAILED_USERS):
        assert (streamed_dir / name).read_bytes() == (expected_dir / name).read_bytes()
    assert sorted(p.name for p in streamed_dir.iterdir()) == sorted([RESULTS, FAILED_USERS])


def _taken(reader: _LineMapReader, sizes: list[int]) -> tuple[list[int], list[str]]:
    rows: list[int] = []
    ids: list[str] = []
    for n in sizes:
        r, i = reader.take(n)
        assert len(r) == len(i) <= n
        rows += r.tolist()
        ids += i.to_pylist()
    return rows, ids


@pytest.mark.parametrize("block", [64, 1000, 1 << 20])  # bytes: many blocks, or one
def test_the_line_map_read_in_step_is_the_line_map_read_whole(block: int, tmp_path: Path) -> None:
    run = _messy_run(tmp_path)
    chunk = run.chunks[0]
    rows, ids = read_line_map(run, chunk)
    sizes = [1, 7, 50, 3, 1000, 10]  # past the end too: the rest, then nothing
    assert _taken(_LineMapReader(run, chunk, block=block), sizes) == (rows.tolist(),
                                                                       ids.to_pylist())  # fmt: skip


def test_a_line_map_not_as_written_is_read_whole_from_where_it_stopped(tmp_path: Path) -> None:
    run = _messy_run(tmp_path)
    chunk = run.chunks[0]
    path = run.path / chunk.map_file
    rows, ids = read_line_map(run, chunk)
    lines = path.read_bytes().split(b"\r\n")
    lines[400], lines[401] = lines[401], lines[400]  # in a later block, out of order
    path.write_bytes(b"\r\n".join(lines))
    assert _taken(_LineMapReader(run, chunk, block=64), [100] * 10) == (rows.tolist(),
                                                                         ids.to_pylist())  # fmt: skip
    del lines[400]  # a line missing: damage, named as read_line_map names it
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(ConfigError, match="is damaged"):
        _taken(_LineMapReader(run, chunk, block=64), [100] * 10)
