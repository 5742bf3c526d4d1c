"""A finished run directory, as ``build`` left it: manifest, chunks, line maps, pool snapshot.

``start``, ``status``, ``stop``, ``report`` and ``resets`` open a run with
:meth:`RunDir.open`, which refuses anything that is not a finished build (no manifest
means the build failed or is still running, or the manifest was lost). The manifest holds
the sha256 of every file the build wrote; a command checks each file it reads against it
(:meth:`RunDir.verify_file`), so a missing or edited chunk, line map, rejects list, pool
snapshot or mapping copy is refused with its name and the fix, never half used.

It also holds the readers of run files that more than one command uses: the build's CSV
files (``build_records``: line maps, ``rejects.csv``, ``passwords.csv``, ``deferred.csv``),
a chunk's users (``written_users``) and the report's ``results.jsonl`` (``iter_results``);
damage is refused naming the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from csvimport.cognito_csv import large_strings, read_column_arrays
from csvimport.errors import ConfigError, RefusedError
from csvimport.files import open_private, private_work_folder
from csvimport.outcomes import Outcome, Password, UserResult
from csvimport.pool import PoolSnapshot

# The files of a run directory that several stages read (build writes them).
MANIFEST = "manifest.json"
REJECTS = "rejects.csv"
PASSWORDS = "passwords.csv"  # each written user's password-hash verdict (report reads it)
EXISTING = "existing.csv"
# users left out of the import to migrate at first sign-in (build --password-fallback migrate)
DEFERRED = "deferred.csv"
DEFERRED_COLUMNS = ("source_row", "legacy_id", "username", "scheme", "reason")
# Columns deferred.csv may add: the aliases a deferred user signs in with, for the
# migration preflight's check that nobody in the pool holds them (UserResult.email/.phone).
DEFERRED_ALIASES = ("email", "phone_number")
# What the CSV cannot carry, for `csvimport followups` (mapping [groups], [legacy].disabled):
# one line per kept user with a group, an unmapped role or the disabled flag. ``groups``
# are Cognito group names joined by a space (a group name holds none); ``unmapped_roles``
# a JSON list of the legacy roles the mapping does not name ("" for none); ``disabled``
# "true"/"false"; ``deferred`` "yes" for a user left to migrate at first sign-in (not in
# the pool until then: the pass skips them), else "".
FOLLOWUPS = "followups.csv"
FOLLOWUPS_COLUMNS = ("source_row", "legacy_id", "username", "groups", "unmapped_roles",
                     "disabled", "deferred")  # fmt: skip
POOL_SNAPSHOT = "pool.json"
MAPPING_COPY = "mapping.toml"
# The files `report` writes (other commands read results.jsonl).
RESULTS = "results.jsonl"
REPORT = "report.html"
FAILED_USERS = "failed-users.csv"
RUN_ID_CHARS = 8
# ``build`` writes a run into a hidden work folder next to it, named for it, and renames
# it into place when done; ``BUILD_LOCK`` in there is flock-ed by the building process.
BUILDING_PREFIX = ".{name}.building-"
BUILD_LOCK = ".build.lock"
# What each file is, for the message when it is missing or changed.
ROLES = {
    REJECTS: "the build's list of refused and duplicate users",
    PASSWORDS: "the build's password-hash classification of each written user",
    EXISTING: "the build's list of written users already in the pool",
    DEFERRED: "the build's list of users left out of the import to migrate at first sign-in",
    FOLLOWUPS: "the build's list of group memberships and disabled users for `csvimport followups`",
    POOL_SNAPSHOT: "the user pool as the build validated the users against it",
    MAPPING_COPY: "the mapping this run was built with",
}
CHUNK_ROLE = "the import file Cognito reads these users from"
MAP_ROLE = "the line map telling which legacy user each line of {chunk} is"
REBUILD_HINT = (
    "Put the file back exactly as the build wrote it (from a backup), or build again into "
    "a new run directory (`csvimport build ... --out NEW_DIR`) and use that one. Never "
    "edit or delete the files of a run directory."
)
MAPPING_HINT = (
    "A run is imported exactly as it was built, so an edited mapping.toml changes nothing: "
    "build again with the edited mapping into a new run directory (`csvimport build ... "
    "--mapping FILE --out NEW_DIR`), or put the run's mapping.toml back as it was."
)
NO_MANIFEST_HINT = (
    "Put manifest.json back exactly as it was (from a backup): the run's identity and its "
    "import jobs' names come from its bytes, so a rewritten one is another run. Without "
    "it, build again into a new run directory; users already imported are then skipped by "
    "Cognito, and the new report says so."
)
OLDER_BUILD_WARNING = (
    "{path} was built by an older csvimport that did not record the sha256 of its line "
    "maps, rejects.csv and mapping copy: csvimport checks that they exist, but cannot tell "
    "whether they were edited. Build again into a new run directory to have every file "
    "checked."
)


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RunChunk:
    """One import file of the run, as the manifest lists it."""

    file: str
    map_file: str
    rows: int
    bytes: int
    sha256: str
    password_algorithm: str | None = None
    map_sha256: str | None = None  # None: built by a csvimport that did not record it

    @property
    def name(self) -> str:
        """The chunk's name without extension, e.g. ``chunk-0001``."""
        return Path(self.file).stem


@dataclass(frozen=True)
class RunDir:
    """A run directory written by ``csvimport build``."""

    path: Path
    manifest: dict[str, Any]
    chunks: list[RunChunk]
    snapshot: PoolSnapshot
    run_id: str
    # Every file the build wrote (but the manifest) -> its sha256, or None where an older
    # build did not record one (then only its presence is checked).
    files: dict[str, str | None] = field(default_factory=dict)
    # Things a command should tell the user about this run (printed by the CLI).
    warnings: tuple[str, ...] = ()

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """Read a finished run; ConfigError when ``path`` is not one, RefusedError when
        its pool snapshot is missing or changed."""
        if not path.is_dir():
            unfinished = unfinished_builds(path)
            if unfinished:
                raise ConfigError(
                    f"run directory {path} does not exist: its build did not finish (it "
                    f"left {unfinished[0]})",
                    hint="Build it again (`csvimport build ... --out DIR`); the next build "
                    "of it removes what the unfinished one left, once no build runs there.",
                )
            raise ConfigError(
                f"run directory {path} does not exist",
                hint="Pass the --out directory of a `csvimport build`.",
            )
        manifest_path = path / MANIFEST
        try:
            raw = manifest_path.read_bytes()
        except FileNotFoundError:
            raise _no_manifest(path) from None
        try:
            manifest = json.loads(raw)
            chunks = [
                RunChunk(
                    file=c["file"],
                    map_file=c["map_file"],
                    rows=int(c["rows"]),
                    bytes=int(c["bytes"]),
                    sha256=c["sha256"],
                    password_algorithm=c.get("password_algorithm"),
                    map_sha256=c.get("map_sha256"),
                )
                for c in manifest["chunks"]
            ]
            files = _recorded_files(manifest, chunks)
            pool_file = manifest["pool"]["file"]
            pool_sha256 = files[pool_file]
            pool_fingerprint = manifest["pool"].get("sha256")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{manifest_path} is damaged ({exc!r})",
                hint="Put it back from a backup, or build the run again into a new "
                "directory; never edit a run directory by hand.",
            ) from None
        # The run's identity: stable for this build, different for any other build, short
        # enough for job names (1-128 characters).
        run_id = hashlib.sha256(raw).hexdigest()[:RUN_ID_CHARS]
        older = any(sha is None for sha in files.values())
        warnings = (OLDER_BUILD_WARNING.format(path=path),) if older else ()
        snapshot = PoolSnapshot.load(_check(path, pool_file, pool_sha256, chunks))
        if pool_sha256 is None and snapshot.fingerprint() != pool_fingerprint:
            # an older build recorded the snapshot's content hash only: check that, at least
            raise _changed(path, pool_file, chunks)
        return cls(path=path, manifest=manifest, chunks=chunks, snapshot=snapshot,
                   run_id=run_id, files=files, warnings=warnings)  # fmt: skip

    def verify_file(self, name: str) -> Path:
        """Return the path of the run's file ``name`` after checking it is there and, where
        the manifest holds its sha256, that its bytes are what the build wrote.

        RefusedError names the file, what it is for, and the fix; KeyError when ``name``
        is not a file of the run.
        """
        return _check(self.path, name, self.files[name], self.chunks)

    def verify_files(self) -> None:
        """Check every file the build wrote, as :meth:`verify_file` does."""
        for name in self.files:
            self.verify_file(name)

    @property
    def user_pool_id(self) -> str:
        return self.snapshot.user_pool_id

    def chunk_path(self, chunk: RunChunk) -> Path:
        return self.path / chunk.file

    def header(self, chunk: RunChunk) -> list[str]:
        """The columns on the chunk file's first line."""
        with self.chunk_path(chunk).open(encoding="utf-8") as f:
            return f.readline().rstrip("\n").split(",")

    def verify(self, chunk: RunChunk) -> None:
        """Refuse a chunk file that is missing or differs from what the build wrote."""
        self.verify_file(chunk.file)


def unfinished_builds(out: Path) -> list[Path]:
    """The work folders builds of ``out`` left next to it (running or killed), by name."""
    # mkdtemp's suffix: 8 of [a-z0-9_]; nothing else matches, not even the work folder of
    # another run whose name starts like this one's.
    pattern = re.compile(re.escape(BUILDING_PREFIX.format(name=out.name)) + r"[a-z0-9_]{8}")
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if pattern.fullmatch(p.name) and p.is_dir()
                  and not p.is_symlink())  # fmt: skip


def _recorded_files(manifest: dict[str, Any], chunks: list[RunChunk]) -> dict[str, str | None]:
    """Every file the manifest says the build wrote, with its sha256 where recorded."""
    recorded = manifest.get("files")
    if recorded is not None:
        files: dict[str, str | None] = dict(recorded.items())
    else:  # an older build: the files it always wrote, and those its manifest names
        files = {REJECTS: None, manifest["pool"]["file"]: None, manifest["mapping"]["file"]: None}
        if "passwords" in manifest:
            files[manifest["passwords"]["file"]] = None
        if (manifest.get("counts") or {}).get("already_in_pool") is not None:
            files[EXISTING] = None
    for chunk in chunks:
        files[chunk.file] = chunk.sha256
        files[chunk.map_file] = chunk.map_sha256
    for name, sha in files.items():
        # A manifest names files inside its run, by name: never a path that leads out
        # (a chunk named /etc/passwd would be uploaded to Cognito).
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"{name!r} is not the name of a file in the run directory")
        if not (sha is None or isinstance(sha, str)):
            raise ValueError(f"the sha256 of {name} is not a string")
    return files


def _check(directory: Path, name: str, expected: str | None, chunks: list[RunChunk]) -> Path:
    """The path of a run's file, checked: present, and its sha256 ``expected`` if known."""
    path = directory / name
    fix = MAPPING_HINT if name == MAPPING_COPY else REBUILD_HINT
    try:
        if expected is None:
            if not path.is_file():
                raise FileNotFoundError(name)
            return path
        digest = file_sha256(path)
    except FileNotFoundError:
        raise RefusedError(
            f"{path} is missing from the run directory; it is {_role(name, chunks)}", hint=fix
        ) from None
    except OSError as exc:  # not a file any more (a folder), or not ours to read
        if isinstance(exc, PermissionError):
            fix = "Check the permissions of the run directory and its files."
        raise RefusedError(
            f"{path} cannot be read ({exc.strerror or exc}); it is {_role(name, chunks)}",
            hint=fix,
        ) from None
    if digest != expected:
        raise _changed(directory, name, chunks)
    return path


def _changed(directory: Path, name: str, chunks: list[RunChunk]) -> RefusedError:
    return RefusedError(
        f"{directory / name} changed since the build (its sha256 no longer matches "
        f"{MANIFEST}); it is {_role(name, chunks)}",
        hint=MAPPING_HINT if name == MAPPING_COPY else REBUILD_HINT,
    )


def _role(name: str, chunks: list[RunChunk]) -> str:
    """What a file of the run is for, in a few words."""
    for chunk in chunks:
        if name == chunk.file:
            return CHUNK_ROLE
        if name == chunk.map_file:
            return MAP_ROLE.format(chunk=chunk.file)
    return ROLES.get(name, "a file of the build")


def _no_manifest(path: Path) -> ConfigError:
    """The error for a directory without a manifest: a lost one, or no build at all."""
    built = sorted(p.name for p in path.glob("chunk-*.csv"))
    built += [name for name in (REJECTS, POOL_SNAPSHOT) if (path / name).exists()]
    if built:
        shown = ", ".join(built[:3]) + (", ..." if len(built) > 3 else "")
        return ConfigError(
            f"{path} has lost its {MANIFEST}: it holds the files of a csvimport build "
            f"({shown}) but not the manifest that lists them",
            hint=NO_MANIFEST_HINT,
        )
    return ConfigError(
        f"{path} is not a finished csvimport build: it has no {MANIFEST}",
        hint="Run `csvimport build ... --out DIR` and pass that DIR; a build that "
        "failed leaves no run directory behind.",
    )


@dataclass(frozen=True)
class WrittenUser:
    """A user written to a chunk, as the chunk file and its line map tell."""

    line: int  # data line in the chunk, 1 = first user
    source_row: int
    legacy_id: str
    username: str
    email: str
    phone: str
    channels: frozenset[str]  # verified_email / verified_phone_number
    has_hash: bool


# --- the build's files, read back: damage is refused naming the file and line ----------
BUILD_AGAIN = ("Build the run again into a new directory (csvimport build ... --out NEW_DIR); "
               "never edit or delete the files of a run directory.")  # fmt: skip


def _damaged(path: Path, line: int, problem: str) -> ConfigError:
    return ConfigError(f"{path} line {line} is damaged: {problem}", hint=BUILD_AGAIN)


def _first_bad_line(path: Path) -> int:
    """The number of the first line of ``path`` that is not UTF-8."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1  # a character cut at the very end: the reader saw it first


def build_records(
    path: Path, columns: Iterable[str], *, missing_ok: bool = False
) -> Iterator[tuple[int, dict[str, str]]]:
    """Each record of a CSV file the build wrote, with the line it ends on.

    ConfigError names the file and line of any damage: a file missing (unless
    ``missing_ok``), not UTF-8, not CSV, lacking ``columns``, or a row of the wrong length.
    """
    try:
        f = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        if missing_ok:
            return
        raise ConfigError(f"{path} is missing from the run directory", hint=BUILD_AGAIN) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=BUILD_AGAIN) from None
    with f:
        reader = csv.DictReader(f)
        try:
            lacking = [c for c in columns if c not in (reader.fieldnames or [])]
            if lacking:
                raise _damaged(path, 1, f"its header lacks {', '.join(lacking)}")
            for record in reader:
                if None in record or None in record.values():  # more or fewer fields
                    raise _damaged(path, reader.line_num, "it has the wrong number of fields")
                yield reader.line_num, record
        except UnicodeDecodeError:
            raise _damaged(path, _first_bad_line(path), "it is not UTF-8 text") from None
        except csv.Error as exc:
            raise _damaged(path, reader.line_num, f"it is not CSV ({exc})") from None


def _whole(path: Path, line: int, record: dict[str, str], name: str) -> int:
    value = record[name]
    if not value.isascii() or not value.isdigit():
        raise _damaged(path, line, f"{name} must be a whole number, not {value!r:.40}")
    return int(value)


def read_line_map(run: RunDir, chunk: RunChunk) -> tuple[np.ndarray, pa.Array]:
    """The chunk's line map: the source rows and legacy ids of its data lines, in line
    order (line 1 first), as columns (a few bytes a line). Read with Arrow when the file
    is as the build wrote it, else line by line, which names the damage."""
    path = run.path / chunk.map_file
    fast = _line_map_as_written(path, chunk.rows)
    if fast is not None:
        return fast
    lines: dict[int, tuple[int, str]] = {}
    for count, (n, r) in enumerate(build_records(path, ("line", "source_row", "legacy_id")), 1):
        lines[_whole(path, n, r, "line")] = (_whole(path, n, r, "source_row"), r["legacy_id"])
        if len(lines) != count:
            raise _damaged(path, n, f"it maps line {r['line']} a second time")
    if set(lines) != set(range(1, chunk.rows + 1)):
        raise ConfigError(
            f"{path} is damaged: it maps {len(lines):,} lines, but {chunk.file} has "
            f"{chunk.rows:,} users (lines 1 to {chunk.rows:,})",
            hint=BUILD_AGAIN,
        )
    ordered = [lines[n] for n in range(1, chunk.rows + 1)]
    return (np.array([row for row, _ in ordered], dtype=np.int64),
            pa.array([legacy_id for _, legacy_id in ordered], pa.large_string()))  # fmt: skip


_MAP_COLUMNS = ("line", "source_row", "legacy_id")


_WHOLE = r"^[0-9]{1,18}$"  # a whole number, as the build writes one (fits an int64)
_WHOLE_OR_EMPTY = r"^([0-9]{1,18})?$"


def _csv_as_written(
    path: Path, columns: Sequence[str], whole: Sequence[str], whole_or_empty: Sequence[str] = ()
) -> pa.Table | None:
    """A CSV file the build wrote, read as Arrow strings: ``columns``, those in ``whole``
    holding whole numbers only, those in ``whole_or_empty`` whole numbers or nothing. None
    when Arrow cannot read it so (damage, another shape): the caller reads it record by
    record, which names the damage."""
    try:
        table = pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.large_string()),
                include_columns=list(columns), quoted_strings_can_be_null=False,
            ),
        )  # fmt: skip
    except (pa.ArrowException, OSError):
        return None
    checks = [(name, _WHOLE) for name in whole]
    checks += [(name, _WHOLE_OR_EMPTY) for name in whole_or_empty]
    for name, pattern in checks:
        if pc.all(pc.match_substring_regex(table[name], pattern)).as_py() is False:
            return None
    return table


def _line_map_as_written(path: Path, rows: int) -> tuple[np.ndarray, pa.Array] | None:
    """The line map if it reads as the build writes it (lines 1..rows in order, whole
    numbers), else None."""
    table = _csv_as_written(path, _MAP_COLUMNS, ["line", "source_row"])
    if table is None or table.num_rows != rows:
        return None
    numbers = pc.cast(table["line"], pa.int64()).to_numpy()
    if not np.array_equal(numbers, np.arange(1, rows + 1)):
        return None
    return (pc.cast(table["source_row"], pa.int64()).to_numpy(),
            table["legacy_id"].combine_chunks())  # fmt: skip


class _LineMapReader:
    """A chunk's line map read a block at a time, in step with its import file: ``take(n)``
    gives the next ``n`` lines' source rows and legacy ids (fewer at the end).

    Blocks Arrow reads as the build writes them (the next line numbers in order, whole
    numbers) are used as they come; at the first that is not, or if the lines do not end
    at the file's count, the map is read whole by ``read_line_map``, which names any
    damage, and the lines not yet taken come from it. A map as written is so never whole
    in memory (a 500,000-user file's took about 50 MiB).
    """

    def __init__(self, run: RunDir, chunk: RunChunk, *, block: int = 0) -> None:
        self.run, self.chunk = run, chunk
        self.taken = 0  # lines handed out
        self._rows: list[np.ndarray] = []
        self._ids: list[pa.Array] = []
        self._held = 0  # lines read ahead of ``taken``
        self._whole: tuple[np.ndarray, pa.Array] | None = None
        self._batches: Iterator[pa.RecordBatch] | None = None
        try:
            self._batches = iter(pa_csv.open_csv(
                run.path / chunk.map_file,
                read_options=pa_csv.ReadOptions(block_size=block or LINE_MAP_BLOCK),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(_MAP_COLUMNS, pa.large_string()),
                    include_columns=list(_MAP_COLUMNS), quoted_strings_can_be_null=False,
                ),
            ))  # fmt: skip
        except (pa.ArrowException, OSError):
            self._read_whole()

    def _read_whole(self) -> None:
        self._whole = read_line_map(self.run, self.chunk)
        self._batches, self._rows, self._ids, self._held = None, [], [], 0

    def _read_block(self) -> bool:
        """Read the next block into the buffer; False at the end (or on a switch to
        reading the map whole)."""
        assert self._batches is not None
        try:
            batch = next(self._batches, None)
        except (pa.ArrowException, OSError):
            batch = None
            self._read_whole()
            return False
        if batch is None:
            if self.taken + self._held != self.chunk.rows:
                self._read_whole()  # as many lines as the file has users, or damage
            return False
        first = self.taken + self._held + 1
        ok = all(pc.all(pc.match_substring_regex(batch[name], _WHOLE)).as_py() is not False
                 for name in ("line", "source_row"))  # fmt: skip
        if ok:
            lines = pc.cast(batch["line"], pa.int64()).to_numpy()
            ok = np.array_equal(lines, np.arange(first, first + batch.num_rows))
        if not ok:
            self._read_whole()
            return False
        self._rows.append(pc.cast(batch["source_row"], pa.int64()).to_numpy())
        self._ids.append(batch["legacy_id"])
        self._held += batch.num_rows
        return True

    def take(self, n: int) -> tuple[np.ndarray, pa.Array]:
        while self._whole is None and self._held < n and self._read_block():
            pass
        if self._whole is not None:
            rows, ids = self._whole
            start = min(self.taken, len(rows))
            end = min(start + n, len(rows))
            self.taken += end - start
            return rows[start:end], ids.slice(start, end - start)
        size = min(n, self._held)
        rows = np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64)
        ids = (pa.concat_arrays(self._ids) if self._ids
               else pa.array([], pa.large_string()))  # fmt: skip
        self._rows, self._ids = [rows[size:]], [ids.slice(size)]
        self._held -= size
        self.taken += size
        return rows[:size], ids.slice(0, size)


# Bytes of a line map Arrow parses at a time (about 10,000 lines). Its streaming reader
# reads up to 32 blocks ahead (csvimport.pieces): a 1 MiB block held about 17 MiB.
LINE_MAP_BLOCK = 1 << 18

_WRITTEN_COLUMNS = ("cognito:username", "email", "phone_number", "email_verified",
                    "phone_number_verified", "password_hash")  # fmt: skip
# Where a reset code can go (verified email and phone), by a written user's channel code:
# 1 for an email marked verified, plus 2 for a phone marked verified.
CHANNEL_SETS = tuple(frozenset(name for on, name in ((code & 1, "verified_email"),
                                                     (code & 2, "verified_phone_number"))
                               if on)
                     for code in range(4))  # fmt: skip


@dataclass(frozen=True)
class WrittenColumns:
    """Consecutive users of an import file, as columns (see ``written_columns``)."""

    first_line: int  # the data line of the first (1 = the file's first user)
    source_rows: np.ndarray  # int64
    legacy_ids: pa.Array  # large_string, like the four below
    usernames: pa.Array
    emails: pa.Array
    phones: pa.Array
    channels: np.ndarray  # channel codes: CHANNEL_SETS[code] is where a reset code can go
    has_hash: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.source_rows)


def written_columns(
    run: RunDir, chunk: RunChunk, *, batch: int = 50_000
) -> Iterator[WrittenColumns]:
    """The chunk's users in file order, ``batch`` at a time; RefusedError when its file or
    line map is missing or changed since the build, ConfigError when the line map is
    damaged. A line the map lacks gets source row 0 and no legacy id."""
    run.verify_file(chunk.map_file)
    line_map = _LineMapReader(run, chunk)
    number = 0
    for columns in read_column_arrays(run.verify_file(chunk.file), _WRITTEN_COLUMNS,
                                      batch=batch):  # fmt: skip
        usernames, emails, phones, email_flags, phone_flags, hashes = columns
        size = len(usernames)
        mapped_rows, ids = line_map.take(size)
        mapped = len(mapped_rows)
        rows = np.zeros(size, dtype=np.int64)
        rows[:mapped] = mapped_rows
        if mapped < size:
            ids = pa.concat_arrays([ids, large_strings([""] * (size - mapped))])

        def verified(values: pa.Array, flags: pa.Array) -> np.ndarray:
            on = pc.and_(pc.not_equal(values, ""), pc.equal(pc.utf8_lower(flags), "true"))
            return np.asarray(on.to_numpy(zero_copy_only=False))

        yield WrittenColumns(
            first_line=number + 1, source_rows=rows, legacy_ids=ids, usernames=usernames,
            emails=emails, phones=phones,
            channels=(verified(emails, email_flags).astype(np.uint8)
                      + 2 * verified(phones, phone_flags).astype(np.uint8)),
            has_hash=pc.not_equal(hashes, "").to_numpy(zero_copy_only=False),
        )  # fmt: skip
        number += size


def written_users(run: RunDir, chunk: RunChunk) -> Iterator[WrittenUser]:
    """The chunk's users in file order, one at a time (see ``written_columns``)."""
    for b in written_columns(run, chunk):
        for k, (row, legacy_id, username, email, phone, channels, has_hash) in enumerate(zip(
            b.source_rows.tolist(), b.legacy_ids.to_pylist(), b.usernames.to_pylist(),
            b.emails.to_pylist(), b.phones.to_pylist(), b.channels.tolist(),
            b.has_hash.tolist(), strict=True,
        )):  # fmt: skip
            yield WrittenUser(
                line=b.first_line + k, source_row=row, legacy_id=legacy_id,
                username=username, email=email, phone=phone,
                channels=CHANNEL_SETS[channels], has_hash=has_hash,
            )  # fmt: skip


def read_rejects(run: RunDir) -> list[UserResult]:
    """One result per refused source row, by source row (see ``iter_rejects``)."""
    return list(iter_rejects(run))


def _LARGE(value: str) -> pa.Scalar:  # noqa: N802 - a type, as pa.large_string is
    return pa.scalar(value, pa.large_string())


_REJECT_COLUMNS = ("source_row", "legacy_id", "attribute", "rule", "reason", "value",
                   "collided_with_row")  # fmt: skip


def iter_rejects(run: RunDir) -> Iterator[UserResult]:
    """One result per refused source row (a row may break several rules: all are named),
    by source row (see ``rejected_users``)."""
    table = rejected_users(run)
    for start in range(0, table.num_rows, 50_000):
        piece = table.slice(start, 50_000)
        for row, legacy_id, username, email, phone, rule, reason, duplicate, collided in zip(
            *(piece[name].to_pylist() for name in REJECTED_USERS.names), strict=True
        ):  # fmt: skip
            yield UserResult(
                source_row=row, legacy_id=legacy_id, username=username,
                outcome=Outcome.DUPLICATE if duplicate else Outcome.REJECTED, reason=reason,
                rule=rule, email=email, phone=phone, collided_with_row=collided,
            )  # fmt: skip


# Bytes of rejects.csv Arrow parses at a time (about 5,000 records); its streaming reader
# reads up to 32 blocks ahead (csvimport.pieces), so this bounds what the reading holds.
REJECTS_READ_BLOCK = 1 << 19
# One refused source row each (``rejected_users``): a UserResult's fields, as columns.
REJECTED_USERS = pa.schema([
    ("source_row", pa.int64()), ("legacy_id", pa.large_string()),
    ("username", pa.large_string()), ("email", pa.large_string()),
    ("phone", pa.large_string()), ("rule", pa.large_string()), ("reason", pa.large_string()),
    ("duplicate", pa.bool_()), ("collided_with_row", pa.int64()),
])  # fmt: skip


def rejected_users(run: RunDir) -> pa.Table:
    """One row per refused source row, by source row (schema ``REJECTED_USERS``): a row
    may break several rules, and all are named. ``rejects.csv`` as the build wrote it is
    read and grouped in Arrow columns (never a Python object per record); a file Arrow
    cannot read as written is read record by record, which names any damage."""
    path = run.verify_file(REJECTS)
    table = _rejects_as_written(path)
    return _rejects_by_record_table(path) if table is None else _rejects_grouped(table)


# Refused rows the report groups at a time (rejected_user_blocks): rejects.csv is split
# into this many rows' worth of source-row ranges, so that what the grouping holds does
# not grow with the run (a 2,000,000-user run refuses about 360,000 rows).
REJECTS_PER_BUCKET = 50_000


def rejected_user_blocks(
    run: RunDir, *, per_bucket: int = REJECTS_PER_BUCKET
) -> Iterator[pa.Table]:
    """``rejected_users`` in pieces, by source row: the records are read once, a block at
    a time, and put into files by ranges of source rows (a row's records all in one),
    which are then grouped one at a time. Small runs, and a file Arrow cannot read as
    written, are grouped whole (``rejected_users``)."""
    counts = run.manifest.get("counts") or {}
    rows, refused = counts.get("source_rows"), counts.get("rejected")
    duplicates = counts.get("duplicates") or 0
    if not isinstance(rows, int) or not isinstance(refused, int) or rows < 1:
        yield rejected_users(run)
        return
    buckets = -(-(refused + int(duplicates)) // per_bucket)
    if buckets <= 1:
        yield rejected_users(run)
        return
    path = run.verify_file(REJECTS)
    # the first source row of each range after the first; rows past the count go last
    bounds = np.linspace(0, rows + 1, buckets + 1)[1:-1].astype(np.int64)
    folder = private_work_folder(run.path, "report-rejects")
    try:
        parts = _rejects_bucketed(path, bounds, folder)
        if parts is None:
            yield _rejects_by_record_table(path)
            return
        for part in parts:
            with pa.memory_map(str(part)) as source:
                table = pa.ipc.open_file(source).read_all()
            part.unlink()
            yield _rejects_grouped(table)
            del table
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _rejects_bucketed(path: Path, bounds: np.ndarray, folder: Path) -> list[Path] | None:
    """rejects.csv read a block at a time into one Arrow file per range of source rows
    (``bounds``: each range's first row), records in file order; None when Arrow cannot
    read it as the build writes it (``_csv_as_written``)."""
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=REJECTS_READ_BLOCK),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(_REJECT_COLUMNS, pa.large_string()),
                include_columns=list(_REJECT_COLUMNS), quoted_strings_can_be_null=False,
            ),
        )  # fmt: skip
        paths = [folder / f"rejects-{n:04d}.arrow" for n in range(len(bounds) + 1)]
        writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
        files: dict[int, Any] = {}
        try:
            for batch in reader:
                for name, pattern in (("source_row", _WHOLE),
                                      ("collided_with_row", _WHOLE_OR_EMPTY)):  # fmt: skip
                    if pc.all(pc.match_substring_regex(batch[name], pattern)).as_py() is False:
                        return None
                rows = pc.cast(batch["source_row"], pa.int64()).to_numpy()
                bucket = np.searchsorted(bounds, rows, side="right")
                for n in np.unique(bucket).tolist():
                    if n not in writers:
                        files[n] = open_private(paths[n], "wb")
                        writers[n] = pa.ipc.new_file(files[n], batch.schema)
                    writers[n].write_batch(batch.filter(pa.array(bucket == n)))
        finally:
            for n, writer in writers.items():
                writer.close()
                files[n].close()
    except (pa.ArrowException, OSError):
        return None
    return [paths[n] for n in sorted(writers)]


def _rejects_by_record_table(path: Path) -> pa.Table:
    """``rejected_users`` read record by record: slow, but names any damage."""
    results = [_rejected(row, records) for row, records in _rejects_by_record(path)]
    return pa.table({
            "source_row": [r.source_row for r in results],
            **{name: [getattr(r, name) for r in results]
               for name in ("legacy_id", "username", "email", "phone", "rule", "reason")},
            "duplicate": [r.outcome is Outcome.DUPLICATE for r in results],
            "collided_with_row": [r.collided_with_row for r in results],
        }, schema=REJECTED_USERS)  # fmt: skip


def _rejects_grouped(table: pa.Table) -> pa.Table:
    """``rejects.csv`` as Arrow read it, grouped by source row (``rejected_users``)."""
    rows = pc.cast(table["source_row"], pa.int64())
    # stable: a row's records keep their order. Records stay where they are: each column
    # is looked up through ``order`` where needed, never copied whole in order.
    order = pc.sort_indices(rows).to_numpy()
    rows_np = rows.to_numpy()[order]
    size = len(rows_np)
    starts = np.flatnonzero(np.r_[True, rows_np[1:] != rows_np[:-1]]) if size else rows_np
    group = np.cumsum(np.r_[True, rows_np[1:] != rows_np[:-1]]) - 1 if size else rows_np

    def at(column: str, records: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
        return table[column].combine_chunks().take(pa.array(order[records], mask=mask))

    first = {name: at(name, starts) for name in ("legacy_id", "rule", "collided_with_row")}
    # "attribute: reason" (the reason alone without an attribute), each once per row; a
    # run's rejects hold a few hundred distinct pairs, so the texts are made per pair
    attributes = pc.dictionary_encode(table["attribute"].combine_chunks())
    reasons_said = pc.dictionary_encode(table["reason"].combine_chunks())
    reason_count = max(1, len(reasons_said.dictionary))
    attribute_codes = attributes.indices.to_numpy().astype(np.int64)[order]
    pair = (attribute_codes * reason_count
            + reasons_said.indices.to_numpy()[order])  # fmt: skip
    pairs, said = np.unique(pair, return_inverse=True)
    names, texts = attributes.dictionary.to_pylist(), reasons_said.dictionary.to_pylist()
    said_texts = [f"{names[p // reason_count]}: {texts[p % reason_count]}"
                  if names[p // reason_count] else texts[p % reason_count]
                  for p in pairs.tolist()]  # fmt: skip
    sizes = np.diff(np.r_[starts, size])
    several = np.flatnonzero(sizes > 1)  # rows breaking several rules: joined in Python
    row_texts = said_texts + ["; ".join(dict.fromkeys(said_texts[c] for c in said[s : s + n]))
                              for s, n in zip(starts[several].tolist(), sizes[several].tolist(),
                                              strict=True)]  # fmt: skip
    text_of_row = said[starts] if size else said
    text_of_row[several] = np.arange(len(said_texts), len(said_texts) + len(several))
    reasons = pa.array(row_texts, pa.large_string()).take(pa.array(text_of_row, pa.int64()))

    def last_value(name: str) -> pa.Array:
        """The value of each row's last record for ``name``, "" when it has none."""
        where = (
            np.flatnonzero(attribute_codes == names.index(name)) if name in names else starts[:0]
        )
        last = where[np.r_[group[where][1:] != group[where][:-1], True]] if where.size else where
        records = np.zeros(len(starts), dtype=np.int64)
        records[group[last]] = last
        missing = np.ones(len(starts), dtype=bool)
        missing[group[last]] = False
        return pc.fill_null(at("value", records, missing), "")

    duplicate = pc.equal(first["rule"], "duplicate")
    collided_text = first["collided_with_row"]
    collided = pc.if_else(pc.and_(duplicate, pc.not_equal(collided_text, "")), collided_text,
                          pa.scalar(None, pa.large_string()))  # fmt: skip
    return pa.table({
        "source_row": pa.array(rows_np[starts], pa.int64()),
        "legacy_id": first["legacy_id"], "username": last_value("cognito:username"),
        "email": last_value("email"), "phone": last_value("phone_number"),
        "rule": first["rule"], "reason": reasons, "duplicate": duplicate,
        "collided_with_row": pc.cast(collided, pa.int64()),
    }, schema=REJECTED_USERS)  # fmt: skip


def _rejects_as_written(path: Path) -> pa.Table | None:
    """rejects.csv as Arrow columns, or None when it is not as the build writes it."""
    return _csv_as_written(path, _REJECT_COLUMNS, ["source_row"], ["collided_with_row"])


def _rejects_by_record(path: Path) -> Iterator[tuple[int, list[dict[str, str]]]]:
    by_row: dict[int, list[dict[str, str]]] = defaultdict(list)
    columns = ("source_row", "legacy_id", "attribute", "rule", "reason", "value")
    for line, record in build_records(path, columns):
        if record.get("collided_with_row"):
            _whole(path, line, record, "collided_with_row")
        by_row[_whole(path, line, record, "source_row")].append(record)
    yield from sorted(by_row.items())


def _rejected(row: int, records: list[dict[str, str]]) -> UserResult:
    first = records[0]
    duplicate = first["rule"] == "duplicate"
    values = {r["attribute"]: r["value"] for r in records}
    return UserResult(
        source_row=row, legacy_id=first["legacy_id"],
        username=values.get("cognito:username", ""),
        outcome=Outcome.DUPLICATE if duplicate else Outcome.REJECTED,
        reason="; ".join(dict.fromkeys(
            f"{r['attribute']}: {r['reason']}" if r["attribute"] else r["reason"]
            for r in records)),
        rule=first["rule"], email=values.get("email", ""),
        phone=values.get("phone_number", ""),
        collided_with_row=int(first["collided_with_row"]) if duplicate
        and first.get("collided_with_row") else None,
    )  # fmt: skip


def iter_deferred(run: RunDir) -> Iterator[UserResult]:
    """One result per user the build left out of the import to migrate at first sign-in
    (``deferred.csv``), in source order; nothing when the run deferred nobody (built with
    ``--password-fallback reset``, or by an older csvimport). Read into Arrow columns as
    the build wrote it, else record by record, which names any damage. The email and phone
    are filled when the file carries them (``DEFERRED_ALIASES``)."""
    if DEFERRED not in run.files:
        return
    path = run.verify_file(DEFERRED)
    aliases = deferred_aliases_written(run)
    columns = (*DEFERRED_COLUMNS, *aliases)
    table = _csv_as_written(path, columns, ["source_row"])
    if table is None:
        records = ((_whole(path, n, r, "source_row"), r)
                   for n, r in build_records(path, columns))  # fmt: skip
        for row, r in sorted(records, key=lambda item: item[0]):
            yield _deferred(row, *(r[c] for c in DEFERRED_COLUMNS[1:]),
                            **{c: r[c] for c in aliases})  # fmt: skip
        return
    order = pc.sort_indices(pc.cast(table["source_row"], pa.int64()))
    for start in range(0, table.num_rows, 50_000):
        piece = table.take(order.slice(start, 50_000))
        rows = pc.cast(piece["source_row"], pa.int64()).to_pylist()
        values = [piece[c].to_pylist() for c in columns[1:]]
        for row, *fields in zip(rows, *values, strict=True):
            yield _deferred(row, *fields[:4], **dict(zip(aliases, fields[4:], strict=True)))


def deferred_aliases_written(run: RunDir) -> tuple[str, ...]:
    """Which of ``DEFERRED_ALIASES`` the run's ``deferred.csv`` carries (none without one)."""
    if DEFERRED not in run.files:
        return ()
    with run.verify_file(DEFERRED).open(encoding="utf-8", newline="", errors="replace") as f:
        header = next(csv.reader(f), [])
    return tuple(name for name in DEFERRED_ALIASES if name in header)


def _deferred(row: int, legacy_id: str, username: str, scheme: str, reason: str,
              email: str = "", phone_number: str = "") -> UserResult:  # fmt: skip
    return UserResult(source_row=row, legacy_id=legacy_id, username=username,
                      outcome=Outcome.DEFERRED, reason=reason, rule=scheme, email=email,
                      phone=phone_number, password=Password.MIGRATE,
                      password_why=reason)  # fmt: skip


class PasswordClasses:
    """Each written user's hash classification ("status: reason") by source row, compact:
    two bytes a row and each distinct text once (a run has a handful of them)."""

    def __init__(self) -> None:
        self._codes = np.zeros(0, dtype=np.uint16)
        self.texts = [""]  # a code's text; code 0 is "" (no classification)
        self._index = {"": 0}

    def set_all(self, rows: np.ndarray, texts: Sequence[str]) -> None:
        """Classify each of ``rows`` (int64) as the text at the same place; a row given
        twice keeps its last."""
        self._assign(rows, np.array([self._code(t) for t in texts], dtype=np.uint16))

    def _assign(self, rows: np.ndarray, codes: np.ndarray) -> None:
        if not len(rows):
            return
        top = int(rows.max()) + 1
        if top > len(self._codes):
            self._codes = np.concatenate([self._codes, np.zeros(top - len(self._codes),
                                                                dtype=np.uint16)])  # fmt: skip
        unique, last = np.unique(rows[::-1], return_index=True)  # the last of each row
        self._codes[unique] = codes[len(rows) - 1 - last]

    def _code(self, text: str) -> int:
        code = self._index.get(text)
        if code is None:
            code = self._index[text] = len(self.texts)
            self.texts.append(text)
        return code

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """The code of each of ``rows`` (0 for a row without a classification)."""
        inside = (rows >= 0) & (rows < len(self._codes))
        codes = np.zeros(len(rows), dtype=np.int64)
        codes[inside] = self._codes[rows[inside]]
        return codes

    def get(self, row: int, default: str = "") -> str:
        code = int(self.codes(np.array([row], dtype=np.int64))[0])
        return self.texts[code] if code else default


def read_password_classes(run: RunDir) -> PasswordClasses:
    """Each written user's hash classification by source row ("status: reason"); empty
    when the build mapped no password_hash. Read in Arrow columns when the file is as the
    build wrote it, else record by record, which names any damage."""
    classes = PasswordClasses()
    if PASSWORDS not in run.files:
        return classes
    path = run.verify_file(PASSWORDS)
    table = _csv_as_written(path, ("source_row", "password", "reason"), ["source_row"])
    if table is None:
        rows, texts = [], []
        for n, r in build_records(path, ("source_row", "password", "reason")):
            rows.append(_whole(path, n, r, "source_row"))
            texts.append(": ".join(filter(None, (r["password"], r["reason"]))))
        classes.set_all(np.array(rows, dtype=np.int64), texts)
        return classes
    status, reason = table["password"], table["reason"]
    both = pc.binary_join_element_wise(status, reason, _LARGE(": "))
    said = pc.if_else(pc.equal(reason, ""), status,
                      pc.if_else(pc.equal(status, ""), reason, both))  # fmt: skip
    encoded = pc.dictionary_encode(said).combine_chunks()
    texts = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    rows = pc.cast(table["source_row"], pa.int64()).to_numpy()
    code_of = np.array([classes._code(t) for t in texts] or [0], dtype=np.uint16)
    classes._assign(rows, code_of[codes])
    return classes


# --- the report's results, read back by the commands that follow it --------------------
RESULTS_DAMAGED_HINT = ("Run `csvimport report {run_dir}` again to rewrite it (the report "
                        "writes it whole); do not edit it by hand.")  # fmt: skip


def read_results(run: RunDir, *, needed_for: str) -> list[UserResult]:
    """Every user's result from ``results.jsonl`` as a list: :func:`iter_results`, whole.

    A run of millions of users holds gigabytes of these: a caller that can look at one
    result at a time uses :func:`iter_results` instead.
    """
    return list(iter_results(run, needed_for=needed_for))


def iter_results(run: RunDir, *, needed_for: str) -> Iterator[UserResult]:
    """Each user's result from ``results.jsonl``, one at a time, in the order the report
    wrote them.

    ConfigError when the report has not written it yet (``needed_for`` says what needs
    it), when a line is not a result (naming the line), or when it does not hold one
    result per source user; the hint says how to rewrite it. That last check can only come
    after the last result: a caller acts on what it read once the iteration has ended.
    """
    run_dir = run.path
    path = run_dir / RESULTS
    hint = RESULTS_DAMAGED_HINT.format(run_dir=run_dir)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise ConfigError(
            f"{run_dir} has no {RESULTS}: {needed_for}",
            hint=f"Run `csvimport report {run_dir}` first.",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=hint) from None
    count = 0
    with f:
        try:
            # Lines split at b"\n" alone, as bytes.split did: the numbers a message names
            # stay those of `sed -n` and of the damage tests.
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    result = UserResult.from_json(json.loads(raw))
                except UnicodeDecodeError:
                    problem = "it is not UTF-8 text"
                except json.JSONDecodeError:
                    problem = "it is not JSON"
                except ValueError as exc:
                    problem = str(exc)
                else:
                    count += 1
                    yield result
                    continue
                raise ConfigError(f"{path} line {number} is damaged: {problem}", hint=hint)
        except OSError as exc:  # the reading itself: the caller's errors never come here
            raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=hint) from None
    source_rows = (run.manifest.get("counts") or {}).get("source_rows")
    if isinstance(source_rows, int) and count != source_rows:
        raise ConfigError(
            f"{path} is damaged: it holds {count:,} users' results, but the run has "
            f"{source_rows:,} source users",
            hint=hint,
        )


# --- what the follow-up pass carries (followups.csv) -------------------------------------
@dataclass(frozen=True, slots=True)  # slots: one per kept user with a follow-up
class Followup:
    """One kept user's line of ``followups.csv``."""

    source_row: int
    legacy_id: str
    username: str
    groups: tuple[str, ...]
    unmapped_roles: tuple[str, ...]
    disabled: bool
    deferred: bool


def iter_followups(run: RunDir) -> Iterator[Followup]:
    """Each line of the run's ``followups.csv``, checked against the manifest's sha256;
    nothing when the mapping named neither groups nor the disabled flag."""
    if FOLLOWUPS not in run.files:
        return
    path = run.verify_file(FOLLOWUPS)
    for number, record in build_records(path, FOLLOWUPS_COLUMNS):
        row = _whole(path, number, record, "source_row")
        try:
            unmapped = json.loads(record["unmapped_roles"]) if record["unmapped_roles"] else []
        except json.JSONDecodeError:
            unmapped = None
        if not (isinstance(unmapped, list) and all(isinstance(r, str) for r in unmapped)
                and record["disabled"] in ("true", "false")
                and record["deferred"] in ("yes", "")):  # fmt: skip
            raise _damaged(path, number, "its unmapped_roles, disabled or deferred is not "
                           "as the build writes them")  # fmt: skip
        yield Followup(row, record["legacy_id"], record["username"],
                       tuple(record["groups"].split()), tuple(unmapped),
                       record["disabled"] == "true", record["deferred"] == "yes")  # fmt: skip


def legacy_disabled_rows(run: RunDir) -> set[int]:
    """The source rows of the run's users the legacy system had disabled."""
    return {f.source_row for f in iter_followups(run) if f.disabled}
