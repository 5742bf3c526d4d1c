"""`csvimport notice`: the users' message and the app team's checklist, from templates."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from csvimport.errors import ConfigError
from csvimport.outcomes import Outcome, Password
from csvimport.passwords.notice import NoticeFields, render_notices
from csvimport.report.results import write_results
from csvimport.rundir import RunDir, iter_results
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import build_run, cli_env, csvimport, env_for, imported_run


def test_notices_carry_the_fields_counts_and_sign_in_advice(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=4)
    notices = render_notices(run, NoticeFields(
        product="Acme <Books>", support="help@acme.example", sign_in_url="https://acme.example",
        migrated_on="1 December 2026", reset_by="31 December 2026", code_sent=True,
    ))  # fmt: skip
    text, html, checklist = (notices[n] for n in ("user-message.txt", "user-message.html",
                                                   "app-team-checklist.md"))  # fmt: skip
    assert "Subject: Action needed: set a new password for Acme <Books>" in text
    assert "What to do (by 31 December 2026):" in text and "help@acme.example" in text
    assert "We have already sent you a code" in text
    assert "Acme &lt;Books&gt;" in html and "<Books>" not in html  # escaped in HTML only
    assert "- 4 users are in the new user pool." in checklist
    assert "- 0 came with their password hash" in checklist
    assert "- 4 must reset their password" in checklist
    assert "PasswordResetRequiredException" in checklist and "NotAuthorizedException" in checklist


def test_notices_need_a_product_and_a_support_contact(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=1)
    with pytest.raises(ConfigError) as caught:
        render_notices(run, NoticeFields(product="Acme"))
    assert caught.value.message == "the notices need: support"
    assert caught.value.hint and "--support" in caught.value.hint


def test_notice_command_reads_a_config_file_and_options_override_it(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    config = tmp_path / "notice.toml"
    config.write_text('product = "Acme"\nsupport = "help@acme.example"\n')
    result = csvimport(env_for(sandbox, pool), "notice", str(run.path), "--config",
                       str(config), "--product", "Acme Books")  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = [Path(p) for p in result.stdout.split()]
    assert [p.name for p in written] == ["user-message.txt", "user-message.html",
                                         "app-team-checklist.md"]  # fmt: skip
    assert "set a new password for Acme Books" in written[0].read_text()
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [0o600] * 3
    assert [p.name for p in written[0].parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_config_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "notice.toml"
    config.write_text('product = "Acme"\nsuport = "typo"\n')
    with pytest.raises(ConfigError) as caught:
        NoticeFields.load(config)
    assert "unknown notice fields ['suport']" in caught.value.message


def test_notices_before_the_report_say_to_run_it(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = RunDir.open(build_run(cognito, pool, tmp_path, users=1))
    with pytest.raises(ConfigError) as caught:
        render_notices(run, NoticeFields(product="A", support="B"))
    assert caught.value.hint and "csvimport report" in caught.value.hint


@pytest.mark.parametrize(
    ("content", "said"),
    [(b'product = 5\nsupport = "help@acme.example"\n', "product must be text in quotes, not 5"),
     (b'product = "Acme"\ncode_sent = "yes"\n', "code_sent must be true or false, not 'yes'"),
     (b"\xff\xfep\x00r\x00o\x00", "is not UTF-8 text")],
    ids=["a-number-for-text", "text-for-a-flag", "utf-16"],
)  # fmt: skip
def test_a_config_with_values_of_the_wrong_kind_is_refused(
    tmp_path: Path, content: bytes, said: str
) -> None:
    config = tmp_path / "notice.toml"
    config.write_bytes(content)
    refused = csvimport(cli_env(), "notice", str(tmp_path), "--config", str(config))
    assert refused.returncode == 2, refused.stderr
    assert f"error: {config}" in refused.stderr and said in refused.stderr
    assert "hint: Give --product and --support" in refused.stderr


# --- runs that leave users to the migration trigger ----------------------------------------
def _with_deferred(run: RunDir, deferred: int) -> RunDir:
    """The run's results with its last ``deferred`` users as the migration trigger's
    (Outcome.DEFERRED, as the report writes them for `build --password-fallback migrate`):
    the same number of source users, so results.jsonl still accounts for every one."""
    results = list(iter_results(run, needed_for="the test"))
    for n in range(len(results) - deferred, len(results)):
        results[n] = replace(results[n], outcome=Outcome.DEFERRED, password=Password.MIGRATE,
                             job_id=None, chunk=None, line=None,
                             reason="md5_crypt: migrates at first sign-in")  # fmt: skip
    write_results(run.path, results)
    return RunDir.open(run.path)


FIELDS = NoticeFields(product="Acme", support="help@acme.example",
                      sign_in_url="https://acme.example", migration_ends="31 March 2027")  # fmt: skip
RESET_WORDS = ("reset", "new password", "forgot", "code", "choose")


def test_the_checklist_asks_for_user_password_auth_when_the_run_defers_users(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = _with_deferred(imported_run(cognito, logs, pool, tmp_path, users=4), deferred=3)
    notices = render_notices(run, FIELDS)
    checklist = notices["app-team-checklist.md"]
    assert "- 1 users are in the new user pool." in checklist
    assert "- 3 were left out of the import and move to the new user pool at their first" \
        in checklist  # fmt: skip
    assert "they sign in as before with their old password, with no reset" in checklist
    assert ("## Until the migration window ends (31 March 2027): 3 users migrate at first "
            "sign-in") in checklist  # fmt: skip
    assert "Sign users in with `USER_PASSWORD_AUTH`" in checklist
    assert "not SRP (`USER_SRP_AUTH`" in checklist and "`ALLOW_USER_PASSWORD_AUTH`" in checklist
    assert "Handle `UserNotFoundException` and `NotAuthorizedException` from a sign-in as " \
        '"wrong username or password"' in checklist  # fmt: skip
    assert "Keep the forgot-password flow" in checklist and "verified email or phone" in checklist
    # the one user who must reset still gets the reset message; the deferred get their own
    assert sorted(notices) == ["app-team-checklist.md", "deferred-user-message.html",
                               "deferred-user-message.txt", "user-message.html",
                               "user-message.txt"]  # fmt: skip


def test_the_checklist_of_a_run_without_deferred_users_says_nothing_of_the_trigger(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = imported_run(cognito, logs, pool, tmp_path, users=2)
    notices = render_notices(run, FIELDS)
    checklist = notices["app-team-checklist.md"]
    assert "USER_PASSWORD_AUTH" not in checklist and "migration window" not in checklist
    assert "left out of the import" not in checklist
    assert sorted(notices) == ["app-team-checklist.md", "user-message.html", "user-message.txt"]


def test_deferred_users_are_told_to_sign_in_as_before_and_never_to_reset(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = _with_deferred(imported_run(cognito, logs, pool, tmp_path, users=2), deferred=2)
    notices = render_notices(run, FIELDS)
    # every user is deferred: nobody must reset, so no reset message is written at all
    assert sorted(notices) == ["app-team-checklist.md", "deferred-user-message.html",
                               "deferred-user-message.txt"]  # fmt: skip
    for name in ("deferred-user-message.txt", "deferred-user-message.html"):
        text = notices[name]
        assert "the same password as before" in text and "nothing else to do" in text
        assert "https://acme.example" in text and "help@acme.example" in text
        assert "31 March 2027" in text
        assert not [w for w in RESET_WORDS if w in text.lower()], name
    assert "- 0 must reset their password" in notices["app-team-checklist.md"]


def test_notice_command_takes_the_migration_end_and_writes_the_deferred_message(
    sandbox: Sandbox, cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = _with_deferred(imported_run(cognito, logs, pool, tmp_path, users=3), deferred=1)
    result = csvimport(env_for(sandbox, pool), "notice", str(run.path), "--product", "Acme",
                       "--support", "help@acme.example", "--migration-ends", "1 May 2027")  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = {Path(p).name: Path(p) for p in result.stdout.split()}
    assert "deferred-user-message.txt" in written and "user-message.txt" in written
    assert [stat.S_IMODE(p.stat().st_mode) for p in written.values()] == [0o600] * 5
    assert (
        "Please sign in once before 1 May 2027." in written["deferred-user-message.txt"].read_text()
    )
    assert "(1 May 2027): 1 users migrate" in written["app-team-checklist.md"].read_text()
