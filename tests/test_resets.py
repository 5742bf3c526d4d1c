"""Password-reset waves against the sandbox over HTTP: planned from the report's results,
within the email sender's daily allowance, paced, and resumable without a second code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from csvimport.errors import ConfigError, RefusedError, ServiceError
from csvimport.passwords.recovery import Blocked, Channel
from csvimport.passwords.resets import (
    RESETS_JOURNAL,
    ResetJournal,
    plan_resets,
    read_reset_entries,
    run_wave,
)
from csvimport.report.render import render_report
from csvimport.rundir import RunDir, iter_results, read_results
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    CRASH_AT,
    LEGACY_COLUMNS,
    LEGACY_MAPPING,
    bare_client,
    build_run,
    csvimport,
    env_for,
    imported_run,
    messages,
    reconcile,
    sign_in,
)

# Users of every kind for the pools below: a verified email, a verified phone, both.
CHANNEL_COLUMNS = [*LEGACY_COLUMNS, "mobile_verified"]
CHANNEL_USERS = (
    "1,mail,mail@example.com,y,,Mail,Only,2024-01-01,",
    "2,text,,n,+14155550102,Text,Only,2024-01-01,y",
    "3,both,both@example.com,y,+14155550103,Mail,Text,2024-01-01,y",
)
CHANNEL_MAPPING = (
    LEGACY_MAPPING
    + """
[attributes.phone_number_verified]
column = "mobile_verified"
transform = "boolean"
default = "false"
"""
)
SMS_CONFIG = {"SnsCallerArn": "arn:aws:iam::123456789012:role/cognito-sms", "ExternalId": "x"}


def describe(cognito: Any, pool: PoolInfo) -> dict[str, Any]:
    return dict(cognito.describe_user_pool(UserPoolId=pool.user_pool_id)["UserPool"])


def sent(run: RunDir) -> list[str]:
    return [e["username"] for e in read_reset_entries(run.path) if e["state"] == "sent"]


def test_a_wave_needs_the_reports_results(cognito: Any, pool: PoolInfo, tmp_path: Path) -> None:
    run = RunDir.open(build_run(cognito, pool, tmp_path, users=2))
    with pytest.raises(ConfigError) as caught:
        plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert caught.value.hint and "csvimport report" in caught.value.hint


def test_a_wave_sends_each_user_one_code_and_a_rerun_sends_none(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=5)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert (len(plan.to_send), plan.emails, plan.sms) == (5, 5, 0)
    assert plan.email_allowance == 50 and plan.cannot_reset == []
    result = run_wave(run, cognito, plan, ResetJournal(run), rate=50)
    assert (result.sent, result.not_sent, dict(result.failed)) == (5, 0, {})
    assert sorted(sent(run)) == [f"user{n}" for n in range(1, 6)]

    again = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert (len(again.to_send), again.already_sent) == (0, 5)
    assert again.email_allowance == 45  # what csvimport sent today counts against the 50
    resend = plan_resets(run, describe(cognito, pool), ResetJournal(run), resend=True)
    assert len(resend.to_send) == 5


def test_a_pilot_with_limit_and_only_then_the_rest(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=6)
    pilot = plan_resets(run, describe(cognito, pool), ResetJournal(run),
                        only=["user2", "user5", "user6"], limit=2)  # fmt: skip
    assert [c.username for c in pilot.to_send] == ["user2", "user5"] and pilot.left_out == 4
    run_wave(run, cognito, pilot, ResetJournal(run), rate=50)
    rest = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert [c.username for c in rest.to_send] == ["user1", "user3", "user4", "user6"]
    run_wave(run, cognito, rest, ResetJournal(run), rate=50)
    assert sorted(sent(run)) == [f"user{n}" for n in range(1, 7)]


def test_only_names_that_are_no_user_who_must_reset_are_listed(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    (tmp_path / "only.txt").write_text("user2\nuser9\nghost\n", encoding="utf-8")
    result = csvimport(env_for(sandbox, pool), "resets", str(run.path), "--dry-run",
                       "--only", str(tmp_path / "only.txt"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--only names 2 users who are not imported users who must reset: ghost, user9" \
        in result.stderr  # fmt: skip
    assert json.loads(result.stdout)["plan"]["unknown_only"] == ["ghost", "user9"]


def test_a_wave_bigger_than_the_default_senders_allowance_is_refused(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=55)
    with pytest.raises(RefusedError) as caught:
        plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert "would send 55 emails" in caught.value.message and "50 a day" in caught.value.message
    assert caught.value.hint and "--max-per-day" in caught.value.hint and "SES" in caught.value.hint
    # --max-per-day: send that many today and stop; the rest waits for a later run.
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run), max_per_day=20)
    result = run_wave(run, cognito, plan, ResetJournal(run), rate=50)
    assert (result.sent, result.not_sent) == (20, 35)
    assert result.stopped_because == "today's email allowance is used up"


def test_a_pool_sending_with_ses_has_no_daily_allowance(
    cognito: Any, logs: Any, make_pool: Any, tmp_path: Path
) -> None:
    pool = make_pool(EmailConfiguration={"EmailSendingAccount": "DEVELOPER",
                                         "SourceArn": "arn:aws:ses:us-east-1:123456789012:identity/x@example.com"})  # fmt: skip
    run = imported_run(cognito, logs, pool, tmp_path, users=3)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert plan.email_allowance is None and len(plan.to_send) == 3


def test_users_without_a_usable_channel_are_listed_not_sent(
    cognito: Any, logs: Any, make_pool: Any, tmp_path: Path
) -> None:
    pool = make_pool(AccountRecoverySetting={
        "RecoveryMechanisms": [{"Name": "verified_phone_number", "Priority": 1}]})  # fmt: skip
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert plan.to_send == [] and len(plan.cannot_reset) == 2
    assert "no verified email or phone number" in plan.cannot_reset[0].why_not
    # A wave records them as skipped, with why, once however often it runs.
    for _ in range(2):
        run_wave(run, cognito, plan_resets(run, describe(cognito, pool), ResetJournal(run)),
                 ResetJournal(run), rate=50)  # fmt: skip
    entries = read_reset_entries(run.path)
    assert [(e["username"], e["state"]) for e in entries] == [("user1", "skipped"),
                                                              ("user2", "skipped")]  # fmt: skip
    assert "no verified email or phone number" in entries[0]["reason"]


def test_throttling_is_retried_and_every_code_is_sent_once(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=6)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    sandbox.faults.update(throttle_every=2, throttle_operations=["AdminResetUserPassword"])
    result = run_wave(run, cognito, plan, ResetJournal(run), rate=50)
    assert result.sent == 6 and not result.failed
    assert sorted(sent(run)) == [f"user{n}" for n in range(1, 7)]


def test_a_wave_killed_midway_goes_on_without_a_second_code(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=6)
    env = env_for(sandbox, pool)
    crashed = subprocess.run(
        [sys.executable, str(CRASH_AT), "--resets", "sent", "after", "3", "resets",
         str(run.path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(sent(run)) == 3
    resumed = csvimport(env, "resets", str(run.path))
    assert resumed.returncode == 0, resumed.stderr
    assert "3 users to send a code to (3 by email, 0 by SMS); 3 already sent" in resumed.stderr
    assert sorted(sent(run)) == [f"user{n}" for n in range(1, 7)]  # each exactly once
    codes = messages(sandbox, UserPoolId=pool.user_pool_id)
    assert sorted(m["Username"] for m in codes) == [f"user{n}" for n in range(1, 7)]


def test_dry_run_prints_the_plan_and_sends_nothing(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=3)
    result = csvimport(env_for(sandbox, pool), "resets", str(run.path), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "3 users to send a code to (3 by email, 0 by SMS)" in result.stderr
    assert "emails csvimport may still send today: 50" in result.stderr
    assert not (run.path / RESETS_JOURNAL).exists()


def test_the_report_shows_the_codes_sent_failed_and_still_to_send(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=4)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run), limit=3)
    cognito.admin_delete_user(UserPoolId=pool.user_pool_id, Username="user2")
    result = run_wave(run, cognito, plan, ResetJournal(run), rate=50)
    assert result.sent == 2 and sum(result.failed.values()) == 1
    report, _, _ = reconcile(run.path, cognito, logs)
    passwords = report.passwords
    assert (passwords.must_reset, passwords.codes_sent, passwords.codes_not_sent) == (4, 2, 2)
    assert list(passwords.codes_failed.values()) == [1]
    assert "UserNotFoundException" in next(iter(passwords.codes_failed))
    html = render_report(report)
    assert "Reset codes sent by" in html and "must reset, no code sent yet" in html


def test_a_user_sent_a_code_by_a_wave_resets_and_signs_in(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    with pytest.raises(cognito.exceptions.PasswordResetRequiredException):
        sign_in(cognito, pool, "user1", "anything")
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert run_wave(run, cognito, plan, ResetJournal(run), rate=50).sent == 2
    [message] = messages(sandbox, UserPoolId=pool.user_pool_id, Username="user1")
    assert message["DeliveryMedium"] == "EMAIL"
    cognito.confirm_forgot_password(ClientId=pool.user_pool_client_id, Username="user1",
                                    ConfirmationCode=message["Code"], Password="N3w-Passw0rd!")  # fmt: skip
    assert sign_in(cognito, pool, "user1", "N3w-Passw0rd!")["AuthenticationResult"]


def test_a_wave_paced_under_the_recovery_quota_is_never_throttled(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=8)
    sandbox.settings.update(recovery_rps=4)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    # No retries at all: a single throttled call would end the wave with an error.
    result = run_wave(run, bare_client(sandbox), plan, ResetJournal(run), rate=3.5)
    assert result.sent == 8 and not result.failed
    # The same wave unpaced is throttled: the pacing above is what kept it clear.
    with pytest.raises(ServiceError):
        run_wave(run, bare_client(sandbox), replace(plan), ResetJournal(run), rate=25)


def test_a_dry_run_shows_the_plan_before_saying_the_wave_would_be_refused(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=55)
    result = csvimport(env_for(sandbox, pool), "resets", str(run.path), "--dry-run")
    assert result.returncode == 2
    plan_line = "55 users to send a code to (55 by email, 0 by SMS)"
    refusal = "error: this wave would send 55 emails"
    assert plan_line in result.stderr and refusal in result.stderr
    assert result.stderr.index(plan_line) < result.stderr.index(refusal)


def crash_resets(env: dict[str, str], run: RunDir, *step: str) -> None:
    """`csvimport resets` SIGKILLed at ``step`` (see tests/crash_at.py)."""
    crashed = subprocess.run(
        [sys.executable, str(CRASH_AT), "--resets", *step, "resets", str(run.path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr


def test_a_wave_killed_after_a_code_went_out_but_before_its_record_sends_that_user_no_other(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=3)
    env = env_for(sandbox, pool)
    crash_resets(env, run, "sent", "before", "2")  # user2's code is out, its line is not
    assert sent(run) == ["user1"]
    assert len(messages(sandbox, UserPoolId=pool.user_pool_id, Username="user2")) == 1

    resumed = csvimport(env, "resets", str(run.path), "--json")
    assert resumed.returncode == 1, resumed.stderr  # someone must decide about user2
    assert "1 users to send a code to (1 by email, 0 by SMS); 1 already sent; " \
           "1 may have been sent" in resumed.stderr  # fmt: skip
    assert "may have been sent (1)" in resumed.stderr and "    user2" in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["plan"]["may_have_been_sent"] == {"count": 1, "usernames": ["user2"]}
    assert summary["result"]["sent"] == 1
    assert len(messages(sandbox, UserPoolId=pool.user_pool_id, Username="user2")) == 1
    assert len(messages(sandbox, UserPoolId=pool.user_pool_id)) == 3  # user3 got theirs

    report, _, _ = reconcile(run.path, cognito, logs)
    passwords = report.passwords
    assert (passwords.codes_sent, passwords.codes_maybe_sent, passwords.codes_not_sent) == (2, 1, 0)
    assert "may have been sent" in render_report(report)

    (tmp_path / "unsure.txt").write_text("user2\n", encoding="utf-8")
    again = csvimport(env, "resets", str(run.path), "--resend", "--only",
                      str(tmp_path / "unsure.txt"))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len(messages(sandbox, UserPoolId=pool.user_pool_id, Username="user2")) == 2
    assert len(messages(sandbox, UserPoolId=pool.user_pool_id)) == 4  # exactly one more code
    assert sorted(sent(run)) == ["user1", "user2", "user3"]
    assert "0 may have been sent" in csvimport(env, "resets", str(run.path)).stderr


def test_a_wave_killed_before_its_call_leaves_the_user_may_have_been_sent(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    # The intent is on disk before the call, so csvimport cannot tell this kill from one
    # after the call: the user is listed, never silently sent a second code.
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    crash_resets(env_for(sandbox, pool), run, "sending", "after", "1")
    assert messages(sandbox, UserPoolId=pool.user_pool_id) == []
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert [c.username for c in plan.maybe_sent] == ["user1"]
    assert [c.username for c in plan.to_send] == ["user2"]


def test_a_torn_last_line_is_ignored_and_the_next_record_starts_a_line_of_its_own(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run), only=["user1"])
    run_wave(run, cognito, plan, ResetJournal(run), rate=50)
    with (run.path / RESETS_JOURNAL).open("a", encoding="utf-8") as f:
        f.write('{"at": "2026-01-01T00:00:00+00:00", "username": "user2", "sta')  # killed here
    journal = ResetJournal(run)
    assert {e["username"] for e in read_reset_entries(run.path)} == {"user1"}
    assert set(journal.last()) == {"user1"}
    plan = plan_resets(run, describe(cognito, pool), journal)
    assert [c.username for c in plan.to_send] == ["user2"] and plan.already_sent == 1
    assert run_wave(run, cognito, plan, ResetJournal(run), rate=50).sent == 1
    assert sorted(sent(run)) == ["user1", "user2"]
    text = (run.path / RESETS_JOURNAL).read_text(encoding="utf-8")
    assert "2026-01-01" not in text  # the torn line is gone, every line is whole
    assert [json.loads(line)["state"] for line in text.splitlines()] == [
        "sending", "sent", "sending", "sent"]  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "line"),
    [(b"garbage\n", 1), (b"[]\n", 1), (b"{}\n", 1), (b"\x00\xff binary", 5),
     (b'{"at": "x", "username": "user1", "state": "maybe"}\n', 1)],
    ids=["text", "list", "empty-object", "binary-tail", "unknown-state"],
)  # fmt: skip
def test_damage_no_crash_explains_is_refused_naming_its_line(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path, damage: bytes,
    line: int,
) -> None:  # fmt: skip
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    run_wave(run, cognito, plan_resets(run, describe(cognito, pool), ResetJournal(run)),
             ResetJournal(run), rate=50)  # fmt: skip
    path = run.path / RESETS_JOURNAL
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([damage, *lines[1:]]) if line == 1 else b"".join([*lines, damage]))
    with pytest.raises(ConfigError) as caught:
        ResetJournal(run)
    assert f"{path} line {line} is damaged" in caught.value.message
    assert caught.value.hint and "delete" in caught.value.hint
    refused = csvimport(env_for(sandbox, pool), "resets", str(run.path))
    assert refused.returncode == 2 and f"line {line} is damaged" in refused.stderr
    assert path.read_bytes().endswith(damage if line > 1 else lines[-1])  # left as it was


def test_a_code_cognito_refused_is_not_counted_as_may_have_been_sent(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=3)
    sandbox.settings.update(daily_email_limit=1)  # Cognito's sender refuses the 2nd email
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run), max_per_day=10)
    result = run_wave(run, cognito, plan, ResetJournal(run), rate=50)
    assert (result.sent, result.not_sent) == (1, 2) and result.stopped_because
    again = plan_resets(run, describe(cognito, pool), ResetJournal(run), max_per_day=10)
    assert again.maybe_sent == [] and [c.username for c in again.to_send] == ["user2", "user3"]
    # Throttling that outlasts the retries is a refusal too: nobody was sent a code.
    sandbox.faults.update(throttle_every=1, throttle_operations=["AdminResetUserPassword"])
    with pytest.raises(ServiceError):
        run_wave(run, bare_client(sandbox), again, ResetJournal(run), rate=50)
    assert plan_resets(run, describe(cognito, pool), ResetJournal(run), max_per_day=10
                       ).maybe_sent == []  # fmt: skip


def test_the_daily_email_limit_is_asked_once_not_retried_as_throttling(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path,
    cli_client: Callable[..., Any],
) -> None:  # fmt: skip
    run = imported_run(cognito, logs, pool, tmp_path, users=3)
    sandbox.settings.update(daily_email_limit=1)  # Cognito's sender refuses the 2nd email
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run), max_per_day=10)
    client = cli_client()  # 6 attempts per call, as `csvimport resets` runs
    sends: list[str] = []
    client.meta.events.register("before-send.cognito-idp.AdminResetUserPassword",
                                lambda **_: sends.append("sent"))  # fmt: skip
    result = run_wave(run, client, plan, ResetJournal(run), rate=50)
    assert (result.sent, result.not_sent) == (1, 2)
    assert result.stopped_because and "daily email limit" in result.stopped_because
    # One request for the code that went out, one for the refusal: waiting seconds does
    # not lift a daily limit, so botocore's backoff is not spent on it.
    assert len(sends) == 2


def test_a_server_error_leaves_the_user_may_have_been_sent(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    # A 5xx answer does not say whether Cognito sent the code before failing.
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    plan = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    sandbox.faults.update(server_error_every=1, throttle_operations=["AdminResetUserPassword"])
    with pytest.raises(ServiceError):
        run_wave(run, bare_client(sandbox), plan, ResetJournal(run), rate=50)
    again = plan_resets(run, describe(cognito, pool), ResetJournal(run))
    assert [c.username for c in again.maybe_sent] == ["user1"]
    assert [c.username for c in again.to_send] == ["user2"]


def recovery(*names: str) -> dict[str, Any]:
    return {"RecoveryMechanisms": [{"Name": n, "Priority": i} for i, n in enumerate(names, 1)]}


EMAIL, PHONE = Channel.EMAIL, Channel.PHONE


@pytest.mark.parametrize(
    ("settings", "verdicts"),
    [
        ({}, {"mail": EMAIL, "text": Blocked.NO_SMS, "both": Blocked.NO_SMS}),
        ({"SmsConfiguration": SMS_CONFIG}, {"mail": EMAIL, "text": PHONE, "both": PHONE}),
        ({"AccountRecoverySetting": recovery("verified_email", "verified_phone_number")},
         {"mail": EMAIL, "text": Blocked.NO_SMS, "both": EMAIL}),
        ({"AccountRecoverySetting": recovery("verified_email")},
         {"mail": EMAIL, "text": Blocked.NO_CHANNEL, "both": EMAIL}),
        ({"AccountRecoverySetting": recovery("admin_only")},
         {"mail": Blocked.ADMIN_ONLY, "text": Blocked.ADMIN_ONLY, "both": Blocked.ADMIN_ONLY}),
    ],
    ids=["phone-first-without-sms", "phone-first-with-sms", "email-first-without-sms",
         "email-only", "admin-only"],
)  # fmt: skip
def test_the_report_and_a_dry_run_agree_on_who_can_reset_and_why(
    sandbox: Sandbox, cognito: Any, make_pool: Any, tmp_path: Path, settings: dict[str, Any],
    verdicts: dict[str, Channel | Blocked],
) -> None:  # fmt: skip
    pool = make_pool(AutoVerifiedAttributes=["email", "phone_number"], **settings)
    run_dir = build_run(cognito, pool, tmp_path, users=0, extra=CHANNEL_USERS,
                        columns=CHANNEL_COLUMNS, mapping_text=CHANNEL_MAPPING)  # fmt: skip
    env = env_for(sandbox, pool)
    assert csvimport(env, "start", str(run_dir)).returncode == 0
    reported = csvimport(env, "report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {r["username"]: r["password"] for r in results} == {
        user: "must reset" if isinstance(v, Channel) else "cannot reset"
        for user, v in verdicts.items()}  # fmt: skip
    blocked = Counter(v.explanation for v in verdicts.values() if isinstance(v, Blocked))
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    for reason, count in blocked.items():
        assert f'cannot reset: {escape(reason)}</td><td class="n">{count}<' in html

    planned = csvimport(env, "resets", str(run_dir), "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)["plan"]
    channels = Counter(v for v in verdicts.values() if isinstance(v, Channel))
    assert (plan["to_send"], plan["emails"], plan["sms"]) == (
        channels.total(), channels[EMAIL], channels[PHONE])  # fmt: skip
    assert plan["cannot_reset"] == dict(blocked)


# results.jsonl damaged, and what the refusal says after "results.jsonl " (3 users).
DAMAGED_RESULTS = {
    "binary-garbage": (lambda lines: [b"\x89PNG\r\x1a\x00\xff garbage", *lines[1:]],
                       "line 1 is damaged: it is not UTF-8 text"),
    "not-json": (lambda lines: [b"garbage", *lines[1:]], "line 1 is damaged: it is not JSON"),
    "a-list": (lambda lines: [*lines[:2], b"[]"],
               "line 3 is damaged: it holds a JSON array, not a user's result"),
    "an-empty-object": (lambda lines: [b"{}", *lines[1:]],
                        "line 1 is damaged: it lacks source_row, legacy_id, username, outcome"),
    "a-missing-key": (lambda lines: [lines[0], _edit(lines[1], pop="password"), lines[2]],
                      "line 2 is damaged: it lacks password"),
    "a-line-that-is-text": (lambda lines: [_edit(lines[0], line="1"), *lines[1:]],
                            "line 1 is damaged: line must be a whole number, not '1'"),
    "an-unknown-outcome": (lambda lines: [_edit(lines[0], outcome="teleported"), *lines[1:]],
                           "line 1 is damaged: outcome 'teleported' is not one of 'rejected'"),
    "a-user-missing": (lambda lines: lines[:2],
                       "is damaged: it holds 2 users' results, but the run has 3 source users"),
}  # fmt: skip


def _edit(raw: bytes, *, pop: str | None = None, **values: Any) -> bytes:
    data = json.loads(raw)
    data.pop(pop, None)
    return json.dumps({**data, **values}).encode()


def test_damaged_results_are_refused_by_resets_and_notice_naming_the_line_and_the_fix(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=3)
    path = run.path / "results.jsonl"
    intact = path.read_bytes()
    env = env_for(sandbox, pool)
    for case, (damage, said) in DAMAGED_RESULTS.items():
        path.write_bytes(b"\n".join(damage(intact.splitlines())) + b"\n")
        for command in (["resets", str(run.path), "--dry-run"],
                        ["notice", str(run.path), "--product", "A", "--support", "B"]):  # fmt: skip
            refused = csvimport(env, *command)
            assert refused.returncode == 2, (case, command[0], refused.stderr)
            assert f"error: {path} {said}" in refused.stderr, (case, command[0])
            assert f"hint: Run `csvimport report {run.path}` again to rewrite it" in refused.stderr
            assert "Traceback" not in refused.stderr
    path.write_bytes(intact)
    assert csvimport(env, "resets", str(run.path), "--dry-run").returncode == 0


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"line": 99}, "chunk-0001.csv line 99"),
        ({"line": 0}, "chunk-0001.csv line 0"),
        ({"line": -1}, "chunk-0001.csv line -1"),  # not the last user, read from the end
        ({"chunk": "chunk-0009.csv"}, "chunk-0009.csv line 1"),
    ],
)
def test_results_naming_a_line_the_run_does_not_have_are_refused_by_resets(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path,
    where: dict[str, Any], named: str,
) -> None:  # fmt: skip
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    path = run.path / "results.jsonl"
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([_edit(lines[0], **where), lines[1]]) + b"\n")
    refused = csvimport(env_for(sandbox, pool), "resets", str(run.path), "--dry-run")
    assert refused.returncode == 2, refused.stderr
    assert (f"error: {path} is damaged: 'user1' is imported from {named}, "
            "which is no user of this run") in refused.stderr  # fmt: skip


def test_results_are_read_one_at_a_time_and_damage_stops_the_reading_at_its_line(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=3)
    path = run.path / "results.jsonl"
    intact = path.read_bytes()
    assert [r.username for r in iter_results(run, needed_for="a test")] == [
        "user1", "user2", "user3"]  # fmt: skip
    assert read_results(run, needed_for="a test") == list(iter_results(run, needed_for="a test"))
    path.write_bytes(b"\n".join([*intact.splitlines()[:2], b"garbage"]) + b"\n")
    results = iter_results(run, needed_for="a test")
    # The first users come before the damage is reached: nothing is read ahead.
    assert [next(results).username, next(results).username] == ["user1", "user2"]
    with pytest.raises(ConfigError, match="results.jsonl line 3 is damaged: it is not JSON"):
        next(results)


def test_an_only_file_that_is_not_text_is_refused(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=1)
    (tmp_path / "only.txt").write_bytes(b"\xff\xfeu\x00s\x00e\x00r\x001\x00")  # UTF-16
    refused = csvimport(env_for(sandbox, pool), "resets", str(run.path), "--dry-run",
                        "--only", str(tmp_path / "only.txt"))  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert f"error: {tmp_path / 'only.txt'} is not UTF-8 text" in refused.stderr
