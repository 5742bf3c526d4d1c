"""Property: whatever mess the legacy rows hold, build accounts for every row, and every
row it writes is imported by the sandbox (Cognito's rules, independently implemented)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvimport.build import BuildOptions, build
from csvimport.pool import read_pool
from csvimport.sandbox import Sandbox
from csvimport.sources.base import SourceSpec

from .helpers import LEGACY_COLUMNS, LEGACY_MAPPING, Importer, pool_spec

messy_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)
logins = st.one_of(st.sampled_from(["ann", "ANN", "bob", "b ob", "", "zoë", "x" * 130]), messy_text)
emails = st.one_of(
    st.sampled_from(["a@example.com", "A@Example.COM", "bad", "", "c@x"]), messy_text
)
flags = st.sampled_from(["Y", "n", "1", "0", "yes", "TRUE", "maybe", ""])
phones = st.one_of(
    st.sampled_from(["", "(415) 555-2671", "+44 20 7946 0958", "12", "+1"]), messy_text
)
names = st.one_of(st.sampled_from(["Ann", "O'Neil, Jr.", "", "Zoë\u200f"]), messy_text)
dates = st.sampled_from(["", "2020-01-01", "2024-05-01T10:00:00", "soon", "1700000000"])
rows = st.lists(st.tuples(logins, emails, flags, phones, names, names, dates), max_size=25)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(legacy=rows)
def test_messy_rows_are_all_accounted_for_and_written_rows_import(
    legacy: list[tuple[str, ...]], sandbox: Sandbox, cognito: Any, logs: Any
) -> None:
    info = sandbox.create_pool(pool_spec())
    importer = Importer(cognito, logs, info)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "legacy.csv"
        with source.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(LEGACY_COLUMNS)
            for n, (login, email, flag, phone, first, last, modified) in enumerate(legacy, 1):
                writer.writerow([n, login, email, flag, phone, first, last, modified])
        mapping = work / "mapping.toml"
        mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
        result = build(
            BuildOptions(SourceSpec(str(source)), mapping, work / "run"),
            read_pool(cognito, info.user_pool_id),
        )
        assert result.source_rows == len(legacy)
        assert result.source_rows == result.written + result.rejected + result.duplicates
        with (work / "run" / "rejects.csv").open(encoding="utf-8", newline="") as f:
            refused = {r["source_row"] for r in csv.DictReader(f)}
        assert len(refused) == result.rejected + result.duplicates
        sandbox.settings.update(fail_job_after_bad_rows=10**6)
        for chunk in result.chunks:
            run = importer.run((work / "run" / chunk.file).read_bytes())
            assert run.job["FailedUsers"] == 0, importer.log_lines(run.job_id)
            assert run.job["SkippedUsers"] == 0
            assert run.job["ImportedUsers"] == chunk.rows
