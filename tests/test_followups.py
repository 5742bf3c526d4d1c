"""What the CSV cannot carry: the mapping's [groups] and [legacy].disabled, the build's
followups.csv, and `csvimport followups` against the sandbox over HTTP (imported users
only, paced, journaled, resumable after kill -9 without a second call)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from csvimport.build.builder import BuildOptions, build
from csvimport.build.choices import PasswordFallback
from csvimport.build.mapping.apply import GROUPS, UNMAPPED, apply_mapping
from csvimport.build.mapping.spec import Mapping, MappingError
from csvimport.build.sources.base import SourceSpec
from csvimport.passes.followups import (
    FOLLOWUPS_JOURNAL,
    followups_done,
    open_journal,
    pool_groups,
)
from csvimport.passjournal import Step
from csvimport.passwords.recovery import Blocked
from csvimport.passwords.resets import ResetJournal, plan_resets
from csvimport.pool import read_pool
from csvimport.report.render import render_report
from csvimport.report.results import write_results
from csvimport.rundir import FOLLOWUPS, RunDir, file_sha256, iter_followups
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    FOLLOWUP_COLUMNS,
    FOLLOWUP_MAPPING,
    MD5_CRYPT_HASH,
    cli_env,
    csvimport,
    env_for,
    followup_line,
    followup_run,
    killed_at,
    migration_pool,
    read_csv,
    reconcile,
    run_all,
)

# user1: Admins and Staff; user2: disabled, Staff; user3: nothing to follow up; user4:
# disabled, a role the mapping leaves out on purpose (guest) and one it does not name
# (boss); user5: Admins.
LINES = (
    followup_line(1, "y", "admin, staff"),
    followup_line(2, "n", "staff"),
    followup_line(3, "y", ""),
    followup_line(4, "n", "guest,boss"),
    followup_line(5, "yes", "admin"),
)
WRITES = ("AdminAddUserToGroup", "AdminDisableUser", "CreateGroup")


def writes(sandbox: Sandbox) -> dict[str, int]:
    """The calls that change the pool the sandbox received since its faults last changed."""
    return {op: n for op, n in sandbox.faults.calls().items() if op in WRITES}


def members(cognito: Any, pool: PoolInfo, group: str) -> list[str]:
    users = cognito.list_users_in_group(UserPoolId=pool.user_pool_id, GroupName=group)["Users"]
    return sorted(u["Username"] for u in users)


def enabled(cognito: Any, pool: PoolInfo) -> dict[str, bool]:
    users = cognito.list_users(UserPoolId=pool.user_pool_id)["Users"]
    return {u["Username"]: u["Enabled"] for u in users}


def make_groups(cognito: Any, pool: PoolInfo, *names: str) -> None:
    for name in names:
        cognito.create_group(UserPoolId=pool.user_pool_id, GroupName=name)


def grouped_run(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path, **env: str
) -> tuple[RunDir, dict[str, str]]:
    """LINES imported and reported, the pool holding their groups, the sandbox's call
    counts at zero; and the command line's environment (``env`` added)."""
    run = followup_run(cognito, logs, pool, tmp_path, LINES)
    make_groups(cognito, pool, "Admins", "Staff")
    sandbox.faults.clear()
    return run, env_for(sandbox, pool, **env)


def steps(run: RunDir) -> dict[str, Step]:
    return {key: last.step for key, last in open_journal(run.path).last().items()}


# --- the mapping ---------------------------------------------------------------------------
BASE = {"legacy": {"id": "id"}, "attributes": {"cognito:username": {"column": "login"}}}


def test_the_mapping_reads_groups_and_the_disabled_flag() -> None:
    mapping = Mapping.from_dict({
        "legacy": {"id": "id", "disabled": "is_active", "disabled_when": False},
        "groups": {"column": "roles", "separator": ";",
                   "names": {"admin": "Admins", "guest": ""}},
        "attributes": BASE["attributes"],
    })  # fmt: skip
    assert mapping.disabled is not None and not mapping.disabled.when
    assert mapping.groups is not None and dict(mapping.groups.names) == {"admin": "Admins",
                                                                         "guest": ""}  # fmt: skip
    assert {"is_active", "roles"} <= set(mapping.source_columns())
    assert mapping.fingerprint() != Mapping.from_dict(BASE).fingerprint()


@pytest.mark.parametrize(
    ("change", "message", "hint"),
    [
        ({"legacy": {"id": "id", "disabled_when": False}}, "disabled_when but no disabled",
         "disabled ="),
        ({"legacy": {"id": "id", "disabled": "active", "disabled_when": "no"}},
         "disabled_when must be true or false", "is_active"),
        ({"groups": {"names": {"a": "A"}}}, "has no column", "[groups.names]"),
        ({"groups": {"column": "roles"}}, "has no [groups.names]", "admin = \"Admins\""),
        ({"groups": {"column": "roles", "names": {"a": "Two words"}}},
         "is not a Cognito group name", "no spaces"),
        ({"groups": {"column": "roles", "names": {"a,b": "A"}}}, "holds the separator",
         "separator"),
        ({"groups": {"column": "roles", "separator": "", "names": {"a": "A"}}},
         "separator must be a non-empty string", "separator = \",\""),
        ({"groups": {"column": "roles", "names": {"a": "A"}, "create_missing": True}},
         "has create_missing", "--create-groups"),
        ({"groups": {"column": "roles", "names": {"a": "A"}, "colum": "x"}},
         "unknown key 'colum'", "column"),
    ],
)  # fmt: skip
def test_a_bad_declaration_is_refused_naming_the_fix(
    change: dict[str, Any], message: str, hint: str
) -> None:
    with pytest.raises(MappingError) as caught:
        Mapping.from_dict({**BASE, **change}, origin="m.toml")
    assert message in caught.value.message and caught.value.message.startswith("m.toml")
    assert caught.value.hint and hint in caught.value.hint


def test_too_many_groups_for_a_pool_are_refused() -> None:
    names = {f"role{n}": f"G{n}" for n in range(10_001)}
    with pytest.raises(MappingError, match="a pool holds at most 10,000"):
        Mapping.from_dict({**BASE, "groups": {"column": "roles", "names": names}})


# --- the build ---------------------------------------------------------------------------
def test_build_lists_each_kept_users_follow_ups_privately_with_its_sha256(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    from .helpers import build_run

    extra = (*LINES, followup_line(6, "", "admin"), followup_line(7, "maybe", "staff"))
    run_dir = build_run(cognito, pool, tmp_path, users=0, extra=extra,
                        columns=FOLLOWUP_COLUMNS, mapping_text=FOLLOWUP_MAPPING)  # fmt: skip
    run = RunDir.open(run_dir)
    path = run_dir / FOLLOWUPS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run.manifest["files"][FOLLOWUPS] == file_sha256(path)
    got = {f.username: (f.groups, f.unmapped_roles, f.disabled) for f in iter_followups(run)}
    assert got == {
        "user1": (("Admins", "Staff"), (), False), "user2": (("Staff",), (), True),
        "user4": ((), ("boss",), True), "user5": (("Admins",), (), False),
    }  # fmt: skip
    counts = run.manifest["followups"]
    assert counts["memberships"] == {"Admins": 2, "Staff": 2} and counts["disabled"] == 2
    assert counts["unmapped_roles"] == {"boss": 1}
    # a flag the build cannot read rejects the user: never imported enabled by a guess
    rejects = {r["source_row"]: r for r in read_csv(run_dir / "rejects.csv")}
    assert rejects["6"]["attribute"] == "[legacy].disabled" and "empty" in rejects["6"]["reason"]
    assert rejects["7"]["rule"] == "boolean"
    # the command line's summary says what the pass will do, and names the unmapped role
    again = csvimport(cli_env(), "build", str(tmp_path / "legacy.csv"), "--mapping",
                      str(tmp_path / "mapping.toml"), "--out", str(tmp_path / "again"),
                      "--pool-spec", str(run_dir / "pool.json"))  # fmt: skip
    assert "4 memberships in 2 groups, 2 users to disable." in again.stderr
    assert "Legacy roles [groups.names] does not name" in again.stderr
    assert "'boss' (1)" in again.stderr


# --- the pass ----------------------------------------------------------------------------
def test_the_pass_adds_imported_users_to_groups_and_disables_and_leaves_skipped_users_alone(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    # user5 was in the pool before the import: Cognito skips them, the pass never touches them
    cognito.admin_create_user(UserPoolId=pool.user_pool_id, Username="user5",
                              MessageAction="SUPPRESS")  # fmt: skip
    run = followup_run(cognito, logs, pool, tmp_path, LINES)
    make_groups(cognito, pool, "Admins", "Staff")
    sandbox.faults.clear()
    env = env_for(sandbox, pool)
    done = csvimport(env, "followups", str(run.path), "--json", "--rate", "25")
    assert done.returncode == 1, done.stderr  # the unmapped role "boss" needs a decision
    assert "legacy role 'boss' of 1 imported users is in no group" in done.stderr
    assert "left alone (1): existed in the pool before the import" in done.stderr
    result = json.loads(done.stdout)["result"]
    assert result["added"] == {"Admins": 1, "Staff": 2} and result["disabled"] == 2
    assert members(cognito, pool, "Admins") == ["user1"]
    assert members(cognito, pool, "Staff") == ["user1", "user2"]
    states = enabled(cognito, pool)
    assert [u for u, on in sorted(states.items()) if not on] == ["user2", "user4"]
    assert states["user5"] is True
    assert writes(sandbox) == {"AdminAddUserToGroup": 3, "AdminDisableUser": 2}

    sandbox.faults.clear()
    again = csvimport(env, "followups", str(run.path))
    assert "0 memberships to add, 0 users to disable" in again.stderr
    assert "5 calls already done" in again.stderr
    assert writes(sandbox) == {}
    summary = followups_done(run.path)
    assert summary is not None and summary.added == {"Admins": 1, "Staff": 2}
    assert summary.disabled == 2


def test_missing_groups_are_refused_unless_create_groups(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = followup_run(cognito, logs, pool, tmp_path, LINES[:2])
    make_groups(cognito, pool, "Staff")
    env = env_for(sandbox, pool)
    sandbox.faults.clear()
    refused = csvimport(env, "followups", str(run.path))
    assert refused.returncode == 2, refused.stderr
    assert "the pool has no group Admins" in refused.stderr
    assert "--create-groups" in refused.stderr
    assert writes(sandbox) == {}
    created = csvimport(env, "followups", str(run.path), "--create-groups", "--rate", "25")
    assert created.returncode == 0, created.stderr
    assert members(cognito, pool, "Admins") == ["user1"]
    assert writes(sandbox) == {"CreateGroup": 1, "AdminAddUserToGroup": 3,
                               "AdminDisableUser": 1}  # fmt: skip


def test_dry_run_says_what_it_would_do_and_calls_nothing(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = followup_run(cognito, logs, pool, tmp_path, LINES)
    sandbox.faults.clear()
    dry = csvimport(env_for(sandbox, pool), "followups", str(run.path), "--dry-run", "--json")
    assert dry.returncode == 2, dry.stderr  # the groups are missing: a real pass is refused
    assert "4 memberships to add, 2 users to disable, 0 groups to create" in dry.stderr
    assert "  Admins: 2" in dry.stderr and "  Staff: 2" in dry.stderr
    plan = json.loads(dry.stdout)["plan"]
    assert plan["missing_groups"] == ["Admins", "Staff"] and plan["disable"] == 2
    assert writes(sandbox) == {}
    assert not (run.path / FOLLOWUPS_JOURNAL).exists()


def crash_followups(env: dict[str, str], run: RunDir, *step: str) -> None:
    """`csvimport followups` SIGKILLed at ``step`` (see tests/crash_at.py)."""
    killed_at(env, "--pass", *step, "followups", str(run.path), "--rate", "25")


def test_a_pass_killed_after_a_call_before_its_record_resumes_without_a_second_call(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run, env = grouped_run(sandbox, cognito, logs, pool, tmp_path)
    # the 3rd call (user1's Admins membership) was answered; its record never written
    crash_followups(env, run, "done", "before", "3")
    assert writes(sandbox) == {"AdminDisableUser": 2, "AdminAddUserToGroup": 1}
    assert steps(run)["add\t1\tAdmins"] is Step.CALLING

    resumed = csvimport(env, "followups", str(run.path), "--rate", "25")
    assert resumed.returncode == 1, resumed.stderr
    assert "1 may have been done" in resumed.stderr and "--retry-uncertain" in resumed.stderr
    assert "    add user1 to Admins" in resumed.stderr
    # every call made exactly once over both runs
    assert writes(sandbox) == {"AdminDisableUser": 2, "AdminAddUserToGroup": 4}
    assert members(cognito, pool, "Admins") == ["user1", "user5"]
    assert members(cognito, pool, "Staff") == ["user1", "user2"]


def test_a_pass_killed_after_its_intent_calls_again_only_when_asked(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run, env = grouped_run(sandbox, cognito, logs, pool, tmp_path)
    crash_followups(env, run, "calling", "after", "1")  # user2's disable: intent, no call
    assert writes(sandbox) == {}
    resumed = csvimport(env, "followups", str(run.path), "--rate", "25")
    assert resumed.returncode == 1 and "1 may have been done" in resumed.stderr
    assert enabled(cognito, pool)["user2"] is True
    assert writes(sandbox) == {"AdminDisableUser": 1, "AdminAddUserToGroup": 4}
    retried = csvimport(env, "followups", str(run.path), "--retry-uncertain")
    assert retried.returncode == 1, retried.stderr  # still the unmapped role
    assert enabled(cognito, pool)["user2"] is False
    assert writes(sandbox) == {"AdminDisableUser": 2, "AdminAddUserToGroup": 4}


def test_throttling_under_the_user_update_quota_is_survived(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run, env = grouped_run(sandbox, cognito, logs, pool, tmp_path, AWS_MAX_ATTEMPTS="10")
    sandbox.settings.update(user_update_rps=2)
    done = csvimport(env, "followups", str(run.path), "--rate", "25", "--json")
    assert done.returncode == 1, done.stderr  # the unmapped role only
    assert json.loads(done.stdout)["result"]["failed"] == {}
    calls = writes(sandbox)
    assert calls["AdminAddUserToGroup"] + calls["AdminDisableUser"] > 6  # throttled, retried
    assert set(steps(run).values()) == {Step.DONE}
    assert members(cognito, pool, "Staff") == ["user1", "user2"]


def test_throttling_past_the_retries_stops_the_pass_and_a_rerun_goes_on(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run, env = grouped_run(sandbox, cognito, logs, pool, tmp_path, AWS_MAX_ATTEMPTS="2")
    sandbox.faults.update(throttle_every=1, throttle_operations=["AdminAddUserToGroup"])
    stopped = csvimport(env, "followups", str(run.path), "--rate", "25")
    assert stopped.returncode == 3, stopped.stderr
    assert "run `csvimport followups" in stopped.stderr and "again later" in stopped.stderr
    assert "4 not done yet" in stopped.stderr
    assert steps(run)["add\t1\tAdmins"] is Step.NOT_DONE
    sandbox.faults.clear()
    resumed = csvimport(env, "followups", str(run.path), "--rate", "25")
    assert resumed.returncode == 1, resumed.stderr
    assert "2 calls already done" in resumed.stderr
    assert writes(sandbox) == {"AdminAddUserToGroup": 4}
    assert members(cognito, pool, "Admins") == ["user1", "user5"]


def test_resets_never_send_a_code_to_a_user_the_legacy_system_disabled(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = followup_run(cognito, logs, pool, tmp_path, LINES)
    described = cognito.describe_user_pool(UserPoolId=pool.user_pool_id)["UserPool"]
    plan = plan_resets(run, described, ResetJournal(run))
    assert sorted(c.username for c in plan.to_send) == ["user1", "user3", "user5"]
    assert {c.username: c.why_not for c in plan.cannot_reset} == {
        "user2": "disabled in the legacy system",
        "user4": "disabled in the legacy system",
    }
    assert all(c.blocked is Blocked.LEGACY_DISABLED for c in plan.cannot_reset)


# --- the sandbox serves the calls as Cognito does -------------------------------------------
def test_the_sandbox_answers_group_and_disable_calls_as_cognito(
    sandbox: Sandbox, cognito: Any, pool: PoolInfo
) -> None:
    pool_id = pool.user_pool_id
    cognito.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS")
    with pytest.raises(cognito.exceptions.ResourceNotFoundException):
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName="none")
    for n in range(101):
        cognito.create_group(UserPoolId=pool_id, GroupName=f"g{n}")
    assert pool_groups(cognito, pool_id) == {f"g{n}" for n in range(101)}  # pages of 60
    for n in range(100):
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName=f"g{n}")
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName="g0")
    with pytest.raises(cognito.exceptions.LimitExceededException):
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName="g100")
    cognito.admin_disable_user(UserPoolId=pool_id, Username="alice")
    assert enabled(cognito, pool) == {"alice": False}
    with pytest.raises(cognito.exceptions.UserNotFoundException):
        cognito.admin_disable_user(UserPoolId=pool_id, Username="ghost")


def test_the_report_shows_memberships_added_and_users_disabled(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run, env = grouped_run(sandbox, cognito, logs, pool, tmp_path)
    report, _, _ = reconcile(run.path, cognito, logs)
    assert report.followups is None  # no pass yet: no section
    assert "csvimport followups</code>)" not in render_report(report)
    csvimport(env, "followups", str(run.path), "--rate", "25")
    report, _, _ = reconcile(run.path, cognito, logs)
    assert report.followups is not None
    assert report.followups.added == {"Admins": 2, "Staff": 2}
    assert report.followups.disabled == 2 and report.followups.pending == 0
    html = render_report(report)
    assert "added to group Admins" in html and "added to group Staff" in html
    # the report and resets agree: the legacy-disabled users cannot reset, and why
    assert report.passwords.cannot_reset_reasons == {"disabled in the legacy system": 2}


def test_deferred_users_are_listed_marked_and_left_alone_by_the_pass(
    sandbox: Sandbox, cognito: Any, logs: Any, make_pool: Callable[..., PoolInfo], tmp_path: Path
) -> None:
    pool = migration_pool(make_pool)  # a run with deferred users starts only with a trigger
    source, mapping = tmp_path / "legacy.csv", tmp_path / "mapping.toml"
    lines = [
        f"{followup_line(1, 'n', 'admin')},",
        f"{followup_line(2, 'n', 'admin')},{MD5_CRYPT_HASH}",
    ]
    source.write_text("\n".join([",".join([*FOLLOWUP_COLUMNS, "pw"]), *lines]) + "\n")
    mapping.write_text(FOLLOWUP_MAPPING + '\n[attributes.password_hash]\ncolumn = "pw"\n')
    build(BuildOptions(SourceSpec(str(source)), mapping, tmp_path / "run",
                       password_fallback=PasswordFallback.MIGRATE),
          read_pool(cognito, pool.user_pool_id))  # fmt: skip
    run_all(tmp_path / "run", cognito, pool)
    write_results(tmp_path / "run", reconcile(tmp_path / "run", cognito, logs)[1])
    run = RunDir.open(tmp_path / "run")
    assert {f.username: f.deferred for f in iter_followups(run)} == {"user1": False,
                                                                     "user2": True}  # fmt: skip
    make_groups(cognito, pool, "Admins")
    sandbox.faults.clear()
    done = csvimport(env_for(sandbox, pool), "followups", str(run.path), "--rate", "25")
    assert done.returncode == 0, done.stderr
    assert "left alone (1): migrates at first sign-in: not in the pool yet" in done.stderr
    assert writes(sandbox) == {"AdminDisableUser": 1, "AdminAddUserToGroup": 1}
    assert members(cognito, pool, "Admins") == ["user1"]


def test_a_user_with_more_groups_than_cognito_allows_is_rejected_with_the_limit() -> None:
    names = {f"r{n}": f"G{n}" for n in range(101)}
    mapping = Mapping.from_dict({**BASE, "groups": {"column": "roles", "names": names}})
    chunk = pd.DataFrame({"id": ["1", "2"], "login": ["a", "b"],
                          "roles": [",".join(names), "r1,r2,nope"]}, dtype="str")  # fmt: skip
    chunk["__row__"] = [1, 2]
    mapped = apply_mapping(mapping, chunk)
    assert [(p.row, p.attribute, p.rule) for p in mapped.problems] == [(1, "[groups]", "groups")]
    assert "at most 100" in mapped.problems[0].reason
    assert mapped.frame[GROUPS].tolist()[1] == "G1 G2"
    assert mapped.frame[UNMAPPED].tolist() == ["", '["nope"]']


def test_a_run_without_follow_ups_or_with_an_edited_list_is_refused_naming_the_fix(
    sandbox: Sandbox, cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    from .helpers import build_run

    env = env_for(sandbox, pool)
    plain = build_run(cognito, pool, tmp_path / "plain", users=1)
    refused = csvimport(env, "followups", str(plain))
    assert refused.returncode == 2, refused.stderr
    assert "nothing to follow up" in refused.stderr and "[groups]" in refused.stderr
    run_dir = build_run(cognito, pool, tmp_path / "grouped", users=0, extra=LINES[:1],
                        columns=FOLLOWUP_COLUMNS, mapping_text=FOLLOWUP_MAPPING)  # fmt: skip
    with (run_dir / FOLLOWUPS).open("a") as f:
        f.write("9,9,user9,Admins,,true,\n")
    edited = csvimport(env, "followups", str(run_dir))
    assert edited.returncode == 2, edited.stderr
    assert "followups.csv changed since the build" in edited.stderr
    assert writes(sandbox) == {}
