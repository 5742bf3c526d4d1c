"""Commands before any import job: `header`, `map`, `assess` and `build`, and what build
prints about the run it wrote.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from csvimport.assess.model import DEFAULT_POOL_NAME
from csvimport.build.choices import DuplicatePolicy, PasswordFallback
from csvimport.build.reasons import REASONS
from csvimport.build.sources.base import SourceError, SourceSpec
from csvimport.cli.app import CliState, app, command_state
from csvimport.cli.display import followups_summary, rows_read
from csvimport.cli.options import (
    DelimiterOption,
    EncodingOption,
    EndpointUrlOption,
    PoolIdOption,
    PoolSnapshotOption,
    ProfileOption,
    QueryOption,
    RegionOption,
    SourceArgument,
    TableOption,
    TracebackOption,
)
from csvimport.errors import ConfigError, ExitStatus, RefusedError
from csvimport.files import replaced_private
from csvimport.legacyhash import TRIGGER_SECONDS, at_risk
from csvimport.pool import PoolSnapshot, existing_usernames, get_csv_header, read_pool
from csvimport.rundir import DEFERRED, EXISTING, FOLLOWUPS, PASSWORDS, REJECTS

# What the commands run (the build, the assessment: pandera, SQLAlchemy, the mapping) is
# loaded when a command runs, not when the command line starts: every other command
# (status, report, resets...) would wait for it and hold it in memory.
if TYPE_CHECKING:
    from csvimport.build.builder import BuildResult


class PasswordHashes(StrEnum):
    """--password-hashes: whether build imports the mapped password hashes."""

    ON = "on"
    OFF = "off"


@app.command()
def header(
    ctx: typer.Context,
    pool_id: Annotated[
        str,
        typer.Option(
            "--pool-id", envvar="CSVIMPORT_POOL_ID", help="User pool id, e.g. us-east-1_AbC123."
        ),
    ],
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Print the CSV header Cognito expects for a user pool (GetCSVHeader)."""
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    client = state.aws.client("cognito-idp")
    typer.echo(",".join(get_csv_header(client, pool_id)))


def _snapshot(state: CliState, pool_id: str | None, pool_spec: Path | None) -> PoolSnapshot:
    if pool_spec is not None:
        return PoolSnapshot.load(pool_spec)
    if not pool_id:
        raise ConfigError(
            "no target pool: pass --pool-id (or set CSVIMPORT_POOL_ID)",
            hint="Or build offline with --pool-spec pool.json from an earlier run directory.",
        )
    return read_pool(state.aws.client("cognito-idp"), pool_id)


def source_spec(
    source: str, table: str | None, query: str | None, delimiter: str | None, encoding: str
) -> SourceSpec:
    return SourceSpec(
        location=source, table=table, query=query, delimiter=delimiter, encoding=encoding
    )


@app.command("map")
def map_command(
    ctx: typer.Context,
    source: SourceArgument,
    pool_id: PoolIdOption = None,
    pool_spec: PoolSnapshotOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the mapping here instead of stdout.", dir_okay=False),
    ] = None,
    table: TableOption = None,
    query: QueryOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Write a starter mapping (TOML) matching the source's columns to the pool's attributes."""
    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    snapshot = _snapshot(state, pool_id, pool_spec)
    spec = source_spec(source, table, query, delimiter, encoding)
    from csvimport.build.mapping.suggest import (
        MAP_SAMPLE_ROWS,
        columns_with_line_breaks,
        suggest_mapping,
    )
    from csvimport.build.sources.opener import open_source

    opened = open_source(replace(spec, chunk_rows=MAP_SAMPLE_ROWS))
    try:
        multiline = columns_with_line_breaks(opened.chunks())
    except SourceError as exc:  # still write the mapping: `build` refuses the source alike
        typer.echo(f"note: no values sampled, so no fold_line_breaks proposed: {exc}", err=True)
        multiline = []
    text = suggest_mapping(opened.columns(), list(snapshot.header), source_name=opened.describe(),
                           multiline=multiline)  # fmt: skip
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists():
        raise RefusedError(
            f"{out} exists", hint="Pick another --out: csvimport never overwrites a mapping."
        )
    with replaced_private(out) as f:
        f.write(text)
    typer.echo(f"wrote {out}: review every line before `csvimport build`", err=True)


@app.command()
def assess(
    ctx: typer.Context,
    source: SourceArgument,
    out: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="The assessment folder (created if missing)."),
    ] = Path("assessment"),
    table: TableOption = None,
    query: QueryOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    pool_name: Annotated[
        str, typer.Option("--pool-name", help="The proposed pool's name.")
    ] = DEFAULT_POOL_NAME,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            dir_okay=False,
            help="With --pool-id or --pool-spec: predict what `build` would write, "
            "reject and drop (no run is kept).",
        ),  # fmt: skip
    ] = None,
    pool_id: PoolIdOption = None,
    pool_spec: PoolSnapshotOption = None,
    duplicates: Annotated[
        DuplicatePolicy,
        typer.Option("--duplicates", help="The build's duplicates policy, for the prediction."),
    ] = DuplicatePolicy.KEEP_FIRST,
    password_fallback: Annotated[
        PasswordFallback | None,
        typer.Option(
            "--password-fallback",
            help="The build's --password-fallback, for the prediction (default: "
            "what the proposed strategy asks for).",
        ),  # fmt: skip
    ] = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Profile the legacy users (columns, duplicates, password hashes) and propose the pool:
    OUT/assessment.html, assessment.json, pool-spec.json, pool.template.json, mapping.toml
    and proposal.json."""
    from csvimport.assess.page import write_assessment
    from csvimport.assess.predict import predict
    from csvimport.assess.profile import assess_source
    from csvimport.assess.propose import propose, write_proposal

    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    spec = source_spec(source, table, query, delimiter, encoding)
    # A pool alone (CSVIMPORT_POOL_ID is often set) predicts nothing and is not an error.
    if mapping is not None and pool_id is None and pool_spec is None:
        raise ConfigError(
            "A prediction needs both a mapping and a pool.",
            hint="Give --mapping with --pool-id (or --pool-spec), or neither.",
        )
    if mapping is not None and not mapping.is_file():
        raise ConfigError(f"{mapping}: no such mapping file", hint="Check --mapping's path.")
    snapshot = _snapshot(state, pool_id, pool_spec) if mapping is not None else None
    with rows_read("assess") as advance:
        found = assess_source(spec, progress=advance)
    proposal = propose(found, pool_name=pool_name)
    if mapping is not None and snapshot is not None:
        fallback = password_fallback or proposal.password_fallback
        found.predicted = predict(spec, mapping, snapshot, duplicates=duplicates,
                                  password_fallback=fallback)  # fmt: skip
        p = found.predicted
        typer.echo(f"predicted build ({mapping}): {p['written']:,} written, "
                   f"{p['rejected_total']:,} rejected, {p['duplicates']:,} duplicates, "
                   f"{p['deferred']:,} deferred", err=True)  # fmt: skip
    paths = write_assessment(found, out, proposal=proposal.to_json())
    paths += write_proposal(proposal, out)
    census = found.passwords
    typer.echo(
        f"assessed {found.rows:,} users in {len(found.columns)} columns; passwords: "
        f"{census.importable + census.convertible:,} importable, "
        f"{census.at_first_sign_in:,} at first sign-in, {census.unknown + census.empty:,} "
        "must reset",
        err=True,
    )
    typer.echo(f"strategy: {proposal.strategy.value} (build --password-fallback "
               f"{proposal.password_fallback.value})", err=True)  # fmt: skip
    typer.echo(f"sign-in: {json.dumps(proposal.choice('sign_in').value)}; case-sensitive "
               f"usernames: {str(proposal.case_sensitive).lower()}", err=True)  # fmt: skip
    for path in paths:
        typer.echo(f"wrote {path}", err=True)
    typer.echo(
        "Review the proposal before creating the pool: required attributes, sign-in and case "
        "sensitivity can never change once it exists (assessment.html says why each choice).",
        err=True,
    )


@app.command()
def build(
    ctx: typer.Context,
    source: SourceArgument,
    mapping: Annotated[
        Path,
        typer.Option("--mapping", help="The mapping file (see `csvimport map`).", dir_okay=False),
    ],
    out: Annotated[Path, typer.Option("--out", help="The run directory to create.")],
    pool_id: PoolIdOption = None,
    pool_spec: PoolSnapshotOption = None,
    table: TableOption = None,
    query: QueryOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    duplicates: Annotated[
        DuplicatePolicy,
        typer.Option(
            "--duplicates",
            help="Which of several users with the same username (or unique email/phone) "
            "goes: keep-first, keep-latest ([legacy].updated) or reject-all.",
        ),
    ] = DuplicatePolicy.KEEP_FIRST,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Users per import file.", min=1, max=500_000)
    ] = 500_000,
    max_bytes: Annotated[
        int,
        typer.Option("--max-bytes", help="Bytes per import file.", min=1024, max=100 * 1024**2),
    ] = 100 * 1024**2,
    check_existing: Annotated[
        bool,
        typer.Option(
            "--check-existing",
            help="List the pool's users (ListUsers, paced) and report the users Cognito "
            "would skip because they already exist (existing.csv).",
        ),
    ] = False,
    password_hashes: Annotated[
        PasswordHashes,
        typer.Option(
            "--password-hashes",
            help="on: import the mapping's password_hash where Cognito can take it (one "
            "algorithm per import file); off: every user must reset the password.",
        ),
    ] = PasswordHashes.ON,
    password_fallback: Annotated[
        PasswordFallback,
        typer.Option(
            "--password-fallback",
            help="Users whose password hash Cognito cannot import: reset imports them "
            "without it (they must reset); migrate leaves out those whose hash csvimport "
            "can verify (deferred.csv), for the pool's user migration trigger to create at "
            "their first sign-in with their old password.",
        ),
    ] = PasswordFallback.RESET,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    traceback: TracebackOption = False,
) -> None:
    """Turn legacy users into validated Cognito import files in a new run directory."""
    from csvimport.build.builder import BuildOptions
    from csvimport.build.builder import build as run_build

    state = command_state(
        ctx, region=region, profile=profile, endpoint_url=endpoint_url, traceback=traceback
    )
    snapshot = _snapshot(state, pool_id, pool_spec)
    existing = None
    if check_existing:
        existing = frozenset(
            existing_usernames(
                state.aws.client("cognito-idp"),
                pool_id or snapshot.user_pool_id,
                case_sensitive=snapshot.case_sensitive,
            )
        )
    options = BuildOptions(
        source=source_spec(source, table, query, delimiter, encoding),
        mapping=mapping,
        out=out,
        duplicates=duplicates,
        max_rows=max_rows,
        max_bytes=max_bytes,
        existing=existing,
        password_hashes=password_hashes is PasswordHashes.ON,
        password_fallback=password_fallback,
    )
    with rows_read("build") as advance:
        result = run_build(options, snapshot, progress=advance)
    _build_summary(result)
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2))
    if result.rejected or result.duplicates:
        raise typer.Exit(int(ExitStatus.USERS_FAILED))


def _build_summary(result: BuildResult) -> None:
    def echo(text: str = "") -> None:
        typer.echo(text, err=True)

    for folder in result.removed_unfinished:
        echo(f"Removed {folder}: left by a build of {result.run_dir} that did not finish "
             "(killed)")  # fmt: skip
    echo(f"Built {result.run_dir}")
    deferred = "" if result.deferred_schemes is None else f" + {result.deferred:,} deferred"
    echo(
        f"  {result.source_rows:,} source rows = {result.written:,} written "
        f"+ {result.rejected:,} rejected + {result.duplicates:,} duplicates{deferred}"
    )
    for chunk in result.chunks:
        hashes = f", {chunk.password_algorithm} hashes" if chunk.password_algorithm else ""
        echo(f"  {chunk.file}: {chunk.rows:,} users, {chunk.bytes:,} bytes{hashes}")
    if result.passwords is not None:
        counts = ", ".join(f"{n:,} {status}" for status, n in sorted(result.passwords.items()))
        echo(f"  Password hashes of the written users: {counts} "
             f"(see {result.run_dir / PASSWORDS}).")  # fmt: skip
    if result.deferred_schemes is not None and result.reset_why is not None:
        _sign_in_summary(result, echo)
    if result.folded is not None:
        counts = ", ".join(f"{n:,} in {attribute}" for attribute, n in result.folded.items())
        echo(f"  Values with line breaks folded (fold_line_breaks): {counts}.")
    if result.followups is not None:
        followups_summary(result.followups, result.run_dir / FOLLOWUPS, echo)
    if result.existing:
        echo(
            f"  Already in the pool, so Cognito will skip them: {result.existing:,} of the "
            f"written users (listed in {result.run_dir / EXISTING})."
        )
    if result.reasons:
        echo(f"  Why rows were refused (see {result.run_dir / REJECTS}):")
        for rule, count in result.reasons.most_common(5):
            echo(f"    {count:>8,}  {REASONS.get(rule, rule)}")
    if result.garbled:
        echo("  Rows the source file itself garbles (fix them there; rejects.csv has all):")
        for text in result.garbled:
            echo(f"    {text}")


def _sign_in_summary(result: BuildResult, echo: Callable[[str], None]) -> None:
    """How the users of a --password-fallback migrate build will sign in, and why."""
    assert result.deferred_schemes is not None and result.reset_why is not None

    def why(counts: Counter[str]) -> str:
        return f" ({', '.join(f'{reason}: {n:,}' for reason, n in counts.most_common())})"

    echo("  How users will sign in:")
    echo(f"    {result.imported_hash:>8,}  with their imported password hash")
    echo(f"    {result.deferred:>8,}  migrate at first sign-in, with their old password"
         + (why(result.deferred_schemes) if result.deferred else ""))  # fmt: skip
    echo(f"    {result.reset_why.total():>8,}  must reset their password"
         + (why(result.reset_why) if result.reset_why else ""))  # fmt: skip
    if result.deferred:
        echo(f"  Deferred users are left out of the import files (listed in "
             f"{result.run_dir / DEFERRED}): the pool's user migration trigger creates "
             "them at their first sign-in; it never fires for a user who already "
             "exists.")  # fmt: skip
    slow = {label: s for label, s in result.verify_seconds.items() if at_risk(s)}
    if slow:
        echo(f"  Slow password checks (timed on this machine; the trigger has "
             f"{TRIGGER_SECONDS} s for a whole sign-in): "
             + ", ".join(f"{label} {s:.2f} s" for label, s in slow.items())
             + ". Give the migration function more memory (more CPU), or build with "
             "--password-fallback reset; `csvimport migration-check` says it again.")  # fmt: skip
