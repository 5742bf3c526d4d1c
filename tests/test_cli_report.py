"""`csvimport report` and `status --wait --report` as an operator runs them."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import MESSY, build_run, csvimport, env_for


def test_report_accounts_for_every_user_and_writes_the_files(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user2")
    run_dir = build_run(cognito, pool, tmp_path, users=3, extra=MESSY)
    env = env_for(sandbox, pool)
    assert csvimport(env, "start", str(run_dir), "--no-wait").returncode == 0
    waited = csvimport(env, "status", str(run_dir), "--wait", "--report")
    assert waited.returncode == 1, waited.stderr  # one skipped, one rejected, one duplicate
    assert (run_dir / "report.html").exists()

    result = csvimport(env, "report", str(run_dir))
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == str(run_dir / "report.html")
    assert "3 of 6 users are in Cognito; 3 need attention" in result.stderr
    assert ("1 rejected before import, 1 duplicates, 1 skipped and 0 failed by Cognito, "
            "0 not processed") in result.stderr  # fmt: skip
    assert "MISMATCH" not in result.stderr
    for name in ("results.jsonl", "failed-users.csv", "retry-source.csv", "report.html"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    outcomes = [json.loads(x)["outcome"] for x in lines]
    assert sorted(outcomes) == ["duplicate", "imported", "imported", "imported", "rejected",
                                "skipped"]  # fmt: skip
    html = (run_dir / "report.html").read_text()
    assert "user2@example.com" not in html  # masked by default

    shown = csvimport(env, "report", str(run_dir), "--show-pii", "--out", str(tmp_path / "r.html"))
    assert shown.returncode == 1
    assert "user2@example.com" in (tmp_path / "r.html").read_text()


def test_report_of_a_fully_imported_run_exits_0(
    sandbox: Sandbox, pool: PoolInfo, cognito: Any, tmp_path: Path
) -> None:
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    env = env_for(sandbox, pool)
    assert csvimport(env, "start", str(run_dir)).returncode == 0
    result = csvimport(env, "report", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "3 of 3 users are in Cognito; 0 need attention" in result.stderr
    assert not (run_dir / "retry-source.csv").exists()
