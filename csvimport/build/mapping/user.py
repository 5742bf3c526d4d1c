"""One legacy user through the mapping and the pool's rules, as the migration function needs.

:class:`UserMapper` maps and validates ONE legacy record (source column -> value) into the
attributes the import file would carry for it, by the build's own steps on a chunk of one
row: :func:`~csvimport.build.mapping.apply.apply_mapping` (transforms, defaults,
``fold_line_breaks``), :class:`~csvimport.build.mapping.columns.ImportColumns` (the pool's
columns the mapping leaves out) and the pool's pandera schema
(:class:`~csvimport.build.validate.PoolValidator`). So for any source row it gives the values
the build writes, or refuses the user for the rules the build's ``rejects.csv`` names.
What it cannot see is the other users: the build's duplicate policy, and a source row the
file layout garbled (a stray quote), are the build's alone.

Build the mapper once (it builds the pool's schema) and call :meth:`UserMapper.map` per
user.
"""

from __future__ import annotations

from collections.abc import Mapping as RecordMapping
from dataclasses import dataclass

import pandas as pd

from csvimport.build.mapping.apply import Problem, apply_mapping
from csvimport.build.mapping.columns import ImportColumns, check_attributes
from csvimport.build.mapping.spec import Mapping
from csvimport.build.validate import PoolValidator
from csvimport.pool import PoolSnapshot

# The __row__ of the one-row chunk a record is mapped as, and so its Problems' row.
RECORD_ROW = 1


@dataclass(frozen=True)
class MappedUser:
    """One legacy user as the import file would carry it, and why it could not be.

    ``attributes`` holds every column an import file for the pool carries
    (:class:`~csvimport.build.mapping.columns.ImportColumns`: the pool's header without
    ``password_hash``), in the header's order, with the values as Cognito would read them
    (not escaped); ``""`` where the user has none. ``problems`` is empty when the build
    would write the user; otherwise it holds what ``rejects.csv`` would say of the user,
    line for line (attribute, rule, reason, value), with ``row`` RECORD_ROW. A value its
    transform refused is ``""`` in ``attributes``.
    """

    attributes: dict[str, str]
    problems: list[Problem]
    legacy_id: str  # the [legacy] id column's value, or the mapped cognito:username

    @property
    def ok(self) -> bool:
        """Tell whether the build would write this user (no problems)."""
        return not self.problems


class UserMapper:
    """Maps one legacy record at a time for one mapping and pool; holds the pool's schema.

    Raises ConfigError (a MappingError for the columns) when the mapping sets an attribute
    the pool does not have, as the build does.
    """

    def __init__(self, mapping: Mapping, snapshot: PoolSnapshot) -> None:
        check_attributes(mapping, snapshot)
        self.mapping = mapping
        self.columns = ImportColumns.of(snapshot)
        self.validator = PoolValidator(snapshot)
        self._reads = mapping.source_columns()

    def map(self, record: RecordMapping[str, str | None]) -> MappedUser:
        """Map and validate one legacy user; never raises for bad values.

        ``record`` maps source column names to the values a source reader gives (text;
        None counts as ``""``); columns the mapping does not read are ignored. Raises
        MappingError naming the mapped columns ``record`` lacks, TypeError for a value
        that is not text, ValueError for one holding a lone surrogate.
        """
        self.mapping.check_columns(list(record))
        values = {column: _text(column, record[column]) for column in self._reads}
        chunk = pd.DataFrame(
            {
                **{c: pd.Series([v], dtype="str") for c, v in values.items()},
                "__row__": pd.Series([RECORD_ROW], dtype="int64"),
            }
        )
        mapped = apply_mapping(self.mapping, chunk)
        frame = self.columns.complete(mapped.frame.reset_index(drop=True))
        problems = list(mapped.problems)
        # As the build: a value the mapping refused is "" in the frame, and its problem
        # already says why, so the pool's rules are not asked about it again.
        refused = {problem.attribute for problem in problems}
        problems += [
            Problem(RECORD_ROW, failure.attribute, failure.rule, failure.reason, failure.value)
            for failure in self.validator.validate(frame[self.columns.names])
            if failure.attribute not in refused
        ]
        row = frame.iloc[0]
        return MappedUser(
            attributes={name: str(row[name]) for name in self.columns.names},
            problems=problems,
            legacy_id=str(row["__legacy_id__"]),
        )


def _text(column: str, value: object) -> str:
    """Return a record's value as the text the mapping reads; refuse anything but text.

    A lone surrogate is refused as the source readers refuse it: no import file can hold it.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(
            f"the record's {column!r} is {type(value).__name__}, not text: pass the values "
            "as the source readers give them (str, or None for no value)"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"the record's {column!r} holds half a character "
                f"(U+{ord(value[exc.start]):04X}, a lone surrogate) at position {exc.start}, "
                "which no UTF-8 file can hold: write the whole character, or remove it"
            ) from None
    return value
