"""Read the legacy users from a JSON Lines file (:class:`JsonlSource`, streamed line by
line) or a JSON array of objects (:class:`JsonSource`, loaded whole).

Keys are the columns; values become text as :mod:`csvimport.build.sources.frames` renders them.
A key given twice in one object, keys that differ only in surrounding spaces, the reserved
key ``__row__`` and a lone surrogate (half a character) are refused, naming the line or item.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd

from csvimport.build.sources.base import ROW, SourceError
from csvimport.build.sources.filesource import FileSource
from csvimport.build.sources.frames import records_frame

JSONL_COLUMN_LINES = 1000


class JsonlSource(FileSource):
    """One JSON object per line (blank lines skipped), streamed line by line.

    The columns are the keys of the objects on the first 1,000 lines, in order of first
    appearance; a key first seen further on is not read (a mapping naming it is refused
    as an unknown column), and a missing key reads as "".
    """

    kind = "jsonl"

    def columns(self) -> list[str]:
        names: dict[str, None] = {}
        for lineno, record in self._records():
            if lineno > JSONL_COLUMN_LINES:
                break
            names.update(dict.fromkeys(record))
        if not names:
            raise SourceError(
                f"{self.location} holds no JSON objects.",
                hint="Export the legacy users as one JSON object per line.",
                source=self.location,
            )
        return list(names)

    def chunks(self) -> Iterator[pd.DataFrame]:
        names = self.columns()
        batch: list[dict[str, Any]] = []
        first = 1
        for _, record in self._records():
            batch.append(record)
            if len(batch) == self.chunk_rows:
                yield records_frame(names, batch, first)
                first += len(batch)
                batch = []
        if batch:
            yield records_frame(names, batch, first)

    def _records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (line number, object with stripped keys) for each non-blank line."""
        try:
            with self._open_text() as f:
                for lineno, line in enumerate(f, 1):
                    if lineno == 1:
                        line = line.lstrip("\ufeff")
                    if not line.strip():
                        continue
                    try:
                        value = json.loads(line.rstrip())
                        # A key given twice would be read as its last value, silently:
                        # look closer wherever the line names more keys than were read.
                        if isinstance(value, dict) and len(_KEY.findall(line)) > len(value):
                            value = json.loads(line, object_pairs_hook=_JsonObject.of)
                    except json.JSONDecodeError as exc:
                        raise SourceError(
                            f"{self.location}, line {lineno}: not valid JSON: {exc.msg} "
                            f"(column {exc.colno}).",
                            hint="Each line must hold one complete JSON object.",
                            source=self.location,
                            line=lineno,
                        ) from exc
                    if not isinstance(value, dict):
                        raise SourceError(
                            f"{self.location}, line {lineno}: a JSON {_json_type(value)}, "
                            "not an object.",
                            hint="Each line must hold one JSON object, e.g. "
                            '{"email": "a@example.com"}.',
                            source=self.location,
                            line=lineno,
                        )
                    if "\\u" in line:  # only an escape can make a lone surrogate
                        _refuse_lone_surrogates(value, self.location, f"line {lineno}", lineno)
                    yield lineno, _strip_keys(value, self.location, f"line {lineno}")
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc


class JsonSource(FileSource):
    """A top-level JSON array of objects.

    The whole file is loaded into memory (JSON has no standard streaming reader in the
    standard library); for large exports use JSON Lines (.jsonl), which is streamed. The
    columns are the union of the objects' keys, in order of first appearance.
    """

    kind = "json"

    def columns(self) -> list[str]:
        names: dict[str, None] = {}
        for record in self._load():
            names.update(dict.fromkeys(record))
        return list(names)

    def chunks(self) -> Iterator[pd.DataFrame]:
        records = self._load()
        names: dict[str, None] = {}
        for record in records:
            names.update(dict.fromkeys(record))
        columns = list(names)
        for start in range(0, len(records), self.chunk_rows):
            yield records_frame(columns, records[start : start + self.chunk_rows], start + 1)

    def _load(self) -> list[dict[str, Any]]:
        try:
            with self._open_text() as f:
                text = f.read()
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc
        try:
            value = json.loads(text.lstrip("\ufeff"), object_pairs_hook=_JsonObject.of)
        except json.JSONDecodeError as exc:
            hint = "The file must hold one JSON array of objects: [{...}, {...}]."
            if exc.msg == "Extra data":
                hint += " If it holds one object per line, name it .jsonl."
            raise SourceError(
                f"{self.location}, line {exc.lineno} column {exc.colno}: not valid JSON: "
                f"{exc.msg}.",
                hint=hint,
                source=self.location,
                line=exc.lineno,
            ) from exc
        if not isinstance(value, list):
            raise SourceError(
                f"{self.location} holds a JSON {_json_type(value)}, not an array of objects.",
                hint="The file must hold one JSON array of objects: [{...}, {...}]; for one "
                "object per line, use a .jsonl file.",
                source=self.location,
            )
        if not value:
            raise SourceError(
                f"{self.location} holds an empty array: there are no users and no columns.",
                hint="Export at least one legacy user.",
                source=self.location,
            )
        records: list[dict[str, Any]] = []
        escapes = "\\u" in text  # only an escape can make a lone surrogate
        for position, item in enumerate(value, 1):
            if not isinstance(item, dict):
                raise SourceError(
                    f"{self.location}: item {position} of the array is a JSON "
                    f"{_json_type(item)}, not an object.",
                    hint="Every item of the array must be a JSON object.",
                    source=self.location,
                )
            if escapes:
                _refuse_lone_surrogates(item, self.location, f"item {position}")
            records.append(_strip_keys(item, self.location, f"item {position}"))
        return records


def _refuse_lone_surrogates(
    record: dict[str, Any], location: str, where: str, line: int | None = None
) -> None:
    """Refuse a JSON record holding half a character (a \\uD800-\\uDFFF escape without
    its pair): no UTF-8 file can hold it, so no output could."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SourceError(
            f"{location}, {where}: a \\u escape that is half a character (a lone surrogate, "
            "e.g. \\ud800), which no UTF-8 file can hold.",
            hint="Fix the export: write the whole character (both halves of the surrogate "
            "pair) or remove it.",
            source=location,
            line=line,
        ) from None


# Where a JSON object names a key: a string followed by a colon.
_KEY = re.compile(r'"\s*:')


class _JsonObject(dict[str, Any]):
    """A JSON object as read, naming a key it held more than once (json keeps the last)."""

    twice: str | None = None

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _JsonObject:
        found = cls(pairs)
        if len(found) != len(pairs):
            counts = Counter(key for key, _ in pairs)
            found.twice = next(key for key, count in counts.items() if count > 1)
        return found


def _strip_keys(record: dict[str, Any], location: str, where: str) -> dict[str, Any]:
    twice = getattr(record, "twice", None)
    if twice is not None:
        raise SourceError(
            f"{location}, {where}: the key {twice!r} is given more than once, and JSON "
            "would keep only its last value.",
            hint="Give each key once in every object.",
            source=location,
        )
    stripped = {key.strip(): value for key, value in record.items()}
    if len(stripped) != len(record):
        raise SourceError(
            f"{location}, {where}: keys that differ only in surrounding spaces.",
            hint="Rename the keys so that each name is used once.",
            source=location,
        )
    if ROW in stripped:
        raise SourceError(
            f"{location}, {where}: a key named {ROW!r}, which csvimport reserves.",
            hint=f"Rename the key {ROW!r} in the source.",
            source=location,
        )
    return stripped


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
