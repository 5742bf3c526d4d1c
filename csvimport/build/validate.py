"""Validate mapped users against the pool's own rules, with a pandera schema made from it.

The schema is generated from a :class:`~csvimport.pool.PoolSnapshot`, never written by
hand per pool. It enforces what Cognito enforces on an import row (facts §2); validation is
lazy, so every failure of every row is collected. Uniqueness is not checked here: the
duplicate policy (``csvimport.build.duplicates``) decides which of the colliding rows goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Mapping as RecordMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from csvimport.build.reasons import reason
from csvimport.cognito_csv import ESCAPE, doubtful_backslashes, may_hold, written_lengths
from csvimport.pool import Attribute, PoolSnapshot

# pandera (about 0.2 s and 15 MiB to load) is loaded where a schema is made: what only
# reads this module's patterns (the mapping's transforms, and through them the command
# line and the report) must not wait for it.
if TYPE_CHECKING:
    import pandera.pandas as pa

MAX_VALUE_CHARS = 2_048
MAX_ROW_CHARS = 16_000
MAX_USERNAME_CHARS = 128
BOOLEAN_COLUMNS = ("email_verified", "phone_number_verified", "cognito:mfa_enabled")
# Columns whose own rule admits no backslash: searching them for one would be wasted.
FORMATTED_COLUMNS = (*BOOLEAN_COLUMNS, "phone_number", "birthdate", "updated_at")
E164 = r"^\+[1-9][0-9]{1,14}$"
# What Python's \s matches in a str, spelt out: the rules mean re's \s (as the sandbox's
# do), but given \s pandas runs the regex in Python per value, since RE2 (its vectorised
# engine for Arrow strings) reads \s as ASCII whitespace only. A test pins the two alike.
WHITESPACE = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The sandbox's email rule (csvimport.sandbox.rules) and this one must agree; the mapping's
# `email` transform is stricter (email-validator) and runs before.
EMAIL = rf"^[^@{WHITESPACE}]+@[^@{WHITESPACE}]+\.[^@{WHITESPACE}]+$"
# A custom Number value: ASCII digits, optional sign, fraction and exponent (no nan, inf or
# other scripts' digits). What Cognito accepts is UNVERIFIED; the sandbox guesses the same
# (csvimport.sandbox.settings.NUMBER_PATTERN).
NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_ASCII_USERNAME = re.compile(r"^[!-~]+$")
_NUMBER = re.compile(NUMBER)


@dataclass(frozen=True)
class Failure:
    """One rule one row breaks: where (source row), which attribute, which rule, the value."""

    position: int  # the row's index in the validated frame
    attribute: str
    rule: str
    value: str

    @property
    def reason(self) -> str:
        return reason(self.rule, self.attribute)


# One value's verdict without pandas, for the single-user path: True or False where it is
# certainly what ``passes`` says of the value (for the regexes: ASCII values, where \d and
# case read alike whichever engine pandas picks), None to ask ``passes``. A test checks
# each against ``passes`` on hostile text.
OneValue = Callable[[str], bool | None]


@dataclass(frozen=True)
class _ValueRule:
    """A rule on each value of a column: which values of a Series pass it, and (``one``)
    the same verdict for one value in plain Python where it can be given."""

    rule: str
    passes: Callable[[pd.Series], pd.Series]
    one: OneValue | None = None

    def check(self) -> pa.Check:
        import pandera.pandas as pa

        return pa.Check(self.passes, error=self.rule, name=self.rule)


def _element(
    rule: str, fn: Callable[[pd.Series], pd.Series], one: OneValue | None = None
) -> _ValueRule:
    return _ValueRule(rule, fn, one)


def _ascii_match(pattern: str) -> OneValue:
    """``one`` for a ``str.match`` of ``pattern`` (anchored at the start; "$" also before a
    final line break, as pandas matches): decided for ASCII values only."""
    compiled = re.compile(pattern)
    return lambda v: bool(compiled.match(v)) if v.isascii() else None


def _ascii_fullmatch(pattern: str) -> OneValue:
    """``one`` for a ``str.fullmatch`` of ``pattern``: decided for ASCII values only."""
    compiled = re.compile(pattern)
    return lambda v: bool(compiled.fullmatch(v)) if v.isascii() else None


def _empty_or(one: OneValue) -> OneValue:
    return lambda v: True if v == "" else one(v)


def _username_ok(value: str) -> bool:
    import unicodedata

    if _ASCII_USERNAME.match(value):
        return True
    return all(unicodedata.category(ch)[0] in "LMSNP" for ch in value)


def _column_checks(
    name: str, attribute: Attribute | None, snapshot: PoolSnapshot
) -> list[_ValueRule]:
    checks = [
        _element("value_too_long", lambda s: s.str.len() <= MAX_VALUE_CHARS,
                 lambda v: len(v) <= MAX_VALUE_CHARS),
        _element("newline", _no_line_breaks, lambda v: "\n" not in v and "\r" not in v),
    ]  # fmt: skip
    if name not in FORMATTED_COLUMNS and not (attribute and attribute.custom
                                              and attribute.data_type != "String"):  # fmt: skip
        # what Cognito's dialect cannot carry without doubt (cognito_csv.BACKSLASH_IS_LITERAL)
        checks.append(_element("backslash", lambda s: ~doubtful_backslashes(s),
                               lambda v: True if ESCAPE not in v else None))  # fmt: skip
    if name == "cognito:username":
        checks += [
            _element("username_missing", lambda s: s != "", lambda v: v != ""),
            _element("username_whitespace", lambda s: ~s.str.contains(f"[{WHITESPACE}]"),
                     lambda v: _WHITESPACE.search(v) is None),
            _element("username_too_long", lambda s: s.str.len() <= MAX_USERNAME_CHARS,
                     lambda v: len(v) <= MAX_USERNAME_CHARS),
            _element("username_characters", _usernames_ok, _username_ok),
        ]  # fmt: skip
        for alias, pattern in (("email", EMAIL), ("phone_number", E164)):
            if alias in snapshot.alias_attributes:
                checks.append(
                    _element(
                        "username_looks_like_alias",
                        _not_matching(pattern),
                        _negated(_ascii_match(pattern)),
                    )
                )
    elif name in BOOLEAN_COLUMNS:
        checks.append(
            _element("boolean", lambda s: s.str.lower().isin(["", "true", "false"]), _boolean_one)
        )
    elif name == "email":
        checks.append(
            _element(
                "email", lambda s: (s == "") | s.str.match(EMAIL), _empty_or(_ascii_match(EMAIL))
            )
        )
    elif name == "phone_number":
        checks.append(_element("phone", lambda s: (s == "") | s.str.match(E164),
                               _empty_or(_ascii_match(E164))))  # fmt: skip
    elif name == "birthdate":
        checks.append(_element("birthdate", _birthdate_ok))
    elif name == "updated_at":
        checks.append(_element("updated_at", lambda s: (s == "") | s.str.fullmatch(r"\d+"),
                               _empty_or(_ascii_fullmatch(r"[0-9]+"))))  # fmt: skip
    if attribute is not None and attribute.custom:
        checks += _custom_checks(attribute)
    return checks


_WHITESPACE = re.compile(f"[{WHITESPACE}]")


def _negated(one: OneValue) -> OneValue:
    def negated(v: str) -> bool | None:
        verdict = one(v)
        return None if verdict is None else not verdict

    return negated


def _not_matching(pattern: str) -> Callable[[pd.Series], pd.Series]:
    return lambda s: ~s.str.match(pattern)


def _boolean_one(value: str) -> bool | None:
    # Only ASCII letters lower-case to these words, in Arrow as in Python.
    return value.lower() in ("", "true", "false") if value.isascii() else None


def _no_line_breaks(s: pd.Series) -> pd.Series:
    if not may_hold(s, "\r\n"):  # a scan of the bytes settles most columns
        return pd.Series(True, index=s.index)
    # two plain searches cost less than one regex with a class
    return ~(s.str.contains("\n", regex=False) | s.str.contains("\r", regex=False))


def _usernames_ok(s: pd.Series) -> pd.Series:
    # Printable ASCII settles nearly every username without a Python call per value.
    ascii_ok = s.str.fullmatch(r"[!-~]+").fillna(False).astype(bool)
    if ascii_ok.all():
        return ascii_ok
    rest = s[~ascii_ok]
    return ascii_ok | rest.map(_username_ok).astype(bool).reindex(s.index, fill_value=True)


def _birthdate_ok(s: pd.Series) -> pd.Series:
    # Parse each distinct date once: a million users share a few tens of thousands.
    codes, uniques = pd.factorize(s)
    distinct = pd.Series(uniques)
    shaped = distinct.where(distinct.str.fullmatch(r"\d{2}/\d{2}/\d{4}").fillna(False).astype(bool))
    parsed = pd.to_datetime(shaped, format="%m/%d/%Y", errors="coerce")
    ok = ((distinct == "") | parsed.notna()).to_numpy(dtype=bool)
    # a missing value (code -1) is no date; factorize never gives one for str values
    return pd.Series(np.append(ok, False)[codes], index=s.index)


def _custom_checks(attribute: Attribute) -> list[_ValueRule]:
    if attribute.data_type == "Number":
        low, high = attribute.min_value, attribute.max_value

        def _number_in_bounds(s: pd.Series) -> pd.Series:
            numbers = pd.to_numeric(s.where(s.str.fullmatch(NUMBER).fillna(False)), errors="coerce")
            ok = pd.Series(True, index=s.index)
            if low is not None:
                ok &= ~(numbers < low)
            if high is not None:
                ok &= ~(numbers > high)
            return ok

        def _number_one(value: str) -> bool | None:
            if not value.isascii():
                return None
            if not _NUMBER.fullmatch(value):
                return True  # not a number: the number rule says so, not this one
            number = float(value)
            return not (low is not None and number < low) and not (
                high is not None and number > high
            )

        return [
            _element("number", lambda s: (s == "") | s.str.fullmatch(NUMBER).fillna(False),
                     _empty_or(_ascii_fullmatch(NUMBER))),
            _element("number_range", _number_in_bounds, _number_one),
        ]  # fmt: skip
    if attribute.data_type == "Boolean":
        return [_element("boolean", lambda s: s.str.lower().isin(["", "true", "false"]),
                         _boolean_one)]  # fmt: skip
    if attribute.data_type == "DateTime":
        return [_element("datetime", lambda s: (s == "") | pd.to_datetime(
            s, errors="coerce", format="ISO8601").notna())]  # fmt: skip
    low_len, high_len = attribute.min_length, attribute.max_length

    def _length_in_bounds(s: pd.Series) -> pd.Series:
        lengths = s.str.len()
        ok = pd.Series(True, index=s.index)
        if low_len is not None:
            ok &= (s == "") | (lengths >= low_len)
        if high_len is not None:
            ok &= lengths <= high_len
        return ok

    def _length_one(value: str) -> bool:
        ok = True
        if low_len is not None:
            ok &= value == "" or len(value) >= low_len
        if high_len is not None:
            ok &= len(value) <= high_len
        return ok

    return [_element("length", _length_in_bounds, _length_one)]


@dataclass(frozen=True)
class _RowRule:
    """A rule on a whole row: which rows pass it, and the attribute a failure names."""

    rule: str
    attribute: str  # "" for the row's own (row_too_long)
    passes: Callable[[pd.DataFrame], pd.Series]
    # The same verdict for one user's values in plain Python; None: ask ``passes``.
    one: Callable[[RecordMapping[str, str]], bool | None] | None = None


def _row_rules(snapshot: PoolSnapshot) -> dict[str, _RowRule]:
    """Return the row rules by check id (the rule, or "required:<attribute>")."""

    def true(df: pd.DataFrame, column: str) -> pd.Series:
        return df[column].str.lower() == "true"

    rules: list[tuple[str, _RowRule]] = []
    auto = [f"{a}_verified" for a in snapshot.auto_verified]
    if auto:
        rules.append(("auto_verified", _RowRule("auto_verified", auto[0],
            lambda df: pd.concat([true(df, c) for c in auto], axis=1).any(axis=1),
            lambda v: _any_true([v[c] for c in auto]))))  # fmt: skip
    rules.append(("email_verified_without_email", _RowRule(
        "email_verified_without_email", "email",
        lambda df: ~true(df, "email_verified") | (df["email"] != ""),
        lambda v: _either(_not_true(v["email_verified"]), v["email"] != ""))))  # fmt: skip
    rules.append(("phone_verified_without_phone", _RowRule(
        "phone_verified_without_phone", "phone_number",
        lambda df: ~true(df, "phone_number_verified") | (df["phone_number"] != ""),
        lambda v: _either(_not_true(v["phone_number_verified"]),
                          v["phone_number"] != ""))))  # fmt: skip
    for name in snapshot.required():
        rules.append((f"required:{name}", _RowRule("required", name, _present(name),
                                                   _present_one(name))))  # fmt: skip
    forbidden = {"ON": "false", "OFF": "true"}.get(snapshot.mfa)
    if forbidden:
        rules.append(("mfa", _RowRule("mfa", "cognito:mfa_enabled",
            lambda df: df["cognito:mfa_enabled"].str.lower() != forbidden,
            lambda v: _negated(_is(forbidden))(v["cognito:mfa_enabled"]))))  # fmt: skip
    header = list(snapshot.header)

    def row_length_ok(df: pd.DataFrame) -> pd.Series:
        lengths = {column: df[column].str.len() for column in header}
        # Worst case every character is a comma (escaped as two): when even that fits,
        # no row can be too long and the exact count is not needed.
        if len(header) - 1 + sum(2 * int(v.max() or 0) for v in lengths.values()) <= MAX_ROW_CHARS:
            return pd.Series(True, index=df.index)
        total = pd.Series(len(header) - 1, index=df.index)
        for column in header:
            total += written_lengths(df[column])
        return total <= MAX_ROW_CHARS

    def row_length_one(values: RecordMapping[str, str]) -> bool | None:
        # the same worst case: it settles nearly every user; else ask the frame
        worst = len(header) - 1 + sum(2 * len(values[column]) for column in header)
        return True if worst <= MAX_ROW_CHARS else None

    rules.append(("row_too_long", _RowRule("row_too_long", "", row_length_ok, row_length_one)))
    return dict(rules)


def _is(word: str) -> OneValue:
    """Whether a value lower-cased is ``word`` (ASCII), decided for ASCII values only."""
    return lambda v: v.lower() == word if v.isascii() else None


def _not_true(value: str) -> bool | None:
    return _negated(_is("true"))(value)


def _either(first: bool | None, second: bool) -> bool | None:
    """``first or second``, None when it hangs on an undecided ``first``."""
    return True if second or first else None if first is None else False


def _any_true(values: list[str]) -> bool | None:
    verdicts = [_is("true")(v) for v in values]
    return True if True in verdicts else None if None in verdicts else False


def _present_one(column: str) -> Callable[[RecordMapping[str, str]], bool | None]:
    return lambda values: values[column] != ""


def _present(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: df[column] != ""


def _row_check(check_id: str, rule: _RowRule) -> pa.Check:
    """A pandera check that tells whether every row passes ``rule``.

    It answers for the whole frame on purpose: for a row-level check that fails, pandera
    would report each failing row with all its columns, which with Arrow strings costs a
    transposition per failing row (a third of validation time at a million users). The
    failing rows of a failed rule are found afterwards, vectorised (``_failures``).
    """
    import pandera.pandas as pa

    return pa.Check(lambda df: bool(rule.passes(df).all()), error=check_id, name=rule.rule)


class PoolValidator:
    """The pandera schema for one pool, and the translation of its failures."""

    def __init__(self, snapshot: PoolSnapshot) -> None:
        self.snapshot = snapshot
        self._value_rules = {
            name: _column_checks(name, snapshot.attribute(name), snapshot)
            for name in snapshot.header
        }
        self._checks = {
            name: [rule.check() for rule in rules] for name, rules in self._value_rules.items()
        }
        self._row_rules = _row_rules(snapshot)
        self._row_checks = [_row_check(i, rule) for i, rule in self._row_rules.items()]
        self._schemas: dict[frozenset[str], pa.DataFrameSchema] = {}
        self.schema = self._schema(frozenset(snapshot.header))

    def _schema(self, active: frozenset[str]) -> pa.DataFrameSchema:
        """The schema checking values only in ``active`` columns.

        Every per-value check passes on "" except username_missing, so a column that is
        empty throughout a chunk needs no per-value checks (row checks still see it). At a
        million users this halves validation time for a typical legacy mapping.
        """
        schema = self._schemas.get(active)
        if schema is None:
            import pandera.pandas as pa

            columns = {
                name: pa.Column(
                    str,
                    checks=self._checks[name]
                    if name in active or name == "cognito:username"
                    else [],
                )
                for name in self.snapshot.header
            }
            schema = pa.DataFrameSchema(columns, checks=self._row_checks, strict=False)
            self._schemas[active] = schema
        return schema

    def validate(self, frame: pd.DataFrame) -> list[Failure]:
        """Return every failure in ``frame`` (columns: the pool's header; all values str).

        ``Failure.position`` is the row's position in ``frame`` (0-based).
        """
        from pandera.errors import SchemaErrors

        frame = frame.reset_index(drop=True)
        active = frozenset(c for c in self.snapshot.header if (frame[c] != "").any())
        try:
            self._schema(active).validate(frame, lazy=True)
        except SchemaErrors as errors:
            return self._failures(frame, errors.failure_cases)
        return []

    def validate_user(self, values: RecordMapping[str, str]) -> list[Failure]:
        """Return the failures of one user, as :meth:`validate` returns them for a frame of
        that one row (``position`` 0), in a millisecond rather than pandera's tens.

        ``values`` maps the columns :meth:`validate` is given to text. The rules are the
        schema's own, each asked of the one-row column or frame directly; what pandera adds
        for many rows (its failure table, the schema of the active columns) is done here
        for one: a column whose value is "" has its value rules skipped, as every one but
        username_missing passes on "". tests/test_build_property.py holds the two alike.
        """
        frames: list[pd.DataFrame] = []

        def frame() -> pd.DataFrame:  # only for a rule plain Python cannot settle
            if not frames:
                frames.append(pd.DataFrame({n: [v] for n, v in values.items()}, dtype="str"))
            return frames[0]

        found: dict[tuple[str, str], str] = {}
        for name, value in values.items():
            if value == "" and name != "cognito:username":
                continue
            for rule in self._value_rules.get(name, []):
                verdict = rule.one(value) if rule.one is not None else None
                if verdict is None:
                    verdict = bool(rule.passes(frame()[name]).iloc[0])
                if not verdict:
                    found.setdefault((name, rule.rule), value)
        for row_rule in self._row_rules.values():
            verdict = row_rule.one(values) if row_rule.one is not None else None
            if verdict is None:
                verdict = bool(row_rule.passes(frame()).iloc[0])
            if not verdict:
                value = values[row_rule.attribute] if row_rule.attribute else ""
                found.setdefault((row_rule.attribute, row_rule.rule), value)
        return [Failure(0, attribute, rule, found[attribute, rule]) for attribute, rule in
                sorted(found)]  # fmt: skip

    def _failures(self, frame: pd.DataFrame, cases: pd.DataFrame) -> list[Failure]:
        # Vectorised: at a million users a per-failure lookup costs more than validating.
        row_level = (cases["schema_context"] == "DataFrameSchema").to_numpy()
        if pd.isna(cases["index"][~row_level]).any():
            bad = cases[~row_level & cases["index"].isna()].iloc[0].to_dict()
            raise ValueError(f"validation failed without a row: {bad}")  # a schema bug
        column_cases = cases[~row_level]
        parts = [
            pd.DataFrame({
                "position": column_cases["index"].astype("int64").to_numpy(),
                "attribute": column_cases["column"].astype(str).to_numpy(),
                "rule": column_cases["check"].astype(str).to_numpy(),
                "value": column_cases["failure_case"].astype(str).to_numpy(dtype=object),
            })
        ]  # fmt: skip
        for check_id in dict.fromkeys(cases["check"][row_level].astype(str)):
            if check_id not in self._row_rules:  # e.g. a check that raised: a schema bug
                bad = cases[row_level & (cases["check"] == check_id)].iloc[0].to_dict()
                raise ValueError(f"validation failed without a row: {bad}")
            rule = self._row_rules[check_id]
            positions = np.flatnonzero(~rule.passes(frame).to_numpy(dtype=bool))
            values = (
                frame[rule.attribute].to_numpy(dtype=object)[positions]
                if rule.attribute
                else np.full(len(positions), "", dtype=object)
            )
            parts.append(pd.DataFrame({"position": positions, "attribute": rule.attribute,
                                       "rule": rule.rule, "value": values}))  # fmt: skip
        found = pd.concat(parts, ignore_index=True)
        found = found.drop_duplicates(["position", "attribute", "rule"])
        found = found.sort_values(["position", "attribute", "rule"], kind="stable")
        return [
            Failure(int(p), str(a), str(r), str(v))
            for p, a, r, v in zip(
                found["position"], found["attribute"], found["rule"], found["value"], strict=True
            )
        ]
