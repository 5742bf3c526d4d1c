"""`csvimport sandbox`: the local Cognito sandbox (moto extended with the import-job API),
run in the foreground until Ctrl-C.
"""

from __future__ import annotations

import json
import shlex
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from csvimport.cli.app import app, command_state
from csvimport.cli.options import RegionOption, TracebackOption
from csvimport.errors import ConfigError
from csvimport.resources import schema_path

SANDBOX_EXTRA_HINT = "pip install 'csvimport[sandbox]' (or make install)"
# The sandbox signs nothing for real: any non-empty credentials work against it.
SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SANDBOX_DEFAULT_REGION = "us-east-1"
POOL_SPEC_HINT = (
    "A pool spec is a JSON object of CreateUserPool's parameters, PoolName at least; "
    "see schemas/sandbox-pool.json."
)


@app.command()
def sandbox(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)
    ] = 0,
    pool_spec: Annotated[
        Path | None,
        typer.Option(
            "--pool-spec",
            metavar="PATH",
            help="JSON spec of the user pool to create; the demo pool "
            "(schemas/sandbox-pool.json) if not given.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    job_seconds: Annotated[
        float, typer.Option(help="How long each import job runs, in seconds.", min=0)
    ] = 5.0,
    log_lag: Annotated[
        float,
        typer.Option(help="Seconds a job's CloudWatch log lines lag behind its end.", min=0),
    ] = 0.0,
    region: RegionOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Run a local Cognito sandbox (moto + csvimport's import-job API) in the foreground.

    The first line on stdout is one JSON object (endpoint_url, region, user_pool_id,
    user_pool_name, logs_role_arn); shell export lines follow. Ctrl-C or SIGTERM stops it.
    """
    try:
        from csvimport.sandbox import Sandbox, SandboxSettings, load_pool_spec
    except ImportError as exc:
        missing = f" ({exc.name} is missing)" if exc.name else ""
        raise ConfigError(
            f"The sandbox needs the optional dependencies{missing}.", hint=SANDBOX_EXTRA_HINT
        ) from exc

    # Load the spec before starting the server, so a bad spec fails fast.
    spec_path = pool_spec if pool_spec is not None else schema_path("sandbox-pool.json")
    try:
        spec = load_pool_spec(spec_path)
    except ValueError as exc:  # load_pool_spec's way of saying the file is unusable
        raise ConfigError(str(exc), hint=POOL_SPEC_HINT) from exc
    settings = SandboxSettings(job_seconds=job_seconds, log_lag_seconds=log_lag)
    state = command_state(ctx, region=region, traceback=traceback)
    sandbox_region = state.aws.region or SANDBOX_DEFAULT_REGION
    # Both signals stop the sandbox the same way. SIGINT is installed explicitly because a
    # shell starts background jobs with SIGINT ignored, and `kill -INT` must still work.
    previous = {
        signum: signal.signal(signum, _raise_keyboard_interrupt)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        box = Sandbox(host=host, port=port, region=sandbox_region, settings=settings)
        try:
            box.start()
        except OSError as exc:  # the address is taken, or not ours to listen on
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                hint="Pick another --host or --port (0 picks a free port).",
            ) from exc
        try:
            info = box.create_pool(spec).to_json()
            print(json.dumps(info), flush=True)
            print(_sandbox_exports(info), flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
        finally:
            box.stop()
    except KeyboardInterrupt:
        # The normal way to stop the sandbox: not an error.
        typer.echo("sandbox stopped", err=True)
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(signum, handler)


def _sandbox_exports(info: dict[str, Any]) -> str:
    """Return shell lines that point boto3, the AWS CLI and csvimport at the sandbox."""
    variables = {
        "AWS_ENDPOINT_URL": info["endpoint_url"],
        "AWS_REGION": info["region"],
        # botocore reads only AWS_DEFAULT_REGION; csvimport and other SDKs read AWS_REGION.
        "AWS_DEFAULT_REGION": info["region"],
        **SANDBOX_CREDENTIALS,
        "CSVIMPORT_POOL_ID": info["user_pool_id"],
        "CSVIMPORT_LOGS_ROLE_ARN": info["logs_role_arn"],
    }
    return "\n".join(
        f"export {name}={shlex.quote(str(value))}" for name, value in variables.items()
    )


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
