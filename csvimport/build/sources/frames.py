"""Turn the values a JSON file or a database gives into the text chunks every source yields.

A mapping works on text: :func:`texts` renders a column of values (NULL -> "", datetimes
-> ISO 8601, booleans -> "true"/"false", JSON objects -> JSON text, binary -> UTF-8 or
hex), and :func:`records_frame` / :func:`columns_frame` number the rows with ``ROW``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import pandas as pd

from csvimport.build.sources.base import ROW


def as_text(value: Any) -> str:
    """Render one database or JSON value as the text a mapping works on."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
        # Binary that merely happens to decode (a BIT(1) column's b"\x01") reads as hex.
        if text.isprintable() or all(c.isprintable() or c in "\t\n\r" for c in text):
            return text
        return raw.hex()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


# Column types rendered without a call per value: with str() or by a fixed method.
_BY_STR = frozenset({int, float, Decimal, UUID})
_NONE = type(None)


def texts(column: Sequence[Any]) -> list[str]:
    """Render a column of values as text, fast when the column holds one plain type."""
    types = set(map(type, column))
    types.discard(_NONE)
    if not types or types == {str}:
        return ["" if value is None else value for value in column]
    if len(types) == 1:
        (kind,) = types
        if kind in _BY_STR:
            return ["" if value is None else str(value) for value in column]
        if kind is datetime:
            return ["" if value is None else value.isoformat(" ") for value in column]
        if kind is bool:
            return ["" if value is None else "true" if value else "false" for value in column]
    return [as_text(value) for value in column]


def records_frame(names: list[str], records: list[dict[str, Any]], first: int) -> pd.DataFrame:
    data = [texts([record.get(name) for record in records]) for name in names]
    return columns_frame(names, data, len(records), first)


def columns_frame(names: list[str], data: list[list[str]], count: int, first: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        dict(zip(names, data, strict=True)), index=pd.RangeIndex(first - 1, first - 1 + count)
    )
    frame[ROW] = range(first, first + count)
    return frame
