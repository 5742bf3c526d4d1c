"""`csvimport build` end to end: legacy rows in, a run directory out, every row accounted
for, and what is written is what the sandbox imports."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from csvimport.build.builder import BuildOptions, build
from csvimport.build.choices import DuplicatePolicy
from csvimport.build.sources.base import SourceSpec
from csvimport.errors import ConfigError, RefusedError
from csvimport.pool import PoolSnapshot, read_pool

from .helpers import (
    CRASH_AT,
    LEGACY_COLUMNS,
    LEGACY_MAPPING,
    Importer,
    assert_manifest_holds_every_files_sha256,
    csvimport,
    messy_legacy_csv,
    offline_snapshot,
)

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


def write_legacy(path: Path, rows: list[tuple[Any, ...]]) -> Path:
    """A legacy CSV of COLUMNS holding ``rows``, as the csv module writes it."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


@pytest.fixture
def legacy_csv(tmp_path: Path) -> Path:
    return write_legacy(tmp_path / "legacy.csv", LEGACY)


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


def test_the_manifest_holds_the_sha256_of_every_file_the_build_wrote(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    options = BuildOptions(SourceSpec(str(legacy_csv)), mapping_file, out, max_rows=1,
                           existing=frozenset({"ann"}))  # fmt: skip
    build(options, snapshot)
    assert {p.name for p in out.iterdir()} == {
        "chunk-0001.csv", "chunk-0001.map.csv", "chunk-0002.csv", "chunk-0002.map.csv",
        "rejects.csv", "existing.csv", "pool.json", "mapping.toml", "manifest.json",
    }  # fmt: skip
    assert_manifest_holds_every_files_sha256(out)


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
    return csvimport({**os.environ, "AWS_ACCESS_KEY_ID": "testing",
                      "AWS_SECRET_ACCESS_KEY": "testing", **(env or {})}, *args)  # fmt: skip


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


def test_cli_map_proposes_folding_line_breaks_for_a_column_whose_values_span_lines(
    snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    source = tmp_path / "addresses.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("login", "email", "address"), ("ann", "a@example.com", "1 Rd"),
                                 ("bob", "b@example.com", "2 Rd\r\nTown")])  # fmt: skip
    snapshot.save(tmp_path / "pool.json")
    result = cli("map", str(source), "--pool-spec", str(tmp_path / "pool.json"))
    assert result.returncode == 0, result.stderr
    assert (
        '[attributes.address]\ncolumn = "address"\n'
        "# Some sampled values of address span lines, which Cognito's CSV cannot carry:\n"
        "# such users are rejected, unless their line breaks are folded (uncomment):\n"
        '# fold_line_breaks = ", "\n\n'
    ) in result.stdout
    assert result.stdout.count("fold_line_breaks = ") == 1


def test_cli_map_out_writes_the_mapping_private_and_never_overwrites_one(
    snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_text("login,email\nann,a@example.com\n", encoding="utf-8")
    snapshot.save(tmp_path / "pool.json")
    out = tmp_path / "mapping.toml"
    args = ("map", str(source), "--pool-spec", str(tmp_path / "pool.json"))
    printed = cli(*args)
    result = cli(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == printed.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    again = cli(*args, "--out", str(out))
    assert again.returncode == 2 and "never overwrites a mapping" in again.stderr
    assert out.read_text(encoding="utf-8") == printed.stdout


def test_cli_map_of_a_source_it_cannot_sample_still_writes_the_mapping_and_says_why(
    snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    source = tmp_path / "latin1.csv"  # past the 64 KiB the header is read from
    good = "".join(f"user{n},u{n}@example.com\n" for n in range(4_000))
    source.write_bytes(f"login,email\n{good}bj\u00f6rn,b@example.com\n".encode("latin-1"))
    snapshot.save(tmp_path / "pool.json")
    result = cli("map", str(source), "--pool-spec", str(tmp_path / "pool.json"))
    assert result.returncode == 0, result.stderr
    assert '[attributes."cognito:username"]\ncolumn = "login"' in result.stdout
    assert "note: no values sampled, so no fold_line_breaks proposed" in result.stderr
    assert "byte f6 at offset" in result.stderr


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
    source = write_legacy(tmp_path / "odd.csv", [
        (1, "odd", "odd@example.com", "Y", "", "Odd", value, ""),
        (2, "ok", "ok@example.com", "Y", "", "Ok", "Fine", ""),
    ])  # fmt: skip
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


FOLDING_MAPPING = MAPPING.replace(
    'join = ["first", "last"]', 'join = ["first", "last"]\nfold_line_breaks = ", "'
)


def test_a_value_with_line_breaks_is_rejected_naming_fold_line_breaks_as_the_fix(
    mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    source = write_legacy(tmp_path / "breaks.csv", [
        (1, "ann", "ann@example.com", "Y", "", "Ann", "Lee\r\nSmith", ""),
        (2, "cy", "cy@example.com", "Y", "", "Cy", "Doe", ""),
    ])  # fmt: skip
    out = tmp_path / "run"
    result = build(BuildOptions(SourceSpec(str(source)), mapping_file, out), snapshot)
    assert (result.written, result.rejected, result.folded) == (1, 1, None)
    [refused] = rejects(out)
    assert refused["source_row"] == "1"
    assert (refused["attribute"], refused["rule"]) == ("name", "newline")
    fix = 'add fold_line_breaks = ", " (or " ") to the mapping\'s table for name'
    assert fix in refused["reason"]
    assert "folded_line_breaks" not in json.loads((out / "manifest.json").read_text())["counts"]


def test_fold_line_breaks_folds_counts_and_imports_the_folded_value(
    snapshot: PoolSnapshot, tmp_path: Path, importer: Importer
) -> None:
    source = write_legacy(tmp_path / "breaks.csv", [
        (1, "ann", "ann@example.com", "Y", "", "Ann", "Lee\r\n\r\nSmith", ""),
        (2, "bob", "bob@example.com", "Y", "", "Bob\nby", "Li", ""),
        (3, "cy", "cy@example.com", "Y", "", "Cy", "Doe", ""),
        (4, "di", "di@example.com", "Y", "\n", "Di", "Ray", ""),  # mobile: not folded
    ])  # fmt: skip
    mapping = tmp_path / "folding.toml"
    mapping.write_text(FOLDING_MAPPING, encoding="utf-8")
    snapshot.save(tmp_path / "pool.json")
    result = cli("build", str(source), "--mapping", str(mapping), "--out", str(tmp_path / "run"),
                 "--pool-spec", str(tmp_path / "pool.json"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["folded_line_breaks"] == {"name": 2}
    assert "Values with line breaks folded (fold_line_breaks): 2 in name." in result.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["counts"]["folded_line_breaks"] == {"name": 2}
    run = importer.run((tmp_path / "run" / "chunk-0001.csv").read_bytes())
    assert run.job["ImportedUsers"] == 4
    names = {u: v.get("name") for u, v in importer.users().items()}
    assert names == {"ann": "Ann Lee, Smith", "bob": "Bob, by Li", "cy": "Cy Doe", "di": "Di Ray"}


@pytest.fixture
def worker_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions the build submits to worker processes; each worker is waited for."""
    from concurrent.futures import ProcessPoolExecutor

    from csvimport.build import chunkbuild

    submitted: list[str] = []

    class Spy(ProcessPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            submitted.append(fn.__name__)
            future = super().submit(fn, *args, **kwargs)
            if fn is chunkbuild._ready:  # else the parent may build every chunk before
                future.result()  # a worker has started
            return future

    monkeypatch.setattr(chunkbuild, "ProcessPoolExecutor", Spy)
    return submitted


def run_files(out: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A run directory's manifest (without its time) and its other files' bytes."""
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["created"]
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "manifest.json"}
    return manifest, files


def test_a_build_in_worker_processes_writes_the_same_bytes_as_one_in_process(
    snapshot: PoolSnapshot, tmp_path: Path, worker_builds: list[str]
) -> None:
    source, mapping = tmp_path / "legacy.csv", tmp_path / "mapping.toml"
    messy_legacy_csv(source, 1_000)  # bad values, case-variant duplicates
    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    for row in rows[1::9]:  # and names that span lines, which the mapping folds
        row[6] = row[6].replace(", ", "\r\n")
    with source.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    mapping.write_text(LEGACY_MAPPING.replace('join = ["first", "last"]',
                                              'join = ["first", "last"]\nfold_line_breaks = " "'),
                       encoding="utf-8")  # fmt: skip
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"run-{workers}"
        options = BuildOptions(SourceSpec(str(source), chunk_rows=97), mapping, out,
                               duplicates=DuplicatePolicy.KEEP_LATEST, max_rows=300,
                               workers=workers, parallel_after_rows=0)  # fmt: skip
        result = build(options, snapshot)
        assert result.conserved and result.rejected and result.duplicates
        assert result.folded == {"name": 112}
        runs[workers] = run_files(out)
    assert "_build_in_worker" in worker_builds  # the second build did use the workers
    assert runs[0] == runs[2]


def test_a_backslash_inside_a_value_imports_exactly_and_one_cognito_may_misread_is_rejected(
    mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path, importer: Importer
) -> None:
    from csvimport.rundir import RunDir, written_users

    source = write_legacy(tmp_path / "backslashes.csv", [
        (1, "inner", "inner@example.com", "Y", "", "C:\\Users\\ann", "O\\Neil, Jr.", ""),
        (2, "trailing", "trailing@example.com", "Y", "", "Ann", "Lee\\", ""),
        (3, "comma", "comma@example.com", "Y", "", "Bo", "Lee\\, Jr.", ""),
        (4, "after", "after@example.com", "Y", "", "Cy", "Doe", ""),
    ])  # fmt: skip
    out = tmp_path / "run"
    result = build(BuildOptions(SourceSpec(str(source)), mapping_file, out), snapshot)
    assert (result.written, result.rejected) == (2, 2)
    refused = {r["source_row"]: r for r in rejects(out)}
    assert refused["2"]["attribute"] == "name" and refused["2"]["rule"] == "backslash"
    assert refused["2"]["value"] == "Ann Lee\\"
    assert "The value of name ends with a backslash or has one" in refused["2"]["reason"]
    assert "Edit the value in the legacy source" in refused["2"]["reason"]
    assert (refused["3"]["attribute"], refused["3"]["rule"]) == ("name", "backslash")
    run = importer.run((out / "chunk-0001.csv").read_bytes())
    assert (run.job["ImportedUsers"], run.job["FailedUsers"]) == (2, 0)
    users = importer.users()
    assert users["inner"]["name"] == "C:\\Users\\ann O\\Neil, Jr."
    assert users["after"]["name"] == "Cy Doe"
    run_dir = RunDir.open(out)
    read = [(u.username, u.email) for u in written_users(run_dir, run_dir.chunks[0])]
    assert read == [("inner", "inner@example.com"), ("after", "after@example.com")]


def offline_build_args(legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot,
                       out: Path) -> list[str]:  # fmt: skip
    pool_json = out.parent / "pool.json"
    snapshot.save(pool_json)
    return ["build", str(legacy_csv), "--mapping", str(mapping_file), "--out", str(out),
            "--pool-spec", str(pool_json)]  # fmt: skip


def work_folders(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if ".building-" in p.name)


def test_a_killed_build_leaves_a_work_folder_that_the_next_build_removes_and_names(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = offline_build_args(legacy_csv, mapping_file, snapshot, out)
    killed = subprocess.run([sys.executable, str(CRASH_AT), "--build", "before", "1", *args],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [left] = work_folders(tmp_path)
    assert left.name.startswith(".run.building-") and (left / "chunk-0001.csv").exists()
    assert not out.exists()

    status = cli("status", str(out))
    assert status.returncode == 2, status.stderr
    assert (f"error: run directory {out} does not exist: its build did not finish (it left "
            f"{left})") in status.stderr  # fmt: skip

    again = cli(*args)
    assert again.returncode == 1, again.stderr  # rows refused, as always with this source
    assert f"Removed {left}: left by a build of {out} that did not finish" in again.stderr
    assert work_folders(tmp_path) == []
    assert (out / "manifest.json").exists() and not (out / ".build.lock").exists()


def test_a_build_stopped_by_sigterm_cleans_up_and_exits_130(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = offline_build_args(legacy_csv, mapping_file, snapshot, out)
    stopped = subprocess.run(
        [sys.executable, str(CRASH_AT), "--build", "--signal", "TERM", "before", "1", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.splitlines()[-1] == "interrupted (SIGTERM)"
    assert work_folders(tmp_path) == [] and not out.exists()


def test_a_build_of_a_run_another_build_is_writing_is_refused_naming_it(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = offline_build_args(legacy_csv, mapping_file, snapshot, out)
    running = tmp_path / ".run.building-abcd1234"  # as a live build holds its folder
    running.mkdir()
    with (running / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        refused = cli(*args)
    assert refused.returncode == 2, refused.stderr
    assert (f"error: another csvimport build of {out} is running (pid {os.getpid()}, "
            f"writing into {running})") in refused.stderr  # fmt: skip
    assert running.exists() and not out.exists()

    # Its process gone (here: its lock released), the folder is a leftover like any other.
    built = cli(*args)
    assert built.returncode == 1, built.stderr
    assert f"Removed {running}" in built.stderr and not running.exists()


def test_a_work_folder_without_a_lock_is_removed_only_once_old_and_only_for_this_run(
    legacy_csv: Path, mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path
) -> None:
    old, fresh = tmp_path / ".run.building-old_0001", tmp_path / ".run.building-new_0001"
    other = tmp_path / ".run2.building-old_0002"  # another run's
    for folder in (old, fresh, other):
        folder.mkdir()
        (folder / "chunk-0001.csv").write_text("x\n")
    long_ago = time.time() - 3600
    for folder in (old, other):
        os.utime(folder, (long_ago, long_ago))
    options = BuildOptions(SourceSpec(str(legacy_csv)), mapping_file, tmp_path / "run")
    result = build(options, snapshot)
    assert result.removed_unfinished == [old]
    assert work_folders(tmp_path) == [fresh, other]


KILLED_WITH_WORKERS = """
import multiprocessing, os, signal, sys
from pathlib import Path

from csvimport.build import builder as build_module
from csvimport.build.builder import BuildOptions, build
from csvimport.build.sources.base import SourceSpec
from csvimport.pool import PoolSnapshot

if __name__ == "__main__":
    work = Path(sys.argv[1])
    add_keys, calls = build_module.DuplicateFinder.add_keys, []

    def add_keys_then_die(self, keys):
        calls.append(keys)
        if len(calls) == 5:  # mid-build: the worker process is there
            print(*(p.pid for p in multiprocessing.active_children()), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        add_keys(self, keys)

    build_module.DuplicateFinder.add_keys = add_keys_then_die
    build(BuildOptions(SourceSpec(str(work / "legacy.csv"), chunk_rows=97),
                       work / "mapping.toml", work / "run", workers=2, parallel_after_rows=0),
          PoolSnapshot.load(work / "pool.json"))
"""


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_the_worker_processes_of_a_killed_build_exit_too(tmp_path: Path) -> None:
    script = tmp_path / "killed_with_workers.py"
    script.write_text(KILLED_WITH_WORKERS, encoding="utf-8")
    write_legacy(tmp_path / "legacy.csv", [
        (str(n), f"user{n}", f"user{n}@example.com", "y", "", "First", f"Last {n}", "2024-01-01")
        for n in range(1, 2_001)
    ])  # fmt: skip
    (tmp_path / "mapping.toml").write_text(LEGACY_MAPPING, encoding="utf-8")
    offline_snapshot().save(tmp_path / "pool.json")
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:  # a file, not a pipe: the workers hold it open too
        killed = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=stdout)
        assert killed.wait(timeout=120) == -signal.SIGKILL
    workers = [int(pid) for pid in out.read_text().split()]
    assert workers
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(gone(pid) for pid in workers):
        time.sleep(0.2)
    left = [pid for pid in workers if not gone(pid)]
    for pid in left:  # do not leave them behind either way
        os.kill(pid, signal.SIGKILL)
    assert left == [], "worker processes outlived the build they worked for"


GARBLED = [  # LEGACY_COLUMNS; the file's line is the row's number + 1
    "1,ann,ann@example.com,y,,Ann,Lee,2020-01-01",
    '2,bob,bob@example.com,y,,"Bob,Roe,2020-01-01',  # line 3: a quote opens...
    "3,cy,cy@example.com,y,,Cy,Poe,2020-01-01",
    "4,di,di@example.com,y,,Di,Fox,2020-01-01",
    '5,ed,ed@example.com,y,,"Ed, Jr.",Hay,2020-01-01',  # line 6: ...the quote before Ed ends it
    "6,fay,fay@example.com,y,,Fay,Kim,2020-01-01",
    "7,gus,gus@example.com,y",  # too few fields
    "8,hal,hal@example.com,y,,Hal,Orr,2020-01-01,extra",  # too many
    "9,ivy,ivy@example.com,y,,Ivy,Ng,2020-01-01",
]


@pytest.mark.parametrize("workers", [0, 2])
def test_users_the_source_file_garbles_are_each_counted_and_rejected_naming_their_lines(
    mapping_file: Path, snapshot: PoolSnapshot, tmp_path: Path, workers: int,
    worker_builds: list[str],
) -> None:  # fmt: skip
    source = tmp_path / "legacy.csv"
    source.write_text("\n".join([",".join(COLUMNS), *GARBLED]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    options = BuildOptions(SourceSpec(str(source), chunk_rows=2), mapping_file, out,
                           workers=workers, parallel_after_rows=0)  # fmt: skip
    result = build(options, snapshot)
    assert ("_build_in_worker" in worker_builds) == bool(workers)
    # Nine users in the file: nine source rows, each written or rejected.
    assert (result.source_rows, result.written, result.rejected, result.duplicates) == (9, 3, 6, 0)
    assert [(r["source_row"], r["legacy_id"], r["attribute"], r["rule"], r["value"])
            for r in rejects(out)] == [
        ("2", "", "", "stray_quote", ""), ("3", "", "", "swallowed_line", ""),
        ("4", "", "", "swallowed_line", ""), ("5", "", "", "swallowed_line", ""),
        ("7", "7", "", "too_few_fields", ""), ("8", "", "", "too_many_fields", ""),
    ]  # fmt: skip
    reasons = [r["reason"] for r in rejects(out)]
    assert reasons[0].startswith(
        "lines 3-6: a quote opened in column 'first' on line 3 closes on line 6, leaving the "
        "row with 9 fields (the header has 8); the 3 lines after it (likely 3 users) were read"
    )
    assert [reason[:7] for reason in reasons[1:]] == [
        "line 4:", "line 5:", "line 6:", "line 8:", "line 9:"
    ]  # fmt: skip
    assert result.garbled == [f"row 2: {reasons[0]}", f"row 7: {reasons[4]}",
                              f"row 8: {reasons[5]}"]  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["source_rows"] == 9
    assert manifest["source"]["delimiter"] == ","
    with (out / "chunk-0001.csv").open(encoding="utf-8", newline="") as f:
        written = list(csv.DictReader(f))
    assert [user["cognito:username"] for user in written] == ["ann", "fay", "ivy"]


def test_cli_build_summary_names_the_lines_of_the_rows_the_source_garbles(
    mapping_file: Path, importer: Importer, tmp_path: Path
) -> None:
    source = tmp_path / "legacy.csv"
    source.write_text("\n".join([",".join(COLUMNS), *GARBLED]) + "\n", encoding="utf-8")
    info = importer.info
    result = cli("build", str(source), "--mapping", str(mapping_file), "--out",
                 str(tmp_path / "run"), "--pool-id", info.user_pool_id, "--endpoint-url",
                 info.endpoint_url, "--region", info.region, "--json")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "9 source rows = 3 written + 6 rejected + 0 duplicates" in result.stderr
    assert "Rows the source file itself garbles" in result.stderr
    assert "    row 2: lines 3-6: a quote opened in column 'first' on line 3" in result.stderr
    assert "    row 8: line 9: 9 fields, but the header has 8" in result.stderr
    garbled = json.loads(result.stdout)["garbled_rows"]
    assert [text[:13] for text in garbled] == ["row 2: lines ", "row 7: line 8", "row 8: line 9"]
