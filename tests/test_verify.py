"""`csvimport verify` against the sandbox over HTTP: the pool read page by page with
ListUsers and compared with the users the run's import files carry."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import csvimport, deferred_run, env_for, imported_run, migration_pool, run_all


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
    run = imported_run(cognito, logs, pool, tmp_path, users=130).path
    sandbox.settings.update(list_users_short_pages=every)
    done = _verify(sandbox, pool, run)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["states"] == {"present": 130}
    assert found["pool_users"] == 130
    assert found["pages"] > 3  # 130 users in full pages of 60 would take 3


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
