"""The migration preflight: `csvimport migration-check`, and `start` on a run that defers
users. Pools are made in the sandbox with real boto3 calls: a UserMigration trigger in
LambdaConfig, app clients with and without USER_PASSWORD_AUTH, users holding aliases."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from csvimport.run.migrationcheck import (
    AliasCheck,
    Severity,
    Strategy,
    check_setup,
    check_verify_times,
    list_users_filter,
)
from csvimport.rundir import (
    DEFERRED,
    DEFERRED_COLUMNS,
    MANIFEST,
    RunDir,
    file_sha256,
    iter_deferred,
)
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    PASSWORD_FLOW,
    TRIGGER,
    build_run,
    csvimport,
    deferred_run,
    env_for,
    migration_pool,
)

SRP_ONLY = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]


def without_alias_columns(run_dir: Path) -> None:
    """Write the run's deferred.csv without its alias columns, as a build before they were
    added did, and record the file's new sha256."""
    path = run_dir / DEFERRED
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, DEFERRED_COLUMNS, extrasaction="ignore")
        out.writeheader()
        out.writerows(rows)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["files"][DEFERRED] = file_sha256(path)
    (run_dir / MANIFEST).write_text(json.dumps(manifest))


def hold(cognito: Any, pool: PoolInfo, username: str, *, email: str) -> None:
    """A user already in the pool, holding ``username`` and the (verified) ``email``."""
    cognito.admin_create_user(
        UserPoolId=pool.user_pool_id, Username=username, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": email},
                        {"Name": "email_verified", "Value": "true"}],
    )  # fmt: skip


def check(sandbox: Sandbox, pool: PoolInfo, run_dir: Path, *args: str) -> Any:
    return csvimport(env_for(sandbox, pool), "migration-check", str(run_dir), *args)


# --- the trigger and the app clients ------------------------------------------------------
def test_a_pool_with_the_trigger_and_a_password_client_passes(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    run_dir = deferred_run(cognito, pool, tmp_path)
    result = check(sandbox, pool, run_dir, "--json")
    assert result.returncode == 0, result.stderr
    assert (
        f"3 users left to the migration trigger of user pool {pool.user_pool_id}" in result.stderr
    )
    assert f"trigger: {TRIGGER}" in result.stderr
    assert "app client web: allows USER_PASSWORD_AUTH" in result.stderr
    assert "no username or alias of the 3 users checked is taken" in result.stderr
    found = json.loads(result.stdout)
    assert (found["trigger"], found["findings"], found["exit_status"]) == (TRIGGER, [], 0)
    assert found["aliases"]["plan"]["attributes"] == ["username"]  # the pool has no alias


def test_a_pool_without_the_trigger_is_an_error_that_names_migration_package(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, trigger=False)
    run_dir = deferred_run(cognito, pool, tmp_path)
    result = check(sandbox, pool, run_dir, "--no-aliases")
    assert result.returncode == 2, result.stderr
    assert "trigger: none" in result.stderr
    assert (
        f"error: the user pool {pool.user_pool_id} has no user migration trigger "
        "(LambdaConfig.UserMigration), so the 3 deferred users cannot sign in"
    ) in result.stderr
    assert f"hint: Deploy the migration function with `csvimport migration-package {run_dir}`" \
        in result.stderr  # fmt: skip


def test_srp_only_clients_are_named_and_an_error_when_no_client_sends_passwords(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, flows=SRP_ONLY)
    cognito.create_user_pool_client(UserPoolId=pool.user_pool_id, ClientName="mobile")
    run_dir = deferred_run(cognito, pool, tmp_path)
    result = check(sandbox, pool, run_dir, "--no-aliases", "--json")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    srp = [line for line in lines if line.startswith("warning: app client")]
    assert len(srp) == 2
    assert "'web'" in srp[0] and "ALLOW_USER_SRP_AUTH, ALLOW_REFRESH_TOKEN_AUTH)" in srp[0]
    # created without ExplicitAuthFlows: Cognito's defaults, SRP among them
    assert "'mobile'" in srp[1] and "(the defaults)" in srp[1] and "never fires" in srp[1]
    assert any(line.startswith(f"error: no app can sign deferred users in to the user pool "
                               f"{pool.user_pool_id}: none of its 2 app clients allows "
                               "USER_PASSWORD_AUTH") for line in lines)  # fmt: skip
    assert "hint: Allow ALLOW_USER_PASSWORD_AUTH on the app client" in result.stderr
    severities = [f["severity"] for f in json.loads(result.stdout)["findings"]]
    assert severities == ["warning", "warning", "error"]


def test_one_password_client_is_enough_and_the_srp_ones_are_warnings(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    cognito.create_user_pool_client(UserPoolId=pool.user_pool_id, ClientName="spa",
                                    ExplicitAuthFlows=SRP_ONLY)  # fmt: skip
    cognito.create_user_pool_client(UserPoolId=pool.user_pool_id, ClientName="backend",
                                    ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"])  # fmt: skip
    run_dir = deferred_run(cognito, pool, tmp_path)
    result = check(sandbox, pool, run_dir, "--no-aliases")
    assert result.returncode == 0, result.stderr
    assert "app client backend: allows USER_PASSWORD_AUTH" in result.stderr
    assert "warning: app client 'spa'" in result.stderr
    assert "error:" not in result.stderr


def test_app_clients_are_read_across_pages(
    cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, flows=SRP_ONLY)
    for n in range(61):  # ListUserPoolClients gives 60 at most a page
        flows = PASSWORD_FLOW if n == 60 else SRP_ONLY
        cognito.create_user_pool_client(UserPoolId=pool.user_pool_id, ClientName=f"c{n}",
                                        ExplicitAuthFlows=flows)  # fmt: skip
    run = RunDir.open(deferred_run(cognito, pool, tmp_path))
    setup = check_setup(run, cognito, deferred=3)
    assert len(setup.clients) == 62
    assert [c.name for c in setup.clients if c.password_sign_in] == ["c60"]
    assert not setup.errors and len(setup.warnings) == 61


# --- the aliases --------------------------------------------------------------------------
def test_taken_usernames_and_emails_are_counted_and_shown_masked(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, AliasAttributes=["email"])
    run_dir = deferred_run(cognito, pool, tmp_path, users=5)
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="legacy1",
                              MessageAction="SUPPRESS")  # fmt: skip
    hold(cognito, pool, "someone-else", email="legacy3@example.com")
    result = check(sandbox, pool, run_dir, "--json")
    assert result.returncode == 1, result.stderr
    # 10 names to look up, or the pool's 4 users in one call: the cheaper is taken
    assert (
        "checking aliases: listing the pool's users (1 ListUsers calls) against the 5 "
        "deferred users' username, email at 10 calls/s: about 1 seconds"
    ) in result.stderr

    assert ("warning: 2 deferred users have a username or alias a user in the pool already "
            "holds (1 username, 1 email)") in result.stderr  # fmt: skip
    assert "source row 4 (legacy id 101): username le…1 is held by le…1" in result.stderr
    assert "source row 6 (legacy id 103): email l***@e***.com is held by so…e" in result.stderr
    assert "legacy3@example.com" not in result.stderr + result.stdout
    assert "someone-else" not in result.stderr + result.stdout
    aliases = json.loads(result.stdout)["aliases"]
    assert (aliases["taken"], aliases["users"], aliases["by_attribute"]) == (
        2,
        2,
        {"username": 1, "email": 1},
    )
    shown = check(sandbox, pool, run_dir, "--show-pii")
    assert "email legacy3@example.com is held by someone-else" in shown.stderr


def test_an_alias_the_pool_signs_in_with_but_deferred_csv_lacks_is_named_unchecked(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, AliasAttributes=["email"])
    run_dir = deferred_run(cognito, pool, tmp_path)
    with (run_dir / DEFERRED).open(newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == [*DEFERRED_COLUMNS, "email", "phone_number"]
    assert "not checked" not in check(sandbox, pool, run_dir).stderr  # the build writes it
    without_alias_columns(run_dir)  # as an older build wrote it
    result = check(sandbox, pool, run_dir)
    assert result.returncode == 0, result.stderr
    assert "not checked: email (the pool signs in with it, but deferred.csv does not carry it)" \
        in result.stderr  # fmt: skip


def test_a_sample_checks_that_many_users_and_scales_the_count(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    run_dir = deferred_run(cognito, pool, tmp_path, users=40)
    for n in range(40):
        cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username=f"legacy{n}",
                                  MessageAction="SUPPRESS")  # fmt: skip
    run = RunDir.open(run_dir)
    # a pool of unknown size: one ListUsers call per name
    report = AliasCheck(run, cognito, sample=4).run()
    assert (report.plan.strategy, report.plan.checked, report.plan.calls) == (Strategy.FILTER, 4, 4)
    assert report.users == 4 and report.estimated_users == 40
    assert report.plan.sampled and "of 4 sampled (about 40 of all 40)" in str(report.finding())
    again = AliasCheck(run, cognito, sample=4).run()  # the same sample every time
    assert [e.source_row for e in again.examples] == [e.source_row for e in report.examples]
    # every user checked (one listing of the 40-user pool): all counted, the first 10 shown
    whole = AliasCheck(run, cognito, estimated_users=40).run()
    assert (whole.plan.strategy, whole.taken, whole.users) == (Strategy.SCAN, 40, 40)
    assert [e.source_row for e in whole.examples] == list(range(3, 13))


def test_one_call_per_name_finds_taken_usernames_and_emails(
    cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, AliasAttributes=["email"])
    run = RunDir.open(deferred_run(cognito, pool, tmp_path, users=4))
    hold(cognito, pool, "legacy0", email="legacy2@example.com")
    progress: list[tuple[int, int]] = []
    report = AliasCheck(
        run, cognito, on_progress=lambda done, total: progress.append((done, total))
    ).run()
    assert (report.plan.strategy, report.plan.calls, report.plan.checked) == (Strategy.FILTER, 8, 4)
    assert progress[0] == (0, 8) and progress[-1] == (8, 8)
    taken = {(e.attribute, e.source_row, e.held_by) for e in report.examples}
    assert taken == {("username", 3, "legacy0"), ("email", 5, "legacy0")}


def test_a_small_pool_is_listed_whole_instead_of_one_call_per_name(
    cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, AliasAttributes=["email"])
    run = RunDir.open(deferred_run(cognito, pool, tmp_path, users=200))
    hold(cognito, pool, "LEGACY7", email="legacy9@example.com")
    setup = check_setup(run, cognito, deferred=200)
    progress: list[tuple[int, int]] = []
    check = AliasCheck(run, cognito, sample=10, estimated_users=setup.estimated_users,
                       on_progress=lambda done, total: progress.append((done, total)))  # fmt: skip
    report = check.run()
    # 400 names to look up, or the pool (2 users) in one call; a scan checks every user
    assert (report.plan.strategy, report.plan.calls, report.plan.checked) == (Strategy.SCAN, 1, 200)
    assert progress[-1] == (1, 1)
    # the pool is case-insensitive: LEGACY7 holds legacy7's username
    taken = {(e.attribute, e.source_row, e.held_by) for e in report.examples}
    assert taken == {("username", 10, "LEGACY7"), ("email", 12, "LEGACY7")}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("jo", 'username = "jo"'), ('a"b', 'username = "a\\"b"'), ("a\\b", 'username = "a\\\\b"')],
    ids=["plain", "quote", "backslash"],
)  # fmt: skip
def test_filter_values_are_quoted_and_escaped(value: str, expected: str) -> None:
    assert list_users_filter("username", value) == expected


# --- nothing to check, or the wrong pool ----------------------------------------------------
def test_a_run_without_deferred_users_is_refused_with_what_to_build(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    run_dir = build_run(cognito, pool, tmp_path, users=2)
    result = check(sandbox, pool, run_dir)
    assert result.returncode == 2, result.stderr
    assert "leaves no user to the migration trigger (it has no deferred users)" in result.stderr
    assert "--password-fallback migrate" in result.stderr
    assert list(iter_deferred(RunDir.open(run_dir))) == []


def test_a_run_whose_pool_is_gone_is_refused(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    run_dir = deferred_run(cognito, pool, tmp_path)
    cognito.delete_user_pool(UserPoolId=pool.user_pool_id)
    result = check(sandbox, pool, run_dir)
    assert result.returncode == 2, result.stderr
    assert f"error: the user pool {pool.user_pool_id} this run was built for does not exist" \
        in result.stderr  # fmt: skip
    assert "hint: Check --region and --profile" in result.stderr


# --- start ------------------------------------------------------------------------------------
def test_start_refuses_a_run_with_deferred_users_when_the_pool_has_no_trigger(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, trigger=False, flows=SRP_ONLY)
    run_dir = deferred_run(cognito, pool, tmp_path)
    refused = csvimport(env_for(sandbox, pool), "start", str(run_dir))
    assert refused.returncode == 2, refused.stderr
    assert "error: the migration trigger would not work for the 3 users this run leaves to it" \
        in refused.stderr  # fmt: skip
    assert "has no user migration trigger" in refused.stderr
    assert "none of its 1 app clients allows USER_PASSWORD_AUTH" in refused.stderr
    assert "`csvimport migration-package" in refused.stderr
    assert "pass --skip-migration-check" in refused.stderr
    assert cognito.list_user_import_jobs(UserPoolId=pool.user_pool_id,
                                         MaxResults=60).get("UserImportJobs", []) == []  # fmt: skip
    skipped = csvimport(env_for(sandbox, pool), "start", str(run_dir), "--skip-migration-check")
    assert skipped.returncode == 0, skipped.stderr
    assert "2 of 2 users imported" in skipped.stdout


def test_start_warns_about_srp_only_clients_and_starts(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)
    cognito.create_user_pool_client(UserPoolId=pool.user_pool_id, ClientName="spa",
                                    ExplicitAuthFlows=SRP_ONLY)  # fmt: skip
    run_dir = deferred_run(cognito, pool, tmp_path)
    started = csvimport(env_for(sandbox, pool), "start", str(run_dir))
    assert started.returncode == 0, started.stderr
    assert "warning: app client 'spa'" in started.stderr and "never fires" in started.stderr


def test_start_on_a_run_without_deferred_users_asks_nothing_of_the_trigger(
    sandbox: Sandbox, cognito: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool, trigger=False, flows=SRP_ONLY)
    run_dir = build_run(cognito, pool, tmp_path, users=2)
    started = csvimport(env_for(sandbox, pool), "start", str(run_dir))
    assert started.returncode == 0, started.stderr
    assert "migration" not in started.stderr


def test_password_checks_the_build_timed_beyond_the_risk_are_warnings(tmp_path: Path) -> None:
    """The build times one check per deferred cost label; those that would take a fifth of
    the trigger's 5 s or more are named, with the fix, and quick ones are not."""
    run = SimpleNamespace(
        manifest={
            "password_fallback": {
                "verify_seconds": {
                    "bcrypt cost=14": 2.1,
                    "sha512_crypt rounds=656000": 1.05,
                    "md5_crypt": 0.0003,
                }
            }
        }
    )
    findings = check_verify_times(run)  # type: ignore[arg-type]
    assert [f.severity for f in findings] == [Severity.WARNING, Severity.WARNING]
    assert "bcrypt cost=14 hash took 2.10 s" in findings[0].message
    assert "sha512_crypt rounds=656000" in findings[1].message
    assert "MemorySize" in findings[0].hint and "--password-fallback reset" in findings[0].hint
    assert check_verify_times(SimpleNamespace(manifest={})) == []  # type: ignore[arg-type]
