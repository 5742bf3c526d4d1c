"""Find users that collide inside the source, and decide which one goes, by policy.

Cognito refuses a second user with the same username (case-folded in a case-insensitive
pool) and, in pools that use them as username attributes or aliases, the same email or
phone. Finding those before the import turns a SKIPPED/FAILED log line into a clear
pre-import decision that names the row each dropped user collided with.

Memory: per user, one 64-bit hash per key and its row number, in NumPy arrays, whatever
the number of users; the actual values are not kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from csvimport.build.choices import DuplicatePolicy
from csvimport.pool import PoolSnapshot


@dataclass(frozen=True)
class Duplicate:
    """A dropped user: which key collided, and with which source row."""

    row: int
    attribute: str
    collided_with: int

    def reason(self, policy: DuplicatePolicy) -> str:
        what = {"cognito:username": "username"}.get(self.attribute, self.attribute)
        if policy is DuplicatePolicy.REJECT_ALL:
            return (
                f"Same {what} as source row {self.collided_with}; with --duplicates "
                "reject-all neither is imported. Fix the legacy data and build again."
            )
        kept = "first" if policy is DuplicatePolicy.KEEP_FIRST else "most recently updated"
        return (f"Same {what} as source row {self.collided_with}, which is kept "
                f"(--duplicates {policy.value} keeps the {kept}).")  # fmt: skip


def fold_keys(snapshot: PoolSnapshot, frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Return, per unique attribute, the values as the pool compares them ("" = no value)."""
    keys: dict[str, pd.Series] = {}
    username = frame["cognito:username"]
    keys["cognito:username"] = username if snapshot.case_sensitive else username.str.lower()
    for attribute in snapshot.unique_attributes():
        values = frame[attribute]
        # email is case-insensitive in Cognito; preferred_username follows the pool
        if attribute == "email" or (attribute != "phone_number" and not snapshot.case_sensitive):
            values = values.str.lower()
        if attribute in snapshot.alias_attributes and attribute != "preferred_username":
            verified = frame[f"{attribute}_verified"].str.lower() == "true"
            values = values.where(verified, "")  # aliases are unique among verified users only
        keys[attribute] = values
    return keys


def updated_seconds(values: pd.Series) -> np.ndarray:
    """Read "last updated" values as epoch seconds (float; NaN when unknown).

    Accepts epoch seconds or milliseconds (what the mapping's `timestamp` transform writes)
    and ISO 8601 dates or date-times (naive ones taken as UTC).
    """
    numbers = pd.to_numeric(values, errors="coerce")
    numbers = numbers.where(numbers < 1e11, numbers / 1000)  # 13-digit values are ms
    text = values.where(numbers.isna() & (values != ""))
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    result: np.ndarray = numbers.fillna(seconds).to_numpy(dtype=np.float64)
    return result


@dataclass(frozen=True)
class DuplicateKeys:
    """What the finder keeps of some users: source rows, last-update times (keep-latest
    only) and one hash per unique key. Computed apart from the finder (``key_hashes``), so
    a worker process can compute it and send the parent only arrays."""

    rows: np.ndarray
    updated: np.ndarray | None
    hashes: dict[str, np.ndarray]


def key_hashes(
    snapshot: PoolSnapshot, policy: DuplicatePolicy, frame: pd.DataFrame
) -> DuplicateKeys:
    """Return the keys of valid users (columns: __row__, __updated__ and the pool's header)."""
    hashes: dict[str, np.ndarray] = {}
    for attribute, values in fold_keys(snapshot, frame).items():
        hashed = pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)
        hashes[attribute] = np.where(values.to_numpy() == "", np.uint64(0), hashed)  # 0 = none
    return DuplicateKeys(
        rows=frame["__row__"].to_numpy(dtype=np.int64),
        updated=updated_seconds(frame["__updated__"])
        if policy is DuplicatePolicy.KEEP_LATEST
        else None,
        hashes=hashes,
    )


class DuplicateFinder:
    """Collect keys chunk by chunk (``add``), then decide once (``resolve``)."""

    def __init__(self, snapshot: PoolSnapshot, policy: DuplicatePolicy) -> None:
        self.snapshot = snapshot
        self.policy = policy
        self._rows: list[np.ndarray] = []
        self._updated: list[np.ndarray] = []
        self._hashes: dict[str, list[np.ndarray]] = {}

    def add(self, frame: pd.DataFrame) -> None:
        """Add valid users (columns: __row__, __updated__ and the pool's header)."""
        self.add_keys(key_hashes(self.snapshot, self.policy, frame))

    def add_keys(self, keys: DuplicateKeys) -> None:
        """Add the keys of valid users, in source order."""
        self._rows.append(keys.rows)
        if keys.updated is not None:
            self._updated.append(keys.updated)
        for attribute, hashed in keys.hashes.items():
            self._hashes.setdefault(attribute, []).append(hashed)

    def resolve(self) -> dict[int, Duplicate]:
        """Return the dropped users by source row."""
        if not self._rows:
            return {}
        rows = np.concatenate(self._rows)
        hashes = {a: np.concatenate(parts) for a, parts in self._hashes.items()}
        # Only users sharing some key with another user need a decision.
        involved = np.zeros(len(rows), dtype=bool)
        for values in hashes.values():
            present = values != 0
            series = pd.Series(values[present])
            involved[np.flatnonzero(present)[series.duplicated(keep=False).to_numpy()]] = True
        candidates = np.flatnonzero(involved)
        if candidates.size == 0:
            return {}
        if self.policy is DuplicatePolicy.REJECT_ALL:
            return self._reject_all(rows, hashes, candidates)
        if self.policy is DuplicatePolicy.KEEP_LATEST:
            updated = np.concatenate(self._updated)[candidates]
            # newest first; unknown dates last; ties: source order
            newest_first = np.where(np.isnan(updated), np.inf, -updated)
            order = np.lexsort((rows[candidates], newest_first))
            candidates = candidates[order]
        return self._greedy(rows, hashes, candidates)

    def _greedy(
        self, rows: np.ndarray, hashes: dict[str, np.ndarray], order: np.ndarray
    ) -> dict[int, Duplicate]:
        claimed: dict[tuple[str, int], int] = {}
        dropped: dict[int, Duplicate] = {}
        for i in order.tolist():
            clash = next(
                ((a, claimed[(a, int(v[i]))]) for a, v in hashes.items()
                 if v[i] != 0 and (a, int(v[i])) in claimed),
                None,
            )  # fmt: skip
            row = int(rows[i])
            if clash is not None:
                dropped[row] = Duplicate(row, clash[0], clash[1])
                continue
            for attribute, values in hashes.items():
                if values[i] != 0:
                    claimed[(attribute, int(values[i]))] = row
        return dropped

    def _reject_all(
        self, rows: np.ndarray, hashes: dict[str, np.ndarray], candidates: np.ndarray
    ) -> dict[int, Duplicate]:
        first_seen: dict[tuple[str, int], int] = {}
        groups: dict[tuple[str, int], list[int]] = {}
        for i in candidates.tolist():
            for attribute, values in hashes.items():
                if values[i] != 0:
                    key = (attribute, int(values[i]))
                    groups.setdefault(key, []).append(int(rows[i]))
                    first_seen.setdefault(key, int(rows[i]))
        dropped: dict[int, Duplicate] = {}
        for (attribute, _), members in groups.items():
            if len(members) < 2:
                continue
            for row in members:
                other = next(m for m in members if m != row)
                dropped.setdefault(row, Duplicate(row, attribute, other))
        return dropped
