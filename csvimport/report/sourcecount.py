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
from dataclasses import dataclass
from typing import Any

from csvimport.build.sources.base import SourceSpec
from csvimport.build.sources.opener import open_source

FILE_KINDS = frozenset({"csv", "jsonl", "json"})


@dataclass(frozen=True)
class SourceCount:
    """The legacy source's rows, counted now; ``source`` as shown (credentials masked)."""

    source: str
    rows: int


def count_source(spec: SourceSpec, *, on_rows: Callable[[int], None] | None = None) -> SourceCount:
    """Count the source's rows without holding them; ``on_rows`` hears each chunk's length.

    Raises SourceError (a missing file, an unreachable database, a bad table or query) with
    the same message and hint ``build`` gives.
    """
    source = open_source(spec)
    if source.kind not in FILE_KINDS:
        rows = int(source.fingerprint()["rows"])  # the database counts: COUNT(*)
        if on_rows is not None:
            on_rows(rows)
        return SourceCount(source=source.describe(), rows=rows)
    rows = 0
    for chunk in source.chunks():
        rows += len(chunk)
        if on_rows is not None:
            on_rows(len(chunk))
    return SourceCount(source=source.describe(), rows=rows)


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
            "balanced": self.balanced, "differences": self.differences(),
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
    )  # fmt: skip
