"""`csvimport notice`: the users' message and the app team's checklist, from templates."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from csvimport.errors import ConfigError
from csvimport.passwords.notice import NoticeFields, render_notices
from csvimport.rundir import RunDir
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
