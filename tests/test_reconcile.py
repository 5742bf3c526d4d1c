"""Every user of a run accounted for: rejects, duplicates and each job's CloudWatch log,
joined through the line maps, against the sandbox over HTTP."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from csvimport.errors import ConfigError, RefusedError
from csvimport.outcomes import Outcome, Password, UserResult
from csvimport.passwords.recovery import RecoveryPolicy
from csvimport.report.logs import JobLog, detect_line_base
from csvimport.report.reconcile import Reconciler
from csvimport.report.results import ResultFiles, neutralise, write_failed_users, write_results
from csvimport.report.retrysource import write_retry_source
from csvimport.run.jobs import Importer
from csvimport.run.journal import Journal
from csvimport.rundir import FAILED_USERS, RESULTS, RunDir
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import FAST, MESSY, build_run, reconcile, reported_run, run_all


def test_every_source_row_has_exactly_one_outcome_and_the_sums_hold(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user4")  # will be skipped
    run_dir = build_run(cognito, pool, tmp_path, users=6, max_rows=4, extra=MESSY)
    run_all(run_dir, cognito, pool)
    report, results, _ = reconcile(run_dir, cognito, logs)

    assert [r.source_row for r in results] == list(range(1, 10))
    by_id = {r.legacy_id: r for r in results}
    assert by_id["101"].outcome is Outcome.REJECTED and by_id["101"].rule == "auto_verified"
    assert by_id["102"].outcome is Outcome.DUPLICATE and by_id["102"].collided_with_row == 1
    assert by_id["4"].outcome is Outcome.SKIPPED and by_id["4"].rule == "exists"
    assert by_id["4"].reason == "The user already exists."
    assert by_id["103"].outcome is Outcome.IMPORTED and by_id["103"].username.startswith("=cmd")
    imported = [r for r in results if r.outcome is Outcome.IMPORTED]
    assert len(imported) == 6 and all(r.password is Password.RESET for r in imported)
    assert {(r.chunk, r.line) for r in imported} >= {("chunk-0001.csv", 1), ("chunk-0002.csv", 1)}

    recon = report.reconciliation
    assert (recon.source_rows, recon.rejected, recon.duplicates, recon.written) == (9, 1, 1, 7)
    assert (recon.imported, recon.skipped, recon.failed, recon.not_processed) == (6, 1, 0, 0)
    assert recon.problems == [] and report.warnings == []
    assert [(j.chunk, j.imported, j.logged_succeeded, j.skipped, j.logged_skipped)
            for j in report.jobs] == [("chunk-0001.csv", 3, 3, 1, 1), ("chunk-0002.csv", 3, 3, 0, 0)]  # fmt: skip
    assert [g.rule for g in report.job_reasons] == ["exists"]
    assert report.job_reasons[0].fix and "existing.csv" in report.job_reasons[0].fix
    assert [r.legacy_id for r in report.attention] == ["4", "101", "102"]
    assert report.passwords.must_reset == 6


def test_the_raw_log_is_kept_in_the_run_read_from_there_and_refused_by_name_if_damaged(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir, _, saved = reported_run(pool, cognito, logs, tmp_path)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert len(saved.read_text().splitlines()) == 3
    # CloudWatch's retention ran out: the stored copy still tells every outcome.
    sandbox.faults.update(throttle_every=1, throttle_operations=["FilterLogEvents"])
    report, results, _ = reconcile(run_dir, cognito, logs)
    assert [r.outcome for r in results] == [Outcome.IMPORTED] * 3

    # Damaged, it is refused by name and kept: it may be the only copy left.
    saved.write_bytes(b"\x00\xff garbage\n")
    with pytest.raises(ConfigError) as caught:
        reconcile(run_dir, cognito, logs)
    assert f"{saved} line 1 is damaged" in caught.value.message
    assert caught.value.hint and f"Delete {saved}" in caught.value.hint
    assert "retention" in caught.value.hint  # it may be the only copy left
    assert saved.read_bytes() == b"\x00\xff garbage\n"


def test_log_lines_the_file_does_not_have_are_a_problem_and_the_last_line_of_a_user_counts(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir, job_id, stored = reported_run(pool, cognito, logs, tmp_path)
    with stored.open("a", encoding="utf-8") as f:
        for number, outcome in [(7, "SUCCEEDED"), (2, "FAILED"), (20_000_000, "SUCCEEDED")]:
            message = f"[{outcome}] Line Number {number} - The import failed, say."
            f.write(json.dumps({"timestamp": 1, "message": message}) + "\n")
    report, results, _ = reconcile(run_dir, cognito, logs)
    # line 2 was logged again, failed: the last line logged for a number counts
    assert [r.outcome for r in results] == [Outcome.IMPORTED, Outcome.FAILED, Outcome.IMPORTED]
    assert results[1].reason == "The import failed, say."
    counters, lines = report.reconciliation.problems
    assert counters.endswith(
        "Cognito's counters (imported 3, skipped 0, failed 0) differ from its log (4, 0, 1). "
        "Run `csvimport report` again later (log lines can lag); if it stays, `csvimport "
        f"verify` checks these users in the pool, and logs/{job_id}.jsonl holds the log as read."
    )
    assert lines == (
        "chunk-0001.csv: the log names 2 line(s) the file does not have (e.g. line 7); the "
        "line numbering may be off, so this file's outcomes may be shifted. `csvimport "
        f"verify` checks its users in the pool; the log as read is in logs/{job_id}.jsonl."
    )


def test_lagging_log_lines_are_waited_for(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    sandbox.settings.update(log_lag_seconds=1.5)
    run_all(run_dir, cognito, pool)
    report, results, notes = reconcile(run_dir, cognito, logs)
    assert [r.outcome for r in results] == [Outcome.IMPORTED] * 3
    assert report.reconciliation.problems == []
    assert notes and "log lines so far; waiting for CloudWatch Logs" in notes[0]


def test_a_log_still_missing_lines_after_the_wait_is_a_reported_problem(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    sandbox.settings.update(log_lag_seconds=60)
    run_all(run_dir, cognito, pool)
    report, results, _ = reconcile(run_dir, cognito, logs, seconds=0.3)
    assert [r.outcome for r in results] == [Outcome.NOT_PROCESSED] * 3
    assert "counted the file's users but its log has no line" in results[0].reason
    problems = report.reconciliation.problems
    assert len(problems) == 1 and "Cognito counted 3 users but its log has 0 lines" in problems[0]
    assert not report.jobs[0].log_complete and report.jobs[0].missing_log_lines == 3


def test_a_stopped_job_leaves_its_unreached_users_not_processed_until_resumed(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=40)
    sandbox.settings.update(job_seconds=20)
    run_all(run_dir, cognito, pool, wait=False)
    run = RunDir.open(run_dir)
    stopped = Importer(run, Journal.load(run), cognito, pacing=FAST).stop()
    assert stopped is not None and stopped.processed < 40
    report, results, _ = reconcile(run_dir, cognito, logs)
    outcomes = [r.outcome for r in results]
    assert outcomes.count(Outcome.NOT_PROCESSED) == 40 - stopped.processed
    assert report.reconciliation.problems == []
    assert any(g.outcome is Outcome.NOT_PROCESSED and "--resume-stopped" in g.fix
               for g in report.job_reasons)  # fmt: skip

    sandbox.settings.update(job_seconds=0.3)
    run_all(run_dir, cognito, pool, resume_stopped=True)
    report, results, _ = reconcile(run_dir, cognito, logs)
    # Imported by either job: nobody counts as skipped for having been imported before.
    assert [r.outcome for r in results] == [Outcome.IMPORTED] * 40
    assert len(report.jobs) == 2 and report.reconciliation.problems == []


def test_a_log_that_numbers_lines_from_2_is_detected_and_warned_about(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user2")
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    sandbox.settings.update(first_line_number=2)
    run_all(run_dir, cognito, pool)
    report, results, _ = reconcile(run_dir, cognito, logs)
    assert [r.outcome for r in results] == [Outcome.IMPORTED, Outcome.SKIPPED, Outcome.IMPORTED]
    assert len(report.warnings) == 1 and "numbers the first user 2, not 1" in report.warnings[0]


def test_detect_line_base() -> None:
    assert detect_line_base([1, 2, 3], 3) == 1
    assert detect_line_base([2, 3, 4], 3) == 2
    assert detect_line_base([1, 2], 3) is None  # incomplete: cannot tell
    assert detect_line_base([5, 6, 7], 3) is None


def test_log_messages_are_parsed_by_prefix_and_the_rest_is_free_text() -> None:
    log = JobLog.parse("import-x", [
        "[SUCCEEDED] Line Number 1 - The import succeeded.",
        "[FAILED] Line Number 2 - The User Record does not set any of the auto verified "
        "attributes to verified. (Example: email_verified to true).",
        "[SKIPPED] Line Number 3 - The user already exists. - really",
        "garbage",
        "[SUCCEEDED] Line Number 1 - The import succeeded.",
    ])  # fmt: skip
    assert {n: line.outcome for n, line in log.lines.items()} == {
        1: "SUCCEEDED", 2: "FAILED", 3: "SKIPPED"
    }  # fmt: skip
    assert log.lines[3].message == "The user already exists. - really"
    assert log.unparsed == ["garbage"] and log.repeated == 1


@pytest.mark.parametrize(
    ("value", "safe"),
    [("=1+1", "'=1+1"), ("+1415", "'+1415"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
     ("ann", "ann"), ("", "")],
)  # fmt: skip
def test_neutralise_defuses_spreadsheet_formulas(value: str, safe: str) -> None:
    assert neutralise(value) == safe


def test_result_files_hold_every_user_and_defuse_formulas(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="=cmd|'/C_calc'!A0")
    run_dir = build_run(cognito, pool, tmp_path, users=2, extra=MESSY)
    run_all(run_dir, cognito, pool)
    _, results, _ = reconcile(run_dir, cognito, logs)
    write_results(run_dir, results)
    write_failed_users(run_dir, results)
    lines = [json.loads(x) for x in (run_dir / RESULTS).read_text().splitlines()]
    assert [x["legacy_id"] for x in lines] == ["1", "2", "101", "102", "103"]
    assert lines[0]["outcome"] == "imported" and lines[0]["job_id"].startswith("import-")
    assert set(lines[0]) >= {"legacy_id", "username", "outcome", "reason", "job_id", "line"}
    with (run_dir / FAILED_USERS).open(newline="") as f:
        failed = list(csv.DictReader(f))
    assert [r["legacy_id"] for r in failed] == ["101", "102", "103"]
    assert failed[2]["username"] == "'=cmd|'/C_calc'!A0" and failed[2]["outcome"] == "skipped"
    for path in (run_dir / RESULTS, run_dir / FAILED_USERS):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_retry_source_reads_the_file_as_the_build_did_and_leaves_garbled_rows_out(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec
    from csvimport.pool import read_pool
    from csvimport.rundir import read_rejects

    from .helpers import LEGACY_COLUMNS, LEGACY_MAPPING

    # cp1252, ";"-separated, and a comma on every line: sniffing would pick ",".
    columns = [c if c != "last" else "last, name" for c in LEGACY_COLUMNS]
    lines = [
        ";".join(columns),
        "1;ann;ann@example.com;y;;Zoë;Lee, Jr;2024-01-01",  # written
        "2;bob;not an email;y;;Bób;Roe, Sr;2024-01-01",  # rejected: its email
        "3;cy;cy@example.com;y;;Cy;Poe, II",  # too few fields: to fix in the source
    ]
    source = tmp_path / "legacy.csv"
    source.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(LEGACY_MAPPING.replace('"last"]', '"last, name"]'), encoding="utf-8")
    run_dir = tmp_path / "run"
    spec = SourceSpec(str(source), delimiter=";", encoding="cp1252")
    build(BuildOptions(spec, mapping, run_dir), read_pool(cognito, pool.user_pool_id))
    run = RunDir.open(run_dir)
    rejected = read_rejects(run)
    assert [(r.source_row, r.rule) for r in rejected] == [(2, "email"), (3, "too_few_fields")]
    path = write_retry_source(run, rejected)
    assert path is not None
    with path.open(newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [
            columns, ["2", "bob", "not an email", "y", "", "Bób", "Roe, Sr", "2024-01-01"]
        ]  # fmt: skip


def test_the_retry_source_holds_the_users_to_fix_in_the_legacy_shape(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=2, extra=MESSY)
    run_all(run_dir, cognito, pool)
    _, results, _ = reconcile(run_dir, cognito, logs)
    path = write_retry_source(RunDir.open(run_dir), results)
    assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    source = (tmp_path / "legacy.csv").read_text().splitlines()
    assert rows[0] == source[0].split(",")  # the legacy columns, as they were
    assert rows[1:] == [MESSY[0].split(",")]  # the rejected user; duplicates stay out

    (tmp_path / "legacy.csv").write_text("changed\n")
    with pytest.raises(RefusedError) as caught:
        write_retry_source(RunDir.open(run_dir), results)
    assert "changed since the build" in caught.value.message
    assert caught.value.hint and "--source" in caught.value.hint


@pytest.mark.parametrize("value", [
    "plain", "", 'quote " and \\ backslash', "tab\tline\nreturn\r", "\x00\x1f\x7f", "é ß 😀",
    "\u2028\u2029\x85", "</script>", "a" * 3000,
])  # fmt: skip
def test_a_results_line_is_what_json_dumps_writes(value: str) -> None:
    for result in (
        UserResult(source_row=7, legacy_id=value, username=value, outcome=Outcome.FAILED,
                   reason=value, rule=value, email=value, phone=value, job_id=value,
                   chunk=value, line=3, collided_with_row=2, password=Password.RESET,
                   password_why=value),
        UserResult(source_row=1, legacy_id=value, username="", outcome=Outcome.IMPORTED,
                   reason=""),
    ):  # fmt: skip
        line = result.to_json_line()
        assert line == json.dumps(result.to_json(), ensure_ascii=False)
        assert UserResult.from_json(json.loads(line)) == result


def test_a_saved_log_reads_the_same_in_columns_as_event_by_event(tmp_path: Path) -> None:
    from csvimport.report.logs import _columnar_log, _stored_log_by_event

    messages = [
        "[SUCCEEDED] Line Number 2 - The import succeeded.",
        "[FAILED] Line Number 1 -   The User Record does not set cognito:username.  ",
        "[SKIPPED] Line Number 3 - The user already exists. - really",
        " [SUCCEEDED] Line Number 1 - The import succeeded.\n",  # logged again: this counts
        "[FAILED] Line Number 40 - An account with the given email already exists.",
    ]
    path = tmp_path / "job.jsonl"
    path.write_text("".join(json.dumps({"timestamp": i, "message": m}) + "\n"
                            for i, m in enumerate(messages)))  # fmt: skip
    columns, events = _columnar_log(path, "job"), _stored_log_by_event(path, "job")
    assert columns is not None and events is not None
    assert columns.lines == events.lines
    assert columns.lines[1].outcome == "SUCCEEDED" and columns.lines[3].message.endswith("really")
    assert (columns.size, columns.repeated, columns.events) == (4, 1, 5)
    assert (events.size, events.repeated, events.events) == (4, 1, 5)
    assert columns.count("FAILED") == events.count("FAILED") == 1
    path.write_text(path.read_text() + json.dumps({"message": "garbage"}) + "\n")
    assert _columnar_log(path, "job") is None  # a message off the pattern: event by event


@pytest.mark.parametrize("shape", ["in order", "a line again at the end", "backwards",
                                   "shuffled", "a gap"])  # fmt: skip
def test_a_saved_log_of_many_blocks_reads_the_same_in_columns_whatever_its_order(
    tmp_path: Path, shape: str
) -> None:
    import random

    from csvimport.report.logs import LOG_BLOCK, _columnar_log, _stored_log_by_event

    numbers = list(range(1, 20_001))
    if shape == "a line again at the end":
        numbers += [5, 19_000]
    elif shape == "backwards":
        numbers.reverse()
    elif shape == "shuffled":
        random.Random(7).shuffle(numbers)
    elif shape == "a gap":
        numbers = numbers[:9_000] + numbers[12_000:]
    path = tmp_path / "job.jsonl"
    with path.open("w") as f:
        for event, number in enumerate(numbers):
            outcome = ("SUCCEEDED", "FAILED", "SKIPPED")[(number + event) % 3]
            message = f"[{outcome}] Line Number {number} - Reason {(number + event) % 7}."
            f.write(json.dumps({"timestamp": event, "message": message}) + "\n")
    assert path.stat().st_size > 2 * LOG_BLOCK
    columns, events = _columnar_log(path, "job"), _stored_log_by_event(path, "job")
    assert columns is not None and events is not None
    assert columns.lines == events.lines
    assert (columns.size, columns.repeated, columns.events) == (
        events.size, events.repeated, events.events)  # fmt: skip
    assert columns.size == len(set(numbers)) and columns.events == len(numbers)
    assert len(columns.codes) == max(numbers) + 1  # held by number, up to the highest
    if shape == "a line again at the end":  # the last line logged for a number counts
        assert columns.lines[5].message == f"Reason {(5 + 20_000) % 7}."


def test_a_block_of_a_log_that_starts_over_is_not_taken_as_new_lines() -> None:
    import numpy as np

    from csvimport.report.logs import _ByNumber

    outcomes = _ByNumber()

    def add(numbers: list[int], code: int) -> None:
        size = len(numbers)
        assert outcomes.add(np.array(numbers), np.full(size, code, np.uint8),
                            np.full(size, code, np.uint32))  # fmt: skip

    add([1, 2, 3], 1)
    add([2, 3, 4], 3)  # rising in itself, but 2 and 3 again
    codes, ids, size = outcomes.finish()
    assert (codes.tolist(), ids.tolist(), size, outcomes.events) == (
        [0, 1, 3, 3, 3], [0, 1, 3, 3, 3], 4, 6)  # fmt: skip


@pytest.mark.parametrize("message", [
    "[FAILED] Line Number 3a - x", "[FAILED]  Line Number 3 - x", "[DONE] Line Number 3 - x",
    "[FAILED] Line Number 3 -x", "[FAILED] Line Number - 3 - x", "[FAILED] Line Number 3",
    "[SUCCEEDED] Line Number 1234567890123456789 - x", "[FAILED] Line Number \u0663 - x",
])  # fmt: skip
def test_a_saved_message_off_the_pattern_is_left_to_the_event_by_event_reading(
    tmp_path: Path, message: str
) -> None:
    from csvimport.report.logs import _columnar_log, _stored_log_by_event

    path = tmp_path / "job.jsonl"
    path.write_text("".join(json.dumps({"timestamp": 1, "message": m}) + "\n" for m in
                            ["[SUCCEEDED] Line Number 1 - ok - yes", message]))  # fmt: skip
    assert _columnar_log(path, "job") is None
    events = _stored_log_by_event(path, "job")
    assert events is not None and events.lines[1].message == "ok - yes"


def test_the_streamed_result_files_hold_exactly_what_build_returns(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    # `csvimport report` formats imported users' lines itself (Reconciler.reconcile into
    # ResultFiles); Reconciler.build makes every UserResult. Both must say the same.
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user2")  # skipped
    run_dir = build_run(cognito, pool, tmp_path, users=6, extra=MESSY)
    run_all(run_dir, cognito, pool)
    report, results, _ = reconcile(run_dir, cognito, logs)
    run = RunDir.open(run_dir)
    reconciler = Reconciler(run, Journal.load(run), logs,
                            recovery=RecoveryPolicy.read(cognito, run.user_pool_id))  # fmt: skip
    with ResultFiles(run_dir) as files:
        streamed = reconciler.reconcile(files)
        files.finish()
    lines = (run_dir / RESULTS).read_text(encoding="utf-8").splitlines()
    assert lines == [r.to_json_line() for r in results]
    assert {json.loads(x)["outcome"] for x in lines} >= {"imported", "skipped", "rejected"}
    assert streamed.reconciliation == report.reconciliation
    assert streamed.passwords == report.passwords and streamed.passwords.must_reset >= 5
    failed = (run_dir / FAILED_USERS).read_bytes()
    write_failed_users(run_dir, results)
    assert (run_dir / FAILED_USERS).read_bytes() == failed
