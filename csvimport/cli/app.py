"""The Typer app, the options every command also takes (AWS, --traceback) and the state
they decide, shared with each command through the Typer context.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from csvimport import __version__
from csvimport.aws import AwsOptions
from csvimport.cli.options import EndpointUrlOption, ProfileOption, RegionOption, TracebackOption

PROG_NAME = "csvimport"
# The order `csvimport --help` lists the commands in: the migration's, not the modules'
# (each module of this package registers its commands when imported).
COMMAND_ORDER = (
    "header", "map", "assess", "build", "start", "status", "stop", "report", "resets",
    "undo", "followups", "migration-check", "verify", "notice", "migration-lookup",
    "migration-package", "sandbox",
)  # fmt: skip


class _MigrationOrderGroup(TyperGroup):
    """Lists the commands in COMMAND_ORDER; one missing from it comes last."""

    def list_commands(self, ctx: Any) -> list[str]:  # Typer's own click.Context
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    name=PROG_NAME,
    cls=_MigrationOrderGroup,
    help=(
        "Migrate legacy users into Amazon Cognito user pools with CSV user import jobs. "
        "Data goes to stdout, messages to stderr; exit status 0 all good, 1 some users "
        "failed, 2 usage or config error, 3 AWS error, 130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Plain Python tracebacks with --traceback, complete and easy to paste in a bug report.
    pretty_exceptions_enable=False,
)


@dataclass
class CliState:
    """What the global options decided, shared with every command via the Typer context."""

    aws: AwsOptions = field(default_factory=AwsOptions)
    traceback: bool = False


def _state(ctx: typer.Context) -> CliState:
    state = ctx.ensure_object(CliState)
    assert isinstance(state, CliState)
    return state


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    state = _state(ctx)
    state.aws = AwsOptions.resolve(region=region, profile=profile, endpoint_url=endpoint_url)
    state.traceback = traceback


def command_state(
    ctx: typer.Context,
    *,
    traceback: bool,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
) -> CliState:
    """Apply a command's own AWS options and --traceback over the global ones."""
    state = _state(ctx)
    state.aws = replace(
        state.aws,
        region=region or state.aws.region,
        profile=profile or state.aws.profile,
        endpoint_url=endpoint_url or state.aws.endpoint_url,
    )
    state.traceback = state.traceback or traceback
    return state
