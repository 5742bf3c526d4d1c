"""Cognito's CSV dialect and chunking: the bytes written, the limits, the line maps, and
the sandbox reading them back."""

from __future__ import annotations

import csv
import hashlib
import stat
from pathlib import Path

import pandas as pd
import pytest

from csvimport.cognito_csv import ChunkWriter, serialize

from .helpers import Importer

HEADER = ["name", "email", "cognito:username"]


def frame(rows: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=HEADER, dtype=object)


def test_commas_are_escaped_and_nothing_is_quoted() -> None:
    lines = serialize(frame([['Smith, "Jo"', "jo@example.com", "jo"]]), HEADER)
    assert list(lines) == ['Smith\\, "Jo",jo@example.com,jo']


def write(tmp_path: Path, lines: list[str], **limits: int) -> ChunkWriter:
    writer = ChunkWriter(tmp_path, HEADER, **limits)
    writer.write(lines, range(1, len(lines) + 1), [f"L{i}" for i in range(1, len(lines) + 1)])
    writer.close()
    return writer


def test_files_are_utf8_without_bom_with_newline_ends_and_private(tmp_path: Path) -> None:
    writer = write(tmp_path, ["Zoë,z@example.com,zoe"])
    data = (tmp_path / "chunk-0001.csv").read_bytes()
    assert data == "name,email,cognito:username\nZoë,z@example.com,zoe\n".encode()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert writer.chunks[0].sha256 == hashlib.sha256(data).hexdigest()
    assert writer.chunks[0].bytes == len(data)
    for name in ("chunk-0001.csv", "chunk-0001.map.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_chunks_split_at_max_rows_and_the_maps_number_lines_from_one(tmp_path: Path) -> None:
    writer = write(tmp_path, [f"n{i},e{i}@x.co,u{i}" for i in range(1, 8)], max_rows=3)
    assert [c.rows for c in writer.chunks] == [3, 3, 1]
    with (tmp_path / "chunk-0002.map.csv").open() as f:
        assert list(csv.reader(f)) == [["line", "source_row", "legacy_id"],
                                       ["1", "4", "L4"], ["2", "5", "L5"], ["3", "6", "L6"]]  # fmt: skip


def test_line_maps_are_what_the_csv_module_writes(tmp_path: Path) -> None:
    import io

    legacy_ids = ["plain", "", "a,b", 'say "hi"', "cr\rlf\n", " lead", "tab\t", "Zoë", '"', ","]
    writer = ChunkWriter(tmp_path, HEADER)
    writer.write([f"n,e,u{i}" for i in range(len(legacy_ids))], range(7, 17), legacy_ids)
    writer.close()
    expected = io.StringIO()
    rows = csv.writer(expected, lineterminator="\r\n")
    rows.writerow(["line", "source_row", "legacy_id"])
    rows.writerows((i + 1, 7 + i, legacy_id) for i, legacy_id in enumerate(legacy_ids))
    assert (tmp_path / "chunk-0001.map.csv").read_bytes() == expected.getvalue().encode()


def test_chunks_split_before_exceeding_max_bytes_measured_on_bytes_written(tmp_path: Path) -> None:
    lines = [f"ä{i:03d},e@x.co,u{i:03d}" for i in range(50)]  # ä is two bytes
    writer = write(tmp_path, lines, max_bytes=200)
    for chunk in writer.chunks:
        assert chunk.bytes <= 200
        assert (tmp_path / chunk.file).stat().st_size == chunk.bytes
    assert sum(c.rows for c in writer.chunks) == 50


def test_a_row_larger_than_the_byte_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source row 1"):
        write(tmp_path, ["x" * 300 + ",e,u"], max_bytes=200)


@pytest.mark.parametrize("limits", [{"max_rows": 0}, {"max_rows": 500_001}, {"max_bytes": 10}])
def test_limits_outside_cognitos_are_refused(tmp_path: Path, limits: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ChunkWriter(tmp_path, HEADER, **limits)


def test_the_sandbox_reads_back_exactly_what_was_written(
    importer: Importer, tmp_path: Path
) -> None:
    header = importer.header()
    users = pd.DataFrame([dict.fromkeys(header, "")] * 3)
    users["cognito:username"] = ["a1", "a2", "a3"]
    users["email"] = ["a1@example.com", "a2@example.com", "a3@example.com"]
    users["email_verified"] = "true"
    users["name"] = ["Doe, Jane", 'O\'Brien, "Pat"', "Ünal, Ayşe"]
    writer = ChunkWriter(tmp_path, header, max_rows=2)
    writer.write(serialize(users, header), [10, 11, 12], ["x", "y", "z"])
    writer.close()
    for chunk in writer.chunks:
        run = importer.run(
            (tmp_path / chunk.file).read_bytes(), name=chunk.file.replace(".csv", "")
        )
        assert run.job["ImportedUsers"] == chunk.rows
    names = {u: v["name"] for u, v in importer.users().items()}
    assert names == {"a1": "Doe, Jane", "a2": 'O\'Brien, "Pat"', "a3": "Ünal, Ayşe"}
