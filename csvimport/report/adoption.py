"""Adoption over time: the counts each ``csvimport verify`` left beside its snapshot.

Every verify writes ``verify/<UTC time>.summary.json`` (counts only, see
:meth:`csvimport.report.verify.VerifyResult.summary_json`); the report reads those small
files, never the snapshots (one line per user), so its adoption section costs nothing
however large the run. Run ``verify`` again and the section gains a point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from csvimport.outcomes import AdoptionPoint

VERIFY_DIR = "verify"  # in the run directory: one snapshot per verify, and its summary
# Beside each snapshot: its counts only (no username), what the report's adoption section
# reads, so the report never reads the snapshots themselves.
SUMMARY_SUFFIX = ".summary.json"
SUMMARY_GLOB = f"*{SUMMARY_SUFFIX}"
_COUNTS = ("must_reset", "completed_reset", "deferred", "migrated", "waiting", "disabled",
           "missing")  # fmt: skip


def read_adoption(run_dir: Path) -> tuple[list[AdoptionPoint], list[str]]:
    """Every verify summary of the run, oldest first, and a warning per unreadable one
    (the report goes on without it)."""
    points: list[AdoptionPoint] = []
    warnings: list[str] = []
    for path in sorted((run_dir / VERIFY_DIR).glob(SUMMARY_GLOB)):
        try:
            points.append(_point(json.loads(path.read_bytes())))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            warnings.append(
                f"{path} is not a verify summary ({exc.__class__.__name__}): the adoption "
                "chart leaves it out; remove it, or run `csvimport verify` again"
            )
    points.sort(key=lambda p: p.at)
    return points, warnings


def _point(data: Any) -> AdoptionPoint:
    at = data["at"]
    if not isinstance(at, str):
        raise TypeError("no time")
    counts = {name: data[name] for name in _COUNTS}
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
               for n in counts.values()):  # fmt: skip
        raise ValueError("a count is not a whole number")
    return AdoptionPoint(at=at, **counts)


def adoption_sentence(point: AdoptionPoint) -> str:
    """What the last verify found, for the people who sponsor the migration."""
    parts = []
    if point.must_reset:
        share = point.completed_reset / point.must_reset
        parts.append(f"{point.completed_reset:,} of {point.must_reset:,} users who had to "
                     f"reset their password have done so ({share:.0%})")  # fmt: skip
    if point.deferred:
        parts.append(
            f"{point.migrated:,} of {point.deferred:,} users left to move at their "
            f"first sign-in have signed in ({point.migrated / point.deferred:.0%})"
        )
    if not parts:
        parts.append("no user of this run had to reset a password or sign in to move")
    return "; ".join(parts) + f" as of {point.date}."
