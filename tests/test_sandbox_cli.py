"""`csvimport sandbox` as a user runs it: a JSON first line, a usable endpoint, clean Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

KEYS = {"endpoint_url", "region", "user_pool_id", "user_pool_name", "logs_role_arn"}


def env() -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def running_sandbox(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    args = getattr(request, "param", [])
    with subprocess.Popen(
        [sys.executable, "-m", "csvimport", "sandbox", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    ) as child:  # fmt: skip
        assert child.stdout is not None
        first = child.stdout.readline()
        try:
            yield child, json.loads(first)
        finally:
            if child.poll() is None:
                child.kill()


def test_first_stdout_line_is_json_with_the_endpoint_and_pool(running_sandbox: Any) -> None:
    child, info = running_sandbox
    assert set(info) >= KEYS
    assert info["endpoint_url"].startswith("http://127.0.0.1:")
    assert info["user_pool_name"] == "csvimport-demo"
    cognito = boto3.client(
        "cognito-idp", endpoint_url=info["endpoint_url"], region_name=info["region"],
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    header = cognito.get_csv_header(UserPoolId=info["user_pool_id"])["CSVHeader"]
    assert "custom:legacy_id" in header
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=20) == 0
    out, err = child.stdout.read(), child.stderr.read()  # the first line was read already
    assert f"export AWS_ENDPOINT_URL={info['endpoint_url']}" in out
    assert "Traceback" not in err


def test_sigterm_stops_the_sandbox_cleanly(running_sandbox: Any) -> None:
    child, _ = running_sandbox
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=20)
    assert child.returncode == 0


def test_a_missing_pool_spec_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "csvimport", "sandbox", "--pool-spec", str(tmp_path / "nope.json")],
        capture_output=True, text=True, env=env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not valid JSON"), ('{"Name": "x"}', "PoolName"),
     ('{"PoolName": "x", "Bogus": 1}', "Bogus")],
)  # fmt: skip
def test_a_bad_pool_spec_is_explained_and_exits_2(
    tmp_path: Path, content: str, expected: str
) -> None:
    spec = tmp_path / "pool.json"
    spec.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "csvimport", "sandbox", "--pool-spec", str(spec)],
        capture_output=True, text=True, env=env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_sandbox_options_block_in_the_spec_is_a_usage_error(tmp_path: Path) -> None:
    spec = tmp_path / "pool.json"
    spec.write_text('{"PoolName": "x", "x-csvimport": {"client": "not-an-object"}}')
    result = subprocess.run(
        [sys.executable, "-m", "csvimport", "sandbox", "--pool-spec", str(spec)],
        capture_output=True, text=True, env=env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert '"x-csvimport" must be an object' in result.stderr


def test_a_port_already_in_use_is_a_usage_error_naming_the_port() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "csvimport", "sandbox", "--port", str(port)],
            capture_output=True, text=True, env=env(), timeout=60,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert str(port) in result.stderr
    assert result.stdout == ""
