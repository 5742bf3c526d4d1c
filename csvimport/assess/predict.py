"""What ``csvimport build`` would do with the source, a mapping and a pool, without a run.

The build has no dry mode: the prediction runs the real build, as ``csvimport build``
would, into a temporary folder that is removed afterwards whatever happens, so what it
predicts is what the build then does (the same rules, the same duplicate handling).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from csvimport.build.builder import BuildOptions, build
from csvimport.build.choices import DuplicatePolicy, PasswordFallback
from csvimport.build.sources.base import SourceSpec
from csvimport.pool import PoolSnapshot

WORK_PREFIX = "csvimport-assess-"  # the temporary run's folder, under the system's temp


def predict(
    spec: SourceSpec, mapping: Path, snapshot: PoolSnapshot, *,
    duplicates: DuplicatePolicy = DuplicatePolicy.KEEP_FIRST,
    password_fallback: PasswordFallback = PasswordFallback.RESET,
) -> dict[str, Any]:  # fmt: skip
    """The build's outcome: written, rejected by reason, duplicates, deferred."""
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX))
    try:
        options = BuildOptions(spec, mapping, work / "run", duplicates=duplicates,
                               password_fallback=password_fallback)  # fmt: skip
        result = build(options, snapshot)
        predicted: dict[str, Any] = {
            "written": result.written,
            "rejected": dict(result.reasons),
            "rejected_total": result.rejected,
            "duplicates": result.duplicates,
            "deferred": result.deferred,
            "duplicates_policy": duplicates.value,
            "password_fallback": password_fallback.value,
        }
        if result.passwords is not None:
            predicted["passwords"] = dict(result.passwords)
        return predicted
    finally:
        shutil.rmtree(work, ignore_errors=True)
