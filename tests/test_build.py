"""`csvimport build` end to end: legacy rows in, a run directory out, every row accounted
for, and what is written is what the sandbox imports."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from csvimport.build import BuildOptions, build
from csvimport.duplicates import DuplicatePolicy
from csvimport.errors import ConfigError, RefusedError
from csvimport.pool import PoolSnapshot, read_pool
from csvimport.sources import SourceSpec

from .helpers import LEGACY_COLUMNS, LEGACY_MAPPING, Importer, messy_legacy_csv

LEGACY = [
    # id, login, email, verified, mobile, first, last, modified
    ("1", "ann", "Ann@Example.com", "Y", "(415) 555-2671", "Ann", "Lee", "2020-01-01"),
    ("2", "bob", "bob@example.com", "0", "", "Bob", "", "2020-01-01"),  # not verified
    ("3", "ANN", "ann2@example.com", "yes", "", "Ann", "Two", "2024-05-01"),  # dup of 1
    ("4", "cy", "not an email", "1", "", "Cy", "", "2020-01-01"),  # bad email
    ("5", "di", "di@example.com", "true", "12", "Di, Jr.", "", "2020-01-01"),  # bad phone
    ("6", "ed", "ed@example.com", "TRUE", "+44 20 7946 0958", "Ed", "O'Neil", "2020-01-01"),
]
COLUMNS = LEGACY_COLUMNS
MAPPING = LEGACY_MAPPING


@pytest.fixture
def legacy_csv(tmp_path: Path) -> Path:
    path = tmp_path / "legacy.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(LEGACY)
    return path


@pytest.fixture
def mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


@pytest.fixture
def snapshot(importer: Importer) -> PoolSnapshot:
    return read_pool(importer.cognito, importer.info.user_pool_id)


def rejects(run: Path) -> list[dict[str, str]]:
    with (run / "rejects.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_every_source_row_is_written_rejected_or_a_duplicate(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = build(BuildOptions(SourceSpec(str(legacy_csv)), mapping_file, out), snapshot)
    assert (result.source_rows, result.written, result.rejected, result.duplicates) == (6, 2, 3, 1)
    by_row = {(r["source_row"], r["rule"]): r for r in rejects(out)}
    assert by_row[("2", "auto_verified")]["legacy_id"] == "2"
    assert by_row[("4", "email")]["value"] == "not an email"
    assert ("5", "phone") in by_row
    duplicate = by_row[("3", "duplicate")]
    assert duplicate["collided_with_row"] == "1" and duplicate["attribute"] == "cognito:username"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {
        "source_rows": 6,
        "written": 2,
        "rejected": 3,
        "duplicates": 1,
        "already_in_pool": None,
    }  # not checked without --check-existing
    assert manifest["pool"]["user_pool_id"] == snapshot.user_pool_id
    assert manifest["source"]["sha256"]
    assert [c["rows"] for c in manifest["chunks"]] == [2]
    for name in ("chunk-0001.csv", "chunk-0001.map.csv", "rejects.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600


def test_the_written_file_imports_cleanly_and_the_line_map_finds_each_user(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path, importer: Importer
) -> None:
    out = tmp_path / "run"
    build(BuildOptions(SourceSpec(str(legacy_csv)), mapping_file, out), snapshot)
    run = importer.run((out / "chunk-0001.csv").read_bytes())
    assert (run.job["ImportedUsers"], run.job["SkippedUsers"], run.job["FailedUsers"]) == (2, 0, 0)
    users = importer.users()
    assert users["ann"]["phone_number"] == "+14155552671"
    assert users["ann"]["name"] == "Ann Lee"
    assert users["ed"]["custom:legacy_id"] == "6"
    with (out / "chunk-0001.map.csv").open() as f:
        line_map = {r["line"]: r["legacy_id"] for r in csv.DictReader(f)}
    assert line_map == {"1": "1", "2": "6"}


def test_keep_latest_keeps_the_most_recently_updated_duplicate(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    build(BuildOptions(SourceSpec(str(legacy_csv)), mapping_file, out,
                       duplicates=DuplicatePolicy.KEEP_LATEST), snapshot)  # fmt: skip
    duplicate = next(r for r in rejects(out) if r["rule"] == "duplicate")
    assert (duplicate["source_row"], duplicate["collided_with_row"]) == ("1", "3")


def test_chunks_respect_max_rows(
    mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    source = tmp_path / "many.csv"
    with source.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(25):
            writer.writerow([i, f"user{i}", f"u{i}@example.com", "1", "", "U", str(i), ""])
    result = build(BuildOptions(SourceSpec(str(source)), mapping_file, tmp_path / "run",
                                max_rows=10), snapshot)  # fmt: skip
    assert [c.rows for c in result.chunks] == [10, 10, 5]


def test_a_database_source_builds_the_same_run(
    mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    db = tmp_path / "legacy.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"create table users ({', '.join(c + ' text' for c in COLUMNS)})")
        conn.executemany(f"insert into users values ({', '.join('?' * len(COLUMNS))})", LEGACY)
    result = build(BuildOptions(SourceSpec(f"sqlite:///{db}", table="users"), mapping_file,
                                tmp_path / "run"), snapshot)  # fmt: skip
    assert (result.written, result.rejected, result.duplicates) == (2, 3, 1)


def test_an_existing_run_directory_is_never_overwritten(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "journal.json").write_text("{}")
    with pytest.raises(RefusedError):
        build(BuildOptions(SourceSpec(str(legacy_csv)), mapping_file, out), snapshot)
    assert (out / "journal.json").read_text() == "{}"


def test_a_mapped_column_missing_from_the_source_fails_before_anything_is_written(
    legacy_csv: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    mapping = tmp_path / "bad.toml"
    mapping.write_text(MAPPING.replace('column = "mobile"', 'column = "mobil"'))
    with pytest.raises(ConfigError) as exc:
        build(BuildOptions(SourceSpec(str(legacy_csv)), mapping, tmp_path / "run"), snapshot)
    assert "mobil" in str(exc.value)
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run")] == []


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "csvimport", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             **(env or {})},
    )  # fmt: skip


def test_cli_build_summarises_on_stderr_and_exits_1_when_rows_were_refused(
    legacy_csv: Path, mapping_file: Path, importer: Importer, tmp_path: Path
) -> None:
    info = importer.info
    result = cli("build", str(legacy_csv), "--mapping", str(mapping_file), "--out",
                 str(tmp_path / "run"), "--pool-id", info.user_pool_id, "--endpoint-url",
                 info.endpoint_url, "--region", info.region, "--json")  # fmt: skip
    assert result.returncode == 1, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    assert (summary["written"], summary["rejected"], summary["duplicates"]) == (2, 3, 1)
    assert "6 source rows = 2 written + 3 rejected + 1 duplicates" in result.stderr
    again = cli("build", str(legacy_csv), "--mapping", str(mapping_file), "--out",
                str(tmp_path / "run2"), "--pool-spec", str(tmp_path / "run" / "pool.json"))  # fmt: skip
    assert again.returncode == 1
    assert (tmp_path / "run2" / "chunk-0001.csv").read_bytes() == (
        tmp_path / "run" / "chunk-0001.csv"
    ).read_bytes()


def test_cli_map_writes_a_starter_mapping_that_builds(
    legacy_csv: Path, importer: Importer, tmp_path: Path
) -> None:
    info = importer.info
    out = tmp_path / "starter.toml"
    result = cli("map", str(legacy_csv), "--pool-id", info.user_pool_id, "--endpoint-url",
                 info.endpoint_url, "--region", info.region, "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "cognito:username" in text and '"email"' in text


def test_cli_build_without_a_pool_is_a_usage_error(
    legacy_csv: Path, mapping_file: Path, tmp_path: Path
) -> None:
    result = cli("build", str(legacy_csv), "--mapping", str(mapping_file), "--out",
                 str(tmp_path / "run"), env={"CSVIMPORT_POOL_ID": ""})  # fmt: skip
    assert result.returncode == 2
    assert "--pool-id" in result.stderr


def test_check_existing_reports_the_users_cognito_would_skip(
    legacy_csv: Path, mapping_file: Path, importer: Importer, tmp_path: Path
) -> None:
    from .helpers import user

    importer.run([user("Ed", email="ed.old@example.com")])  # already in the pool, other case
    info = importer.info
    result = cli("build", str(legacy_csv), "--mapping", str(mapping_file), "--out",
                 str(tmp_path / "run"), "--pool-id", info.user_pool_id, "--endpoint-url",
                 info.endpoint_url, "--region", info.region, "--check-existing", "--json")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["already_in_pool"] == 1
    with (tmp_path / "run" / "existing.csv").open() as f:
        assert list(csv.DictReader(f)) == [{"source_row": "6", "legacy_id": "6", "username": "ed"}]
    assert "Already in the pool, so Cognito will skip them: 1 of the written users" in result.stderr


@pytest.mark.parametrize("value", ["0\r\x13", "a\rb", "line\nbreak", 'quote " and, comma'])
def test_rejects_csv_keeps_one_record_per_refused_value_whatever_it_holds(
    mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path, value: str
) -> None:
    source = tmp_path / "odd.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerow([1, "odd", "odd@example.com", "Y", "", "Odd", value, ""])
        writer.writerow([2, "ok", "ok@example.com", "Y", "", "Ok", "Fine", ""])
    result = build(BuildOptions(SourceSpec(str(source)), mapping_file, tmp_path / "run"), snapshot)
    refused = rejects(tmp_path / "run")
    assert [r["source_row"] for r in refused] == ["1"] * result.rejected
    assert result.written + result.rejected == 2


def test_cli_build_for_a_pool_that_does_not_exist_is_a_usage_error_naming_it(
    legacy_csv: Path, mapping_file: Path, importer: Importer, tmp_path: Path
) -> None:
    info = importer.info
    result = cli("build", str(legacy_csv), "--mapping", str(mapping_file), "--out",
                 str(tmp_path / "run"), "--pool-id", "us-east-1_nope", "--endpoint-url",
                 info.endpoint_url, "--region", info.region)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "us-east-1_nope does not exist" in result.stderr and "hint:" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_build_in_worker_processes_writes_the_same_bytes_as_one_in_process(
    snapshot: PoolSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from csvimport import chunkbuild

    submitted: list[str] = []

    class Spy(ProcessPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            submitted.append(fn.__name__)
            future = super().submit(fn, *args, **kwargs)
            if fn is chunkbuild._ready:  # else the parent may build every chunk before
                future.result()  # a worker has started
            return future

    monkeypatch.setattr(chunkbuild, "ProcessPoolExecutor", Spy)
    source, mapping = tmp_path / "legacy.csv", tmp_path / "mapping.toml"
    messy_legacy_csv(source, 1_000)  # bad values, case-variant duplicates
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"run-{workers}"
        options = BuildOptions(SourceSpec(str(source), chunk_rows=97), mapping, out,
                               duplicates=DuplicatePolicy.KEEP_LATEST, max_rows=300,
                               workers=workers, parallel_after_rows=0)  # fmt: skip
        result = build(options, snapshot)
        assert result.conserved and result.rejected and result.duplicates
        manifest = json.loads((out / "manifest.json").read_text())
        del manifest["created"]
        files = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "manifest.json"}
        runs[workers] = (manifest, files)
    assert "_build_in_worker" in submitted  # the second build did use the workers
    assert runs[0] == runs[2]
