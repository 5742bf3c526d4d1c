"""The lookup file: the deferred users' legacy records, for a run whose source is a file.

A database source is asked at each sign-in; a file source (CSV, JSON Lines, JSON) cannot
be, so ``csvimport migration-lookup RUN_DIR`` writes, from the run's own source file (the
manifest names it and its sha256), the records of the users the build deferred to the
migration function (the run's ``deferred.csv``) and nobody else's, as a CSV file of mode
0600. Only the columns the function reads are kept: those the mapping reads (the password
hash among them) and the ``[legacy_hash]`` salt column.

It holds password hashes: never commit it; keep it encrypted at rest (in the Lambda zip,
which Lambda stores encrypted, or in an S3 object encrypted with a KMS key).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

from csvimport.build.mapping.spec import Mapping
from csvimport.build.sources.base import ROW, SOURCE_RULE, SourceSpec
from csvimport.build.sources.opener import open_source
from csvimport.errors import ConfigError, RefusedError
from csvimport.files import replaced_private
from csvimport.rundir import DEFERRED, DEFERRED_COLUMNS, MAPPING_COPY, RunDir, file_sha256

FILE_KINDS: Final = ("csv", "jsonl", "json")


def deferred_rows(run: RunDir) -> set[int]:
    """The source rows of the run's deferred users; ConfigError when the run has none."""
    path = run.verify_file(DEFERRED) if DEFERRED in run.files else run.path / DEFERRED
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in DEFERRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(
                    f"{path} lacks the columns {', '.join(missing)}",
                    hint="Use the deferred.csv of a `csvimport build --password-fallback "
                    "migrate` run; never edit a run directory by hand.",
                )
            return {int(record["source_row"]) for record in reader}
    except FileNotFoundError:
        raise ConfigError(
            f"run {run.path} defers no users to the migration function (no {DEFERRED})",
            hint="Build with `--password-fallback migrate` to defer the users whose hashes "
            "Cognito cannot import.",
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"{path} is damaged ({exc})", hint="Build the run again into a new directory."
        ) from None


def source_spec(run: RunDir) -> SourceSpec:
    """The run's source file as the build read it; refuses a database or a changed file."""
    source = run.manifest["source"]
    kind = source.get("kind")
    if kind not in FILE_KINDS:
        raise ConfigError(
            f"run {run.path} reads a database ({kind}): the migration function looks its "
            "users up in the database itself, with no lookup file",
            hint="Package the function with the database URL instead "
            "(`csvimport migration-package RUN_DIR`).",
        )
    path = Path(source["path"])
    if not path.is_file():
        raise ConfigError(
            f"the run's source file {path} is gone",
            hint="Put the legacy export back where the build read it.",
        )
    if file_sha256(path) != source["sha256"]:
        raise RefusedError(
            f"the run's source file {path} changed since the build: its rows are no longer "
            "the users the run deferred",
            hint="Put back the file the build read, or build a new run from the new file.",
        )
    return SourceSpec(str(path), encoding=source.get("encoding", "utf-8"),
                      delimiter=source.get("delimiter"))  # fmt: skip


def write_lookup_file(run_dir: Path, out: Path, *, salt_column: str | None = None) -> int:
    """Write the lookup file of a run's deferred users to ``out`` (mode 0600); return how
    many records it holds.

    Raises ConfigError for a run that defers nobody or reads a database, RefusedError when
    its source file changed since the build.
    """
    from csvimport.migrate.settings import legacy_hash_table

    run = RunDir.open(run_dir)
    rows = deferred_rows(run)
    spec = source_spec(run)
    mapping_file = run.verify_file(MAPPING_COPY)
    mapping = Mapping.load(mapping_file)
    salt = salt_column or legacy_hash_table(mapping_file)[1]
    source = open_source(spec)
    available = source.columns()
    columns = [*mapping.source_columns(), *([salt] if salt else [])]
    columns = [c for c in dict.fromkeys(columns) if c in available]
    written = 0
    with replaced_private(out, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for chunk in source.chunks():
            wanted = chunk[ROW].isin(rows)
            if SOURCE_RULE in chunk.columns:
                wanted &= chunk[SOURCE_RULE] == ""
            part = chunk.loc[wanted, columns]
            writer.writerows(part.itertuples(index=False, name=None))
            written += len(part)
    return written
