"""`csvimport` as a user runs it: a real subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from csvimport import __version__
from csvimport.cli import app, main
from csvimport.sandbox import PoolInfo

from .helpers import CLOSED_ENDPOINT, cli_env, csvimport

GROUP: Any = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)


def run_cli(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    return csvimport(cli_env(**env), *args)


@pytest.mark.parametrize("process", [False, True], ids=["in-process", "python -m csvimport"])
def test_version_prints_the_version_on_stdout_and_exits_0(process: bool) -> None:
    # once as `python -m csvimport` itself: the module entry point the other tests skip
    result = csvimport(cli_env(), "--version", process=process)
    assert result.returncode == 0
    assert result.stdout == f"csvimport {__version__}\n"
    assert result.stderr == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_command_and_exits_0(command: str) -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert command in result.stdout


def test_no_arguments_shows_the_help_and_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert all(command in result.stdout + result.stderr for command in COMMANDS)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["bogus"], "No such command 'bogus'"),
        (["header"], "Missing option '--pool-id'"),
        (["header", "--pool-id", "x", "--bogus"], "No such option: --bogus"),
        (["sandbox", "--port", "not-a-number"], "Invalid value for '--port'"),
    ],
)
def test_a_usage_error_exits_2_with_a_message_and_a_hint(args: list[str], expected: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"error: {expected}" in result.stderr
    assert "hint: Run 'csvimport" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["header", "--pool-id", "x", "--endpoint-url", CLOSED_ENDPOINT],
        ["--endpoint-url", CLOSED_ENDPOINT, "header", "--pool-id", "x"],
    ],
    ids=["option-after-command", "option-before-command"],
)
def test_an_unreachable_endpoint_exits_3_naming_it_with_a_hint(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 3
    assert result.stdout == ""
    assert f"error: Cannot reach {CLOSED_ENDPOINT}/" in result.stderr
    assert "hint: Check --endpoint-url" in result.stderr
    assert "Traceback" not in result.stderr


def test_endpoint_and_pool_id_fall_back_to_the_environment() -> None:
    result = run_cli("header", AWS_ENDPOINT_URL=CLOSED_ENDPOINT, CSVIMPORT_POOL_ID="x")
    assert result.returncode == 3
    assert f"Cannot reach {CLOSED_ENDPOINT}/" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--traceback", "header", "--pool-id", "x", "--endpoint-url", CLOSED_ENDPOINT],
        ["header", "--pool-id", "x", "--endpoint-url", CLOSED_ENDPOINT, "--traceback"],
    ],
    ids=["global", "per-command"],
)
def test_traceback_flag_shows_the_original_exception_and_keeps_the_exit_status(
    args: list[str],
) -> None:
    result = run_cli(*args)
    assert result.returncode == 3, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "botocore.exceptions.EndpointConnectionError" in result.stderr
    assert f"error: Cannot reach {CLOSED_ENDPOINT}/" in result.stderr
    assert "hint: Check --endpoint-url" in result.stderr


def test_traceback_flag_on_a_refusal_shows_the_traceback_and_exits_2(tmp_path: Path) -> None:
    result = run_cli("--traceback", "status", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "csvimport.errors.ConfigError" in result.stderr
    assert f"error: {tmp_path} is not a finished csvimport build" in result.stderr


def test_no_region_exits_2_with_a_hint() -> None:
    result = run_cli("header", "--pool-id", "x", "--endpoint-url", CLOSED_ENDPOINT, AWS_REGION=None)
    assert result.returncode == 2
    assert "error: No AWS region set." in result.stderr
    assert "hint: Pass --region or set AWS_REGION" in result.stderr


def test_no_credentials_exits_2_with_a_hint() -> None:
    result = run_cli(
        "header",
        "--pool-id",
        "x",
        "--endpoint-url",
        CLOSED_ENDPOINT,
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
    )
    assert result.returncode == 2
    assert "error: No AWS credentials found." in result.stderr
    assert "AWS_PROFILE" in result.stderr


def test_an_unknown_profile_exits_2_naming_it() -> None:
    result = run_cli("--profile", "no-such-profile", "header", "--pool-id", "x")
    assert result.returncode == 2
    assert "error: AWS profile 'no-such-profile' not found." in result.stderr
    assert "hint:" in result.stderr


def test_header_prints_the_pools_columns_comma_separated(
    make_pool: Callable[..., PoolInfo], cognito: Any
) -> None:
    pool = make_pool()
    result = run_cli("header", "--pool-id", pool.user_pool_id, "--endpoint-url", pool.endpoint_url)
    assert result.returncode == 0, result.stderr
    expected = cognito.get_csv_header(UserPoolId=pool.user_pool_id)["CSVHeader"]
    assert result.stdout == ",".join(expected) + "\n"
    assert "custom:legacy_id" in result.stdout


def test_header_of_a_missing_pool_exits_3_with_a_hint(sandbox: Any) -> None:
    result = run_cli(
        "header", "--pool-id", "us-east-1_missing", "--endpoint-url", sandbox.endpoint_url
    )
    assert result.returncode == 3
    assert "GetCSVHeader failed: ResourceNotFoundException" in result.stderr
    assert "hint: Check --pool-id and --region" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_during_a_call_prints_interrupted_and_exits_130(signum: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        with subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csvimport",
                "header",
                "--pool-id",
                "x",
                "--endpoint-url",
                endpoint,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        ) as child:
            connection, _ = server.accept()  # the call now waits for an answer that never comes
            with connection:
                child.send_signal(signum)
                out, err = child.communicate(timeout=30)
    assert child.returncode == 130
    assert out == ""
    assert err.splitlines()[-1].startswith("interrupted")
    assert "Traceback" not in err


def test_an_unexpected_error_is_reported_as_a_bug_with_exit_70(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @app.command("explode", help="Raise an unexpected error (test only).")
    def explode() -> None:
        raise RuntimeError("boom")

    try:
        with pytest.raises(SystemExit) as exited:
            main(["explode"])
    finally:
        app.registered_commands = [c for c in app.registered_commands if c.name != "explode"]
    assert exited.value.code == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err
    assert "This is a bug in csvimport" in err
