"""`csvimport verify` against the sandbox over HTTP: the pool read page by page with
ListUsers and compared with the users the run's import files carry."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    build_run,
    csvimport,
    deferred_run,
    env_for,
    imported_run,
    migration_pool,
    reconcile,
    run_all,
    write_results,
)


def _verify(sandbox: Sandbox, pool: PoolInfo, run: Path, *args: str) -> Any:
    return csvimport(env_for(sandbox, pool), "verify", str(run), "--rate", "25", "--json", *args)


def _snapshot(run: Path) -> list[dict[str, Any]]:
    files = sorted((run / "verify").glob("*.jsonl"))
    assert len(files) == 1
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def test_every_user_present_as_imported_exits_0_and_writes_a_private_snapshot(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=4).path
    done = _verify(sandbox, pool, run)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["ok"] is True
    assert found["states"] == {"present": 4}
    assert found["differing"] == 0 and found["others"] == 0
    snapshot = next((run / "verify").glob("*.jsonl"))
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    lines = _snapshot(run)
    assert [(u["username"], u["state"], u["enabled"]) for u in lines] == [
        (f"user{n}", "present", True) for n in range(1, 5)
    ]
    assert {u["legacy_id"] for u in lines} == {"1", "2", "3", "4"}
    text = snapshot.read_text()
    assert "@example.com" not in text and "Last 1" not in text  # no attribute values


def test_an_attribute_changed_after_the_import_is_named_and_exits_1(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=3).path
    cognito.admin_update_user_attributes(
        UserPoolId=pool.user_pool_id, Username="user2",
        UserAttributes=[{"Name": "family_name", "Value": "Changed"}],
    )  # fmt: skip
    done = _verify(sandbox, pool, run)
    assert done.returncode == 1
    found = json.loads(done.stdout)
    assert found["differing"] == 1
    assert found["differing_attributes"] == {"family_name": 1}
    assert "family_name (1)" in done.stderr
    by_name = {u["username"]: u for u in _snapshot(run)}
    assert by_name["user2"]["differing"] == ["family_name"]
    assert by_name["user1"]["differing"] == []
    assert "Changed" not in next((run / "verify").glob("*.jsonl")).read_text()


def test_a_deleted_user_is_reported_missing_and_exits_1(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=3).path
    cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user3")
    done = _verify(sandbox, pool, run)
    assert done.returncode == 1
    assert json.loads(done.stdout)["states"] == {"present": 2, "missing": 1}
    by_name = {u["username"]: u for u in _snapshot(run)}
    assert by_name["user3"] == {"legacy_id": "3", "username": "user3", "state": "missing",
                                "status": None, "enabled": None, "differing": []}  # fmt: skip


def test_a_user_created_outside_the_run_is_listed_separately_masked(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=2).path
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="someone-else",
                              MessageAction="SUPPRESS")  # fmt: skip
    done = _verify(sandbox, pool, run)
    assert done.returncode == 0, done.stderr  # every imported user is there as imported
    found = json.loads(done.stdout)
    assert found["others"] == 1
    assert found["other_examples"] == ["so…e"]
    assert "someone-else" not in done.stderr + done.stdout
    assert [u["username"] for u in _snapshot(run)] == ["user1", "user2"]


@pytest.mark.parametrize("every", [1, 2])
def test_short_pages_are_followed_to_the_last_token(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path, every: int
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=100).path
    sandbox.settings.update(list_users_short_pages=every)  # counts pages from here
    done = _verify(sandbox, pool, run)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["states"] == {"present": 100}
    assert found["pool_users"] == 100
    # 100 users in full pages of 60 take 2; short pages: 30+30+30+10, or 60+30+10
    assert found["pages"] == {1: 4, 2: 3}[every]


def test_the_sandbox_refuses_a_list_users_limit_above_60(cognito: Any, pool: PoolInfo) -> None:
    assert "Users" in cognito.list_users(UserPoolId=pool.user_pool_id, Limit=60)
    with pytest.raises(cognito.exceptions.InvalidParameterException):
        cognito.list_users(UserPoolId=pool.user_pool_id, Limit=61)


def test_a_missing_run_directory_is_a_usage_error_naming_the_fix(
    sandbox: Sandbox, pool: PoolInfo, tmp_path: Path
) -> None:
    done = _verify(sandbox, pool, tmp_path / "nowhere")
    assert done.returncode == 2
    assert "csvimport build" in done.stderr


def test_deferred_users_count_as_migrated_once_in_the_pool_else_waiting(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    run = deferred_run(cognito, pool, tmp_path, users=3)
    run_all(run, cognito, pool)
    # as the migration function does at legacy0's first sign-in
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="legacy0",
                              MessageAction="SUPPRESS")  # fmt: skip
    done = _verify(sandbox, pool, run)
    assert done.returncode == 0, done.stderr  # the imported users are there as imported
    found = json.loads(done.stdout)
    assert found["states"] == {"present": 2, "migrated": 1, "waiting": 2}
    assert found["others"] == 0
    states = {u["username"]: u["state"] for u in _snapshot(run)}
    assert states == {"user1": "present", "user2": "present", "legacy0": "migrated",
                      "legacy1": "waiting", "legacy2": "waiting"}  # fmt: skip


def test_a_pool_that_is_gone_exits_3_naming_the_pool_error(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=1).path
    cognito.delete_user_pool(UserPoolId=pool.user_pool_id)
    done = _verify(sandbox, pool, run)
    assert done.returncode == 3
    assert "ResourceNotFoundException" in done.stderr
    assert "hint" in done.stderr.lower()


def test_throttling_that_outlasts_the_retries_exits_3_with_the_throttling_hint(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=1).path
    sandbox.faults.update(throttle_every=1, throttle_operations=["ListUsers"])
    done = _verify(sandbox, pool, run)
    assert done.returncode == 3
    assert "TooManyRequestsException" in done.stderr
    assert "retry later" in done.stderr
    assert not (run / "verify").exists()  # no snapshot from a pool not read to the end


def test_usernames_match_as_the_pool_compares_them(
    sandbox: Sandbox, cognito: Any, logs: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = make_pool(UsernameConfiguration={"CaseSensitive": True})
    run = imported_run(cognito, logs, pool, tmp_path, users=2).path
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="USER1",
                              MessageAction="SUPPRESS")  # fmt: skip
    done = _verify(sandbox, pool, run)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["states"] == {"present": 2}
    assert found["others"] == 1  # another user in a case-sensitive pool


def _summaries(run: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((run / "verify").glob("*.summary.json"))]


def test_source_file_every_legacy_user_accounted_for_then_what_differs_is_named(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    run = deferred_run(cognito, pool, tmp_path, users=3)  # 2 written + 3 deferred
    run_all(run, cognito, pool)
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="legacy0",
                              MessageAction="SUPPRESS")  # fmt: skip
    legacy = tmp_path / "legacy.csv"
    done = _verify(sandbox, pool, run, "--source", str(legacy))
    assert done.returncode == 0, done.stderr
    source = json.loads(done.stdout)["source"]
    assert {k: source[k] for k in ("source_rows", "in_pool", "waiting", "unaccounted")} == {
        "source_rows": 5, "in_pool": 3, "waiting": 2, "unaccounted": 0}  # fmt: skip
    assert source["differences"] == []
    assert "every legacy user is accounted for" in done.stderr
    first = _summaries(run)[0]
    assert first["source"]["balanced"] is True
    # no report yet: the two users imported without a hash and present count as had to reset
    assert (first["must_reset"], first["reset_basis"]) == (2, "present in the pool")

    cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user2")
    with legacy.open("a") as f:  # a user added to the legacy system since the build
        f.write("999,late,late@example.com,y,,First,Last,2024-01-01,\n")
    done = _verify(sandbox, pool, run, "--source", str(legacy))
    assert done.returncode == 1
    source = json.loads(done.stdout)["source"]
    assert (source["source_rows"], source["accounted"], source["unaccounted"]) == (6, 4, 2)
    assert source["balanced"] is False
    assert len(source["differences"]) == 2
    assert "1 users the run wrote are not in the pool" in source["differences"][0]
    assert "1 more rows than the 5 the run was built from" in source["differences"][1]
    assert "2 legacy users are not accounted for" in done.stderr
    assert done.stderr.count("DIFFERS:") == 2
    assert _summaries(run)[-1]["source"]["unaccounted"] == 2

    other = tmp_path / "elsewhere" / "legacy.csv"  # the same rows, not the run's source
    other.parent.mkdir()
    other.write_bytes(legacy.read_bytes())
    done = _verify(sandbox, pool, run, "--source", str(other))
    source = json.loads(done.stdout)["source"]
    assert source["built_from"] == str(legacy.resolve())
    assert f"the run was built from {legacy.resolve()}, not from this source" in done.stderr


def test_source_database_is_counted_by_the_database_with_the_run_s_duplicates(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec
    from csvimport.pool import read_pool

    from .helpers import LEGACY_COLUMNS, LEGACY_MAPPING

    url = "mysql+pymysql://root@127.0.0.1:3306/test"
    table = f"verify_source_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, poolclass=NullPool)
    columns = ", ".join(f"`{c}` VARCHAR(100)" for c in LEGACY_COLUMNS)
    rows = [(str(n), f"user{n}", f"user{n}@example.com", "y", "", "First", "Last",
             "2024-01-01") for n in (1, 2, 3)]  # fmt: skip
    rows.append(("4", "user1", "other@example.com", "y", "", "F", "L", "2023-01-01"))  # dup
    insert = f"INSERT INTO `{table}` VALUES ({', '.join(['%s'] * len(LEGACY_COLUMNS))})"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE `{table}` ({columns})")
        conn.exec_driver_sql(insert, rows)
    try:
        mapping = tmp_path / "mapping.toml"
        mapping.write_text(LEGACY_MAPPING)
        run = tmp_path / "run"
        build(BuildOptions(SourceSpec(url, table=table), mapping, run),
              read_pool(cognito, pool.user_pool_id))  # fmt: skip
        run_all(run, cognito, pool)
        done = _verify(sandbox, pool, run, "--source", url, "--table", table)
        assert done.returncode == 0, done.stderr
        source = json.loads(done.stdout)["source"]
        assert (source["source_rows"], source["in_pool"], source["duplicates"]) == (4, 3, 1)
        assert source["balanced"] is True and source["built_from"] is None
        assert f"table {table}" in source["source"]

        with engine.begin() as conn:
            conn.exec_driver_sql(insert, [("5", "user5", "u5@example.com", "y", "", "F", "L",
                                           "2024-01-01")])  # fmt: skip
        done = _verify(sandbox, pool, run, "--source", url, "--table", table)
        assert done.returncode == 1
        source = json.loads(done.stdout)["source"]
        assert (source["source_rows"], source["unaccounted"]) == (5, 1)
        assert "1 more rows than the 4" in done.stderr
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{table}`")


def test_source_options_without_source_and_an_unreadable_source_are_usage_errors(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=1).path
    done = _verify(sandbox, pool, run, "--table", "users")
    assert done.returncode == 2
    assert "need --source" in done.stderr
    done = _verify(sandbox, pool, run, "--source", str(tmp_path / "gone.csv"))
    assert done.returncode == 2
    assert "no such file" in done.stderr
    assert not (run / "verify").exists()  # refused before reading the pool


def test_each_verify_adds_a_private_summary_and_a_point_to_the_report_s_adoption(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_run(cognito, pool, tmp_path, users=4)  # no hashes: all RESET_REQUIRED
    # user4 exists already: Cognito skips it, so this run did not make it reset
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user4",
                              MessageAction="SUPPRESS")  # fmt: skip
    run_all(run, cognito, pool)
    _, results, _ = reconcile(run, cognito, logs)
    write_results(run, results)
    env = env_for(sandbox, pool)
    first = _verify(sandbox, pool, run)
    # user4, made elsewhere, differs from its row, but this run did not import it: it is
    # not compared, and it does not fail the verify
    assert first.returncode == 0, first.stderr
    found = json.loads(first.stdout)
    assert found["differing"] == 0 and found["ok"] is True
    assert found["states"] == {"present": 3, "not imported": 1}
    assert "1 written users were not imported by this run" in first.stderr
    assert {u["username"]: u["state"] for u in _snapshot(run)}["user4"] == "not imported"
    assert "0 of 3 users imported without a password have completed their reset" in first.stderr
    assert csvimport(env, "report", str(run)).returncode == 1  # user4 was skipped
    section = _adoption_section(run)
    assert section.count("<tr><td><bdi>") == 1  # one verify, one row of the adoption table

    # user1 completes the reset (a new password: CONFIRMED)
    cognito.admin_set_user_password(UserPoolId=pool.user_pool_id, Username="user1",
                                    Password="N3w-Passw0rd!", Permanent=True)  # fmt: skip
    second = _verify(sandbox, pool, run)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["completed_reset"] == 1
    summaries = sorted((run / "verify").glob("*.summary.json"))
    assert len(summaries) == 2
    assert {stat.S_IMODE(p.stat().st_mode) for p in summaries} == {0o600}
    counts = [json.loads(p.read_text()) for p in summaries]
    assert [(c["must_reset"], c["completed_reset"], c["present"]) for c in counts] == [
        (3, 0, 3), (3, 1, 3)]  # fmt: skip
    assert {c["reset_basis"] for c in counts} == {"results.jsonl"}
    assert counts[1]["statuses"]["CONFIRMED"] == 1 and counts[1]["statuses"]["RESET_REQUIRED"] == 2
    assert "user1" not in summaries[1].read_text()  # counts only

    assert csvimport(env, "report", str(run)).returncode == 1  # user4 was skipped
    section = _adoption_section(run)
    assert section.count("<tr><td><bdi>") == 2  # the second verify added a point
    assert section.count("<circle") == 2 * 4  # two points on each of the chart's four lines
    today = counts[1]["at"][:10]
    said = f"1 of 3 users who had to reset their password have done so (33%) as of {today}."
    assert said in section


def _adoption_section(run: Path) -> str:
    page = (run / "report.html").read_text()
    section = page[page.index('<section id="adoption">') :]
    return section[: section.index("</section>")]
