"""Options and arguments several commands share, declared once so their help reads the
same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The AWS options and --traceback are accepted before the command (global) and after it
# (per command, overriding the global value), so `csvimport header --pool-id X
# --endpoint-url URL` works as people type it.
RegionOption = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="AWS region; falls back to $AWS_REGION, $AWS_DEFAULT_REGION, the profile's.",
    ),
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="AWS profile; falls back to $AWS_PROFILE.")
]
EndpointUrlOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send AWS calls to this URL, e.g. a csvimport sandbox; falls back to "
        "$AWS_ENDPOINT_URL.",
    ),
]
TracebackOption = Annotated[
    bool,
    typer.Option(
        "--traceback",
        help="On error, show the Python traceback before the message (same exit status).",
    ),
]


SourceArgument = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE",
        help="Legacy users: a .csv/.jsonl/.json file, or an SQLAlchemy URL "
        "(sqlite:///legacy.db, mysql+pymysql://..., postgresql+psycopg://...).",
    ),
]
TableOption = Annotated[str | None, typer.Option("--table", help="Database table to read.")]
QueryOption = Annotated[str | None, typer.Option("--query", help="SQL query to read.")]
DelimiterOption = Annotated[
    str | None, typer.Option("--delimiter", help="CSV delimiter; sniffed when not given.")
]
EncodingOption = Annotated[str, typer.Option("--encoding", help="Encoding of a source file.")]
PoolIdOption = Annotated[
    str | None,
    typer.Option("--pool-id", envvar="CSVIMPORT_POOL_ID", help="Target user pool id."),
]
PoolSnapshotOption = Annotated[
    Path | None,
    typer.Option(
        "--pool-spec",
        metavar="POOL_JSON",
        help="Build offline from a saved pool snapshot (a run directory's pool.json) "
        "instead of reading the live pool.",
        dir_okay=False,
    ),
]


ListUsersRateOption = Annotated[
    float,
    typer.Option(
        "--rate",
        min=0.1,
        max=25,
        help="ListUsers calls per second (the account's 30/s UserList quota is shared "
        "with the apps using the pool).",
    ),
]
RunDirArgument = Annotated[
    Path,
    typer.Argument(metavar="RUN_DIR", help="A run directory made by `csvimport build`."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the run's state as JSON on stdout.")
]
