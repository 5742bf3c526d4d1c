"""Fixtures: one in-process csvimport sandbox (a real HTTP server on a free port) per
test session, a fresh user pool per test, and real boto3 clients pointed at it."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from csvimport.aws import AwsOptions
from csvimport.sandbox import PoolInfo, Sandbox, SandboxSettings
from csvimport.sandbox.responses import recovery_ledger

from .helpers import Importer, pool_spec

FAST = {"job_seconds": 0.3, "pending_seconds": 0.05, "log_lag_seconds": 0.0, "tick_seconds": 0.02}


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored in the
    # programs they start: a `python -m csvimport` the tests Ctrl-C would never see it.
    # Handled (not ignored) here, it is reset to the default in every child, as in a shell.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(settings=SandboxSettings(**FAST)) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with default timings, no faults, a clock at zero and no live job."""
    yield
    if "sandbox" not in request.fixturenames:
        return
    sb: Sandbox = request.getfixturevalue("sandbox")
    sb.faults.clear()
    sb.settings.reset(**FAST)
    sb.clock.offset = 0.0
    recovery_ledger(sb.store).clear()  # reset-code messages, daily email counts, RPS windows
    with sb.store.lock:
        for job in sb.store.jobs.values():
            if job.status in ("Pending", "InProgress", "Stopping"):
                job.status, job.lines = "Stopped", []


@pytest.fixture
def cognito(sandbox: Sandbox) -> Any:
    return sandbox.client("cognito-idp")


@pytest.fixture
def logs(sandbox: Sandbox) -> Any:
    return sandbox.client("logs")


@pytest.fixture
def cli_client(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Cognito clients as the command line builds them (``AwsOptions``): botocore's
    standard retries, ``attempts`` per call (6 unless told)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    def make(attempts: int = 6) -> Any:
        options = AwsOptions(sandbox.region, endpoint_url=sandbox.endpoint_url,
                             retries=attempts - 1)  # fmt: skip
        return options.client("cognito-idp")

    return make


@pytest.fixture
def make_pool(sandbox: Sandbox) -> Callable[..., PoolInfo]:
    return lambda **overrides: sandbox.create_pool(pool_spec(**overrides))


@pytest.fixture
def pool(make_pool: Callable[..., PoolInfo]) -> PoolInfo:
    return make_pool()


@pytest.fixture
def importer(cognito: Any, logs: Any, pool: PoolInfo) -> Importer:
    return Importer(cognito, logs, pool)


@pytest.fixture
def importer_for(cognito: Any, logs: Any) -> Callable[[PoolInfo], Importer]:
    return lambda info: Importer(cognito, logs, info)
