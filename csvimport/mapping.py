"""Map legacy columns to Cognito attributes: the mapping file, its transforms, starter mappings.

A mapping is a TOML file (read with :mod:`tomllib`) that says, for every Cognito attribute
the import file carries, where its value comes from: one source ``column``, a ``join`` of
several, or a constant ``value``; and how to turn the legacy spelling into Cognito's
(facts §2): ``boolean`` -> ``true``/``false``, ``phone`` -> E.164, ``email`` -> validated
with the domain in lower case, ``date`` -> ``mm/dd/yyyy``, ``timestamp`` -> epoch seconds.
Cognito's CSV cannot carry a line break: an attribute with ``fold_line_breaks`` folds
each run of them into its text, before the transform.
``schemas/mappings/example-legacy.toml`` documents every key.

:func:`apply_mapping` maps one chunk of source rows at a time and never raises for bad
data: a value its transform refuses becomes ``""`` in the mapped frame and a
:class:`Problem`, which the build turns into a reject. A bad mapping file raises
:class:`MappingError` (exit 2) naming the file, the attribute and the key.

Transforms run column by column with pandas' vectorised string methods (in pyarrow when
strings are Arrow arrays, pandas' default when pyarrow is installed), on the *distinct*
values of a chunk where legacy data repeats (booleans, dates), and the slow libraries
(phonenumbers, email-validator) only see the values that a fast pre-check cannot settle.
Each pre-check is exact - it accepts nothing the library would refuse or write differently
- which the tests check against the libraries themselves.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final

import email_validator
import numpy as np
import numpy.typing as npt
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.errors import ConfigError
from csvimport.validate import WHITESPACE

# --- vocabulary of the mapping file -------------------------------------------------

MAPPING_VERSION: Final = 1  # part of the fingerprint: bump when apply_mapping's output changes

TRANSFORMS: Final = ("text", "boolean", "email", "phone", "date", "timestamp", "lower", "upper")
TRANSFORM_ALIASES: Final = {"none": "text"}
TOP_KEYS: Final = ("legacy", "options", "attributes")
LEGACY_KEYS: Final = ("id", "updated")
OPTION_KEYS: Final = ("phone_region", "date_format")
SOURCE_KEYS: Final = ("column", "join", "value")
ATTRIBUTE_KEYS: Final = (
    *SOURCE_KEYS, "transform", "default", "region", "format", "separator", "fold_line_breaks",
)  # fmt: skip
# What `fold_line_breaks` replaces: a run of line breaks ("\r\n", "\r", "\n") with the
# whitespace around and between them, so "a \r\n\r\n b" folds to one "a, b". Spelt with
# the validator's whitespace class, not \s, so that pandas hands it to pyarrow's RE2.
LINE_BREAK_RUN: Final = f"[{WHITESPACE}]*[\r\n][{WHITESPACE}]*"

# The columns of GetCSVHeader for a pool with standard attributes only (facts §1), plus the
# password_hash column of pools eligible for hash import. Custom attributes are custom:*.
STANDARD_ATTRIBUTES: Final = (
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "email_verified", "gender", "birthdate",
    "zoneinfo", "locale", "phone_number", "phone_number_verified", "address", "updated_at",
    "cognito:mfa_enabled", "cognito:username", "password_hash",
)  # fmt: skip
CUSTOM_PREFIXES: Final = ("custom:", "dev:custom:")
USERNAME: Final = "cognito:username"

# What `suggest_mapping` writes where it found no username column. It is a valid column
# name to TOML, so the file still parses; Mapping refuses it by this prefix.
PLACEHOLDER_PREFIX: Final = "TODO:"
USERNAME_PLACEHOLDER: Final = "TODO: the source column with each user's username"
# What `suggest_mapping` proposes line breaks fold into (postal addresses read well so),
# where some of the first MAP_SAMPLE_ROWS source rows span lines.
FOLD_SUGGESTION: Final = ", "
MAP_SAMPLE_ROWS: Final = 10_000

BOOLEAN_WORDS: Final = {
    **dict.fromkeys(("1", "y", "yes", "true", "t", "on"), "true"),
    **dict.fromkeys(("0", "n", "no", "false", "f", "off"), "false"),
}
BOOLEAN_REASON: Final = "not a boolean (expected true/false, yes/no, y/n, 1/0, t/f or on/off)"

# Dates without a `format` are tried in this order. Only forms that cannot be misread are
# here, plus mm/dd/yyyy, which is Cognito's own (so mapping an already-mapped file is a
# no-op); a day-first source must say `format = "%d/%m/%Y"`.
DATE_FORMATS: Final = (
    "%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d",
    "%d %b %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y", "%b %d, %Y", "%B %d, %Y",
)  # fmt: skip
DATE_REASON: Final = (
    "not a date (expected YYYY-MM-DD, MM/DD/YYYY or e.g. 1 Feb 1985; "
    "set the attribute's format for other forms)"
)
# The patterns below run through pandas' string methods. They keep to what Python's re and
# RE2 (pyarrow's engine, which pandas uses when strings are Arrow arrays) read alike: no
# lookarounds, no \d or \s (Unicode in re, ASCII in RE2), [0-9] for digits.

# An ISO 8601 date-time given to `date`: keep the date as written, whatever the time zone.
ISO_DATE_TIME: Final = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ][0-9:.,]+(?:Z|[+-][0-9:]+)?$"
SHORT_YEAR_REASON: Final = "not a date with a four-digit year (Cognito writes mm/dd/yyyy)"

# Epoch values: up to 10 digits are seconds (to 2286), 13 digits milliseconds. Anything in
# between or longer is ambiguous, so it is refused rather than guessed.
EPOCH: Final = r"-?[0-9]+(?:\.[0-9]*)?"
TIMESTAMP_REASON: Final = (
    "not a timestamp (expected epoch seconds, epoch milliseconds or an ISO 8601 date and time)"
)

# Phone numbers: the fast paths look at what is left after dropping spaces, dashes, dots and
# parentheses.
PHONE_PUNCTUATION: Final = r"[ \-.()]"
# Why phonenumbers could not read a number, or found it impossible. A local-only number (no
# area code) counts as impossible here, though phonenumbers' is_possible_number accepts it:
# "+15552671" would import but reach nobody.
PHONE_PARSE_REASONS: Final = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}
PHONE_LENGTH_REASONS: Final = {
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong number of digits",
}

# A conservative email shape: every address of at most EMAIL_FAST_MAX_LENGTH characters
# that it matches, and that is neither an RFC 2142 mailbox name nor at a special-use domain,
# email-validator accepts and normalises to the local part as given + "@" + the domain in
# lower case (the tests check this against email-validator itself). Everything else -
# quoted or non-ASCII local parts, labels with "--" (Punycode), long addresses - is left
# to email-validator.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
EMAIL_SHAPE: Final = (
    rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)+[A-Za-z]{{2,63}}"
)
EMAIL_FAST_MAX_LENGTH: Final = 64  # below every length limit email-validator checks
# RFC 2142 mailbox names: email-validator lower-cases these local parts.
EMAIL_CASE_INSENSITIVE_LOCALS: Final = (
    "info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster",
    "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp",
)  # fmt: skip
EMAIL_SPECIAL_LOCAL: Final = rf"(?i:{'|'.join(EMAIL_CASE_INSENSITIVE_LOCALS)})@"
EMAIL_SPECIAL_DOMAIN: Final = rf"\.(?i:{'|'.join(email_validator.SPECIAL_USE_DOMAIN_NAMES)})$"

# Advice that several errors share.
TOML_HINT = (
    "Check the line the parser names: strings need double quotes, and attribute names with "
    'a colon need them too, e.g. [attributes."cognito:username"].'
)
ATTRIBUTE_HINT = (
    'An attribute takes exactly one of: column = "col" (one source column), '
    'join = ["a", "b"] (several, joined), value = "constant".'
)
MISSING_FILE_HINT = (
    "Check the path, or write a starter mapping with "
    "`csvimport map SOURCE --pool-id ID --out mapping.toml`."
)


# --- results and errors ---------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One source value that could not be mapped; the build turns it into a reject."""

    row: int  # the source's __row__ (1-based source position)
    attribute: str  # the Cognito attribute, e.g. "phone_number"
    rule: str  # the transform that refused it: boolean, email, phone, date, timestamp
    reason: str  # plain language, e.g. "not a valid phone number for region US"
    value: str  # the source value as given (for a join: the joined value)


class MappingError(ConfigError):
    """The mapping file is unreadable or wrong; the message names the file, attribute and key."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        origin: str | None = None,
        attribute: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.origin = origin
        self.attribute = attribute
        self.key = key


@dataclass
class MappedChunk:
    """The mapped rows of one source chunk, and every value that could not be mapped.

    ``frame`` has one row per input row, in order and with the input's index. Its columns:
    ``__row__`` (int, copied), ``__legacy_id__`` (str), ``__updated__`` (str: the
    ``[legacy].updated`` value as epoch seconds, ``""`` when there is no such column or the
    value is empty or unreadable), then one ``str`` column per Cognito attribute, exactly
    :meth:`Mapping.attributes`. A value its transform refused is ``""`` there, and a
    :class:`Problem` in ``problems`` (all of them, ordered by row then attribute).
    ``folded`` counts, for each attribute with ``fold_line_breaks``, the values whose line
    breaks were folded.
    """

    frame: pd.DataFrame
    problems: list[Problem]
    folded: dict[str, int] = field(default_factory=dict)


# --- the parsed mapping -----------------------------------------------------------------


@dataclass(frozen=True)
class AttributeRule:
    """Where one Cognito attribute's value comes from, and how it is transformed.

    Exactly one of ``column``, ``join`` and ``value`` is set. ``value`` and ``default`` are
    stored already transformed (a constant that its transform refuses is a MappingError).
    """

    attribute: str
    column: str | None = None
    join: tuple[str, ...] | None = None
    value: str | None = None
    transform: str = "text"
    default: str | None = None
    region: str | None = None  # phone: overrides options.phone_region
    format: str | None = None  # date, timestamp: overrides options.date_format for dates
    separator: str = " "  # join
    fold_line_breaks: str | None = None  # what a run of line breaks in a value becomes

    def context(
        self, *, phone_region: str | None = None, date_format: str | None = None
    ) -> Context:
        """Return what the rule's transform needs, the mapping's [options] filling in.

        ``region`` is set for phone only, and a date's format falls back to ``date_format``.
        """
        return Context(
            self.transform,
            region=(self.region or phone_region) if self.transform == "phone" else None,
            format=(self.format or date_format) if self.transform == "date" else self.format,
        )

    def columns(self) -> list[str]:
        """Return the source columns this attribute reads (none for a constant)."""
        if self.column is not None:
            return [self.column]
        return list(self.join or ())

    def to_json(self) -> dict[str, Any]:
        """Return the rule as a JSON-able dict holding only the keys that are set."""
        data: dict[str, Any] = {"transform": self.transform}
        if self.column is not None:
            data["column"] = self.column
        if self.join is not None:
            data["join"] = list(self.join)
            data["separator"] = self.separator
        if self.value is not None:
            data["value"] = self.value
        for key in ("default", "region", "format", "fold_line_breaks"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


@dataclass(frozen=True)
class Mapping:
    """A parsed, validated mapping from legacy columns to Cognito attributes.

    Build it with :meth:`load` (a TOML file) or :meth:`from_dict` (its parsed content).
    ``rules`` keep the file's order, which is the order of the mapped frame's columns.
    Without a ``[legacy]`` table, a user's legacy id is its mapped ``cognito:username``.
    """

    rules: tuple[AttributeRule, ...]
    legacy_id: str | None = None
    legacy_updated: str | None = None
    phone_region: str | None = None
    date_format: str | None = None
    origin: str = field(default="<mapping>", compare=False)

    @classmethod
    def load(cls, path: Path) -> Mapping:
        """Read and validate the mapping file at ``path``.

        Raises MappingError for a missing or unreadable file, bad TOML, or any mistake
        :meth:`from_dict` finds; every message names the file.
        """
        origin = str(path)
        try:
            data = tomllib.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise MappingError(
                f"Mapping file {origin} not found.", hint=MISSING_FILE_HINT, origin=origin
            ) from None
        except OSError as exc:
            raise MappingError(
                f"Cannot read mapping file {origin}: {exc.strerror or exc}.",
                hint="Check the path and its permissions.",
                origin=origin,
            ) from exc
        except UnicodeDecodeError as exc:
            raise MappingError(
                f"{origin} is not UTF-8 text (byte {exc.start} cannot be decoded).",
                hint="Save the mapping file as UTF-8; TOML files must be UTF-8.",
                origin=origin,
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise MappingError(
                f"{origin} is not valid TOML: {exc}.", hint=TOML_HINT, origin=origin
            ) from exc
        return cls.from_dict(data, origin=origin)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "<mapping>") -> Mapping:
        """Validate the parsed content of a mapping file; ``origin`` names it in errors.

        Raises MappingError for unknown tables, keys or transforms (suggesting the closest
        valid one), an attribute with none or several of column/join/value, a value of the
        wrong type, a ``[legacy]`` table without ``id``, an unknown phone region, an
        unusable date format, a constant or default its transform refuses, a leftover
        ``TODO:`` placeholder, or no ``cognito:username``.
        """
        return _Parser(origin).parse(data)

    def source_columns(self) -> list[str]:
        """Return every source column the mapping reads, each once, legacy columns first."""
        columns = [c for c in (self.legacy_id, self.legacy_updated) if c is not None]
        for rule in self.rules:
            columns.extend(rule.columns())
        return list(dict.fromkeys(columns))

    def check_columns(self, available: list[str]) -> None:
        """Raise MappingError listing the mapped columns missing from ``available``.

        Each missing column is named with the attributes that read it and the closest
        names among ``available`` (case-insensitive), so a typo shows its fix.
        """
        present = set(available)
        missing = [c for c in self.source_columns() if c not in present]
        if not missing:
            return
        lowered: dict[str, str] = {}
        for name in available:
            lowered.setdefault(name.lower(), name)
        parts = []
        for column in missing:
            users = self._readers(column)
            matches = difflib.get_close_matches(column.lower(), list(lowered), n=3, cutoff=0.6)
            line = f"{column!r} (read by {', '.join(users)})"
            if matches:
                line += "; did you mean " + " or ".join(repr(lowered[m]) for m in matches) + "?"
            parts.append(line)
        shown = ", ".join(repr(c) for c in available[:30])
        more = f" and {len(available) - 30} more" if len(available) > 30 else ""
        raise MappingError(
            f"{self.origin} reads {len(missing)} column(s) the source does not have: "
            + "; ".join(parts),
            hint=f"Fix the column names in {self.origin}. The source's columns are: "
            f"{shown or '(none)'}{more}.",
            origin=self.origin,
            attribute=self._readers(missing[0])[0],
            key=missing[0],
        )

    def attributes(self) -> list[str]:
        """Return the Cognito attributes the mapping produces, in the file's order."""
        return [rule.attribute for rule in self.rules]

    def folding(self) -> list[str]:
        """Return the attributes whose line breaks are folded (``fold_line_breaks``)."""
        return [rule.attribute for rule in self.rules if rule.fold_line_breaks is not None]

    def fingerprint(self) -> str:
        """Return the sha256 (hex) of a canonical JSON of the parsed mapping.

        Two files that parse to the same mapping (comments, layout, spelling of a
        transform's alias) have the same fingerprint; the file's path is not part of it.
        """
        canonical = {
            "version": MAPPING_VERSION,
            "legacy": {"id": self.legacy_id, "updated": self.legacy_updated},
            "options": {"phone_region": self.phone_region, "date_format": self.date_format},
            "attributes": [[rule.attribute, rule.to_json()] for rule in self.rules],
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _readers(self, column: str) -> list[str]:
        """Return the names (attributes, [legacy] keys) that read ``column``."""
        names = [f"[legacy].{key}" for key, col in self._legacy_items() if col == column]
        return names + [rule.attribute for rule in self.rules if column in rule.columns()]

    def _legacy_items(self) -> list[tuple[str, str | None]]:
        return [("id", self.legacy_id), ("updated", self.legacy_updated)]


# --- parsing and validating a mapping file ------------------------------------------


def _toml_key(name: str) -> str:
    """Return ``name`` as a TOML key: bare when it can be, quoted otherwise."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_string(name)


def _toml_string(text: str) -> str:
    """Return ``text`` as a TOML basic string; JSON's escapes are TOML's, bar DEL."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _closest(word: str, choices: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _did_you_mean(word: str, choices: Sequence[str], what: str) -> str:
    """Return a hint suggesting the closest of ``choices`` and listing them all."""
    match = _closest(word, choices)
    listing = f"{what}: {', '.join(choices)}."
    return f"Did you mean {match!r}? {listing}" if match else listing


class _Parser:
    """Turn the parsed TOML of one mapping file into a Mapping, or raise MappingError."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(
        self,
        where: str,
        message: str,
        *,
        hint: str | None = None,
        attribute: str | None = None,
        key: str | None = None,
    ) -> MappingError:
        return MappingError(
            f"{self.origin}: {where} {message}",
            hint=hint,
            origin=self.origin,
            attribute=attribute,
            key=key,
        )

    def parse(self, data: dict[str, Any]) -> Mapping:
        for key in data:
            if key not in TOP_KEYS:
                raise self.fail(
                    f"[{_toml_key(key)}]",
                    "is not a table a mapping file has.",
                    hint=_did_you_mean(key, TOP_KEYS, "A mapping file has the tables"),
                    key=key,
                )
        legacy = self.table(data, "legacy")
        options = self.table(data, "options")
        attributes = self.table(data, "attributes")
        legacy_id, legacy_updated = self.parse_legacy(legacy) if "legacy" in data else (None, None)
        phone_region, date_format = self.parse_options(options)
        if not attributes:
            raise self.fail(
                "[attributes]",
                "is missing or empty: the mapping maps no Cognito attribute.",
                hint='Add at least [attributes."cognito:username"] with column = "...".',
            )
        rules = tuple(
            self.parse_attribute(name, spec, phone_region=phone_region, date_format=date_format)
            for name, spec in attributes.items()
        )
        if not any(rule.attribute == USERNAME for rule in rules):
            raise MappingError(
                f'{self.origin}: the mapping does not map [attributes."{USERNAME}"]; '
                "every Cognito user needs a username.",
                hint=f'Add [attributes."{USERNAME}"] with column = "<the source column of '
                'usernames>" (or join = [...]).',
                origin=self.origin,
                attribute=USERNAME,
            )
        return Mapping(
            rules=rules,
            legacy_id=legacy_id,
            legacy_updated=legacy_updated,
            phone_region=phone_region,
            date_format=date_format,
            origin=self.origin,
        )

    def table(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(
                f"[{name}]",
                f"must be a table, not {_describe(value)}.",
                hint=f"Write [{name}] on a line of its own, then its keys below it.",
                key=name,
            )
        return value

    def check_keys(
        self, where: str, table: dict[str, Any], allowed: Sequence[str], attribute: str | None
    ) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    where,
                    f"has an unknown key {key!r}.",
                    hint=_did_you_mean(key, allowed, f"{where} takes the keys"),
                    attribute=attribute,
                    key=key,
                )

    def text(
        self, where: str, table: dict[str, Any], key: str, attribute: str | None, what: str
    ) -> str | None:
        """Return the non-empty string at ``key``, None when absent; refuse anything else."""
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(
                where,
                f"{key} must be a non-empty string ({what}), not {_describe(value)}.",
                hint=f'Write {key} = "..." with double quotes.',
                attribute=attribute,
                key=key,
            )
        self.no_placeholder(where, key, value, attribute, what)
        return value

    def no_placeholder(
        self, where: str, key: str, value: str, attribute: str | None, what: str
    ) -> None:
        """Refuse the ``TODO:`` placeholder a starter mapping leaves where it found nothing."""
        if value.startswith(PLACEHOLDER_PREFIX):
            raise self.fail(
                where,
                f"{key} is still the starter mapping's placeholder {value!r}.",
                hint=f"Replace it with {what}; the starter mapping lists the source columns it did "
                "not use at its end.",
                attribute=attribute,
                key=key,
            )

    def parse_legacy(self, legacy: dict[str, Any]) -> tuple[str, str | None]:
        self.check_keys("[legacy]", legacy, LEGACY_KEYS, None)
        legacy_id = self.text("[legacy]", legacy, "id", None, "the source column of legacy ids")
        if legacy_id is None:
            raise self.fail(
                "[legacy]",
                "has no id: it must name the source column that identifies a legacy user.",
                hint='Add id = "<column>" (e.g. id = "user_id"), or remove [legacy] to '
                "identify users by their cognito:username.",
                key="id",
            )
        updated = self.text(
            "[legacy]", legacy, "updated", None, "the source column of last-update times"
        )
        return legacy_id, updated

    def parse_options(self, options: dict[str, Any]) -> tuple[str | None, str | None]:
        self.check_keys("[options]", options, OPTION_KEYS, None)
        region = self.text("[options]", options, "phone_region", None, "a region code like US")
        date_format = self.text(
            "[options]", options, "date_format", None, "a strftime format like %d/%m/%Y"
        )
        if region is not None:
            region = self.region("[options]", region, "phone_region", None)
        if date_format is not None:
            self.date_format("[options]", date_format, "date_format", None)
        return region, date_format

    def region(self, where: str, region: str, key: str, attribute: str | None) -> str:
        code = region.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            match = _closest(code, sorted(phonenumbers.SUPPORTED_REGIONS))
            raise self.fail(
                where,
                f"{key} {region!r} is not a region phonenumbers knows.",
                hint=(f"Did you mean {match!r}? " if match else "")
                + "Use a two-letter ISO 3166 country code, e.g. US, GB, DE, IN.",
                attribute=attribute,
                key=key,
            )
        return code

    def date_format(self, where: str, fmt: str, key: str, attribute: str | None) -> None:
        """Refuse a format that cannot read back the day it writes."""
        sample = datetime(2001, 2, 3, 4, 5, 6)
        try:
            back: datetime | None = datetime.strptime(sample.strftime(fmt), fmt)
        except ValueError:
            back = None
        if back is None or back.date() != sample.date():
            raise self.fail(
                where,
                f"{key} {fmt!r} is not a usable date format.",
                hint="Use Python strftime codes naming the year, month and day, "
                'e.g. "%d/%m/%Y" for 03/02/2001 or "%Y%m%d" for 20010203.',
                attribute=attribute,
                key=key,
            )

    def parse_attribute(
        self, name: str, spec: Any, *, phone_region: str | None, date_format: str | None
    ) -> AttributeRule:
        where = f"[attributes.{_toml_key(name)}]"
        self.check_attribute_name(where, name)
        if not isinstance(spec, dict):
            raise self.fail(
                where,
                f"must be a table, not {_describe(spec)}.",
                hint=f'Write it as a table: {where} on its own line, then column = "..." below it.',
                attribute=name,
            )
        self.check_keys(where, spec, ATTRIBUTE_KEYS, name)
        sources = [key for key in SOURCE_KEYS if key in spec]
        if len(sources) != 1:
            given = " and ".join(sources) if sources else "none of column, join or value"
            raise self.fail(
                where,
                f"sets {given}; it must set exactly one of column, join or value.",
                hint=ATTRIBUTE_HINT,
                attribute=name,
                key=sources[1] if len(sources) > 1 else None,
            )
        transform = self.transform(where, spec, name)
        column = self.text(where, spec, "column", name, "the name of a source column")
        join = self.join(where, spec, name)
        region = None
        if "region" in spec:
            self.only_for(where, name, "region", transform, ("phone",))
            raw = self.text(where, spec, "region", name, "a region code like US")
            region = self.region(where, raw or "", "region", name)
        fmt = None
        if "format" in spec:
            self.only_for(where, name, "format", transform, ("date", "timestamp"))
            fmt = self.text(where, spec, "format", name, "a strftime format like %d/%m/%Y")
            self.date_format(where, fmt or "", "format", name)
        separator = " "
        if "separator" in spec:
            if join is None:
                raise self.fail(
                    where,
                    "has a separator but no join.",
                    hint="separator only applies to join = [...]; remove it.",
                    attribute=name,
                    key="separator",
                )
            separator = spec["separator"]
            if not isinstance(separator, str):
                raise self.fail(
                    where,
                    f"separator must be a string, not {_describe(separator)}.",
                    hint='Write separator = " " (or "" to join without one).',
                    attribute=name,
                    key="separator",
                )
        fold = self.fold_line_breaks(where, spec, name)
        if "value" in spec and "default" in spec:
            raise self.fail(
                where,
                "has both value and default; a default fills empty source values, and a "
                "constant reads no source.",
                hint="Remove default, or map a column and keep default for its empty values.",
                attribute=name,
                key="default",
            )
        rule = AttributeRule(
            attribute=name,
            column=column,
            join=join,
            transform=transform,
            region=region,
            format=fmt,
            separator=separator,
            fold_line_breaks=fold,
        )
        return replace(
            rule,
            value=self.constant(where, spec, "value", rule, phone_region, date_format),
            default=self.constant(where, spec, "default", rule, phone_region, date_format),
        )

    def fold_line_breaks(self, where: str, spec: dict[str, Any], name: str) -> str | None:
        """Return what line breaks fold into, None when they are not folded."""
        if "fold_line_breaks" not in spec:
            return None
        text = spec["fold_line_breaks"]
        if not isinstance(text, str) or "\n" in text or "\r" in text:
            raise self.fail(
                where,
                "fold_line_breaks must be the text that replaces a value's line breaks, "
                f"without a line break itself, not {_describe(text)}.",
                hint='Write e.g. fold_line_breaks = ", " or fold_line_breaks = " ".',
                attribute=name,
                key="fold_line_breaks",
            )
        return text

    def check_attribute_name(self, where: str, name: str) -> None:
        if _is_cognito_attribute(name):
            return
        raise self.fail(
            where,
            f"is not a Cognito attribute: {name!r}.",
            hint=_did_you_mean(
                name, STANDARD_ATTRIBUTES, "Standard attributes (custom ones are custom:NAME)"
            ),
            attribute=name,
        )

    def transform(self, where: str, spec: dict[str, Any], name: str) -> str:
        value = spec.get("transform", "text")
        if not isinstance(value, str):
            raise self.fail(
                where,
                f"transform must be a string, not {_describe(value)}.",
                hint=f"Transforms: {', '.join(TRANSFORMS)}.",
                attribute=name,
                key="transform",
            )
        canonical = TRANSFORM_ALIASES.get(value, value)
        if canonical not in TRANSFORMS:
            choices = (*TRANSFORMS, *TRANSFORM_ALIASES)
            raise self.fail(
                where,
                f"transform {value!r} is not a transform.",
                hint=_did_you_mean(value, choices, "Transforms (none = text)"),
                attribute=name,
                key="transform",
            )
        return canonical

    def only_for(
        self, where: str, name: str, key: str, transform: str, transforms: Sequence[str]
    ) -> None:
        if transform not in transforms:
            wanted = " or ".join(f'transform = "{t}"' for t in transforms)
            raise self.fail(
                where,
                f"has {key}, which only applies with {wanted} (its transform is {transform!r}).",
                hint=f"Remove {key}, or set {wanted}.",
                attribute=name,
                key=key,
            )

    def join(self, where: str, spec: dict[str, Any], name: str) -> tuple[str, ...] | None:
        if "join" not in spec:
            return None
        parts = spec["join"]
        if (
            not isinstance(parts, list)
            or not parts
            or not all(isinstance(p, str) and p.strip() for p in parts)
        ):
            raise self.fail(
                where,
                f"join must be a list of source column names, not {_describe(parts)}.",
                hint='Write e.g. join = ["first_name", "last_name"].',
                attribute=name,
                key="join",
            )
        for part in parts:
            self.no_placeholder(where, "join", part, name, "source column names")
        return tuple(parts)

    def constant(
        self,
        where: str,
        spec: dict[str, Any],
        key: str,
        rule: AttributeRule,
        phone_region: str | None,
        date_format: str | None,
    ) -> str | None:
        """Return a constant or default, transformed like the attribute's source values."""
        if key not in spec:
            return None
        raw = spec[key]
        # TOML has native booleans and numbers; `value = false` means what it says.
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        elif isinstance(raw, int):
            raw = str(raw)
        if not isinstance(raw, str):
            raise self.fail(
                where,
                f"{key} must be a string, not {_describe(raw)}.",
                hint=f'Write {key} = "..." with double quotes.',
                attribute=rule.attribute,
                key=key,
            )
        self.no_placeholder(where, key, raw, rule.attribute, "a value")
        if rule.fold_line_breaks is not None:
            raw = fold(pd.Series([raw.strip()], dtype="str"), rule.fold_line_breaks).iat[0]
        context = rule.context(phone_region=phone_region, date_format=date_format)
        value, reason = convert_one(raw, context)
        if reason:
            raise self.fail(
                where,
                f"{key} {raw!r} is refused by transform {rule.transform!r}: {reason}.",
                hint=f"Write {key} the way the {rule.transform} transform accepts it.",
                attribute=rule.attribute,
                key=key,
            )
        return value


def _is_cognito_attribute(name: str) -> bool:
    """Tell whether ``name`` can be a column of Cognito's CSV header."""
    if name in STANDARD_ATTRIBUTES:
        return True
    return any(name.startswith(p) and len(name) > len(p) for p in CUSTOM_PREFIXES)


def _describe(value: Any) -> str:
    """Name a TOML value for an error message: its kind and a short repr."""
    if isinstance(value, str) and not value.strip():
        return f"a blank string {value!r}"
    kinds = {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}
    kind = kinds.get(type(value)) or ("a number" if isinstance(value, int | float) else "a date")
    shown = repr(value)
    return f"{kind} {shown[:60]}{'...' if len(shown) > 60 else ''}"


# --- transforms ---------------------------------------------------------------------
#
# A transform takes a Series of trimmed, non-empty values (pandas' "str" dtype) and returns
# (mapped, reasons): two "str" Series with its index, reasons "" where the value mapped.
# It decides what it can with pandas' vectorised string methods and hands only the rest,
# one value at a time, to the library that knows.


@dataclass(frozen=True)
class Context:
    """What a transform needs besides the values: its name and its parameters.

    Equal contexts transform alike, so a context can key a cache of transformed values.
    """

    transform: str
    region: str | None = None  # phone: the region of numbers without +country code
    format: str | None = None  # date, timestamp: the input format (None: the usual forms)


def _blank(like: Any) -> Any:
    """Return a "str" Series of "" with the index of ``like``."""
    return pd.Series("", index=like.index, dtype="str")


def convert(values: Any, context: Context) -> tuple[Any, Any]:
    """Transform a Series of trimmed values; return (mapped, reasons) with its index.

    A value with a reason failed, and its mapped value is "". An empty value maps to "".
    """
    nonempty = values != ""
    if nonempty.all():
        return transform(values, context)
    mapped, reasons = transform(values[nonempty], context)
    return mapped.reindex(values.index, fill_value=""), reasons.reindex(values.index, fill_value="")


def convert_one(value: str, context: Context) -> tuple[str, str]:
    """Transform one value (a constant or a default of the mapping file)."""
    mapped, reasons = convert(pd.Series([value.strip()], dtype="str"), context)
    return str(mapped.iat[0]), str(reasons.iat[0])


def line_breaks(values: Any) -> Any:
    """Tell which values hold a line break ("\\r" or "\\n")."""
    return values.str.contains("\n", regex=False) | values.str.contains("\r", regex=False)


def fold(values: Any, text: str) -> Any:
    """Return ``values`` with each run of line breaks (LINE_BREAK_RUN) replaced by ``text``."""
    # A backslash in a replacement starts a group reference, for re and RE2 alike.
    return values.str.replace(LINE_BREAK_RUN, text.replace("\\", "\\\\"), regex=True)


def fold_line_breaks(values: Any, text: str) -> tuple[Any, int]:
    """Fold the line breaks of the values that have any; return them and how many did.

    Plain searches find them: a regex over every value would cost more, and most values
    of a column have no line break.
    """
    breaks = line_breaks(values)
    count = int(breaks.sum())
    if count:
        values = values.copy()
        values[breaks] = fold(values[breaks], text)
    return values, count


def _text(values: Any, context: Context) -> tuple[Any, Any]:
    return values, _blank(values)


def _lower(values: Any, context: Context) -> tuple[Any, Any]:
    return values.str.lower(), _blank(values)


def _upper(values: Any, context: Context) -> tuple[Any, Any]:
    return values.str.upper(), _blank(values)


def _boolean(values: Any, context: Context) -> tuple[Any, Any]:
    mapped = values.str.lower().map(BOOLEAN_WORDS)
    known = mapped.notna()
    return mapped.where(known, ""), _blank(values).where(known, BOOLEAN_REASON)


def _email(values: Any, context: Context) -> tuple[Any, Any]:
    fast = (values.str.len() <= EMAIL_FAST_MAX_LENGTH) & _re2_match(values, EMAIL_SHAPE, full=True)
    if fast.any():
        shaped = values[fast]
        special = shaped.str.match(EMAIL_SPECIAL_LOCAL) | shaped.str.contains(EMAIL_SPECIAL_DOMAIN)
        fast[fast] = ~special
    mapped = values.where(fast, "")
    upper = fast.copy()
    if fast.any():
        upper[fast] = values[fast].str.contains("@[^@]*[A-Z]")
    if upper.any():
        mapped[upper] = [_lower_domain(v) for v in values[upper].tolist()]
    return _settle(values, mapped, _blank(values), ~fast, _email_slow)


def _lower_domain(address: str) -> str:
    at = address.rindex("@")
    return address[:at] + address[at:].lower()


def _settle(
    values: Any, mapped: Any, reasons: Any, rest: Any, slow: Callable[[str], tuple[str, str]]
) -> tuple[Any, Any]:
    """Fill in the values the fast path left (``rest``) one by one with ``slow``."""
    if rest.any():
        results = [slow(v) for v in values[rest].tolist()]
        mapped[rest] = [out for out, _ in results]
        reasons[rest] = [why for _, why in results]
    return mapped, reasons


@lru_cache(maxsize=65_536)  # across chunks: the same bad address often recurs
def _email_slow(value: str) -> tuple[str, str]:
    """Return (normalised address, "") or ("", reason), as email-validator sees it."""
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized, ""
    except email_validator.EmailNotValidError as exc:
        return "", _email_reason(str(exc))


def _email_reason(message: str) -> str:
    """Turn email-validator's sentence into a reason: "not a valid email address: ..."."""
    detail = message.strip().rstrip(".")
    detail = detail[:1].lower() + detail[1:]
    return f"not a valid email address: {detail}" if detail else "not a valid email address"


def _phone(values: Any, context: Context) -> tuple[Any, Any]:
    region = context.region
    compact = values.str.replace(PHONE_PUNCTUATION, "", regex=True)
    shape, forbidden = _international_patterns()
    fast = _matches(compact, shape, forbidden)
    mapped = compact.where(fast, "")
    national = _national_patterns(region) if region else None
    if national is not None:
        shape, forbidden, code = national
        local = ~fast
        local[local] = _matches(compact[local], shape, forbidden)
        mapped[local] = code + compact[local]
        fast |= local
    return _settle(values, mapped, _blank(values), ~fast, lambda value: _phone_slow(value, region))


def _matches(values: Any, shape: str, forbidden: str) -> Any:
    """Return which values match ``shape`` and do not start with ``forbidden``."""
    ok = _re2_match(values, shape, full=True)
    if forbidden and ok.any():
        ok[ok] = ~_re2_match(values[ok], forbidden, full=False)
    return ok


def _re2_match(values: Any, pattern: str, *, full: bool) -> Any:
    """Return which values ``pattern`` (read alike by re and RE2) matches at their start,
    or with ``full`` as a whole: ``str.match`` and ``str.fullmatch``, faster.

    Arrow strings go straight to pyarrow: pandas would first parse the pattern with
    Python's re to decide whether RE2 may run it, which for phonenumbers' patterns (some
    thousands of characters) costs more than matching a chunk's values.
    """
    if isinstance(values.array, pd.arrays.ArrowStringArray):
        anchored = f"^(?:{pattern})$" if full else f"^(?:{pattern})"  # RE2's $: the very end
        found = pc.match_substring_regex(pa.array(values.array), anchored)
        return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)
    return values.str.fullmatch(pattern) if full else values.str.match(pattern)


@cache
def _international_patterns() -> tuple[str, str]:
    """Return (shape, forbidden start) of +E.164 numbers phonenumbers takes as they are.

    Built once per process from phonenumbers' own metadata and length check: for every
    country code, the national lengths it finds possible (IS_POSSIBLE, not local-only),
    within E.164's 7-15 digits. A national number that starts with 0, or with anything
    phonenumbers might strip as a national prefix (the 1 of NANP, the 8 of Russia, ...),
    is left to phonenumbers itself.
    """
    # Country codes are prefix-free: tries of their digits let the regex engine pick the
    # branch digit by digit instead of trying some 200 alternatives in turn.
    shapes: dict[str, Any] = {}
    prefixes: dict[str, Any] = {}
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        metadata = _metadata(phonenumbers.region_code_for_country_code(code), code)
        lengths = _possible_lengths(code)
        if metadata is None or not lengths:
            continue
        _trie_add(shapes, str(code), _national_shape(lengths))
        prefix = metadata.national_prefix_for_parsing or metadata.national_prefix
        if prefix:
            _trie_add(prefixes, str(code), f"(?:{_ascii_digits(prefix)})")
    return r"\+" + _trie_regex(shapes), r"\+" + _trie_regex(prefixes)


@cache
def _national_patterns(region: str) -> tuple[str, str, str] | None:
    """Return (shape, forbidden start, "+" + country code) of ``region``'s national numbers.

    They are the digit strings that phonenumbers, parsing them for ``region``, takes as they
    are and finds possible: no leading 0, no international or national prefix, and not
    starting with the country code (phonenumbers might read it as one).
    """
    code = phonenumbers.country_code_for_region(region)
    metadata = _metadata(region, code)
    lengths = _possible_lengths(code)
    if metadata is None or not lengths or not metadata.international_prefix:
        return None
    starts = (metadata.international_prefix, str(code), metadata.national_prefix_for_parsing)
    forbidden = "|".join(f"(?:{_ascii_digits(s)})" for s in starts if s)
    return _national_shape(lengths), forbidden, f"+{code}"


def _metadata(region: str, code: int) -> phonenumbers.PhoneMetadata | None:
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
    return phonenumbers.PhoneMetadata.metadata_for_region(region)


def _ascii_digits(pattern: str) -> str:
    r"""Return a phonenumbers regex with \d spelt [0-9], which re and RE2 read alike."""
    return pattern.replace(r"\d", "[0-9]")


@cache
def _possible_lengths(code: int) -> tuple[int, ...]:
    """Return the national lengths phonenumbers finds possible for a country code."""
    return tuple(
        n
        for n in range(2, 18)
        if 7 <= len(str(code)) + n <= 15
        and phonenumbers.is_possible_number_with_reason(
            phonenumbers.PhoneNumber(country_code=code, national_number=int("1" * n))
        )
        == phonenumbers.ValidationResult.IS_POSSIBLE
    )


def _national_shape(lengths: Sequence[int]) -> str:
    """Return the regex of national numbers of these lengths that do not start with 0."""
    return "[1-9](?:" + "|".join(f"[0-9]{{{n - 1}}}" for n in lengths) + ")"


def _trie_add(trie: dict[str, Any], digits: str, tail: str) -> None:
    for digit in digits:
        trie = trie.setdefault(digit, {})
    trie[""] = tail


def _trie_regex(node: dict[str, Any]) -> str:
    """Return the regex of a trie whose leaves (key "") hold the regex of what follows."""
    branches = [rest if digit == "" else digit + _trie_regex(rest) for digit, rest in node.items()]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


@lru_cache(maxsize=65_536)  # across chunks: the same bad number often recurs
def _phone_slow(value: str, region: str | None) -> tuple[str, str]:
    """Return (E.164, "") or ("", reason) for one value, as phonenumbers reads it."""
    if value.startswith("+"):
        invalid = "not a valid phone number"
    elif region:
        invalid = f"not a valid phone number for region {region}"
    else:
        invalid = "not a valid phone number (no +country code, and no phone_region set)"
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        detail = PHONE_PARSE_REASONS.get(exc.error_type) if value.startswith("+") else None
        return "", f"{invalid} ({detail})" if detail else invalid
    if number.extension:
        return (
            "",
            f"has an extension ({number.extension}), which a Cognito phone number cannot hold",
        )
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        return "", f"{invalid} ({PHONE_LENGTH_REASONS.get(possible, 'wrong length')})"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) > 16:
        return "", f"{invalid} (longer than E.164's 15 digits)"
    return e164, ""


def _date(values: Any, context: Context) -> tuple[Any, Any]:
    fmt = context.format
    if fmt is not None:
        parsed = pd.to_datetime(values, format=fmt, errors="coerce")
        reason = f"not a date in the format {fmt} (e.g. {date(1985, 2, 1).strftime(fmt)})"
    else:
        texts = values.str.replace(ISO_DATE_TIME, r"\1", regex=True)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
        for candidate in DATE_FORMATS:
            todo = parsed.isna()
            if not todo.any():
                break
            parsed[todo] = pd.to_datetime(texts[todo], format=candidate, errors="coerce")
        reason = DATE_REASON
    parsed_ok = parsed.notna()
    # A year before 1000 is a typo, or a two-digit year read as such ("85" -> 0085).
    ok = parsed_ok & (parsed.dt.year >= 1000)
    mapped = _blank(values)
    good = parsed[ok]
    if len(good):
        # mm/dd/yyyy built column-wise in Arrow: a Python f-string per value costs more
        # than parsing the dates (a million users' birthdates are mostly distinct per chunk)
        parts = [
            pc.utf8_lpad(pc.cast(pa.array(numbers.to_numpy()), pa.large_string()), width, "0")
            for numbers, width in ((good.dt.month, 2), (good.dt.day, 2), (good.dt.year, 4))
        ]
        slash = pa.scalar("/", pa.large_string())
        mapped[ok] = pd.Series(pc.binary_join_element_wise(*parts, slash), dtype="str").array
    reasons = _blank(values).where(ok, reason).where(ok | ~parsed_ok, SHORT_YEAR_REASON)
    return mapped, reasons


def _timestamp(values: Any, context: Context) -> tuple[Any, Any]:
    mapped = _blank(values)
    reasons = _blank(values)
    epoch = values.str.fullmatch(EPOCH)
    if epoch.any():
        numbers = values[epoch]
        whole = numbers.str.replace(r"\.[0-9]*$", "", regex=True)
        negative = whole.str.startswith("-")
        digits = whole.str.len() - negative.astype("int64")
        seconds = digits <= 10
        milliseconds = (digits == 13) & (whole == numbers)
        if seconds.any():
            # floor, as for dates: -1.5 is 2 seconds before 1970, not 1
            below = negative & numbers.str.contains(r"\.[0-9]*[1-9]")
            since = whole[seconds].astype("int64") - below[seconds].astype("int64")
            mapped[since.index] = since.astype("str")
        if milliseconds.any():
            since = whole[milliseconds].astype("int64") // 1000
            mapped[since.index] = since.astype("str")
        odd = digits[~(seconds | milliseconds)]
        reasons[odd.index] = [
            f"an epoch value of {n} digits is neither seconds (up to 10 digits) "
            "nor milliseconds (13 digits)"
            for n in odd.tolist()
        ]
    rest = ~epoch
    if rest.any():
        fmt = context.format
        parsed = pd.to_datetime(values[rest], format=fmt or "ISO8601", utc=True, errors="coerce")
        ok = parsed.notna()
        since = (parsed[ok] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        mapped[since.index] = since.astype("str")
        reason = (
            f"not a timestamp in the format {fmt} (or epoch seconds or milliseconds)"
            if fmt
            else TIMESTAMP_REASON
        )
        reasons[parsed.index[~ok]] = reason
    return mapped, reasons


_BY_NAME: Final[dict[str, Callable[[Any, Context], tuple[Any, Any]]]] = {
    "text": _text,
    "lower": _lower,
    "upper": _upper,
    "boolean": _boolean,
    "email": _email,
    "phone": _phone,
    "date": _date,
    "timestamp": _timestamp,
}


def transform(values: Any, context: Context) -> tuple[Any, Any]:
    """Transform a Series of trimmed, non-empty values; return (mapped, reasons)."""
    return _BY_NAME[context.transform](values, context)


# --- applying a mapping to a chunk --------------------------------------------------

# Transforms that never refuse a value: applied to every row directly, which is cheaper
# than finding the distinct values first.
_TOTAL_TRANSFORMS: Final = ("text", "lower", "upper")
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
        if rule.transform in _TOTAL_TRANSFORMS:
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


# --- starter mappings ---------------------------------------------------------------

# Normalised source column names (lower case, letters and digits only) that mean an
# attribute, most specific first. A pool attribute's own name always matches too.
SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "cognito:username": ("username", "login", "loginname", "user", "account", "screenname"),
    "email": ("email", "mail", "emailaddress", "emailaddr", "mailaddress"),
    "email_verified": ("emailverified", "emailconfirmed", "isverified", "verified", "confirmed"),
    "given_name": ("givenname", "firstname", "fname", "given", "forename"),
    "family_name": ("familyname", "lastname", "surname", "lname"),
    "middle_name": ("middlename", "mname", "middle"),
    "name": ("name", "fullname", "displayname"),
    "nickname": ("nickname", "nick"),
    "preferred_username": ("preferredusername", "handle"),
    "phone_number": ("phonenumber", "mobile", "phone", "cell", "telephone", "msisdn", "tel")
    + ("mobilenumber", "mobilephone", "cellphone"),
    "phone_number_verified": ("phonenumberverified", "phoneverified", "phoneconfirmed")
    + ("mobileverified", "mobileconfirmed"),
    "birthdate": ("birthdate", "dob", "dateofbirth", "birthday"),
    "updated_at": ("updatedat", "modified", "modifiedat", "lastmodified", "updated")
    + ("lastupdated", "modifiedon", "updatedon"),
    "gender": ("gender", "sex"),
    "locale": ("locale", "language", "lang"),
    "zoneinfo": ("zoneinfo", "timezone", "tz"),
    "website": ("website", "homepage", "url", "web"),
    "picture": ("picture", "avatar", "photo", "avatarurl", "photourl"),
    "profile": ("profile", "profileurl"),
    "address": ("address", "streetaddress", "postaladdress"),
    "cognito:mfa_enabled": ("mfaenabled", "mfa", "twofactor", "2fa"),
    "password_hash": ("passwordhash", "pwhash", "pwdhash", "hash"),
}
LEGACY_ID_SYNONYMS: Final = ("id", "userid", "legacyid", "uid", "accountid", "customerid")
SUGGESTED_TRANSFORMS: Final = {
    "email": "email",
    "phone_number": "phone",
    "birthdate": "date",
    "updated_at": "timestamp",
    "cognito:mfa_enabled": "boolean",
}
# Advice written beside an attribute the starter could not map, where one is known.
UNMATCHED_ADVICE: Final = {
    "email_verified": 'value = "true"  # if the legacy system verified every address; '
    "Cognito imports a user only if an auto-verified attribute is true",
    "phone_number_verified": 'value = "true"  # if every phone number was verified',
    "cognito:mfa_enabled": 'value = "false"  # match the pool\'s MFA configuration',
}


def _comment_text(text: str) -> str:
    """Return ``text`` safe inside a TOML comment: control characters escaped."""
    return _toml_string(text)[1:-1]


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def columns_with_line_breaks(chunks: Iterator[pd.DataFrame]) -> list[str]:
    """Return the source columns where some value of the first chunk spans lines.

    Only that chunk is read (a sample: ``csvimport map`` reads MAP_SAMPLE_ROWS rows);
    the iterator is closed after it.
    """
    try:
        sample = next(chunks, None)
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
    if sample is None:
        return []
    found = []
    for column in sample.columns:
        values = sample[column]
        if values.dtype != "str":
            values = values.astype("str")
        if line_breaks(values).any():
            found.append(str(column))
    return found


def suggest_mapping(
    columns: list[str],
    attributes: list[str],
    *,
    source_name: str = "",
    multiline: Sequence[str] = (),
) -> str:
    """Return the text of a starter mapping TOML matching source columns to pool attributes.

    ``attributes`` is the pool's CSV header (GetCSVHeader). Columns are matched by their
    normalised names and a table of synonyms; each match gets the transform its attribute
    needs. Unmatched attributes are written as commented-out stanzas, unused columns listed
    in a comment. An attribute read from one of the ``multiline`` columns (sampled values
    span lines: :func:`columns_with_line_breaks`) gets ``fold_line_breaks`` proposed in a
    comment. The text loads with :meth:`Mapping.from_dict` - except when no username
    column was found: then its ``cognito:username`` keeps a ``TODO:`` placeholder, which
    :class:`Mapping` refuses until someone names the column.
    """
    attributes = list(dict.fromkeys(attributes))
    by_name: dict[str, str] = {}
    for column in columns:
        key = _normalise(column)
        if key and column.strip() and not column.startswith(PLACEHOLDER_PREFIX):
            by_name.setdefault(key, column)

    def find(candidates: Sequence[str], used: set[str]) -> str | None:
        for candidate in candidates:
            column = by_name.get(candidate)
            if column is not None and column not in used:
                return column
        return None

    legacy_id = find(LEGACY_ID_SYNONYMS, set())
    updated = find(SYNONYMS["updated_at"], set())
    used: set[str] = set()
    matched: dict[str, dict[str, Any]] = {}
    for attribute in attributes:
        if attribute in matched or not _is_cognito_attribute(attribute):
            continue
        own = _normalise(attribute.rsplit(":", 1)[-1])
        candidates: tuple[str, ...] = (own, *SYNONYMS.get(attribute, ()))
        if attribute == "custom:legacy_id" and legacy_id is not None:
            matched[attribute] = {"column": legacy_id}
            continue
        if attribute == "updated_at" and updated is not None:
            matched[attribute] = {"column": updated, "transform": "timestamp"}
            continue
        found = find(candidates, used | {c for c in (legacy_id,) if c})
        if found is not None:
            used.add(found)
            matched[attribute] = {"column": found}
            transform = _suggested_transform(attribute)
            if transform:
                matched[attribute]["transform"] = transform
    if "name" in attributes and "name" not in matched:
        first = find(SYNONYMS["given_name"], set())
        last = find(SYNONYMS["family_name"], set())
        if first and last:
            matched["name"] = {"join": [first, last]}
    if legacy_id is None and USERNAME in matched and updated is not None:
        legacy_id = matched[USERNAME]["column"]

    lines = [
        "# csvimport mapping: Cognito attributes from the columns of "
        + (_comment_text(source_name) if source_name else "the source")
        + ".",
        "# Written by `csvimport map` as a starting point: review every line before a build.",
        '# Each [attributes.X] takes one of: column = "col", join = ["a", "b"], value = "const";',
        "# optional: transform (text, boolean, email, phone, date, timestamp, lower, upper),",
        "# default (when the value is empty), region (phone), format (date, timestamp),",
        "# separator (join), fold_line_breaks. See schemas/mappings/example-legacy.toml.",
        "",
    ]
    if legacy_id is not None:
        lines += [
            "[legacy]",
            "# The column that identifies a legacy user in line maps and rejects.",
            f"id = {_toml_string(legacy_id)}",
        ]
        if updated is not None:
            lines += [
                "# When a user was last updated (duplicate policy: keep most recently updated).",
                f"updated = {_toml_string(updated)}",
            ]
    else:
        lines += [
            "# No legacy id column found: users are identified by their cognito:username.",
            "# [legacy]",
            '# id = ""  # the column that identifies a legacy user',
        ]
    lines += [
        "",
        "[options]",
        "# The region of phone numbers written without +country code (e.g. US, GB, DE):",
        '# phone_region = "US"',
        "# The input format of dates that are not YYYY-MM-DD or MM/DD/YYYY, e.g. day first:",
        '# date_format = "%d/%m/%Y"',
    ]
    # The username first: it is the one attribute every mapping needs.
    ordered = sorted((a for a in attributes if a in matched), key=lambda a: a != USERNAME)
    if USERNAME not in matched:
        lines += [
            "",
            "# TODO: no username column found. Name the source column that holds each user's",
            "# username (the email column, if the pool signs users in with their email).",
            f"[attributes.{_toml_key(USERNAME)}]",
            f"column = {_toml_string(USERNAME_PLACEHOLDER)}",
        ]
    for attribute in ordered:
        lines += ["", f"[attributes.{_toml_key(attribute)}]"]
        for key, value in matched[attribute].items():
            if isinstance(value, list):
                lines.append(f"{key} = [{', '.join(_toml_string(v) for v in value)}]")
            else:
                lines.append(f"{key} = {_toml_string(value)}")
        spans = [c for c in multiline if c in (matched[attribute].get("join") or
                                               [matched[attribute].get("column")])]  # fmt: skip
        if spans:
            names = ", ".join(_comment_text(c) for c in spans)
            lines += [
                f"# Some sampled values of {names} span lines, which Cognito's CSV cannot carry:",
                "# such users are rejected, unless their line breaks are folded (uncomment):",
                f"# fold_line_breaks = {_toml_string(FOLD_SUGGESTION)}",
            ]
    unmatched = [a for a in attributes if a not in matched and a != USERNAME]
    if unmatched:
        lines += ["", "# Pool attributes no source column matched: map them or leave them out."]
        for attribute in unmatched:
            lines += ["#", f"# [attributes.{_toml_key(attribute)}]"]
            advice = UNMATCHED_ADVICE.get(attribute)
            lines.append(f"# {advice}" if advice else '# column = ""')
            transform = _suggested_transform(attribute)
            if transform:
                lines.append(f"# transform = {_toml_string(transform)}")
    read = {legacy_id, updated} | {
        c
        for spec in matched.values()
        for c in ([spec["column"]] if "column" in spec else spec["join"])
    }
    unused = [c for c in columns if c not in read]
    if unused:
        lines += ["", "# Source columns not used: " + ", ".join(_toml_string(c) for c in unused)]
    return "\n".join(lines) + "\n"


def _suggested_transform(attribute: str) -> str | None:
    if attribute.endswith("_verified"):
        return "boolean"
    return SUGGESTED_TRANSFORMS.get(attribute)
