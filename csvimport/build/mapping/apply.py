"""Apply a mapping to one chunk of source rows: the mapped frame, and every refused value.

:func:`apply_mapping` maps one chunk of source rows at a time and never raises for bad
data: a value its transform refuses becomes ``""`` in the mapped frame and a
:class:`Problem`, which the build turns into a reject. It trims each source column once,
and runs a transform that can refuse a value on the *distinct* values of a chunk where
legacy data repeats (booleans, dates).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from csvimport.build.mapping.spec import (
    MAX_GROUPS_PER_USER,
    USERNAME,
    AttributeRule,
    Groups,
    Mapping,
)
from csvimport.build.mapping.transforms import convert, fold_line_breaks, transform

# --- results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One source value that could not be mapped; the build turns it into a reject."""

    row: int  # the source's __row__ (1-based source position)
    attribute: str  # the Cognito attribute, e.g. "phone_number"
    rule: str  # the transform that refused it: boolean, email, phone, date, timestamp
    reason: str  # plain language, e.g. "not a valid phone number for region US"
    value: str  # the source value as given (for a join: the joined value)


@dataclass
class MappedChunk:
    """The mapped rows of one source chunk, and every value that could not be mapped.

    ``frame`` has one row per input row, in order and with the input's index. Its columns:
    ``__row__`` (int, copied), ``__legacy_id__`` (str), ``__updated__`` (str: the
    ``[legacy].updated`` value as epoch seconds, ``""`` when there is no such column or the
    value is empty or unreadable), ``__salt__`` (str) only when the mapping's
    ``[legacy_hash]`` names a salt column (its values as the source gives them, untrimmed:
    spaces may be part of a salt), then one ``str`` column per Cognito attribute, exactly
    :meth:`Mapping.attributes`. A value its transform refused is ``""`` there, and a
    :class:`Problem` in ``problems`` (all of them, ordered by row then attribute).
    ``folded`` counts, for each attribute with ``fold_line_breaks``, the values whose line
    breaks were folded. With ``[legacy].disabled``, ``__disabled__`` (``"true"``/``"false"``;
    an unreadable or empty flag is a Problem: the user is rejected, never imported enabled
    by a guess); with ``[groups]``, ``__groups__`` and ``__unmapped_roles__`` (a user with
    more than 100 groups is a Problem: Cognito would refuse the rest).
    """

    frame: pd.DataFrame
    problems: list[Problem]
    folded: dict[str, int] = field(default_factory=dict)


# --- applying a mapping to a chunk --------------------------------------------------

SALT: Final = "__salt__"  # the mapped frame's column of [legacy_hash] salts
# With [legacy].disabled: "true" for a user the legacy system had disabled, else "false".
DISABLED: Final = "__disabled__"
# With [groups]: the user's Cognito groups, joined by a space (group names hold none), and
# the legacy roles [groups.names] does not name, as a JSON list ("" when none).
GROUPS: Final = "__groups__"
UNMAPPED: Final = "__unmapped_roles__"
DISABLED_ATTRIBUTE: Final = "[legacy].disabled"
GROUPS_ATTRIBUTE: Final = "[groups]"
EMPTY_FLAG_REASON: Final = (
    "empty: the mapping cannot tell whether the legacy system had disabled this user"
)

# Transforms that never refuse a value: applied to every row directly, which is cheaper
# than finding the distinct values first.
TOTAL_TRANSFORMS: Final = ("text", "lower", "upper")
# A column whose first rows are nearly all different (emails, phone numbers, timestamps)
# is not worth finding its distinct values: they are then simply all of them.
_DISTINCT_SAMPLE: Final = 2_000
# Except dates: a century holds fewer than 40,000 days, so a chunk of users always shares
# them, though its first rows may all differ (birthdates often do).


def apply_mapping(mapping: Mapping, chunk: pd.DataFrame) -> MappedChunk:
    """Map one chunk of source rows; never raises for bad values.

    ``chunk`` holds ``str`` values (``""`` for missing) and an int ``__row__`` column
    (1-based source position). Raises MappingError if a mapped column is missing
    (see :meth:`Mapping.check_columns`), ValueError if ``__row__`` is.
    """
    if "__row__" not in chunk.columns:
        raise ValueError("the chunk has no __row__ column (1-based source positions)")
    mapping.check_columns([str(c) for c in chunk.columns])
    return _Applier(mapping, chunk).run()


@dataclass
class _Converted:
    """A rule's transform applied to the distinct values of its source."""

    source: Any  # the rule's values, one per row (the column as given, or the joined values)
    codes: npt.NDArray[np.intp] | None  # row -> distinct value; None: one value per row
    mapped: Any  # per distinct value
    reasons: Any  # per distinct value, "" where it mapped


class _Applier:
    """Map one chunk, trimming each source column and finding its distinct values once.

    Transforms that can refuse a value run once per distinct value, and attributes with the
    same source and transform (updated_at and [legacy].updated) share the result. Values
    stay in pandas Series throughout, so Arrow-backed strings never become Python objects
    unless a library has to see them.
    """

    def __init__(self, mapping: Mapping, chunk: pd.DataFrame) -> None:
        self.mapping = mapping
        # Work on positions: the chunk's own index may repeat labels, which would break
        # aligning a column with its values. The mapped frame gets that index back.
        self.given_index = chunk.index
        self.index = pd.RangeIndex(len(chunk))
        self.chunk = chunk.set_axis(self.index, axis=0)
        self.rows = chunk["__row__"].to_numpy()
        self.trimmed_columns: dict[str, Any] = {}
        self.sources: dict[tuple[Any, ...], tuple[Any, int]] = {}
        self.converted: dict[tuple[Any, ...], _Converted] = {}
        self.problems: list[tuple[int, int, Problem]] = []
        self.folded: dict[str, int] = {}

    def run(self) -> MappedChunk:
        mapped = {
            rule.attribute: self.map_rule(order, rule)
            for order, rule in enumerate(self.mapping.rules)
        }
        frame = pd.DataFrame(
            {
                "__row__": self.chunk["__row__"].copy(),
                "__legacy_id__": self.legacy_id(mapped),
                "__updated__": self.updated(),
                **self.salt(),
                **self.disabled(),
                **self.groups(),
                **mapped,
            },
            index=self.index,
        ).set_axis(self.given_index, axis=0)
        self.problems.sort(key=lambda item: (item[0], item[1]))
        return MappedChunk(
            frame=frame, problems=[problem for _, _, problem in self.problems], folded=self.folded
        )

    def column(self, name: str) -> Any:
        """Return a source column as "str" values, "" for missing ones."""
        series = self.chunk[name]
        if series.dtype != "str":  # a reader that left numbers or None: be forgiving
            series = series.astype("str")
        return series.fillna("") if series.hasnans else series

    def trimmed(self, name: str) -> Any:
        """Return a source column's values, trimmed, one per row."""
        if name not in self.trimmed_columns:
            self.trimmed_columns[name] = self.column(name).str.strip()
        return self.trimmed_columns[name]

    def joined(self, parts: Sequence[str], separator: str) -> Any:
        """Join the trimmed parts of each row with ``separator``, skipping empty parts."""
        result = self.trimmed(parts[0])
        for column in parts[1:]:
            part = self.trimmed(column)
            both = (result != "") & (part != "")
            result = (result + separator + part).where(both, result.where(result != "", part))
        return result

    def constant(self, value: str) -> Any:
        return pd.Series(value, index=self.index, dtype="str")

    def map_rule(self, order: int, rule: AttributeRule) -> Any:
        """Return the mapped values of one attribute, one per row, recording its problems."""
        if rule.value is not None:
            return self.constant(rule.value)
        if rule.fold_line_breaks is not None:
            self.folded[rule.attribute] = self.folded_source(rule)[1]
        if rule.transform in TOTAL_TRANSFORMS:
            values = self.source(rule)
            if rule.transform != "text":
                values, _ = transform(values, rule.context())
            return values if rule.default is None else values.where(values != "", rule.default)
        converted = self.convert(rule)
        failed = (converted.reasons != "").to_numpy()
        mapped = converted.mapped
        if rule.default is not None:
            mapped = mapped.where((mapped != "") | failed, rule.default)
        if failed.any():
            self.record(order, rule, converted, failed)
        return self.spread(converted.codes, mapped)

    def source(self, rule: AttributeRule) -> Any:
        """Return the trimmed values a column or join rule reads, one per row, with their
        line breaks folded where the rule asks."""
        return self.folded_source(rule)[0]

    def folded_source(self, rule: AttributeRule) -> tuple[Any, int]:
        """Return :meth:`source`'s values and how many of them had line breaks folded."""
        key = (rule.column, rule.join, rule.separator, rule.fold_line_breaks)
        if key not in self.sources:
            if rule.column is not None:
                values = self.trimmed(rule.column)
            else:
                values = self.joined(rule.join or (), rule.separator)
            folded = 0
            if rule.fold_line_breaks is not None:
                values, folded = fold_line_breaks(values, rule.fold_line_breaks)
            self.sources[key] = (values, folded)
        return self.sources[key]

    def convert(self, rule: AttributeRule) -> _Converted:
        """Transform the distinct values a rule reads; equal rules share the result."""
        context = rule.context(
            phone_region=self.mapping.phone_region, date_format=self.mapping.date_format
        )
        where = (rule.column,) if rule.column is not None else (rule.join, rule.separator)
        key = (*where, rule.fold_line_breaks, context)
        if key not in self.converted:
            values = self.source(rule)
            given = self.column(rule.column) if rule.column is not None else values
            sample = values.iloc[:_DISTINCT_SAMPLE]
            codes = None
            if (
                rule.transform == "date"
                or len(sample) < _DISTINCT_SAMPLE
                or sample.nunique() < 0.9 * _DISTINCT_SAMPLE
            ):
                codes, uniques = pd.factorize(values)
                values = pd.Series(uniques)
            mapped, reasons = convert(values, context)
            self.converted[key] = _Converted(given, codes, mapped, reasons)
        return self.converted[key]

    def spread(self, codes: npt.NDArray[np.intp] | None, values: Any) -> Any:
        """Return per-row values from per-distinct-value ones."""
        if codes is None:
            return values
        return pd.Series(values.array.take(codes), index=self.index)

    def record(self, order: int, rule: AttributeRule, converted: _Converted, failed: Any) -> None:
        """Add a Problem for every row whose value the rule's transform refused."""
        codes = converted.codes
        positions = np.flatnonzero(failed if codes is None else failed[codes])
        distinct = positions if codes is None else codes[positions]
        reasons = converted.reasons.iloc[distinct].tolist()
        given = converted.source.iloc[positions].tolist()
        rows = self.rows[positions].tolist()
        for position, row, reason, value in zip(
            positions.tolist(), rows, reasons, given, strict=True
        ):
            problem = Problem(int(row), rule.attribute, rule.transform, reason, value)
            self.problems.append((position, order, problem))

    def legacy_id(self, mapped: dict[str, Any]) -> Any:
        if self.mapping.legacy_id is None:
            return mapped[USERNAME]
        return self.trimmed(self.mapping.legacy_id)

    def salt(self) -> dict[str, Any]:
        """``{"__salt__": values}`` when [legacy_hash] names a salt column, else nothing."""
        legacy_hash = self.mapping.legacy_hash
        if legacy_hash is None or legacy_hash.salt is None:
            return {}
        return {SALT: self.column(legacy_hash.salt)}

    def disabled(self) -> dict[str, Any]:
        """``{"__disabled__": values}`` with [legacy].disabled, recording unreadable flags."""
        flag = self.mapping.disabled
        if flag is None:
            return {}
        rule = AttributeRule(attribute=DISABLED_ATTRIBUTE, column=flag.column, transform="boolean")
        converted = self.convert(rule)
        reasons = converted.reasons.where(converted.mapped != "", EMPTY_FLAG_REASON)
        reasons = reasons.where(converted.reasons == "", converted.reasons)
        failed = (reasons != "").to_numpy()
        if failed.any():
            self.record(len(self.mapping.rules), rule,
                        _Converted(converted.source, converted.codes, converted.mapped, reasons),
                        failed)  # fmt: skip
        wanted = "true" if flag.when else "false"
        flags = pd.Series(np.where((converted.mapped == wanted).to_numpy(), "true", "false"),
                          dtype="str")  # fmt: skip
        return {DISABLED: self.spread(converted.codes, flags)}

    def groups(self) -> dict[str, Any]:
        """``__groups__`` and ``__unmapped_roles__`` with [groups], worked out once per
        distinct value of the roles column (legacy roles repeat across users)."""
        table = self.mapping.groups
        if table is None:
            return {}
        given = self.trimmed(table.column)
        codes, uniques = pd.factorize(given)
        names, unmapped, reasons = [], [], []
        for value in uniques.tolist():
            groups, unknown = _roles(value, table)
            names.append(" ".join(groups))
            unmapped.append(json.dumps(unknown, ensure_ascii=False) if unknown else "")
            reasons.append(
                f"{len(groups)} groups: a Cognito user can be in at most {MAX_GROUPS_PER_USER}"
                if len(groups) > MAX_GROUPS_PER_USER else ""
            )  # fmt: skip
        reason_series = pd.Series(reasons, dtype="str")
        failed = (reason_series != "").to_numpy()
        if failed.any():
            rule = AttributeRule(attribute=GROUPS_ATTRIBUTE, column=table.column)
            self.record(len(self.mapping.rules) + 1, replace(rule, transform="groups"),
                        _Converted(given, codes, reason_series, reason_series), failed)  # fmt: skip
        return {
            GROUPS: self.spread(codes, pd.Series(names, dtype="str")),
            UNMAPPED: self.spread(codes, pd.Series(unmapped, dtype="str")),
        }

    def updated(self) -> Any:
        """Return the last-update times as epoch seconds; unreadable ones are not problems.

        The column is not an attribute, so a bad value must not reject the user: it only
        sorts the row as the oldest when duplicates are resolved.
        """
        if self.mapping.legacy_updated is None:
            return self.constant("")
        rule = AttributeRule(
            attribute="updated_at", column=self.mapping.legacy_updated, transform="timestamp"
        )
        converted = self.convert(rule)
        return self.spread(converted.codes, converted.mapped)


def _roles(value: str, table: Groups) -> tuple[list[str], list[str]]:
    """One user's Cognito groups (each once, in the column's order) and the legacy roles
    the table does not name, from their roles column's value."""
    names = dict(table.names)
    groups: dict[str, None] = {}
    unknown: dict[str, None] = {}
    for part in value.split(table.separator):
        role = part.strip()
        if not role:
            continue
        if role not in names:
            unknown[role] = None
        elif names[role]:
            groups[names[role]] = None
    return list(groups), list(unknown)
