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
user. :meth:`UserMapper.map` takes a few milliseconds: it runs the build's own transforms
and the schema's own rules on the one user's values directly, where the build's path for a
chunk (:meth:`UserMapper.map_as_chunk`, kept as the reference) spends tens of milliseconds
in pandas and pandera's machinery for many rows. tests/test_build_property.py holds both
to what the build writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as RecordMapping
from dataclasses import dataclass

import pandas as pd

from csvimport.build.mapping.apply import TOTAL_TRANSFORMS, Problem, apply_mapping
from csvimport.build.mapping.columns import ImportColumns, check_attributes
from csvimport.build.mapping.spec import USERNAME, Mapping
from csvimport.build.mapping.transforms import convert_value, fold
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
        mapped, legacy_id, problems = _map_values(self.mapping, values)
        attributes = {
            name: mapped.get(name, self.columns.defaults.get(name, ""))
            for name in self.columns.names
        }
        refused = {problem.attribute for problem in problems}
        problems += [
            Problem(RECORD_ROW, failure.attribute, failure.rule, failure.reason, failure.value)
            for failure in self.validator.validate_user(attributes)
            if failure.attribute not in refused
        ]
        return MappedUser(attributes=attributes, problems=problems, legacy_id=legacy_id)

    def map_as_chunk(self, record: RecordMapping[str, str | None]) -> MappedUser:
        """Map one legacy user as :meth:`map` does, by the build's own path: a chunk of one
        row through apply_mapping and the pool's pandera schema (the reference :meth:`map`
        is tested against; 30-120 ms a user)."""
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


def _map_values(
    mapping: Mapping, values: dict[str, str]
) -> tuple[dict[str, str], str, list[Problem]]:
    """Map one user's source values as apply_mapping maps a row: (attribute -> value, the
    legacy id, the refused values' problems in the mapping's order).

    The same steps in the same order (trim, join, fold, transform, default), each value
    through the build's own functions on a one-value Series, so the string engine that
    trims, folds and lowers is the build's; only the bookkeeping for many rows is left out.
    """
    mapped: dict[str, str] = {}
    problems: list[Problem] = []
    trimmed = _trimmed(values)
    for rule in mapping.rules:
        if rule.value is not None:
            mapped[rule.attribute] = rule.value
            continue
        if rule.column is not None:
            value = trimmed[rule.column]
        else:
            value = ""
            for part in (trimmed[column] for column in rule.join or ()):
                value = value + rule.separator + part if value and part else value or part
        if rule.fold_line_breaks is not None and ("\n" in value or "\r" in value):
            value = str(fold(pd.Series([value], dtype="str"), rule.fold_line_breaks).iat[0])
        if rule.transform in TOTAL_TRANSFORMS:
            value = convert_value(value, rule.context())[0]
            if value == "" and rule.default is not None:
                value = rule.default
            mapped[rule.attribute] = value
            continue
        context = rule.context(phone_region=mapping.phone_region, date_format=mapping.date_format)
        result, reason = convert_value(value, context)
        if reason:
            given = values[rule.column] if rule.column is not None else value
            problems.append(Problem(RECORD_ROW, rule.attribute, rule.transform, reason, given))
        elif result == "" and rule.default is not None:
            result = rule.default
        mapped[rule.attribute] = result
    legacy_id = mapped[USERNAME] if mapping.legacy_id is None else trimmed[mapping.legacy_id]
    return mapped, legacy_id, problems


# Values made of these alone trim alike in Python and in Arrow (the build's engine).
_PLAIN = re.compile(r"[\t\n\r -~]*\Z")


def _trimmed(values: dict[str, str]) -> dict[str, str]:
    """Each value trimmed as the build trims a column (pandas ``str.strip``)."""
    if all(_PLAIN.match(value) for value in values.values()):
        return {column: value.strip() for column, value in values.items()}
    stripped = pd.Series(list(values.values()), dtype="str").str.strip().tolist()
    return dict(zip(values, stripped, strict=True))


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
