"""``verify --source``: is every legacy user accounted for, in the pool or by the run?

The legacy source is counted, never loaded: a database counts its rows itself (the same
``COUNT(*)`` its fingerprint in the run manifest records), a file is read a chunk at a time
by the build's own source readers and only the chunks' lengths are kept. So the count is
the build's ``source_rows``: a garbled CSV line counts as the build counted it.

The comparison: every source row now should be a user in the pool (one the run wrote, or
one the migration function created from the run's deferred users), or one the run
accounted for without the pool (rejected, dropped as a duplicate, deferred and still
waiting for a first sign-in). What is left over is named: users the run wrote that are
missing from the pool, and rows the source gained or lost since the build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csvimport.build.sources.base import SourceSpec
from csvimport.build.sources.opener import open_source

FILE_KINDS = frozenset({"csv", "jsonl", "json"})


@dataclass(frozen=True)
class SourceCount:
    """The legacy source's rows, counted now; ``source`` as shown (credentials masked)."""

    source: str
    rows: int
    # What names the source as the run manifest's "source" does: a file's absolute path, or
    # a database's masked URL with its table or query.
    identity: dict[str, str] = field(default_factory=dict)


def count_source(spec: SourceSpec, *, on_rows: Callable[[int], None] | None = None) -> SourceCount:
    """Count the source's rows without holding them; ``on_rows`` hears each chunk's length.

    Raises SourceError (a missing file, an unreachable database, a bad table or query) with
    the same message and hint ``build`` gives.
    """
    source = open_source(spec)
    if source.kind not in FILE_KINDS:
        found = source.fingerprint()  # the database counts: COUNT(*)
        rows = int(found["rows"])
        if on_rows is not None:
            on_rows(rows)
        identity = {k: str(found[k]) for k in _DATABASE_IDENTITY if found.get(k) is not None}
        return SourceCount(source=source.describe(), rows=rows, identity=identity)
    rows = 0
    for chunk in source.chunks():
        rows += len(chunk)
        if on_rows is not None:
            on_rows(len(chunk))
    path = str(Path(spec.location.strip()).expanduser().resolve())
    return SourceCount(source=source.describe(), rows=rows, identity={"path": path})


_DATABASE_IDENTITY = ("url", "table", "query")


@dataclass(frozen=True)
class SourceComparison:
    """The source's rows now against the pool's users and the run's own accounting."""

    source: str
    source_rows: int  # counted now
    built_rows: int  # the source rows the run was built from (its manifest)
    in_pool: int  # written users present + deferred users the migration function created
    rejected: int  # refused by the build
    duplicates: int  # dropped by the build
    waiting: int  # deferred users not in the pool yet
    missing: int  # written users not in the pool
    built_from: str | None = None  # the run's source, when this one is not it

    @property
    def accounted(self) -> int:
        return self.in_pool + self.rejected + self.duplicates + self.waiting

    @property
    def unaccounted(self) -> int:
        """Source rows neither in the pool nor accounted for by the run (negative: more
        users accounted for than the source has now)."""
        return self.source_rows - self.accounted

    @property
    def balanced(self) -> bool:
        return self.unaccounted == 0

    def differences(self) -> list[str]:
        """What makes the counts differ, in words, each naming what to do; [] when none."""
        said: list[str] = []
        if self.built_from is not None:
            said.append(
                f"the run was built from {self.built_from}, not from this source: give "
                "that one to --source, or the counts compare different users"
            )
        if self.missing:
            said.append(
                f"{self.missing:,} users the run wrote are not in the pool (deleted since, "
                "or their import failed or never ran): the snapshot names them"
            )
        changed = self.source_rows - self.built_rows
        if changed > 0:
            said.append(
                f"the source has {changed:,} more rows than the {self.built_rows:,} the run "
                "was built from: users added to it since are in no run (build a new run)"
            )
        elif changed < 0:
            said.append(
                f"the source has {-changed:,} fewer rows than the {self.built_rows:,} the "
                "run was built from: users removed from it since (or another source given)"
            )
        rest = self.unaccounted - self.missing - changed
        if rest:
            said.append(
                f"{abs(rest):,} users are {'un' if rest > 0 else 'over-'}accounted for by "
                "the run's own counts (its manifest's written, rejected, duplicates and "
                "deferred do not add up to its source rows): build the run again"
            )
        return said

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "source_rows": self.source_rows,
            "built_rows": self.built_rows, "in_pool": self.in_pool, "rejected": self.rejected,
            "duplicates": self.duplicates, "waiting": self.waiting, "missing": self.missing,
            "accounted": self.accounted, "unaccounted": self.unaccounted,
            "balanced": self.balanced, "built_from": self.built_from,
            "differences": self.differences(),
        }  # fmt: skip


def compare_source(
    count: SourceCount, manifest: dict[str, Any], *, present: int, migrated: int, waiting: int,
    missing: int,
) -> SourceComparison:  # fmt: skip
    """Set the counted source against the pool's users (by state) and the run's manifest."""
    counts = manifest.get("counts") or {}

    def counted(name: str) -> int:
        value = counts.get(name)
        return value if isinstance(value, int) else 0

    return SourceComparison(
        source=count.source, source_rows=count.rows, built_rows=counted("source_rows"),
        in_pool=present + migrated, rejected=counted("rejected"),
        duplicates=counted("duplicates"), waiting=waiting, missing=missing,
        built_from=_other_source(count, manifest.get("source") or {}),
    )  # fmt: skip


def _other_source(count: SourceCount, built: dict[str, Any]) -> str | None:
    """The run's source as its manifest names it, when ``count`` is not that source."""
    recorded = {k: str(built[k]) for k in count.identity if built.get(k) is not None}
    if not count.identity or recorded == count.identity:
        return None
    if "path" in built:
        return str(built["path"])
    what = (
        f" table {built['table']}" if built.get("table") else " query" if "query" in built else ""
    )
    return f"{built.get('url', 'another source')}{what}"
