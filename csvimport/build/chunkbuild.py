"""The build's first pass over one source chunk: map, validate, serialise, hash the keys.

A chunk's outcome depends on the chunk alone, so chunks can be built in worker processes
and their outcomes taken in source order: the run directory is the same byte for byte
whether a chunk was built here or in a worker. Workers start only once the source has
proven big (``parallel_after_rows``), since starting one costs a second of imports.
They are spawned, never forked: csvimport may run in a process with threads (the tests'
sandbox server), and forking a process with threads can deadlock the child.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from csvimport.build.choices import DuplicatePolicy, PasswordFallback
from csvimport.build.deferral import NO_HASH_WHY, Deferral
from csvimport.build.duplicates import DuplicateKeys, key_hashes
from csvimport.build.mapping.apply import (
    DISABLED,
    GROUPS,
    SALT,
    UNMAPPED,
    Problem,
    apply_mapping,
)
from csvimport.build.mapping.columns import HASH_COLUMN, ImportColumns
from csvimport.build.mapping.spec import Mapping
from csvimport.build.sources.base import SOURCE_REASON, SOURCE_RULE
from csvimport.build.sources.csvlayout import SWALLOWED_LINE
from csvimport.build.validate import PoolValidator
from csvimport.cognito_csv import (
    SIDE_FILE_LINE_END,
    constant_strings,
    escape_value,
    large_strings,
    serialize,
)
from csvimport.hashformats import HASHES_OFF, NO_HASH, classify_hash
from csvimport.legacyhash import cost_label
from csvimport.pool import PoolSnapshot
from csvimport.rundir import DEFERRED_ALIASES

# The first pass's valid users, in source order, as Arrow record batches (one per chunk):
# written and read back without parsing a value. ``line`` holds the pool's columns only;
# a user with an importable hash has its ``algorithm`` and the hash as written in Cognito's
# dialect; ``password`` and ``password_reason`` are classify_hash's verdict (all "" when
# the mapping has no password_hash). With --password-fallback migrate (else both ""), a
# user left to migrate at first sign-in has their deferred.csv line in ``deferred`` and
# their scheme in ``fallback``; a user who must reset has in ``fallback`` why they cannot
# migrate (csvimport.build.deferral), one with an importable hash "".
SPILL_SCHEMA = pa.schema(
    [("row", pa.int64()), ("legacy_id", pa.large_string()), ("username", pa.large_string()),
     ("line", pa.large_string()), ("algorithm", pa.large_string()),
     ("password_hash", pa.large_string()), ("password", pa.large_string()),
     ("password_reason", pa.large_string()), ("fallback", pa.large_string()),
     ("deferred", pa.large_string()), ("groups", pa.large_string()),
     ("unmapped_roles", pa.large_string()), ("disabled", pa.large_string())]
)  # fmt: skip
# The spill's columns of what the follow-up pass carries (all "" when the mapping names
# neither [groups] nor [legacy].disabled): apply_mapping's columns of the same meaning.
FOLLOWUP_COLUMNS = {"groups": GROUPS, "unmapped_roles": UNMAPPED, "disabled": DISABLED}
# Chunks queued per worker: enough to keep each busy while the parent reads and builds,
# few enough to keep memory flat.
IN_FLIGHT_PER_WORKER = 2
# How often a worker checks that the build it works for still runs.
PARENT_CHECK_SECONDS = 0.5
# How many of the rows a source garbles (stray quotes, ragged rows) the build's summary
# quotes; rejects.csv has them all.
GARBLED_EXAMPLES = 5


@dataclass
class ChunkOutcome:
    """What one chunk gives the build; picklable, so a worker can return it."""

    rows: int  # source rows in the chunk
    rejects: str  # rejects.csv lines (without header) for its refused users, in order
    reject_lines: int
    rejected: int  # users refused (a user may have several reject lines)
    reasons: Counter[str]  # reject lines by rule, in first-seen order
    keys: DuplicateKeys  # of the valid users
    spill: pa.RecordBatch  # the valid users, SPILL_SCHEMA
    # values whose line breaks were folded, by attribute (those with fold_line_breaks)
    folded: dict[str, int] = field(default_factory=dict)
    # The first GARBLED_EXAMPLES rows the source garbled (not the lines a stray quote
    # swallowed, which their stray quote's reason counts): "row N: reason".
    garbled: list[str] = field(default_factory=list)
    # With --password-fallback migrate: one deferred user's hash per cost label ("bcrypt
    # cost=13"), at most PROBES of them, for the build to time (never written anywhere).
    probes: dict[str, str] = field(default_factory=dict)


# How many hashes of distinct cost labels a chunk, and the build, keep to time: a real
# source has a handful; a hostile one (every PBKDF2 iteration count) is cut here.
PROBES = 12


class ChunkBuilder:
    """Builds chunks for one pool and mapping; holds the pandera schema, built once."""

    def __init__(
        self, snapshot: PoolSnapshot, mapping: Mapping, policy: DuplicatePolicy,
        password_hashes: bool = True, fallback: PasswordFallback = PasswordFallback.RESET,
    ) -> None:  # fmt: skip
        self.snapshot = snapshot
        self.mapping = mapping
        self.policy = policy
        self.password_hashes = password_hashes
        self.fallback = fallback
        self.deferral = (Deferral(mapping.legacy_hash)
                         if fallback is PasswordFallback.MIGRATE else None)  # fmt: skip
        # The hash is not a pool attribute: it goes only to the chunks of a hash job.
        self.columns = ImportColumns.of(snapshot)
        self.header = self.columns.names
        self.with_hash = HASH_COLUMN in mapping.attributes()
        self.validator = PoolValidator(snapshot)

    def __call__(self, chunk: pd.DataFrame) -> ChunkOutcome:
        mapped = apply_mapping(self.mapping, chunk)
        frame = self.columns.complete(mapped.frame.reset_index(drop=True))
        text = io.StringIO()
        rejects = csv.writer(text, lineterminator=SIDE_FILE_LINE_END)
        reasons: Counter[str] = Counter()
        garbled = _garbled(chunk)
        refused = self._reject(frame, mapped.problems, rejects, reasons, garbled)
        valid = frame[~frame["__row__"].isin(refused)]
        usernames = valid["cognito:username"]
        if not self.snapshot.case_sensitive:
            usernames = usernames.str.lower()
        probes: dict[str, str] = {}
        spill = pa.record_batch(
            [
                pa.array(valid["__row__"].to_numpy(dtype=np.int64)),
                large_strings(valid["__legacy_id__"]),
                large_strings(usernames),
                large_strings(serialize(valid, self.header)),
                *self._passwords(valid, probes),
                *(
                    large_strings(valid[column])
                    if column in valid.columns
                    else large_strings(constant_strings("", valid.index))
                    for column in FOLLOWUP_COLUMNS.values()
                ),
            ],
            schema=SPILL_SCHEMA,
        )
        return ChunkOutcome(
            rows=len(frame),
            rejects=text.getvalue(),
            reject_lines=sum(reasons.values()),
            rejected=len(refused),
            reasons=reasons,
            keys=key_hashes(self.snapshot, self.policy, valid),
            spill=spill,
            folded=mapped.folded,
            garbled=[f"row {frame['__row__'].iat[position]}: {reason}"
                     for position, rule, reason in garbled
                     if rule != SWALLOWED_LINE][:GARBLED_EXAMPLES],
            probes=probes,
        )  # fmt: skip

    def _passwords(self, valid: pd.DataFrame, probes: dict[str, str]) -> list[pa.LargeStringArray]:
        """Classify each valid user's hash: SPILL_SCHEMA's algorithm .. deferred; with
        --password-fallback migrate, ``probes`` gets a deferred hash per cost label."""
        if not self.with_hash:
            nothing = large_strings(constant_strings("", valid.index))
            return [nothing] * 6
        if self.deferral is not None:
            return self._fallbacks(valid, self.deferral, probes)
        if not self.password_hashes:
            verdicts = [("", "", HASHES_OFF, "built with --password-hashes off")] * len(valid)
        else:
            verdicts = []
            for value in valid[HASH_COLUMN].tolist():
                verdict = classify_hash(value)
                verdicts.append((verdict.algorithm or "", escape_value(verdict.value),
                                 verdict.status, verdict.reason))  # fmt: skip
        nothing = large_strings(constant_strings("", valid.index))
        return [*(large_strings([v[i] for v in verdicts]) for i in range(4)), nothing, nothing]

    def _fallbacks(
        self, valid: pd.DataFrame, deferral: Deferral, probes: dict[str, str]
    ) -> list[pa.LargeStringArray]:
        """``_passwords`` with --password-fallback migrate: a user whose hash Cognito cannot
        import is deferred when csvimport can verify it, else must reset, and says why."""
        columns: list[list[str]] = [[] for _ in range(6)]
        salts = valid[SALT].tolist() if SALT in valid.columns else [""] * len(valid)
        text = io.StringIO()
        line = csv.writer(text, lineterminator=SIDE_FILE_LINE_END)
        # the names a deferred user signs in with besides the username, for
        # migration-check to find them taken in the pool (rundir.DEFERRED_ALIASES)
        aliases = [valid[c].tolist() if c in valid.columns else [""] * len(valid)
                   for c in DEFERRED_ALIASES]  # fmt: skip
        for row, legacy_id, username, value, salt, *alias in zip(
            valid["__row__"].tolist(), valid["__legacy_id__"].tolist(),
            valid["cognito:username"].tolist(), valid[HASH_COLUMN].tolist(), salts, *aliases,
            strict=True,
        ):  # fmt: skip
            verdict = classify_hash(value) if self.password_hashes else None
            if verdict is not None:
                algorithm, status, reason = verdict.algorithm or "", verdict.status, verdict.reason
                hashed = escape_value(verdict.value)
            else:
                algorithm, hashed = "", ""
                status, reason = HASHES_OFF, "built with --password-hashes off"
            fallback, deferred = "", ""
            if algorithm:
                pass  # Cognito imports the hash: the user signs in with their password
            elif status == NO_HASH or not value.strip():
                fallback = NO_HASH_WHY
            elif (decided := deferral.decide(value, verdict, salt)).deferred:
                fallback = decided.scheme
                text.seek(0)
                text.truncate()
                line.writerow((row, legacy_id, username, decided.scheme, decided.reason,
                               *alias))  # fmt: skip
                deferred = text.getvalue()
                if len(probes) < PROBES:
                    label = cost_label(value, digest=deferral.declared)
                    if label is not None:
                        probes.setdefault(label, value.strip())
            else:
                fallback = decided.why
                reason = deferral.reset_reason(reason, decided)
            for column, item in zip(columns, (algorithm, hashed, status, reason, fallback,
                                              deferred), strict=True):  # fmt: skip
                column.append(item)
        return [large_strings(column) for column in columns]

    def _reject(
        self, frame: pd.DataFrame, problems: list[Problem], rejects: Any, reasons: Counter[str],
        garbled: list[tuple[int, str, str]],
    ) -> set[int]:  # fmt: skip
        """Write every problem and validation failure; return the refused source rows.

        A row the source garbled (``garbled``: position, rule, reason) gets that reject
        only: its values are not the user's, so what the mapping or the pool's rules say
        of them would mislead.
        """
        rows = frame["__row__"].to_numpy()
        legacy_ids = frame["__legacy_id__"].to_numpy(dtype=object)
        for position, rule, reason in garbled:
            rejects.writerow((rows[position], legacy_ids[position], "", rule, reason, "", ""))
            reasons[rule] += 1
        unread = {int(rows[position]) for position, _, _ in garbled}
        refused = set(unread)
        if unread:
            problems = [p for p in problems if p.row not in unread]
        # problem rows -> legacy ids, looked up vectorised: a dict of every row costs more
        where = pd.Index(rows).get_indexer([p.row for p in problems])
        legacy = [legacy_ids[i] if i >= 0 else "" for i in where.tolist()]
        for problem, legacy_id in zip(problems, legacy, strict=True):
            rejects.writerow((problem.row, legacy_id, problem.attribute, problem.rule,
                              problem.reason, problem.value, ""))  # fmt: skip
            refused.add(problem.row)
            reasons[problem.rule] += 1
        already = {(p.row, p.attribute) for p in problems}
        for failure in self.validator.validate(frame[self.header]):
            row = int(rows[failure.position])
            if (row, failure.attribute) in already or row in unread:
                continue  # the mapping or the source already said why
            rejects.writerow((row, legacy_ids[failure.position], failure.attribute,
                              failure.rule, failure.reason, failure.value, ""))  # fmt: skip
            refused.add(row)
            reasons[failure.rule] += 1
        return refused


def _garbled(chunk: pd.DataFrame) -> list[tuple[int, str, str]]:
    """The rows the source garbled: (position in the chunk, rule, reason)."""
    if SOURCE_RULE not in chunk.columns:
        return []
    rules = chunk[SOURCE_RULE].to_numpy(dtype=object)
    reasons = chunk[SOURCE_REASON].to_numpy(dtype=object)
    return [(int(i), rules[i], reasons[i]) for i in np.flatnonzero(rules != "")]


def build_chunks(
    chunks: Iterable[pd.DataFrame],
    builder: ChunkBuilder,
    *,
    workers: int | None = None,
    parallel_after_rows: int = 100_000,
) -> Iterator[ChunkOutcome]:
    """Yield the outcome of every chunk, in order.

    ``workers`` is how many processes build chunks (None: one per CPU this process may
    use), this one included: it reads the source, and builds a chunk itself whenever the
    spawned ``workers - 1`` have enough queued - so it is never idle while they are busy,
    and no CPU pays for one more worker's imports. Workers start once
    ``parallel_after_rows`` source rows have been seen; until one is ready, chunks are
    built here, so its start-up overlaps useful work.
    """
    spawned = (usable_cpus() if workers is None else workers) - 1
    pool: ProcessPoolExecutor | None = None
    ready: list[Future[None]] = []
    pending: deque[ChunkOutcome | Future[ChunkOutcome]] = deque()
    seen = 0
    try:
        for chunk in chunks:
            if pool is None and spawned > 0 and seen >= parallel_after_rows:
                pool = ProcessPoolExecutor(
                    spawned,
                    mp_context=get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(
                        builder.snapshot,
                        builder.mapping,
                        builder.policy,
                        builder.password_hashes,
                        builder.fallback,
                        os.getpid(),
                    ),  # fmt: skip
                )
                # one task per worker: the pool spawns a process per task it cannot place
                ready = [pool.submit(_ready) for _ in range(spawned)]
            seen += len(chunk)
            queued = sum(isinstance(item, Future) and not item.done() for item in pending)
            if (
                pool is not None
                and any(f.done() for f in ready)
                and queued < IN_FLIGHT_PER_WORKER * spawned
            ):
                pending.append(pool.submit(_build_in_worker, chunk))
            else:
                pending.append(builder(chunk))
            while pending and (
                len(pending) > IN_FLIGHT_PER_WORKER * (spawned + 1) or _done(pending[0])
            ):
                yield _outcome(pending.popleft())
        while pending:
            yield _outcome(pending.popleft())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def usable_cpus() -> int:
    """The CPUs this process may run on: how many workers a build starts by default."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _done(item: ChunkOutcome | Future[ChunkOutcome]) -> bool:
    return not isinstance(item, Future) or item.done()


def _outcome(item: ChunkOutcome | Future[ChunkOutcome]) -> ChunkOutcome:
    return item.result() if isinstance(item, Future) else item


# --- in a worker process -----------------------------------------------------------------

_builder: ChunkBuilder | None = None


def _start_worker(
    snapshot: PoolSnapshot, mapping: Mapping, policy: DuplicatePolicy, password_hashes: bool,
    fallback: PasswordFallback, parent: int,
) -> None:  # fmt: skip
    global _builder
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    _builder = ChunkBuilder(snapshot, mapping, policy, password_hashes, fallback)


def _exit_with(parent: int) -> None:
    """End this worker once the build that started it is gone (killed, kill -9 included).

    A pool's worker holds both ends of its task queue, so it never sees the queue close
    and would otherwise wait for tasks forever, holding its memory.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _ready() -> None:
    """Nothing: done once a worker has started (imports and the schema built)."""


def _build_in_worker(chunk: pd.DataFrame) -> ChunkOutcome:
    assert _builder is not None, "the pool's initializer did not run"
    return _builder(chunk)
