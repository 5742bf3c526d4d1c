"""``csvimport build``: legacy users -> validated Cognito import files in a run directory.

Every source row ends up in exactly one place: written to an import chunk, rejected with
a reason (``rejects.csv``), dropped as a duplicate (also in ``rejects.csv``, pointing to
the row it collided with), or, with ``--password-fallback migrate``, deferred: left out of
the import to migrate at first sign-in (``deferred.csv``, see csvimport.build.deferral).
The build checks that conservation itself.

Two passes keep memory flat: the first maps, validates and serialises each chunk of the
source, spilling valid lines to a temporary file and feeding key hashes to the duplicate
finder; once all duplicates are known, the second pass streams the spill into chunk
files. The run directory appears only when everything is written (atomic rename), so a
failed build never leaves a directory later commands would take for a finished one.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csvimport import __version__
from csvimport.build.choices import DuplicatePolicy, PasswordFallback
from csvimport.build.chunkbuild import (
    GARBLED_EXAMPLES,
    PROBES,
    SPILL_SCHEMA,
    ChunkBuilder,
    build_chunks,
)
from csvimport.build.deferral import time_probes
from csvimport.build.duplicates import DuplicateFinder
from csvimport.build.mapping.columns import HASH_COLUMN, check_attributes
from csvimport.build.mapping.spec import Mapping
from csvimport.build.reasons import REASONS
from csvimport.build.sources.base import SourceSpec
from csvimport.build.sources.opener import open_source
from csvimport.cognito_csv import (
    MAX_FILE_BYTES,
    MAX_USERS_PER_FILE,
    SIDE_FILE_LINE_END,
    Chunk,
    ChunkWriter,
)
from csvimport.errors import ConfigError, RefusedError
from csvimport.files import open_private, replaced_private
from csvimport.hashformats import ALGORITHMS
from csvimport.pool import PoolSnapshot
from csvimport.rundir import (
    BUILD_LOCK,
    BUILDING_PREFIX,
    DEFERRED,
    DEFERRED_ALIASES,
    DEFERRED_COLUMNS,
    EXISTING,
    FOLLOWUPS,
    FOLLOWUPS_COLUMNS,
    MANIFEST,
    MAPPING_COPY,
    PASSWORDS,
    POOL_SNAPSHOT,
    REJECTS,
    file_sha256,
    unfinished_builds,
)

EXISTING_COLUMNS = ["source_row", "legacy_id", "username"]
_COMMA = pa.scalar(",", pa.large_string())
PASSWORD_COLUMNS = ["source_row", "legacy_id", "password", "algorithm", "reason"]
# A build's work folder without a lock file (left by an older csvimport, or by a build
# killed right after creating it) counts as abandoned once this old: a build takes its
# lock within microseconds of creating the folder.
ABANDONED_AFTER_SECONDS = 60.0
REJECT_COLUMNS = ["source_row", "legacy_id", "attribute", "rule", "reason", "value",
                  "collided_with_row"]  # fmt: skip


@dataclass(frozen=True)
class BuildOptions:
    """What to build from where; the CLI's flags, checked."""

    source: SourceSpec
    mapping: Path
    out: Path
    duplicates: DuplicatePolicy = DuplicatePolicy.KEEP_FIRST
    max_rows: int = MAX_USERS_PER_FILE
    max_bytes: int = MAX_FILE_BYTES
    # Usernames already in the pool (folded as the pool compares them), from
    # ``pool.existing_usernames``; None when --check-existing was not asked for.
    existing: frozenset[str] | None = None
    # Processes building chunks once the source has reached parallel_after_rows rows,
    # this one included (csvimport.build.chunkbuild): None = one per CPU, 0 or 1 = this one only.
    workers: int | None = None
    parallel_after_rows: int = 100_000
    # Import the password hashes the mapping's password_hash gives, where Cognito can take
    # them; False sends every user to reset.
    password_hashes: bool = True
    # What becomes of users whose hash Cognito does not import (csvimport.build.deferral):
    # RESET imports them to reset; MIGRATE leaves out those csvimport can verify.
    password_fallback: PasswordFallback = PasswordFallback.RESET


@dataclass
class BuildResult:
    """What the build did, counted; the source of the summary and of the exit status."""

    run_dir: Path
    source_rows: int = 0
    written: int = 0
    rejected: int = 0
    duplicates: int = 0
    existing: int | None = None  # written users Cognito will skip: already in the pool
    chunks: list[Chunk] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    # written users by hashformats classification; None when no password_hash is mapped
    passwords: Counter[str] | None = None
    # source values whose line breaks were folded, by attribute; None when the mapping
    # folds none (fold_line_breaks)
    folded: Counter[str] | None = None
    # with [groups] or [legacy].disabled mapped: followups.csv's counts (_FollowupsCsv)
    followups: dict[str, Any] | None = None
    # work folders of earlier builds of the same run directory that did not finish
    # (killed), removed before this one began
    removed_unfinished: list[Path] = field(default_factory=list)
    # the first few rows the source garbles (a stray quote, a ragged row), with the lines
    garbled: list[str] = field(default_factory=list)
    # With --password-fallback migrate (else None): how users will sign in. ``deferred``
    # users migrate at first sign-in, by their hash's scheme; written users who must reset,
    # by why (no hash, unknown scheme, ...); written users with an imported hash.
    deferred_schemes: Counter[str] | None = None
    reset_why: Counter[str] | None = None
    imported_hash: int = 0
    # With migrate: seconds one password check takes on this machine, by the deferred
    # hashes' cost label ("bcrypt cost=13"), slowest first (csvimport.legacyhash)
    verify_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def deferred(self) -> int:
        """Users left out of the import to migrate at first sign-in (deferred.csv)."""
        return self.deferred_schemes.total() if self.deferred_schemes is not None else 0

    @property
    def conserved(self) -> bool:
        return self.source_rows == self.written + self.rejected + self.duplicates + self.deferred

    def sign_in(self) -> dict[str, Any] | None:
        """How the users will sign in, with why, by scheme; None unless built with migrate."""
        if self.deferred_schemes is None or self.reset_why is None:
            return None
        return {
            "imported_hash": self.imported_hash,
            "migrate_at_first_sign_in": {"users": self.deferred,
                                         "by_scheme": dict(self.deferred_schemes.most_common())},
            "must_reset": {"users": self.reset_why.total(),
                           "why": dict(self.reset_why.most_common())},
        }  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        passwords = {} if self.passwords is None else {"passwords": dict(self.passwords)}
        folded = {} if self.folded is None else {"folded_line_breaks": dict(self.folded)}
        return {
            "run_dir": str(self.run_dir),
            "source_rows": self.source_rows,
            "written": self.written,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            # only with --password-fallback migrate: other builds' summaries are unchanged
            **(
                {}
                if self.deferred_schemes is None
                else {
                    "deferred": self.deferred,
                    "sign_in": self.sign_in(),
                    "verify_seconds": self.verify_seconds,
                }  # fmt: skip
            ),
            "already_in_pool": self.existing,
            "removed_unfinished": [str(p) for p in self.removed_unfinished],
            "chunks": [c.__dict__ for c in self.chunks],
            "top_reasons": [
                {"rule": rule, "rows": count, "reason": REASONS.get(rule, rule)}
                for rule, count in self.reasons.most_common(10)
            ],
            "garbled_rows": self.garbled,
            **passwords,
            **folded,
        }


Progress = Callable[[int], None]


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RefusedError(
            f"{out} already exists and is not empty",
            hint="Give --out a new directory: a run directory is never overwritten, so the "
            "journal of an earlier import cannot be lost.",
        )
    if not out.parent.is_dir():
        raise ConfigError(f"the parent of {out} does not exist", hint=f"Create {out.parent} first.")


class _SideCsv:
    """One of the run's own CSV files (rejects.csv, existing.csv), written row by row.

    Created 0600: it holds personal data.
    """

    def __init__(self, path: Path, columns: list[str]) -> None:
        self._file = open_private(path)
        self._csv = csv.writer(self._file, lineterminator=SIDE_FILE_LINE_END)
        self._csv.writerow(columns)
        self.count = 0

    def write(self, *values: object) -> None:
        self._csv.writerow(values)
        self.count += 1

    def write_lines(self, text: str, count: int) -> None:
        """Append ``count`` rows already written in this file's dialect (by a worker)."""
        self._file.write(text)
        self.count += count

    def close(self) -> int:
        """Close the file; return how many rows were written."""
        self._file.close()
        return self.count


class _PasswordsCsv(_SideCsv):
    """passwords.csv: every written user's hash classification, and counts by it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, PASSWORD_COLUMNS)
        self.statuses: Counter[str] = Counter()

    def write_batch(self, batch: pa.RecordBatch, rows: np.ndarray) -> None:
        """Write the classification of the spilled users ``batch`` (source ``rows``)."""
        columns = ("legacy_id", "password", "algorithm", "password_reason")
        values = [batch.column(name).to_pylist() for name in columns]
        for row, legacy_id, status, algorithm, reason in zip(rows.tolist(), *values, strict=True):
            self.write(row, legacy_id, status, algorithm, reason)
            self.statuses[status] += 1


class _DeferredCsv(_SideCsv):
    """deferred.csv: the kept users left to migrate at first sign-in; counts how every
    kept user will sign in (csvimport.build.deferral)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, [*DEFERRED_COLUMNS, *DEFERRED_ALIASES])
        self.schemes: Counter[str] = Counter()
        self.reset_why: Counter[str] = Counter()
        self.imported_hash = 0

    def take(self, batch: pa.RecordBatch, rows: np.ndarray) -> tuple[pa.RecordBatch, np.ndarray]:
        """Write the deferred users of ``batch`` (source ``rows``); return the others."""
        lines = batch.column("deferred")
        mine = pc.not_equal(lines, "")
        picked = mine.to_numpy(zero_copy_only=False)
        if picked.any():
            self.write_lines("".join(lines.filter(mine).to_pylist()), int(picked.sum()))
            self.schemes.update(batch.column("fallback").filter(mine).to_pylist())
            batch, rows = batch.filter(pc.invert(mine)), rows[~picked]
        no_hash = pc.equal(batch.column("algorithm"), "")
        self.reset_why.update(batch.column("fallback").filter(no_hash).to_pylist())
        self.imported_hash += batch.num_rows - int(pc.sum(no_hash).as_py() or 0)
        return batch, rows


class _FollowupsCsv(_SideCsv):
    """followups.csv: the kept users (imported or deferred) with a group, an unmapped
    legacy role or the disabled flag, for `csvimport followups`; counts them."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, list(FOLLOWUPS_COLUMNS))
        self.groups: Counter[str] = Counter()  # memberships per Cognito group
        self.unmapped: Counter[str] = Counter()  # users per legacy role the mapping lacks
        self.disabled = 0
        self.deferred = 0

    def write_batch(self, batch: pa.RecordBatch, rows: np.ndarray) -> None:
        """Write the users of ``batch`` (source ``rows``, kept) who have a follow-up."""
        groups, unmapped = batch.column("groups"), batch.column("unmapped_roles")
        disabled = pc.equal(batch.column("disabled"), "true")
        wanted = pc.or_(pc.or_(pc.not_equal(groups, ""), pc.not_equal(unmapped, "")), disabled)
        picked = wanted.to_numpy(zero_copy_only=False)
        if not picked.any():
            return
        # Counted per distinct value: legacy roles repeat across users.
        for value in pc.value_counts(groups.filter(wanted)).to_pylist():
            for group in value["values"].split():
                self.groups[group] += value["counts"]
        for value in pc.value_counts(unmapped.filter(wanted)).to_pylist():
            for role in json.loads(value["values"]) if value["values"] else ():
                self.unmapped[role] += value["counts"]
        deferred = pc.not_equal(batch.column("deferred"), "").filter(wanted)
        self.disabled += int(pc.sum(disabled.filter(wanted)).as_py() or 0)
        self.deferred += int(pc.sum(deferred).as_py() or 0)
        columns = [
            batch.column(name).filter(wanted).to_pylist()
            for name in ("legacy_id", "username", "groups", "unmapped_roles", "disabled")
        ]
        for row, *values, later in zip(rows[picked].tolist(), *columns, deferred.to_pylist(),
                                       strict=True):  # fmt: skip
            self.write(row, *values, "yes" if later else "")

    def to_json(self) -> dict[str, Any]:
        return {"users": self.count, "disabled": self.disabled, "deferred": self.deferred,
                "memberships": dict(sorted(self.groups.items())),
                "unmapped_roles": dict(self.unmapped.most_common())}  # fmt: skip


def _kept(
    spill_path: Path, dropped_rows: np.ndarray, legacy_of: dict[int, str] | None
) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """Yield the spilled users in source order without the dropped duplicates, as
    (batch, source rows); ``legacy_of`` gets the dropped users' legacy ids."""
    with pa.OSFile(str(spill_path)) as spill_file, pa.ipc.open_stream(spill_file) as spilled:
        for batch in spilled:
            rows = batch.column("row").to_numpy()
            drop = np.isin(rows, dropped_rows)
            if drop.any():
                if legacy_of is not None:
                    dropped_ids = batch.column("legacy_id").filter(pa.array(drop)).to_pylist()
                    legacy_of.update(zip(rows[drop].tolist(), dropped_ids, strict=True))
                batch = batch.filter(pa.array(~drop))
                rows = rows[~drop]
            yield batch, rows


def build(
    options: BuildOptions, snapshot: PoolSnapshot, *, progress: Progress | None = None
) -> BuildResult:
    """Build a run directory at ``options.out``; raise a CsvImportError on bad input.

    The run is written into a hidden work folder next to ``out``, locked (flock) by this
    process and renamed into place when complete. Work folders that earlier builds of
    ``out`` left when killed are removed first; a RefusedError when a build of ``out``
    is running.
    """
    _check_out(options.out)
    removed = _remove_unfinished(options.out)
    source = open_source(options.source)
    mapping = Mapping.load(options.mapping)
    columns = source.columns()
    mapping.check_columns(columns)
    check_attributes(mapping, snapshot)
    if options.password_fallback is PasswordFallback.MIGRATE and HASH_COLUMN not in (
        mapping.attributes()
    ):
        raise ConfigError(
            f"--password-fallback migrate defers users by their password hash, but "
            f"{mapping.origin} maps no {HASH_COLUMN}",
            hint=f"Map the legacy hash column: [attributes.{HASH_COLUMN}] column = "
            '"<column>" (and [legacy_hash] for bare hex digests); or build with '
            "--password-fallback reset.",
        )
    work, lock = _work_folder(options.out)
    try:
        result = _build_into(work, options, snapshot, mapping, source, progress)
        _write_manifest(work, options, snapshot, mapping, source.fingerprint(), result)
        if options.out.exists():
            options.out.rmdir()  # empty, checked above
        os.replace(work, options.out)
        # Killed right here, the run keeps a stray lock file; harmless, nothing reads it.
        (options.out / BUILD_LOCK).unlink()
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        os.close(lock)  # releases the flock
    result.run_dir = options.out
    result.removed_unfinished = removed
    return result


def _work_folder(out: Path) -> tuple[Path, int]:
    """Create the hidden folder the build of ``out`` writes into, and lock it for as long
    as this process lives (the lock dies with it, kill -9 included); return the folder
    and the lock's file descriptor, which the caller closes."""
    work = Path(tempfile.mkdtemp(prefix=BUILDING_PREFIX.format(name=out.name), dir=out.parent))
    lock = os.open(work / BUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # never waits: nobody else knows the folder yet
    os.write(lock, f"{os.getpid()}\n".encode())
    return work, lock


def _remove_unfinished(out: Path) -> list[Path]:
    """Remove the work folders of builds of ``out`` that were killed; return them.

    A folder whose lock a live process holds is a build running now: RefusedError. A
    folder without a lock file is removed once ABANDONED_AFTER_SECONDS old. Folders of
    other users are left alone.
    """
    removed = []
    for folder in unfinished_builds(out):
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            lock: int | None = os.open(folder / BUILD_LOCK, os.O_RDWR)
        except FileNotFoundError:
            try:
                if time.time() - folder.stat().st_mtime < ABANDONED_AFTER_SECONDS:
                    continue
            except FileNotFoundError:
                continue  # removed meanwhile
            lock = None
        try:
            if lock is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid = os.read(lock, 32).decode("ascii", "replace").strip() or "unknown"
                    raise RefusedError(
                        f"another csvimport build of {out} is running (pid {pid}, "
                        f"writing into {folder})",
                        hint="Wait for it to finish, or give --out another directory. If "
                        "that process is gone, its lock went with it: run the build again.",
                    ) from None
            try:
                shutil.rmtree(folder)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise RefusedError(
                    f"cannot remove {folder}, left by a build of {out} that did not finish "
                    f"({exc.strerror or exc})",
                    hint=f"Remove it yourself (rm -r '{folder}'), then build again.",
                ) from None
            removed.append(folder)
        finally:
            if lock is not None:
                os.close(lock)
    return removed


def _build_into(
    work: Path, options: BuildOptions, snapshot: PoolSnapshot, mapping: Mapping,
    source: Any, progress: Progress | None,
) -> BuildResult:  # fmt: skip
    builder = ChunkBuilder(snapshot, mapping, options.duplicates, options.password_hashes,
                           options.password_fallback)  # fmt: skip
    header = builder.header
    finder = DuplicateFinder(snapshot, options.duplicates)
    result = BuildResult(run_dir=work)
    if mapping.folding():
        result.folded = Counter(dict.fromkeys(mapping.folding(), 0))
    rejects = _SideCsv(work / REJECTS, REJECT_COLUMNS)
    passwords = _PasswordsCsv(work / PASSWORDS) if builder.with_hash else None
    # Deferred users take part in duplicate detection like any valid user (their keys go
    # to the finder with everyone's): a deferred user and an imported one with the same
    # username, email or phone would both exist once the trigger ran, which Cognito's
    # uniqueness forbids. The --duplicates policy picks which row stays, the same one as
    # with --password-fallback reset: the fallback decides only where a kept user goes.
    deferred = (_DeferredCsv(work / DEFERRED)
                if builder.deferral is not None and builder.with_hash else None)  # fmt: skip
    followups = _FollowupsCsv(work / FOLLOWUPS) if mapping.followups else None
    spill_path = work / ".valid.spill"
    probes: dict[str, str] = {}  # a deferred hash per cost label, to time at the end
    try:
        with open_private(spill_path, "wb") as spill_file:
            spill = pa.ipc.new_stream(spill_file, SPILL_SCHEMA)
            outcomes = build_chunks(source.chunks(), builder, workers=options.workers,
                                    parallel_after_rows=options.parallel_after_rows)  # fmt: skip
            for outcome in outcomes:
                rejects.write_lines(outcome.rejects, outcome.reject_lines)
                result.rejected += outcome.rejected
                result.reasons.update(outcome.reasons)
                if result.folded is not None:
                    result.folded.update(outcome.folded)
                result.garbled += outcome.garbled[: GARBLED_EXAMPLES - len(result.garbled)]
                for label, value in outcome.probes.items():
                    if len(probes) < PROBES:
                        probes.setdefault(label, value)
                finder.add_keys(outcome.keys)
                spill.write_batch(outcome.spill)
                result.source_rows += outcome.rows
                if progress:
                    progress(outcome.rows)
            spill.close()
        dropped = finder.resolve()
        dropped_rows = np.fromiter(dropped, dtype=np.int64, count=len(dropped))
        legacy_of: dict[int, str] = {}
        writer = ChunkWriter(work, header, max_rows=options.max_rows, max_bytes=options.max_bytes)
        existing = (
            _SideCsv(work / EXISTING, EXISTING_COLUMNS) if options.existing is not None else None
        )
        known = pa.array(sorted(options.existing or ()), type=pa.large_string())
        algorithms: set[str] = set()
        for batch, rows in _kept(spill_path, dropped_rows, legacy_of):
            if followups is not None:  # before deferred.take: deferred users are listed too
                followups.write_batch(batch, rows)
            if deferred is not None:
                batch, rows = deferred.take(batch, rows)
            if existing is not None:
                found = pc.is_in(batch.column("username"), value_set=known)
                for row, legacy_id, username in zip(
                    rows[found.to_numpy(zero_copy_only=False)].tolist(),
                    batch.column("legacy_id").filter(found).to_pylist(),
                    batch.column("username").filter(found).to_pylist(),
                    strict=True,
                ):
                    existing.write(row, legacy_id, username)
            if passwords is not None:
                passwords.write_batch(batch, rows)
                algorithms.update(pc.unique(batch.column("algorithm")).to_pylist())
                no_hash = pc.equal(batch.column("algorithm"), "")
                batch = batch.filter(no_hash)
                rows = rows[no_hash.to_numpy(zero_copy_only=False)]
            writer.write(batch.column("line"), rows, batch.column("legacy_id"))
        writer.close()
        # One algorithm per import job: each algorithm's users get chunks of their own,
        # after the users without an importable hash, in a fixed order.
        for algorithm in (a for a in ALGORITHMS if a in algorithms):
            hash_writer = ChunkWriter(
                work, [*header, HASH_COLUMN], max_rows=options.max_rows,
                max_bytes=options.max_bytes, chunks=writer.chunks, password_algorithm=algorithm,
            )  # fmt: skip
            for batch, rows in _kept(spill_path, dropped_rows, None):
                mine = pc.equal(batch.column("algorithm"), algorithm)
                lines = pc.binary_join_element_wise(
                    batch.column("line"), batch.column("password_hash"), _COMMA
                )
                hash_writer.write(lines.filter(mine), rows[mine.to_numpy(zero_copy_only=False)],
                                  batch.column("legacy_id").filter(mine))  # fmt: skip
            hash_writer.close()
        if passwords is not None:
            result.passwords = passwords.statuses
        if deferred is not None:
            result.deferred_schemes = deferred.schemes
            result.reset_why = deferred.reset_why
            result.imported_hash = deferred.imported_hash
            if result.deferred:
                declared = builder.deferral.declared if builder.deferral is not None else None
                result.verify_seconds = time_probes(probes, declared)
        if existing is not None:
            result.existing = existing.close()
        if followups is not None:
            followups.close()
            result.followups = followups.to_json()
        for row, duplicate in sorted(dropped.items()):
            rejects.write(
                row,
                legacy_of.get(row, ""),
                duplicate.attribute,
                "duplicate",
                duplicate.reason(options.duplicates),
                "",
                duplicate.collided_with,
            )
        result.duplicates = len(dropped)
        if dropped:
            result.reasons["duplicate"] += len(dropped)
        result.chunks = writer.chunks
        result.written = sum(c.rows for c in writer.chunks)
    finally:
        rejects.close()
        if passwords is not None:
            passwords.close()
        if deferred is not None:
            deferred.close()
        if followups is not None:
            followups.close()
        spill_path.unlink(missing_ok=True)
    if not result.conserved:  # a bug, never bad input: stop before anything is imported
        raise AssertionError(
            f"conservation broken: {result.source_rows} source rows != {result.written} "
            f"written + {result.rejected} rejected + {result.duplicates} duplicates + "
            f"{result.deferred} deferred"
        )
    return result


def _write_manifest(
    work: Path, options: BuildOptions, snapshot: PoolSnapshot, mapping: Mapping,
    source_fingerprint: dict[str, Any], result: BuildResult,
) -> None:  # fmt: skip
    snapshot.save(work / POOL_SNAPSHOT)
    with replaced_private(work / MAPPING_COPY, "wb") as f:
        f.write(options.mapping.read_bytes())
    manifest = {
        "tool": "csvimport",
        "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source_fingerprint,
        "mapping": {"file": MAPPING_COPY, "sha256": mapping.fingerprint()},
        "pool": {
            "user_pool_id": snapshot.user_pool_id,
            "name": snapshot.name,
            "file": POOL_SNAPSHOT,
            "sha256": snapshot.fingerprint(),
        },  # fmt: skip
        "duplicates_policy": options.duplicates.value,
        "limits": {"max_rows": options.max_rows, "max_bytes": options.max_bytes},
        "counts": {
            "source_rows": result.source_rows,
            "written": result.written,
            "rejected": result.rejected,
            "duplicates": result.duplicates,
            "already_in_pool": result.existing,
            # only with --password-fallback migrate: other runs' manifests are unchanged
            **({} if result.deferred_schemes is None else {"deferred": result.deferred}),
            # only when the mapping folds line breaks: other runs' manifests are unchanged
            **({} if result.folded is None else {"folded_line_breaks": dict(result.folded)}),
        },
        "chunks": [c.__dict__ for c in result.chunks],
        "rejects": REJECTS,
    }
    # The sha256 of every other file the run relies on (the chunks' and line maps' are in
    # "chunks"), so each command can refuse a file edited or lost since the build.
    side_files = [REJECTS, PASSWORDS, EXISTING, DEFERRED, FOLLOWUPS, POOL_SNAPSHOT, MAPPING_COPY]
    manifest["files"] = {
        name: file_sha256(work / name) for name in side_files if (work / name).exists()
    }
    if result.passwords is not None:  # only with a password_hash mapped: older runs unchanged
        manifest["passwords"] = {
            "file": PASSWORDS,
            "hashes": "on" if options.password_hashes else "off",
            "counts": dict(sorted(result.passwords.items())),
        }
    if result.deferred_schemes is not None:  # only with --password-fallback migrate
        manifest["password_fallback"] = {
            "mode": options.password_fallback.value,
            "file": DEFERRED,
            "sign_in": result.sign_in(),
            "verify_seconds": result.verify_seconds,
        }
    if result.followups is not None:  # only with [groups] or [legacy].disabled mapped
        manifest["followups"] = {"file": FOLLOWUPS} | result.followups
    with replaced_private(work / MANIFEST) as f:  # it marks a finished build: written last
        f.write(json.dumps(manifest, indent=2) + "\n")
