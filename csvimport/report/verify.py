"""Verify the pool after an import: is every user the run wrote there, as it was written?

Reads the whole pool with ListUsers (never AdminGetUser, which counts as a monthly active
user), paced under the account's UserList quota that the pool's applications share (facts
§9), and compares each page, as it arrives, with the users the run's import files carry.

Memory grows with the run, never with the pool: the run's users are held as one dict from
username (folded as the pool compares usernames) to a row number, plus a numpy matrix of
one 64-bit hash per user and compared attribute (Python's ``hash`` of the value, salted per
process: both sides are hashed in the same process). No attribute value is kept, so no
personal data lingers in memory or reaches the snapshot. A page of the pool is compared and
dropped. A hash collision could hide one changed value with odds of about 2**-64.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from csvimport.cognito_csv import read_column_arrays
from csvimport.files import open_private
from csvimport.pool import LIST_USERS_PAGE
from csvimport.redact import mask_username
from csvimport.retry import USER_LIST, PacedClient
from csvimport.rundir import RunDir, iter_deferred, read_line_map

Progress = Callable[[int, int], None]  # (pages read, pages expected)

VERIFY_DIR = "verify"  # in the run directory: one snapshot per verify
EXAMPLES_SHOWN = 5  # pool users the run did not write, shown masked
# Import-file columns that are not user attributes ListUsers returns: the username is the
# key, the MFA flag and the password hash are never returned.
NOT_COMPARED = frozenset({"cognito:username", "cognito:mfa_enabled", "password_hash"})
# Booleans Cognito stores as "true"/"false" whatever the case they were imported in.
# UNVERIFIED: that Cognito lowercases "True" in these columns on import.
BOOLEAN_ATTRIBUTES = frozenset({"email_verified", "phone_number_verified"})


class State(StrEnum):
    PRESENT = "present"  # a written user found in the pool
    MISSING = "missing"  # a written user not in the pool
    MIGRATED = "migrated"  # a deferred user in the pool: the migration function created it
    WAITING = "waiting"  # a deferred user not in the pool yet


@dataclass
class VerifyResult:
    """What ``verify`` found; ``ok`` when every written user is present as written."""

    written: int = 0
    deferred: int = 0
    states: dict[str, int] = field(default_factory=dict)
    differing: int = 0  # present users with at least one attribute unlike the import file
    differing_attributes: dict[str, int] = field(default_factory=dict)  # name -> users
    statuses: dict[str, int] = field(default_factory=dict)  # UserStatus of present users
    disabled: int = 0
    others: int = 0  # pool users the run did not write or defer
    other_examples: list[str] = field(default_factory=list)  # masked usernames
    pool_users: int = 0
    pages: int = 0
    snapshot: Path | None = None

    @property
    def ok(self) -> bool:
        return self.states.get(State.MISSING, 0) == 0 and self.differing == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "written": self.written, "deferred": self.deferred,
            "states": self.states, "differing": self.differing,
            "differing_attributes": self.differing_attributes, "statuses": self.statuses,
            "disabled": self.disabled, "others": self.others,
            "other_examples": self.other_examples, "pool_users": self.pool_users,
            "pages": self.pages, "snapshot": str(self.snapshot) if self.snapshot else None,
        }  # fmt: skip


class _Expected:
    """The run's users, compact: username -> row, per-attribute hashes, ids as lists."""

    def __init__(self, run: RunDir, case_sensitive: bool) -> None:
        self.fold: Callable[[str], str] = (lambda s: s) if case_sensitive else str.lower
        self.attributes: list[str] = []
        for chunk in run.chunks:
            for name in run.header(chunk):
                if name not in NOT_COMPARED and name not in self.attributes:
                    self.attributes.append(name)
        self.row: dict[str, int] = {}
        self.legacy_ids: list[str] = []
        self.usernames: list[str] = []
        hashes: list[np.ndarray] = []
        for chunk in run.chunks:
            run.verify(chunk)
            first = len(self.usernames)
            names = ["cognito:username", *self.attributes]
            for columns in read_column_arrays(run.chunk_path(chunk), names):
                users = columns[0].to_pylist()
                block = np.empty((len(users), len(self.attributes)), dtype=np.int64)
                for k, (name, values) in enumerate(zip(self.attributes, columns[1:],
                                                       strict=True)):  # fmt: skip
                    block[:, k] = [_hash(name, v) for v in values.to_pylist()]
                hashes.append(block)
                for username in users:
                    self.row[self.fold(username)] = len(self.usernames)
                    self.usernames.append(username)
            _, ids = read_line_map(run, chunk)  # legacy ids, in the file's order
            read = len(self.usernames) - first
            known = ids.to_pylist()[:read]
            self.legacy_ids += known + [""] * (read - len(known))
        self.written = len(self.usernames)
        self.hashes = (np.concatenate(hashes) if hashes
                       else np.empty((0, len(self.attributes)), dtype=np.int64))  # fmt: skip
        for user in iter_deferred(run):
            self.row[self.fold(user.username)] = len(self.usernames)
            self.usernames.append(user.username)
            self.legacy_ids.append(user.legacy_id)


def _hash(name: str, value: str | None) -> int:
    value = value or ""
    if name in BOOLEAN_ATTRIBUTES:
        value = value.lower()
    return hash(value)


def verify(
    run: RunDir, client: Any, *, rate: float = USER_LIST.rate, on_progress: Progress | None = None,
    now: datetime | None = None, estimated_users: int | None = None,
) -> VerifyResult:  # fmt: skip
    """Compare the pool with the run's users and write ``verify/<UTC time>.jsonl``.

    ``estimated_users`` (DescribeUserPool's EstimatedNumberOfUsers) sizes the progress
    bar; without it the run's own size does. Raises botocore errors as they come (a gone
    pool, throttling the retries outlasted): the CLI's boundary names the fix.
    """
    expected = _Expected(run, run.snapshot.case_sensitive)
    total = len(expected.usernames)
    seen = np.zeros(total, dtype=bool)
    enabled = np.zeros(total, dtype=bool)
    status_codes = np.full(total, -1, dtype=np.int16)
    status_names: list[str] = []
    differs: dict[int, list[str]] = {}
    result = VerifyResult(written=expected.written, deferred=total - expected.written)
    calls = PacedClient(client.client if isinstance(client, PacedClient) else client,
                        rates={USER_LIST: rate})  # fmt: skip
    estimate = max(1, -(-max(total, estimated_users or 0) // LIST_USERS_PAGE))
    for page in _pages(calls, run.user_pool_id):
        result.pages += 1
        for user in page:
            result.pool_users += 1
            row = expected.row.get(expected.fold(str(user["Username"])))
            if row is None:
                result.others += 1
                if len(result.other_examples) < EXAMPLES_SHOWN:
                    result.other_examples.append(mask_username(str(user["Username"])))
                continue
            seen[row] = True
            enabled[row] = bool(user.get("Enabled", True))
            status = str(user.get("UserStatus", "UNKNOWN"))
            if status not in status_names:
                status_names.append(status)
            status_codes[row] = status_names.index(status)
            if row < expected.written:
                values = {a["Name"]: a.get("Value", "") for a in user.get("Attributes", [])}
                # Plain lists: a numpy array per user cost more than the comparison.
                got = [_hash(name, values.get(name)) for name in expected.attributes]
                want = expected.hashes[row].tolist()
                if got != want:
                    differs[row] = [name for name, g, w in zip(expected.attributes, got, want,
                                                               strict=True) if g != w]  # fmt: skip
        if on_progress is not None:
            on_progress(result.pages, max(result.pages, estimate))
    result.snapshot = _write_snapshot(run, expected, seen, enabled, status_codes, status_names,
                                      differs, now or datetime.now(UTC))  # fmt: skip
    for row in range(total):
        state = _state(row, expected.written, bool(seen[row]))
        result.states[state] = result.states.get(state, 0) + 1
        if seen[row]:
            name = status_names[status_codes[row]]
            result.statuses[name] = result.statuses.get(name, 0) + 1
            result.disabled += not enabled[row]
    result.differing = len(differs)
    for names in differs.values():
        for name in names:
            result.differing_attributes[name] = result.differing_attributes.get(name, 0) + 1
    return result


def _state(row: int, written: int, seen: bool) -> State:
    if row < written:
        return State.PRESENT if seen else State.MISSING
    return State.MIGRATED if seen else State.WAITING


def _pages(calls: PacedClient, pool_id: str) -> Iterator[list[dict[str, Any]]]:
    """The pool's users a page at a time; a page may be short, so follow the token."""
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": LIST_USERS_PAGE}
    while True:
        page: Any = calls.list_users(**kwargs)
        yield page.get("Users", [])
        token = page.get("PaginationToken")
        if not token:
            return
        kwargs["PaginationToken"] = token


def _write_snapshot(
    run: RunDir, expected: _Expected, seen: np.ndarray, enabled: np.ndarray,
    status_codes: np.ndarray, status_names: list[str], differs: dict[int, list[str]],
    now: datetime,
) -> Path:  # fmt: skip
    """One line per written or deferred user; attribute names that differ, never values."""
    folder = run.path / VERIFY_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.jsonl"
    with open_private(path) as f:
        for row, (legacy_id, username) in enumerate(zip(expected.legacy_ids, expected.usernames,
                                                        strict=True)):  # fmt: skip
            present = bool(seen[row])
            f.write(json.dumps({
                "legacy_id": legacy_id, "username": username,
                "state": _state(row, expected.written, present).value,
                "status": status_names[status_codes[row]] if present else None,
                "enabled": bool(enabled[row]) if present else None,
                "differing": differs.get(row, []),
            }) + "\n")  # fmt: skip
    return path
