"""``retry-source.csv``: the users a run can still import once fixed, re-read from the
legacy source as it was built from, ready to fix and build again (written by ``report``).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable
from pathlib import Path

from csvimport.errors import ConfigError
from csvimport.files import replaced_private
from csvimport.outcomes import Outcome, UserResult
from csvimport.rundir import BUILD_AGAIN, MANIFEST, RunDir

RETRY_SOURCE = "retry-source.csv"
RETRY_OUTCOMES = frozenset({Outcome.REJECTED, Outcome.FAILED, Outcome.NOT_PROCESSED})


def write_retry_source(
    run: RunDir, results: Iterable[UserResult] = (), *, rows: Collection[int] | None = None,
    source: str | None = None, encoding: str | None = None,
) -> Path | None:  # fmt: skip
    """``retry-source.csv``: the users who can still be imported once fixed (rejected,
    failed, not processed), as the legacy source had them, ready to fix and build again.

    A file source is read again from its recorded path when its bytes still match the
    manifest, with the encoding and delimiter the build used (``encoding`` overrides the
    former); a database needs ``source`` (its URL: passwords are never stored). Rows the
    source garbled (a stray quote, a row with too few or too many fields) are left out:
    their values are not the user's, so they must be fixed in the source itself, where
    rejects.csv names their lines. Returns None when no user needs a retry; raises
    RefusedError when the source cannot be read. An earlier report's retry-source.csv
    never outlives this call: it is replaced, or removed when none is written (an error
    included), since it no longer matches. ``rows`` gives the source rows to retry
    directly, instead of ``results`` (see ``RETRY_OUTCOMES``).
    """
    path = run.path / RETRY_SOURCE
    try:
        wanted = (
            set(rows)
            if rows is not None
            else {r.source_row for r in results if r.outcome in RETRY_OUTCOMES}
        )
        written = _write_retry_source(run, wanted, source=source, encoding=encoding)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if written is None:
        path.unlink(missing_ok=True)
    return written


def _write_retry_source(
    run: RunDir, wanted: set[int], *, source: str | None, encoding: str | None
) -> Path | None:
    from csvimport.build.sources.base import ROW, SOURCE_RULE, SourceSpec
    from csvimport.build.sources.opener import open_source
    from csvimport.errors import RefusedError
    from csvimport.redact import is_masked

    if not wanted:
        return None
    recorded = run.manifest.get("source", {})
    if not isinstance(recorded, dict):
        raise ConfigError(f"{run.path / MANIFEST} is damaged: its source is not an object",
                          hint=BUILD_AGAIN)  # fmt: skip
    url = str(recorded.get("url") or "")
    # A database URL is stored with its credentials masked; one without any works as is.
    location = source or recorded.get("path") or (url if url and not is_masked(url) else None)
    if not location:
        raise RefusedError(
            "the legacy source is a database and its URL is stored without its credentials "
            "(they never are)",
            hint="Pass --source with the database URL to write retry-source.csv.",
        )
    as_built = source is None and "path" in recorded
    opened = open_source(SourceSpec(
        location, table=recorded.get("table"), query=recorded.get("query"),
        encoding=encoding or recorded.get("encoding") or "utf-8",
        delimiter=recorded.get("delimiter") if as_built else None,
    ))  # fmt: skip
    if as_built and opened.fingerprint().get("sha256") != recorded.get("sha256"):
        raise RefusedError(
            f"{location} changed since the build, so its rows no longer match the run",
            hint="Pass --source with the file exactly as it was built from.",
        )
    path = run.path / RETRY_SOURCE
    with replaced_private(path) as f:
        writer = csv.writer(f)
        columns = opened.columns()
        writer.writerow(columns)
        for chunk in opened.chunks():
            picked = chunk[chunk[ROW].isin(wanted)]
            if SOURCE_RULE in picked.columns:
                picked = picked[picked[SOURCE_RULE] == ""]
            writer.writerows(picked[columns].itertuples(index=False, name=None))
    return path
