"""The journal every pass over the pool's users writes (csvimport.passjournal)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from csvimport.errors import ConfigError
from csvimport.passjournal import PassJournal, Step

HINT = "restore it"


def journal(path: Path) -> PassJournal:
    return PassJournal(path, what="a test-pass record", damaged_hint=HINT)


def test_the_last_line_per_key_wins_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "pass.jsonl"
    first = journal(path)
    first.record("disable alice", Step.CALLING)
    first.record("disable alice", Step.DONE)
    first.record("disable bob", Step.CALLING)
    again = journal(path)
    assert again.last()["disable alice"].step is Step.DONE
    assert again.may_have_called("disable bob")  # an intent last: the call may have gone out
    assert not again.may_have_called("disable carol")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_torn_last_line_is_ignored_then_cut_before_the_next(tmp_path: Path) -> None:
    path = tmp_path / "pass.jsonl"
    journal(path).record("delete alice", Step.CALLING)
    with path.open("ab") as f:
        f.write(b'{"at": "2026-12-03T06:00:00+00:00", "key": "delete al')  # killed mid-write
    reopened = journal(path)
    assert reopened.last()["delete alice"].step is Step.CALLING
    reopened.record("delete alice", Step.DONE, "already gone")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith('{"at": "') for line in lines)
    assert journal(path).last()["delete alice"].reason == "already gone"


def test_damage_a_crash_cannot_explain_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pass.jsonl"
    journal(path).record("disable alice", Step.DONE)
    with path.open("a") as f:
        f.write("not json\n")
    with pytest.raises(ConfigError, match=r"line 2 is damaged: it is not a test-pass record"):
        journal(path)
