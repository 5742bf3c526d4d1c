"""A finished run directory, as ``build`` left it: manifest, chunks, pool snapshot.

``start``, ``status``, ``stop`` and ``report`` open a run with :meth:`RunDir.open`, which
refuses anything that is not a finished build (no manifest means the build failed or is
still running) and checks a chunk's bytes against the manifest before they are uploaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csvimport.errors import ConfigError, RefusedError
from csvimport.pool import PoolSnapshot

# The files of a run directory that several stages read (build writes them).
MANIFEST = "manifest.json"
REJECTS = "rejects.csv"
PASSWORDS = "passwords.csv"  # each written user's password-hash verdict (report reads it)
RUN_ID_CHARS = 8


@dataclass(frozen=True)
class RunChunk:
    """One import file of the run, as the manifest lists it."""

    file: str
    map_file: str
    rows: int
    bytes: int
    sha256: str
    password_algorithm: str | None = None

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

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """Read a finished run; ConfigError when ``path`` is not one."""
        if not path.is_dir():
            raise ConfigError(
                f"run directory {path} does not exist",
                hint="Pass the --out directory of a `csvimport build`.",
            )
        manifest_path = path / MANIFEST
        try:
            raw = manifest_path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"{path} is not a finished csvimport build: it has no {MANIFEST}",
                hint="Run `csvimport build ... --out DIR` and pass that DIR; a build that "
                "failed leaves no run directory behind.",
            ) from None
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
                )
                for c in manifest["chunks"]
            ]
            snapshot = PoolSnapshot.load(path / manifest["pool"]["file"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{manifest_path} is damaged ({exc!r})",
                hint="Build the run again; do not edit a run directory by hand.",
            ) from None
        # The run's identity: stable for this build, different for any other build, short
        # enough for job names (1-128 characters).
        run_id = hashlib.sha256(raw).hexdigest()[:RUN_ID_CHARS]
        return cls(path=path, manifest=manifest, chunks=chunks, snapshot=snapshot, run_id=run_id)

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
        path = self.chunk_path(chunk)
        digest = hashlib.sha256()
        try:
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except FileNotFoundError:
            raise RefusedError(
                f"{path} is missing from the run directory",
                hint="Build the run again into a new directory; never delete or edit chunk files.",
            ) from None
        if digest.hexdigest() != chunk.sha256:
            raise RefusedError(
                f"{path} changed since the build (its sha256 no longer matches manifest.json)",
                hint="Build again into a new directory instead of editing an import file: "
                "the line maps and reports rely on the file being exactly what was built.",
            )
