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
import pyarrow.compute as pc

from csvimport.cognito_csv import read_column_arrays
from csvimport.errors import ConfigError
from csvimport.files import open_private, replaced_private
from csvimport.outcomes import Outcome
from csvimport.pool import LIST_USERS_PAGE
from csvimport.redact import mask_username
from csvimport.report.adoption import SUMMARY_SUFFIX, VERIFY_DIR
from csvimport.report.sourcecount import SourceComparison, SourceCount, compare_source
from csvimport.retry import USER_LIST, PacedClient
from csvimport.rundir import RunDir, iter_deferred, iter_results, read_line_map

Progress = Callable[[int, int], None]  # (pages read, pages expected)

# The status of a user who has a usable password: an imported user without one
# (RESET_REQUIRED at import) who shows it has completed the reset.
CONFIRMED = "CONFIRMED"
# Where "who had to reset" learnt which users the run's jobs imported: the report's
# results, or (before any report) the users present in the pool now.
RESET_BASIS_RESULTS = "results.jsonl"
RESET_BASIS_POOL = "present in the pool"
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
    # A written user this run's jobs did not create (the report's results.jsonl): Cognito
    # skipped it (the username existed before), failed it, or its job never processed it.
    # Not compared: the pool's user, if any, is not the one the import file carries.
    NOT_IMPORTED = "not imported"


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
    # Written users imported without a usable password (RESET_REQUIRED at import), and
    # those of them CONFIRMED now: they have completed their reset.
    must_reset: int = 0
    completed_reset: int = 0
    reset_basis: str = RESET_BASIS_RESULTS
    source: SourceComparison | None = None  # with --source
    snapshot: Path | None = None
    summary: Path | None = None
    at: datetime | None = None

    @property
    def ok(self) -> bool:
        """Every written user present as written, and with ``--source`` every legacy user
        accounted for."""
        balanced = self.source is None or self.source.balanced
        return self.states.get(State.MISSING, 0) == 0 and self.differing == 0 and balanced

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "written": self.written, "deferred": self.deferred,
            "states": self.states, "differing": self.differing,
            "differing_attributes": self.differing_attributes, "statuses": self.statuses,
            "disabled": self.disabled, "others": self.others,
            "other_examples": self.other_examples, "pool_users": self.pool_users,
            "pages": self.pages, "must_reset": self.must_reset,
            "completed_reset": self.completed_reset, "reset_basis": self.reset_basis,
            "source": self.source.to_json() if self.source else None,
            "snapshot": str(self.snapshot) if self.snapshot else None,
            "summary": str(self.summary) if self.summary else None,
        }  # fmt: skip

    def summary_json(self) -> dict[str, Any]:
        """The counts kept beside the snapshot for the report's adoption section."""
        return {
            "at": self.at.isoformat(timespec="seconds") if self.at else None,
            "written": self.written, "deferred": self.deferred,
            **{state.value: self.states.get(state, 0) for state in State},
            "statuses": self.statuses, "disabled": self.disabled,
            "must_reset": self.must_reset, "completed_reset": self.completed_reset,
            "reset_basis": self.reset_basis, "differing": self.differing, "others": self.others,
            "pool_users": self.pool_users,
            "source": self.source.to_json() if self.source else None,
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
    source: SourceCount | None = None,
) -> VerifyResult:  # fmt: skip
    """Compare the pool with the run's users and write ``verify/<UTC time>.jsonl`` and,
    beside it, its counts (``.summary.json``).

    ``estimated_users`` (DescribeUserPool's EstimatedNumberOfUsers) sizes the progress
    bar; without it the run's own size does. ``source`` (see
    :func:`csvimport.report.sourcecount.count_source`) adds the legacy source's count to
    the comparison. Raises botocore errors as they come (a gone pool, throttling the
    retries outlasted): the CLI's boundary names the fix.
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
    imported, basis = _imported(run, expected.written)
    if imported is not None:  # only what this run created is compared with its files
        differs = {row: names for row, names in differs.items() if imported[row]}
    result.at = now or datetime.now(UTC)
    result.snapshot = _write_snapshot(run, expected, seen, enabled, status_codes, status_names,
                                      differs, result.at, imported)  # fmt: skip
    for row in range(total):
        state = _state(row, expected.written, bool(seen[row]), imported)
        result.states[state] = result.states.get(state, 0) + 1
        if seen[row]:
            name = status_names[status_codes[row]]
            result.statuses[name] = result.statuses.get(name, 0) + 1
            result.disabled += not enabled[row]
    result.differing = len(differs)
    for names in differs.values():
        for name in names:
            result.differing_attributes[name] = result.differing_attributes.get(name, 0) + 1
    _adoption(result, run, expected.written, status_codes, status_names, source,
              imported, basis)  # fmt: skip
    result.summary = _write_summary(result, result.snapshot)
    return result


def _adoption(
    result: VerifyResult, run: RunDir, written: int, status_codes: np.ndarray,
    status_names: list[str], source: SourceCount | None, imported: np.ndarray | None,
    basis: str,
) -> None:  # fmt: skip
    """Count the completed resets and compare with the source, from the loop's arrays."""
    must_reset = _imported_without_password(run, written)
    result.reset_basis = basis
    if imported is None:  # no report yet: the users in the pool now stand for the imported
        imported = status_codes[:written] >= 0
    must_reset &= imported
    result.must_reset = int(must_reset.sum())
    if CONFIRMED in status_names:
        confirmed = status_codes[:written] == status_names.index(CONFIRMED)
        result.completed_reset = int((must_reset & confirmed).sum())
    if source is not None:
        # Every written user in the pool counts as a legacy user there, whoever created it
        # (one Cognito skipped is that legacy user's account made before the import).
        in_pool = int((status_codes[:written] >= 0).sum())
        result.source = compare_source(
            source, run.manifest, present=in_pool,
            migrated=result.states.get(State.MIGRATED, 0),
            waiting=result.states.get(State.WAITING, 0), missing=written - in_pool,
        )  # fmt: skip


def _imported_without_password(run: RunDir, written: int) -> np.ndarray:
    """Per written user, in the run's order: imported without a password hash, so Cognito
    made them RESET_REQUIRED (an import file without the column, or an empty value)."""
    flags: list[np.ndarray] = []
    for chunk in run.chunks:
        if "password_hash" not in run.header(chunk):
            flags.append(np.ones(chunk.rows, dtype=bool))
            continue
        for (hashes,) in read_column_arrays(run.chunk_path(chunk), ["password_hash"]):
            empty = pc.fill_null(pc.equal(hashes, ""), True)
            flags.append(empty.to_numpy(zero_copy_only=False).astype(bool))
    found = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    return found[:written]  # the files are checked against the manifest: equal lengths


def _imported(run: RunDir, written: int) -> tuple[np.ndarray | None, str]:
    """Per written user: did its import job create it (the report's ``results.jsonl``), and
    where that came from; None when the report has not run (or its results are damaged).

    A user Cognito skipped (it existed already) or failed did not become RESET_REQUIRED by
    this run: it is not one who had to reset.
    """
    start: dict[str, int] = {}
    offset = 0
    for chunk in run.chunks:
        start[chunk.file] = offset
        offset += chunk.rows
    imported = np.zeros(written, dtype=bool)
    try:
        for user in iter_results(run, needed_for="the adoption counts"):
            if user.outcome is Outcome.IMPORTED and user.chunk in start and user.line:
                row = start[user.chunk] + user.line - 1
                if row < written:
                    imported[row] = True
    except ConfigError:
        return None, RESET_BASIS_POOL
    return imported, RESET_BASIS_RESULTS


def _write_summary(result: VerifyResult, snapshot: Path) -> Path:
    """The counts of ``result`` beside ``snapshot`` (mode 0600, replaced whole)."""
    path = snapshot.with_name(snapshot.name.removesuffix(".jsonl") + SUMMARY_SUFFIX)
    with replaced_private(path) as f:
        f.write(json.dumps(result.summary_json(), indent=2) + "\n")
    return path


def _state(row: int, written: int, seen: bool, imported: np.ndarray | None) -> State:
    if row < written:
        if imported is not None and not imported[row]:
            return State.NOT_IMPORTED
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
    now: datetime, imported: np.ndarray | None,
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
                "state": _state(row, expected.written, present, imported).value,
                "status": status_names[status_codes[row]] if present else None,
                "enabled": bool(enabled[row]) if present else None,
                "differing": differs.get(row, []),
            }) + "\n")  # fmt: skip
    return path
