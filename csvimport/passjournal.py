"""Journals of passes over a pool's users: one appended, fsynced JSON line per step.

A pass (reset codes, group memberships, disabling, deleting) calls Cognito once per user
and must never call twice for the same thing, even when it is killed: before each call it
records the intent, after it the outcome, each line flushed and fsynced before the pass
goes on. Read back, the last line per key wins; an intent with no outcome after it means
the call may have been made (the pass was killed between the call and its record), so a
pass does not repeat it unless asked.

Every line starts with ``{"at": "``. A last line without its newline that starts like that
is torn (the pass was killed while writing it) and is ignored when read, and cut off
before the next line is written, so that line starts on its own. Any other line that is
not an entry is damage no crash explains: :class:`~csvimport.errors.ConfigError` names it.

``csvimport.passwords.resets`` (``resets.jsonl``) keeps its own record type on these
functions; :class:`PassJournal` is the general form for passes that record a state and a
reason per key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from csvimport.errors import ConfigError
from csvimport.files import PRIVATE_FILE_MODE, fsync_folder

ENTRY_START = b'{"at": "'  # how every line of a journal begins (append_entry writes "at" first)


class Step(StrEnum):
    """A key's state in a :class:`PassJournal`: its last line wins."""

    # The intent, written and fsynced before the call: as a key's last line it means the
    # pass stopped between the call and its outcome, so the call may have been made.
    CALLING = "calling"
    DONE = "done"  # Cognito answered yes (or "already so": the reason says)
    FAILED = "failed"  # Cognito refused this one for good (reason)
    NOT_DONE = "not done"  # refused for now (throttling that outlasted the retries)
    SKIPPED = "skipped"  # the pass decided not to call (reason)


def append_entry(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``{"at": <now>, **entry}`` as one line, fsync it (and the folder when the
    file is new); the file is 0600 whatever mode it had. Returns the line as written."""
    # "at" first: a reader tells a torn last line by its start (ENTRY_START).
    line = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **entry}
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_folder(path.parent)
    return line


def cut_torn_tail(path: Path) -> None:
    """Drop a last line a killed pass left without its newline (never read anyway)."""
    try:
        f = path.open("r+b")
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        cut = end
        # Back from the end, a block at a time, to the last newline: the file can be
        # hundreds of megabytes, the torn line is short.
        while cut > 0:
            start = max(0, cut - 65_536)
            f.seek(start)
            block = f.read(cut - start)
            if (newline := block.rfind(b"\n")) >= 0:
                cut = start + newline + 1
                break
            cut = start
        if cut != end:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())


def iter_entries(
    path: Path, parse: Callable[[bytes], dict[str, Any] | None], *, what: str, damaged_hint: str
) -> Iterator[dict[str, Any]]:
    """Each complete line of the journal at ``path``, in order, as ``parse`` reads it.

    ``parse`` returns None for a line that is not an entry: ConfigError names the line,
    with ``damaged_hint``, rather than a key silently losing its record. ``what`` names an
    entry in that error ("a reset-wave record"). Nothing when the file does not exist.
    """
    hint = f"{path.name} must be a file csvimport can read."
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=hint) from None
    with f:
        try:
            for number, raw in enumerate(f, start=1):
                torn = not raw.endswith(b"\n")  # only the last line can be
                if torn and (ENTRY_START.startswith(raw) or raw.startswith(ENTRY_START)):
                    return
                if not raw.strip():
                    continue
                entry = parse(raw)
                if entry is None:
                    raise ConfigError(
                        f"{path} line {number} is damaged: it is not {what}", hint=damaged_hint
                    )
                yield entry
        except OSError as exc:  # the reading itself: the caller's errors never come here
            raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=hint) from None


@dataclass(frozen=True, slots=True)  # slots: a pass can journal millions of keys
class Last:
    """A key's last line, as much of it as a pass needs."""

    step: Step
    reason: str
    at: str  # ISO UTC time of the line


class PassJournal:
    """A pass's journal: per key (for example ``"disable alice"``), the intent before each
    call and its outcome after; the last line per key wins.

    Only each key's last line is held in memory, with one copy of each distinct reason.
    """

    def __init__(self, path: Path, *, what: str, damaged_hint: str) -> None:
        self.path = path
        self._what = what
        self._hint = damaged_hint
        self._last: dict[str, Last] = {}
        self._shared: dict[str, str] = {}
        for entry in iter_entries(path, _parse, what=what, damaged_hint=damaged_hint):
            self._note(entry)
        self._tail_checked = False

    def last(self) -> Mapping[str, Last]:
        """Each key's last record (live: a record changes it)."""
        return self._last

    def may_have_called(self, key: str) -> bool:
        """Whether the call for ``key`` was made or may have been (done, or an intent last)."""
        last = self._last.get(key)
        return last is not None and last.step in (Step.DONE, Step.CALLING)

    def record(self, key: str, step: Step, reason: str = "") -> None:
        """Append one line and fsync it."""
        if not self._tail_checked:
            cut_torn_tail(self.path)
            self._tail_checked = True
        self._note(append_entry(self.path, {"key": key, "step": step.value, "reason": reason}))

    def _note(self, entry: dict[str, Any]) -> None:
        reason = entry.get("reason", "")
        self._last[entry["key"]] = Last(
            Step(entry["step"]), self._shared.setdefault(reason, reason), entry["at"]
        )


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)
            and isinstance(entry.get("at"), str) and entry.get("step") in set(Step)
            and isinstance(entry.get("reason", ""), str)):  # fmt: skip
        return None
    return entry
