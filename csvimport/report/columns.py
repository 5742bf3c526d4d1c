"""Users' results as columns: ``report`` works on a block of users at once.

A run of millions of users cannot afford a Python object, or even a formatted string built
in Python, per user: ``ResultBlock`` holds a block's results as Arrow and numpy columns,
and formats them (``json_lines``) with Arrow's vectorised string kernels. Only the few
users the report shows become :class:`~csvimport.outcomes.UserResult` objects
(``results``). The lines are exactly ``UserResult.to_json_line()`` of each user
(``tests/test_reconcile.py`` proves it on hostile values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.outcomes import Outcome, Password, UserResult, json_string

STRING = pa.large_string()
OUTCOME_LIST = tuple(Outcome)  # a block's outcome column holds indexes into these
PASSWORD_LIST = tuple(Password)
OUTCOME_INDEX = {o: i for i, o in enumerate(OUTCOME_LIST)}
PASSWORD_INDEX = {p: i for i, p in enumerate(PASSWORD_LIST)}
IMPORTED = OUTCOME_INDEX[Outcome.IMPORTED]
_NEEDS_ATTENTION = np.array([o.needs_attention for o in OUTCOME_LIST])
DUPLICATE = OUTCOME_INDEX[Outcome.DUPLICATE]

# Characters json_string writes as an escape other than a backslash before them: the
# control characters. Values holding one are rare, and are encoded by json_string itself.
_CONTROL = r"[\x00-\x1f]"


def text(value: str) -> pa.Scalar:
    """``value`` as an Arrow scalar of the columns' string type."""
    return pa.scalar(value, STRING)


_QUOTE, _NOTHING, _NULL = text('"'), text(""), text("null")


def value_bytes(values: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of a string array's values, one after the other (no copy)."""
    if not len(values):
        return np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
    start, end = offsets[values.offset], offsets[values.offset + len(values)]
    data = values.buffers()[2]
    if data is None:
        return np.zeros(0, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)[start:end]


def holds(values: pa.Array, chars: bytes) -> bool:
    """Tell whether a value holds one of ``chars`` (ASCII): a scan of the bytes, where an
    ASCII byte is only ever that character."""
    data = value_bytes(values)
    if len(chars) > 4:  # numpy looks a range of them up in a table
        return bool(np.isin(data, np.frombuffer(chars, dtype=np.uint8)).any())
    return any(bool(np.any(data == char)) for char in chars)  # faster: a scan each


def first_bytes(values: pa.Array) -> np.ndarray:
    """The first byte of each non-empty value."""
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
    offsets = offsets[values.offset : values.offset + len(values) + 1]
    data = values.buffers()[2]
    if data is None:
        return np.zeros(0, dtype=np.uint8)
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]
    return np.frombuffer(data, dtype=np.uint8)[starts]


_CONTROL_BYTES = bytes(range(32))


def json_contents(values: pa.Array) -> pa.Array:
    """Each value (no nulls) as ``csvimport.outcomes.json_string`` writes it, without the
    quotes around it."""
    if holds(values, b'\\"'):
        values_escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"),
                                              '"', '\\"')  # fmt: skip
    else:
        values_escaped = values
    if holds(values, _CONTROL_BYTES):
        odd = pc.match_substring_regex(values, _CONTROL)
        fixed = [json_string(v)[1:-1] for v in pc.filter(values, odd).to_pylist()]
        values_escaped = pc.replace_with_mask(values_escaped, odd, pa.array(fixed, STRING))
    return values_escaped


def json_strings(values: pa.Array) -> pa.Array:
    """Each value (no nulls) as ``csvimport.outcomes.json_string`` writes it."""
    return pc.binary_join_element_wise(_QUOTE, json_contents(values), _QUOTE, _NOTHING)


def numbers(values: np.ndarray, *, null_below: int | None = None) -> pa.Array:
    """Whole numbers as JSON text; with ``null_below``, smaller ones are ``null``."""
    mask = None if null_below is None else values < null_below
    written = pc.cast(pa.array(values, pa.int64(), mask=mask), STRING)
    return written if mask is None else pc.fill_null(written, _NULL)


def segments(columns: Sequence[Coded], write: Callable[..., str]) -> pa.Array:
    """``write(*values)`` of each row's values in ``columns``, each distinct combination
    written once."""
    if not columns:
        return pa.array([], STRING)
    key = np.zeros(len(columns[0].codes), dtype=np.int64)
    for column in columns:
        key = key * max(1, len(column.values)) + column.codes
    space = int(np.prod([max(1, len(c.values)) for c in columns], dtype=np.float64))
    if space <= 1 << 20:  # a dense table of the combinations: no sort
        unique = np.flatnonzero(np.bincount(key, minlength=space))
        index = np.zeros(space, dtype=np.int64)
        index[unique] = np.arange(len(unique))
        codes = index[key]
    else:
        unique, codes = np.unique(key, return_inverse=True)
    texts = []
    for combined in unique.tolist():
        values = []
        for column in reversed(columns):
            size = max(1, len(column.values))
            values.append(column.values[combined % size])
            combined //= size
        texts.append(write(*reversed(values)))
    return pa.array(texts, STRING).take(pa.array(codes.astype(np.int64)))


@dataclass(frozen=True)
class Coded:
    """A column of few distinct values (reasons, rules, job ids): each row's index into
    ``values``; each value is formatted once, whatever the rows."""

    codes: np.ndarray
    values: Sequence[str | None]

    @classmethod
    def constant(cls, value: str | None, size: int) -> Coded:
        return cls(np.zeros(size, dtype=np.int64), [value])

    @classmethod
    def of(cls, column: pa.Array) -> Coded:
        """An Arrow string column (no nulls), coded."""
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(codes, encoded.dictionary.to_pylist())

    def take(self, rows: np.ndarray) -> Coded:
        return Coded(self.codes[rows], self.values)

    def distinct(self) -> Coded:
        """The same column with each value once in ``values``."""
        index: dict[str | None, int] = {}
        remap = np.array([index.setdefault(v, len(index)) for v in self.values] or [0],
                         dtype=np.int64)  # fmt: skip
        return Coded(remap[self.codes], list(index))

    def json(self) -> pa.Array:
        encoded = ["null" if v is None else json_string(v) for v in self.values]
        return pa.array(encoded, STRING).take(pa.array(self.codes))

    def texts(self) -> pa.Array:
        """The values as text, "" for None."""
        return pa.array(["" if v is None else v for v in self.values], STRING).take(
            pa.array(self.codes)
        )


@dataclass(frozen=True)
class ResultBlock:
    """Several users' results (``UserResult``'s fields) as columns of the same length."""

    source_row: np.ndarray  # int64
    legacy_id: pa.Array  # large_string, no nulls
    username: pa.Array
    email: pa.Array
    phone: pa.Array
    outcome: np.ndarray  # indexes into OUTCOME_LIST
    reason: Coded
    rule: Coded
    job_id: Coded
    chunk: Coded
    line: np.ndarray | None  # int64, -1 for none; None: no user has one
    collided_with_row: np.ndarray | None  # int64, -1 for none; None: no user has one
    password: np.ndarray  # indexes into PASSWORD_LIST
    password_why: Coded

    def __len__(self) -> int:
        return len(self.source_row)

    @property
    def attention(self) -> np.ndarray:
        """Which users need attention (``Outcome.needs_attention``)."""
        return np.asarray(_NEEDS_ATTENTION[self.outcome])

    def take(self, rows: np.ndarray) -> ResultBlock:
        """The users at ``rows`` (indexes into this block), in that order."""
        picked = pa.array(rows, pa.int64())
        return ResultBlock(
            source_row=self.source_row[rows], legacy_id=self.legacy_id.take(picked),
            username=self.username.take(picked), email=self.email.take(picked),
            phone=self.phone.take(picked), outcome=self.outcome[rows],
            reason=self.reason.take(rows), rule=self.rule.take(rows),
            job_id=self.job_id.take(rows), chunk=self.chunk.take(rows),
            line=None if self.line is None else self.line[rows],
            collided_with_row=None if self.collided_with_row is None
            else self.collided_with_row[rows],
            password=self.password[rows], password_why=self.password_why.take(rows),
        )  # fmt: skip

    def results(self, rows: np.ndarray | None = None) -> list[UserResult]:
        """The users at ``rows`` (all when None) as UserResult objects: for the few the
        report shows, and for ``Reconciler.build``."""
        block = self if rows is None else self.take(rows)
        size = len(block)

        def whole(column: np.ndarray | None) -> list[int | None]:
            return [None] * size if column is None else [
                None if n < 0 else n for n in column.tolist()]  # fmt: skip

        lines, collided = whole(block.line), whole(block.collided_with_row)

        def coded(column: Coded) -> list[str | None]:
            return [column.values[c] for c in column.codes.tolist()]

        return [
            UserResult(
                source_row=row, legacy_id=legacy_id, username=username,
                outcome=OUTCOME_LIST[outcome], reason=reason or "", rule=rule or "",
                email=email, phone=phone, job_id=job_id, chunk=chunk, line=line,
                collided_with_row=collided_row, password=PASSWORD_LIST[password],
                password_why=why or "",
            )  # fmt: skip
            for row, legacy_id, username, outcome, reason, rule, email, phone, job_id, chunk,
            line, collided_row, password, why in zip(
                block.source_row.tolist(), block.legacy_id.to_pylist(),
                block.username.to_pylist(), block.outcome.tolist(), coded(block.reason),
                coded(block.rule), block.email.to_pylist(), block.phone.to_pylist(),
                coded(block.job_id), coded(block.chunk), lines, collided,
                block.password.tolist(), coded(block.password_why), strict=True,
            )
        ]  # fmt: skip

    def json_lines(self) -> pa.Array:
        """Each user's ``UserResult.to_json_line()`` followed by a newline."""
        size = len(self)
        s = json_string

        def n(value: str | None) -> str:
            return "null" if value is None else s(value)

        none = Coded.constant(None, size)
        outcome = Coded(self.outcome, [o.value for o in OUTCOME_LIST])
        password = Coded(self.password, [p.value for p in PASSWORD_LIST])
        reason = segments([outcome, self.reason, self.rule], lambda o, r, u: (
            f'", "outcome": {s(o)}, "reason": {s(r)}, "rule": {s(u)}, "email": "'))  # fmt: skip
        job = segments([self.job_id, self.chunk],
                       lambda j, c: f'", "job_id": {n(j)}, "chunk": {n(c)}, "line": ')  # fmt: skip
        line = numbers(self.line, null_below=0) if self.line is not None else none.json()
        # where no user has collided_with_row, its null goes with the end: two pieces less
        collided = ', "collided_with_row": null' if self.collided_with_row is None else ""
        end = segments([password, self.password_why], lambda p, w: (
            f'{collided}, "password": {s(p)}, "password_why": {s(w)}}}\n'))  # fmt: skip
        tail: list[str | pa.Array] = [end]
        if self.collided_with_row is not None:
            tail[:0] = [', "collided_with_row": ', numbers(self.collided_with_row, null_below=0)]
        pieces = [
            '{"source_row": ', numbers(self.source_row), ', "legacy_id": "',
            json_contents(self.legacy_id), '", "username": "', json_contents(self.username),
            reason, json_contents(self.email), '", "phone": "', json_contents(self.phone),
            job, line, *tail,
        ]  # fmt: skip
        return pc.binary_join_element_wise(
            *(text(p) if isinstance(p, str) else p for p in pieces), _NOTHING
        )

    @classmethod
    def of_results(cls, results: Sequence[UserResult]) -> ResultBlock:
        """The block holding ``results``, in that order."""

        def strings(name: str) -> pa.Array:
            return pa.array([getattr(r, name) for r in results], STRING)

        def coded(name: str) -> Coded:
            index: dict[str | None, int] = {}
            codes = [index.setdefault(getattr(r, name), len(index)) for r in results]
            return Coded(np.array(codes, dtype=np.int64), list(index))

        def whole(name: str) -> np.ndarray:
            values = [getattr(r, name) for r in results]
            return np.array([-1 if v is None else v for v in values], dtype=np.int64)

        return cls(
            source_row=whole("source_row"), legacy_id=strings("legacy_id"),
            username=strings("username"), email=strings("email"), phone=strings("phone"),
            outcome=np.array([OUTCOME_INDEX[r.outcome] for r in results], dtype=np.uint8),
            reason=coded("reason"), rule=coded("rule"), job_id=coded("job_id"),
            chunk=coded("chunk"),
            line=whole("line") if any(r.line is not None for r in results) else None,
            collided_with_row=whole("collided_with_row"),
            password=np.array([PASSWORD_INDEX[r.password] for r in results], dtype=np.uint8),
            password_why=coded("password_why"),
        )  # fmt: skip
