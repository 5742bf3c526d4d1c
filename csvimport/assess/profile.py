"""Profile the legacy users in one pass: columns, duplicates and the password census.

:func:`assess_source` opens the source as ``csvimport build`` does (same
:class:`~csvimport.build.sources.base.SourceSpec`, same chunks) and reads it once. Memory
stays flat in the values' size: per column it keeps 64-bit hashes of the distinct values
(exact and case-folded), a bounded histogram of lengths and counters; per identifier, one
hash per row. Value kinds come from vectorised regexes over each chunk; phone countries and
password hashes are looked at once per distinct value (a hash once per distinct shape where
the shape alone decides, as for bcrypt, Django PBKDF2 and bare hex digests). Nothing
personal is kept unmasked (csvimport.redact), and no hash leaves: a hash is described by
its scheme.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from pandas.arrays import ArrowStringArray

from csvimport.assess.content import GroupRoles, NationalPhones, refine_roles
from csvimport.assess.model import (
    Assessment,
    ColumnProfile,
    DuplicateCounts,
    PasswordCensus,
    Roles,
)
from csvimport.build.choices import DuplicatePolicy
from csvimport.build.mapping.suggest import LEGACY_ID_SYNONYMS, SYNONYMS
from csvimport.build.mapping.transforms import BOOLEAN_WORDS
from csvimport.build.sources.base import ROW, SOURCE_RULE, SourceError, SourceSpec
from csvimport.build.sources.opener import open_source
from csvimport.build.validate import EMAIL
from csvimport.hashformats import CONVERTED, IMPORTABLE, NO_HASH, classify_hash
from csvimport.legacyhash import identify
from csvimport.redact import mask_email, mask_phone, mask_username

Progress = Callable[[int], None]

# Lengths above this share one histogram bucket (the exact maximum is kept apart): a p99
# above it is reported as this. Cognito's values stop at 2,048 characters.
LENGTH_BUCKETS: Final = 4096
EXAMPLES: Final = 3  # masked examples per column
CASE_ONLY_EXAMPLES: Final = 6
# GUESS: the 64-bit hashes a store (a column's distinct values, an identifier's rows) keeps
# in memory, 2 MB, before it moves them to its files: memory then stays flat however many
# users, as two dozen stores at most hold this many each (and sorting pieces this small
# was faster in make bench than 1M: 1.47x the floor against 1.71x at 1M users).
SPILL_AT: Final = 250_000
# GUESS: a store's files, by the hashes' top bits; counting reads one file at a time, so a
# store of N hashes needs N / SPILL_PARTS of them in memory to count.
SPILL_PARTS: Final = 16
# Phone numbers whose country was looked up, remembered across chunks up to this many.
PHONE_CACHE: Final = 200_000

# Value kinds, tried in this order; a value counts once, as the first kind it has.
# ("boolean": a spelling of BOOLEAN_WORDS but 0 and 1, which count as integers.)
_NUMBERS: Final[tuple[tuple[str, str], ...]] = (
    ("integer", r"-?[0-9]+"),  # "+4420..." is a phone number (E.164), not a number
    ("number", r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"),
)
# (pattern, kind, strftime format): what pandas then parses with that format to confirm.
_DATES: Final[tuple[tuple[str, str, str], ...]] = (
    (r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "date", "%Y-%m-%d"),
    (r"[0-9]{4}/[0-9]{2}/[0-9]{2}", "date", "%Y/%m/%d"),
    (r"[0-9]{2}/[0-9]{2}/[0-9]{4}", "date", "%m/%d/%Y"),
    (r"[0-9]{2}\.[0-9]{2}\.[0-9]{4}", "date", "%d.%m.%Y"),
    (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}", "timestamp", "%Y-%m-%dT%H:%M:%S"),
    (r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", "timestamp", "%Y-%m-%d %H:%M:%S"),
    (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{1,9}", "timestamp",
     "%Y-%m-%dT%H:%M:%S.%f"),
    (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})",
     "timestamp", "%Y-%m-%dT%H:%M:%S%z"),
)  # fmt: skip
_DATE_SHAPED: Final = "|".join(f"(?:{pattern})" for pattern, _, _ in _DATES)
_PHONE: Final = r"\+?[0-9 ().\-/]{6,24}"
_PHONE_DIGITS: Final = 7  # fewer digits than this is no phone number
# Shapes of stored password hashes: modular crypt ($id$...), LDAP ({SCHEME}...), Django
# and Werkzeug prefixes, Cognito's scrypt form, bare hex digests of the usual lengths.
# ([!-~]: printable ASCII but space; \S would make pandas leave RE2 for Python's re.)
_HASH: Final = (
    r"(?:\$[A-Za-z0-9_-]+\$[!-~]+|\{[A-Za-z0-9_-]+\}[!-~]+|[a-z0-9_]+\$[0-9]+\$[!-~]+"
    r"|(?:pbkdf2|scrypt):[!-~]+|[0-9]+\$[0-9]+\$[0-9]+\$[!-~]+"
    r"|[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128})"
)
# Census shapes where the shape alone decides both classify_hash and identify: bcrypt (its
# prefix up to the last "$" plus a 53-character tail of bcrypt's alphabet) and bare hex
# (its length). Both functions only match these by prefix, alphabet and length.
_BCRYPT_SHAPE: Final = r"\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}"
_HEX_SHAPE: Final = r"[0-9a-fA-F]+"
# Django's PBKDF2 in the form legacyhash.identify reads (an alphanumeric salt, a digest of
# 32 or 20 bytes in padded base64): what classify_hash makes of it (converted, or out of
# Cognito's bounds) depends on the iterations and the salt's length only, so its shape is
# the text up to the iterations plus the whole length (the digest's length is fixed).
_DJANGO_SHAPE: Final = (
    r"(?:pbkdf2_sha256\$[1-9][0-9]{0,9}\$[A-Za-z0-9]+\$[A-Za-z0-9+/]{43}="
    r"|pbkdf2_sha1\$[1-9][0-9]{0,9}\$[A-Za-z0-9]+\$[A-Za-z0-9+/]{27}=)"
)
_DJANGO_PREFIX: Final = r"^(pbkdf2_sha[0-9]+\$[0-9]+)\$"

# Roles by column name (normalised: lower case, letters and digits), beside suggest.SYNONYMS.
PASSWORD_NAMES: Final = (*SYNONYMS["password_hash"], "password", "passwd", "pwd", "pass",
                         "encryptedpassword", "hashedpassword", "cryptedpassword",
                         "passworddigest", "userpass")  # fmt: skip
DISABLED_NAMES: Final = ("disabled", "isdisabled", "locked", "islocked", "blocked",
                         "isblocked", "banned", "suspended", "deactivated", "enabled",
                         "isenabled", "active", "isactive", "status", "accountstatus")  # fmt: skip
GROUPS_NAMES: Final = ("groups", "group", "roles", "role", "usergroups", "memberof")
_ROLE_ATTRIBUTES: Final = {
    "username": "cognito:username",
    "email": "email",
    "email_verified": "email_verified",
    "phone_number": "phone_number",
    "phone_number_verified": "phone_number_verified",
}
# Standard attributes found by name for Roles.attributes (not the roles above).
_NOT_ATTRIBUTES: Final = {*_ROLE_ATTRIBUTES.values(), "password_hash", "cognito:mfa_enabled"}

EMPTY_HINT: Final = (
    "Check the export: it has a header but no user. Export the users again (for a "
    "database, check the --table name or the --query's WHERE)."
)


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def find_roles(columns: list[str]) -> Roles:
    """Which column plays which part, by name (the starter mapping's synonyms)."""
    by_name: dict[str, str] = {}
    for column in columns:
        if _normalise(column):
            by_name.setdefault(_normalise(column), column)
    used: set[str] = set()

    def find(names: tuple[str, ...] | list[str]) -> str | None:
        for name in names:
            column = by_name.get(name)
            if column is not None and column not in used:
                used.add(column)
                return column
        return None

    roles = Roles()
    roles.legacy_id = find(LEGACY_ID_SYNONYMS)
    roles.password = find(PASSWORD_NAMES)
    # the verified flags before email/phone: "phoneverified" must not be taken as a phone
    roles.email_verified = find(SYNONYMS["email_verified"])
    roles.phone_number_verified = find(SYNONYMS["phone_number_verified"])
    roles.username = find(SYNONYMS["cognito:username"])
    roles.email = find(SYNONYMS["email"])
    roles.phone_number = find(SYNONYMS["phone_number"])
    roles.disabled = find(DISABLED_NAMES)
    roles.groups = find(GROUPS_NAMES)
    for attribute, synonyms in SYNONYMS.items():
        if attribute in _NOT_ATTRIBUTES:
            continue
        found = find([_normalise(attribute), *synonyms])
        if found is not None:
            roles.attributes[found] = attribute
    return roles


_PART_BITS: Final = (SPILL_PARTS - 1).bit_length()
# the first hash of each file after the first: file p holds hashes whose top bits are p
_PART_STARTS: Final = np.arange(1, SPILL_PARTS, dtype=np.uint64) << np.uint64(64 - _PART_BITS)


class _Store:
    """64-bit hashes: in memory up to ``spill_at``, then also in files by their top bits.

    Equal hashes always land in the same file, so distinct counts and repeats add up file
    by file (:meth:`pieces`). ``distinct``: only which hashes occur matters (a column's
    values), so they are deduplicated as they come; otherwise every one counts (an
    identifier's rows, 0 for an empty value).
    """

    def __init__(self, folder: Path, *, distinct: bool, spill_at: int = SPILL_AT) -> None:
        self.folder, self.distinct, self.spill_at = folder, distinct, spill_at
        self._parts: list[np.ndarray] = []
        self._pending = 0
        self._files: Path | None = None  # created at the first spill

    def add(self, hashes: np.ndarray) -> None:
        self._parts.append(hashes)
        self._pending += len(hashes)
        if self._pending < self.spill_at:
            return
        merged = np.concatenate(self._parts)
        merged = _sorted_unique(merged) if self.distinct else np.sort(merged)
        if len(merged) >= self.spill_at // 2:
            self._spill(merged)
            merged = merged[:0]
        self._parts, self._pending = [merged], len(merged)

    def _spill(self, ordered: np.ndarray) -> None:
        if self._files is None:
            self._files = Path(tempfile.mkdtemp(dir=self.folder))
        for part, values in enumerate(np.split(ordered, np.searchsorted(ordered, _PART_STARTS))):
            with (self._files / str(part)).open("ab") as f:
                values.tofile(f)

    def copy(self) -> _Store:
        twin = _Store(self.folder, distinct=self.distinct, spill_at=self.spill_at)
        twin._parts, twin._pending = list(self._parts), self._pending
        if self._files is not None:
            twin._files = Path(tempfile.mkdtemp(dir=self.folder))
            shutil.copytree(self._files, twin._files, dirs_exist_ok=True)
        return twin

    def pieces(self) -> Iterator[np.ndarray]:
        """Every hash, in pieces no two of which share a hash."""
        held = np.sort(np.concatenate(self._parts)) if self._parts else np.zeros(0, np.uint64)
        if self._files is None:
            yield held
            return
        split = np.split(held, np.searchsorted(held, _PART_STARTS))
        for part, values in enumerate(split):
            path = self._files / str(part)
            stored = np.fromfile(path, np.uint64) if path.exists() else values[:0]
            yield np.concatenate([stored, values])

    def count(self) -> int:
        """Distinct hashes."""
        return sum(len(_sorted_unique(piece)) for piece in self.pieces())


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: for 64-bit hashes, many times faster than numpy 2's hash table."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    unique: np.ndarray = ordered[keep]
    return unique


def _fold(values: pd.Series) -> pd.Series:
    """``str.casefold`` of each value: Arrow's lower() where that is the same (ASCII), as
    casefold is a Python call per value."""
    folded = values.str.lower()
    other = ~values.str.isascii().to_numpy(bool)
    if other.any():
        folded = folded.copy()
        folded[other] = values[other].str.casefold()
    return folded


def _hash(values: pd.Series) -> np.ndarray:
    hashed: np.ndarray = pd.util.hash_pandas_object(values, index=False).to_numpy(np.uint64)
    return hashed


@dataclass
class _Column:
    name: str
    exact: _Store
    rows: int = 0
    filled: int = 0
    # None while folding changed no value: the folded values are then the exact ones, and
    # the column keeps one set of hashes instead of two (ids, dates, lower-case emails)
    folded: _Store | None = None
    max_length: int = 0
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(LENGTH_BUCKETS + 1, np.int64))
    kinds: Counter[str] = field(default_factory=Counter)
    phone_countries: Counter[str] = field(default_factory=Counter)
    boolean_spellings: Counter[str] = field(default_factory=Counter)
    date_formats: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    national: NationalPhones = field(default_factory=NationalPhones)  # the phone column's

    def profile(self, hash_schemes: dict[str, int]) -> ColumnProfile:
        kinds = dict(self.kinds)
        # 0/1 count as integers, unless every value of the column is a boolean spelling
        if self.filled and sum(self.boolean_spellings.values()) == self.filled:
            kinds = {"boolean": self.filled}
        return ColumnProfile(
            name=self.name, rows=self.rows, filled=self.filled, distinct=self.exact.count(),
            distinct_folded=(self.folded or self.exact).count(), max_length=self.max_length,
            p99_length=_percentile(self.lengths, 0.99), kinds=kinds,
            phone_countries=dict(self.phone_countries),
            boolean_spellings=dict(self.boolean_spellings), date_formats=dict(self.date_formats),
            hash_schemes=hash_schemes, examples=list(self.examples),
            national_sample=len(self.national.sample), national_regions=self.national.regions(),
        )  # fmt: skip


def _percentile(histogram: np.ndarray, share: float) -> int:
    total = int(histogram.sum())
    if not total:
        return 0
    rank = int(np.ceil(share * total))  # nearest rank
    return int(np.searchsorted(np.cumsum(histogram), rank))


@dataclass
class _Key:
    """One identifier's per-row hashes (0: no value), exact and folded."""

    column: str
    role: str
    exact: _Store
    folded: _Store
    case_only: list[str] = field(default_factory=list)

    def counts(self) -> DuplicateCounts:
        exact = _repeats(self.exact)
        folded = _repeats(self.folded) if self.role != "phone_number" else exact
        # The build compares usernames folded in a case-insensitive pool (Cognito's default
        # and the proposal's unless case-only pairs exist), emails always folded, phones as
        # written without punctuation. Per key alone, keep-first and keep-latest each keep
        # one user per value; reject-all drops every user of a value used twice.
        key = self.folded if self.role != "phone_number" else self.exact
        drops = _repeats(key)
        dropped = {DuplicatePolicy.KEEP_FIRST.value: drops,
                   DuplicatePolicy.KEEP_LATEST.value: drops,
                   DuplicatePolicy.REJECT_ALL.value: _shared(key)}  # fmt: skip
        return DuplicateCounts(column=self.column, role=self.role, exact=exact, folded=folded,
                               case_only_examples=list(self.case_only),
                               dropped_by_policy=dropped)  # fmt: skip


def _present(piece: np.ndarray) -> np.ndarray:
    present: np.ndarray = piece[piece != 0]
    return present


def _repeats(store: _Store) -> int:
    """Rows whose value an earlier row already had."""
    total = 0
    for piece in store.pieces():
        values = _present(piece)
        total += len(values) - len(_sorted_unique(values))
    return total


def _shared(store: _Store) -> int:
    """Rows whose value some other row has too."""
    total = 0
    for piece in store.pieces():
        ordered = np.sort(_present(piece))
        same = ordered[1:] == ordered[:-1]  # a row and the next share their value
        shared = np.zeros(len(ordered), bool)
        shared[1:] |= same
        shared[:-1] |= same
        total += int(shared.sum())
    return total


@dataclass
class _Census:
    column: str
    buckets: Counter[str] = field(default_factory=Counter)
    schemes: Counter[str] = field(default_factory=Counter)
    by_shape: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def add(self, values: pd.Series) -> None:
        empty = values.str.strip() == ""
        self.buckets["empty"] += int(empty.sum())
        values = values[~empty]
        bcrypt = _matches(values, _BCRYPT_SHAPE)
        hexes = _matches(values, _HEX_SHAPE) & ~bcrypt
        django = _matches(values, _DJANGO_SHAPE) & ~bcrypt & ~hexes
        djangos = values[django]
        shapes = pd.concat([
            values[bcrypt].str.slice(0, 7) + "|60",
            "hex|" + values[hexes].str.len().astype(str),
            djangos.str.extract(_DJANGO_PREFIX, expand=False) + "|"
            + djangos.str.len().astype(str) + "|django",
        ])  # fmt: skip
        for shape, count in shapes.value_counts().items():
            if shape not in self.by_shape:
                sample = values.loc[shapes.index[shapes == shape][0]]
                self.by_shape[str(shape)] = _classify(str(sample))
            self._count(self.by_shape[str(shape)], int(count))
        for value, count in values[~bcrypt & ~hexes & ~django].value_counts().items():
            self._count(_classify(str(value)), int(count))

    def _count(self, found: tuple[str, str | None], count: int) -> None:
        bucket, scheme = found
        self.buckets[bucket] += count
        self.schemes[scheme or "unknown"] += count

    def census(self) -> PasswordCensus:
        b = self.buckets
        return PasswordCensus(
            column=self.column, importable=b["importable"], convertible=b["convertible"],
            at_first_sign_in=b["at_first_sign_in"], unknown=b["unknown"], empty=b["empty"],
            by_scheme=dict(self.schemes),
        )  # fmt: skip


def _classify(value: str) -> tuple[str, str | None]:
    """(census bucket, scheme) of one non-empty stored hash."""
    verdict = classify_hash(value)
    scheme = identify(value)
    if verdict.status == IMPORTABLE:
        return "importable", scheme or (verdict.algorithm or "").lower() or None
    if verdict.status == CONVERTED:
        return "convertible", scheme
    if verdict.status == NO_HASH:  # spaces only; the caller counts those as empty already
        return "empty", None
    return ("at_first_sign_in" if scheme is not None else "unknown"), scheme


def _country(value: str) -> str:
    if not value.startswith("+"):
        return "unknown"
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return "unknown"
    return phonenumbers.region_code_for_number(number) or "unknown"


def _matches(values: pd.Series, pattern: str, *, whole: bool = True) -> np.ndarray:
    """Which ``values`` match ``pattern`` whole (or, ``whole=False``, at their start).

    For csvimport's own patterns, which RE2 reads as Python does (no \\s, \\d, \\w, \\b, $
    or lookaround): Arrow's RE2 straight on the values, as pandas's .str.fullmatch and
    .str.match would run them, without pandas parsing the pattern again with Python's
    parser on every call (about 4% of the time at 1M users).
    """
    if not isinstance(values.array, ArrowStringArray):
        found = values.str.fullmatch(pattern) if whole else values.str.match(pattern)
        answer: np.ndarray = found.fillna(False).to_numpy(bool)
        return answer
    anchored = f"^(?:{pattern})$" if whole else f"^(?:{pattern})"
    matched = pc.match_substring_regex(pa.array(values.array), anchored).fill_null(False)
    result: np.ndarray = matched.to_numpy(zero_copy_only=False)
    return result


def _take(
    column: _Column, weights: np.ndarray, values: pd.Series, kind: str, match: np.ndarray
) -> pd.Series:
    """Count the rows of the distinct ``values`` that ``match`` as ``kind``; return the rest."""
    column.kinds[kind] += int(weights[values.index[match]].sum())
    return values[~match]


class _Profiler:
    def __init__(
        self, columns: list[str], roles: Roles, folder: Path, spill_at: int = SPILL_AT
    ) -> None:
        def store(*, distinct: bool) -> _Store:
            return _Store(folder, distinct=distinct, spill_at=spill_at)

        self.columns = {name: _Column(name, store(distinct=True)) for name in columns}
        self.roles = roles
        self.rows = 0
        self.garbled = 0
        self.keys = [
            _Key(column, role, store(distinct=False), store(distinct=False))
            for role, column in (("username", roles.username), ("email", roles.email),
                                 ("phone_number", roles.phone_number))
            if column is not None
        ]  # fmt: skip
        self.census = _Census(roles.password) if roles.password is not None else None
        self.countries: dict[str, str] = {}
        self.groups = GroupRoles(roles.groups) if roles.groups is not None else None

    def add(self, chunk: pd.DataFrame) -> None:
        if SOURCE_RULE in chunk.columns:  # rows the source garbles are no users
            good = chunk[SOURCE_RULE] == ""
            self.garbled += int((~good).sum())
            chunk = chunk[good]
        self.rows += len(chunk)
        for name, column in self.columns.items():
            self._column(column, chunk[name].astype("str"))
        for key in self.keys:
            self._key(key, chunk[key.column].astype("str"))
        if self.census is not None:
            self.census.add(chunk[self.census.column].astype("str"))
        if self.groups is not None:
            self.groups.add(chunk[self.groups.column].astype("str"))

    def _column(self, column: _Column, values: pd.Series) -> None:
        column.rows += len(values)
        values = values[values != ""]
        column.filled += len(values)
        if values.empty:
            return
        # Each distinct value of the chunk is looked at once and weighs its rows: most
        # columns (flags, dates, names) repeat their values many times over.
        counts = values.value_counts(sort=False)
        distinct = pd.Series(counts.index.array, dtype=values.dtype)
        weights = counts.to_numpy(np.int64)
        folded = _fold(distinct)
        if column.folded is not None or not folded.equals(distinct):
            if column.folded is None:  # until this chunk, folded and exact were the same
                column.folded = column.exact.copy()
            column.folded.add(_hash(folded))
        column.exact.add(_hash(distinct))
        lengths = distinct.str.len().to_numpy(np.int64)
        column.max_length = max(column.max_length, int(lengths.max()))
        column.lengths += np.bincount(np.minimum(lengths, LENGTH_BUCKETS), weights=weights,
                                      minlength=LENGTH_BUCKETS + 1).astype(np.int64)  # fmt: skip
        spelled = distinct.str.lower().isin(list(BOOLEAN_WORDS)).to_numpy(bool)
        for word, n in zip(distinct[spelled].tolist(), weights[spelled].tolist(), strict=True):
            column.boolean_spellings[word] += n
        words = spelled & ~distinct.str.isdigit().to_numpy(bool)
        left = _take(column, weights, distinct, "boolean", words)
        for kind, pattern in _NUMBERS:
            left = _take(column, weights, left, kind, _matches(left, pattern))
        datelike = left[_matches(left, "[0-9]{2}", whole=False)]  # every date pattern starts so
        for pattern, kind, fmt in _DATES:
            if datelike.empty:
                break
            shaped = datelike[_matches(datelike, pattern)]
            parsed = pd.to_datetime(shaped, format=fmt, errors="coerce")
            good = shaped.index[parsed.notna().to_numpy()]
            if len(good):
                column.date_formats[fmt] += int(weights[good].sum())
                column.kinds[kind] += int(weights[good].sum())
                left = left.drop(good)
                datelike = datelike.drop(good)
        # (EMAIL ends in "$", which Python's re and RE2 read apart on a trailing newline:
        # pandas chooses)
        emails = left.str.match(EMAIL).fillna(False).to_numpy(bool)
        left = _take(column, weights, left, "email", emails)
        phones = _matches(left, _PHONE).copy()
        shaped = left[phones]  # 1992-13-01 is a bad date, not a phone
        digits = shaped.str.replace("[^0-9]", "", regex=True).str.len() >= _PHONE_DIGITS
        phones[phones] = digits.to_numpy(bool) & ~_matches(shaped, _DATE_SHAPED)
        found = left[phones]
        if column.name == self.roles.phone_number:
            column.national.add(found.tolist())
        for value, n in zip(found.tolist(), weights[found.index].tolist(), strict=True):
            column.phone_countries[self._country(value)] += n
        left = _take(column, weights, left, "phone", phones)
        left = _take(column, weights, left, "password hash", _matches(left, _HASH))
        column.kinds["text"] += int(weights[left.index].sum())
        if len(column.examples) < EXAMPLES:
            self._examples(column, values)
        column.kinds = Counter({k: n for k, n in column.kinds.items() if n})

    def _country(self, value: str) -> str:
        country = self.countries.get(value)
        if country is None:
            country = _country(value)
            if len(self.countries) < PHONE_CACHE:
                self.countries[value] = country
        return country

    def _examples(self, column: _Column, values: pd.Series) -> None:
        for value in values.drop_duplicates().head(EXAMPLES * 4).tolist():
            if len(column.examples) >= EXAMPLES:
                return
            shown = _masked(value, is_password=column.name == self.roles.password)
            if shown not in column.examples:
                column.examples.append(shown)

    def _key(self, key: _Key, values: pd.Series) -> None:
        if key.role == "phone_number":
            values = values.str.replace(r"[^0-9+]", "", regex=True)
        empty = (values == "").to_numpy()
        exact = np.where(empty, np.uint64(0), _hash(values))
        key.exact.add(exact)
        if key.role == "phone_number":
            return
        folded_values = _fold(values)
        folded = np.where(empty, np.uint64(0), _hash(folded_values))
        key.folded.add(folded)
        if len(key.case_only) >= CASE_ONLY_EXAMPLES:
            return
        # examples from within a chunk: the counts come from every row, the examples need
        # the values, which are not kept across chunks
        frame = pd.DataFrame({"exact": exact, "folded": folded})[~empty]
        spellings = frame.drop_duplicates("exact")
        clashing = spellings[spellings["folded"].duplicated(keep=False)]
        clashing = clashing.sort_values("folded", kind="stable").head(CASE_ONLY_EXAMPLES)
        for value in values.to_numpy()[clashing.index.to_numpy()].tolist():
            masked = mask_email(value) if key.role == "email" else mask_username(value)
            if len(key.case_only) < CASE_ONLY_EXAMPLES:
                key.case_only.append(masked)

    def assessment(self, source: str) -> Assessment:
        census = self.census.census() if self.census is not None else PasswordCensus(None)
        profiles = [
            column.profile(census.by_scheme if name == self.roles.password else {})
            for name, column in self.columns.items()
        ]
        return Assessment(source=source, rows=self.rows, columns=profiles,
                          roles=refine_roles(self.roles, profiles),
                          duplicates=[key.counts() for key in self.keys], passwords=census,
                          garbled=self.garbled,
                          groups=self.groups.profile() if self.groups else None)  # fmt: skip


def _masked(value: str, *, is_password: bool) -> str:
    """A value as the assessment may show it: a hash by its scheme, the rest masked."""
    if is_password:
        return f"{identify(value) or 'unknown'} hash"
    if re.fullmatch(EMAIL, value):
        return mask_email(value)
    if re.fullmatch(_PHONE, value):
        return mask_phone(value)
    if value.lower() in BOOLEAN_WORDS:
        return value
    return mask_username(value)


def assess_source(
    spec: SourceSpec, *, progress: Progress | None = None, spill_at: int = SPILL_AT
) -> Assessment:
    """Read the source once and return what it holds; raise SourceError on bad input.

    ``progress`` is called with the rows of each chunk read. Hashes past ``spill_at`` per
    store go to files in a private temporary folder, removed at the end.
    """
    source = open_source(spec)
    columns = source.columns()
    with tempfile.TemporaryDirectory(prefix="csvimport-assess-") as folder:
        profiler = _Profiler(columns, find_roles(columns), Path(folder), spill_at)
        for chunk in source.chunks():
            profiler.add(chunk.drop(columns=[ROW]))
            if progress is not None:
                progress(len(chunk))
        if profiler.rows == 0:
            raise SourceError(f"{source.describe()} has no users to assess.", hint=EMPTY_HINT,
                              source=source.describe())  # fmt: skip
        return profiler.assessment(source.describe())
