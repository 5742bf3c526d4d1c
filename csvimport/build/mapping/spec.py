"""The mapping file: a TOML file becomes a checked :class:`Mapping` value, or a MappingError.

A mapping is a TOML file (read with :mod:`tomllib`) that says, for every Cognito attribute
the import file carries, where its value comes from: one source ``column``, a ``join`` of
several, or a constant ``value``; and which transform turns the legacy spelling into
Cognito's (:mod:`csvimport.build.mapping.transforms`). Cognito's CSV cannot carry a line break:
an attribute with ``fold_line_breaks`` folds each run of them into its text, before the
transform. An optional ``[legacy_hash]`` table declares what a bare hex ``password_hash``
is (``digest = "sha256(salt + password)"``, ``salt = "<source column>"``), so that
``build --password-fallback migrate`` can leave those users to the user migration trigger.
``schemas/mappings/example-legacy.toml`` documents every key.

A bad mapping file raises :class:`MappingError` (exit 2) naming the file, the attribute and
the key. The mapping is the build's first input: this module reads neither the source nor
the pool, bar :meth:`Mapping.check_columns` given the source's column names.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
import phonenumbers

from csvimport.build.mapping.transforms import TRANSFORMS, Context, convert_one, fold
from csvimport.errors import ConfigError
from csvimport.legacyhash import parse_digest

# --- vocabulary of the mapping file -------------------------------------------------

MAPPING_VERSION: Final = 1  # part of the fingerprint: bump when apply_mapping's output changes

TRANSFORM_ALIASES: Final = {"none": "text"}
TOP_KEYS: Final = ("legacy", "options", "attributes", "legacy_hash", "groups")
LEGACY_KEYS: Final = ("id", "updated", "disabled", "disabled_when")
GROUPS_KEYS: Final = ("column", "separator", "names")
# facts §9: a pool holds at most 10,000 groups, a user belongs to at most 100.
MAX_GROUPS_PER_POOL: Final = 10_000
MAX_GROUPS_PER_USER: Final = 100
# CreateGroup's GroupName: 1..128 characters of Unicode letters, marks, symbols, numbers
# and punctuation (no spaces, no control characters): a space can join a user's groups.
GROUP_NAME_MAX: Final = 128
GROUP_NAME_CATEGORIES: Final = ("L", "M", "S", "N", "P")
LEGACY_HASH_KEYS: Final = ("digest", "salt")
OPTION_KEYS: Final = ("phone_region", "date_format")
SOURCE_KEYS: Final = ("column", "join", "value")
ATTRIBUTE_KEYS: Final = (
    *SOURCE_KEYS, "transform", "default", "region", "format", "separator", "fold_line_breaks",
)  # fmt: skip

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
# The attribute of the legacy password hash: not a pool attribute, only hash jobs' files carry it.
PASSWORD_HASH: Final = "password_hash"

# What `suggest_mapping` writes where it found no username column. It is a valid column
# name to TOML, so the file still parses; Mapping refuses it by this prefix.
PLACEHOLDER_PREFIX: Final = "TODO:"
USERNAME_PLACEHOLDER: Final = "TODO: the source column with each user's username"

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

# --- errors ------------------------------------------------------------------------


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
class LegacyHash:
    """The mapping's ``[legacy_hash]``: what a bare hex ``password_hash`` value is.

    ``digest`` is the declaration as ``csvimport.legacyhash.parse_digest`` normalises it
    (its ``SaltedDigest.name``, e.g. ``sha256(salt + password)``), also the scheme name
    the build gives those hashes; ``salt`` the source column holding each user's salt, None
    when the digest takes none. The salt is read as the source gives it, never trimmed.
    """

    digest: str
    salt: str | None = None

    def to_json(self) -> dict[str, str]:
        return {"digest": self.digest, **({} if self.salt is None else {"salt": self.salt})}


@dataclass(frozen=True)
class Groups:
    """The mapping's ``[groups]``: the source column of each user's legacy roles, the
    separator between them, and the Cognito group each role becomes.

    A role mapped to ``""`` is deliberately left out. A role the table does not name is
    *unmapped*: the user is still imported, and the role is listed (per user in
    ``followups.csv``, counted in the manifest, named by ``csvimport followups``) rather
    than stopping a build over one stray role of a million users.
    """

    column: str
    names: tuple[tuple[str, str], ...]  # (legacy role, Cognito group name or "")
    separator: str = ","

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "separator": self.separator,
                "names": dict(self.names)}  # fmt: skip


@dataclass(frozen=True)
class Disabled:
    """The mapping's ``[legacy].disabled``: the source column of the legacy flag, read as a
    boolean (the ``boolean`` transform's spellings), and the value that means disabled
    (``disabled_when = false`` for an ``is_active`` column)."""

    column: str
    when: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "when": self.when}


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
    legacy_hash: LegacyHash | None = None
    groups: Groups | None = None
    disabled: Disabled | None = None
    origin: str = field(default="<mapping>", compare=False)

    @property
    def followups(self) -> bool:
        """Whether the mapping names what only a follow-up pass can carry (groups, the
        disabled flag): the build then writes ``followups.csv``."""
        return self.groups is not None or self.disabled is not None

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
        if self.disabled is not None:
            columns.append(self.disabled.column)
        if self.groups is not None:
            columns.append(self.groups.column)
        for rule in self.rules:
            columns.extend(rule.columns())
        if self.legacy_hash is not None and self.legacy_hash.salt is not None:
            columns.append(self.legacy_hash.salt)
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
            # only when declared: the fingerprints of other mappings are unchanged
            **({} if self.legacy_hash is None else {"legacy_hash": self.legacy_hash.to_json()}),
            **({} if self.groups is None else {"groups": self.groups.to_json()}),
            **({} if self.disabled is None else {"disabled": self.disabled.to_json()}),
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _readers(self, column: str) -> list[str]:
        """Return the names (attributes, [legacy] keys) that read ``column``."""
        names = [f"[legacy].{key}" for key, col in self._legacy_items() if col == column]
        if self.legacy_hash is not None and self.legacy_hash.salt == column:
            names.append("[legacy_hash].salt")
        if self.disabled is not None and self.disabled.column == column:
            names.append("[legacy].disabled")
        if self.groups is not None and self.groups.column == column:
            names.append("[groups].column")
        return names + [rule.attribute for rule in self.rules if column in rule.columns()]

    def _legacy_items(self) -> list[tuple[str, str | None]]:
        return [("id", self.legacy_id), ("updated", self.legacy_updated)]


# --- parsing and validating a mapping file ------------------------------------------


def toml_key(name: str) -> str:
    """Return ``name`` as a TOML key: bare when it can be, quoted otherwise."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def toml_string(text: str) -> str:
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
                    f"[{toml_key(key)}]",
                    "is not a table a mapping file has.",
                    hint=_did_you_mean(key, TOP_KEYS, "A mapping file has the tables"),
                    key=key,
                )
        legacy = self.table(data, "legacy")
        options = self.table(data, "options")
        attributes = self.table(data, "attributes")
        legacy_id, legacy_updated = self.parse_legacy(legacy) if "legacy" in data else (None, None)
        disabled = self.parse_disabled(legacy)
        groups = self.parse_groups(self.table(data, "groups")) if "groups" in data else None
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
        legacy_hash = None
        if "legacy_hash" in data:
            legacy_hash = self.parse_legacy_hash(self.table(data, "legacy_hash"), rules)
        return Mapping(
            rules=rules,
            legacy_id=legacy_id,
            legacy_updated=legacy_updated,
            phone_region=phone_region,
            date_format=date_format,
            legacy_hash=legacy_hash,
            groups=groups,
            disabled=disabled,
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

    def parse_disabled(self, legacy: dict[str, Any]) -> Disabled | None:
        """``[legacy].disabled`` (a column) and ``disabled_when`` (true or false)."""
        where = "[legacy]"
        column = self.text(where, legacy, "disabled", None, "the source column of the "
                           "legacy disabled flag")  # fmt: skip
        when = legacy.get("disabled_when", True)
        if "disabled_when" in legacy and column is None:
            raise self.fail(
                where,
                "has disabled_when but no disabled column.",
                hint='Add disabled = "<the source column of the flag>", or remove disabled_when.',
                key="disabled_when",
            )
        if not isinstance(when, bool):
            raise self.fail(
                where,
                f"disabled_when must be true or false (without quotes), not {_describe(when)}.",
                hint="Write disabled_when = true when the column says a user is disabled "
                '(e.g. "is_disabled"), or disabled_when = false when it says a user is '
                'active (e.g. "is_active").',
                key="disabled_when",
            )
        return None if column is None else Disabled(column, when)

    def parse_groups(self, table: dict[str, Any]) -> Groups:
        """``[groups]``: a column, a separator, and ``[groups.names]`` from legacy role to
        Cognito group name (each a valid GroupName, at most MAX_GROUPS_PER_POOL)."""
        where = "[groups]"
        example = ('[groups] column = "roles", separator = ",", then [groups.names] with '
                   'one line per legacy role, e.g. admin = "Admins"')  # fmt: skip
        if "create_missing" in table:
            raise self.fail(
                where,
                "has create_missing: groups are created when the follow-up pass is run with "
                "--create-groups, not by the mapping.",
                hint="Remove create_missing; run `csvimport followups RUN_DIR --create-groups` "
                "to create the groups the pool lacks.",
                key="create_missing",
            )
        self.check_keys(where, table, GROUPS_KEYS, None)
        column = self.text(where, table, "column", None, "the source column of legacy roles")
        if column is None:
            raise self.fail(
                where,
                "has no column: it must name the source column of each user's legacy roles.",
                hint=f"Write {example}.",
                key="column",
            )
        separator = table.get("separator", ",")
        if not isinstance(separator, str) or not separator:
            raise self.fail(
                where,
                f"separator must be a non-empty string, not {_describe(separator)}.",
                hint='Write e.g. separator = "," or separator = ";" (the text between two '
                "roles in the column).",
                key="separator",
            )
        names = table.get("names")
        if not isinstance(names, dict) or not names:
            raise self.fail(
                where,
                "has no [groups.names] table: it must say which Cognito group each legacy "
                "role becomes.",
                hint=f'Write {example}. Map a role to "" to leave it out on purpose.',
                key="names",
            )
        pairs = []
        for role, group in names.items():
            if not isinstance(group, str) or not (group == "" or group_name_ok(group)):
                raise self.fail(
                    "[groups.names]",
                    f"{toml_key(role)} = {_describe(group)} is not a Cognito group name.",
                    hint=f"A group name has 1 to {GROUP_NAME_MAX} letters, digits, symbols or "
                    'punctuation, no spaces: e.g. "Admins" or "billing-team". Write "" to '
                    "leave the role out on purpose.",
                    key=role,
                )
            if separator in role:
                raise self.fail(
                    "[groups.names]",
                    f"role {role!r} holds the separator {separator!r}, so no user can have it.",
                    hint="Fix the role's name, or the separator in [groups].",
                    key=role,
                )
            pairs.append((role.strip(), group))
        distinct = {group for _, group in pairs if group}
        if len(distinct) > MAX_GROUPS_PER_POOL:
            raise self.fail(
                "[groups.names]",
                f"names {len(distinct):,} groups; a pool holds at most "
                f"{MAX_GROUPS_PER_POOL:,} (facts §9).",
                hint="Map several legacy roles to one group.",
                key="names",
            )
        return Groups(column, tuple(pairs), separator)

    def parse_legacy_hash(
        self, table: dict[str, Any], rules: Sequence[AttributeRule]
    ) -> LegacyHash:
        """Check ``[legacy_hash]``: a digest declaration csvimport.legacyhash reads, and a
        salt column exactly when the declaration uses a salt."""
        where = "[legacy_hash]"
        self.check_keys(where, table, LEGACY_HASH_KEYS, None)
        example = 'digest = "sha256(salt + password)" and salt = "<the source column of salts>"'
        if not any(rule.attribute == PASSWORD_HASH for rule in rules):
            raise self.fail(
                where,
                "declares what the legacy password hashes are, but the mapping maps no "
                "password_hash.",
                hint=f'Add [attributes.{PASSWORD_HASH}] with column = "<the source column of '
                'password hashes>", or remove [legacy_hash].',
                key="legacy_hash",
            )
        text = self.text(where, table, "digest", None, "a digest declaration")
        if text is None:
            raise self.fail(
                where,
                "has no digest: it must say how the hex hashes were made.",
                hint=f"Write e.g. {example}; or remove [legacy_hash].",
                key="digest",
            )
        try:
            digest = parse_digest(text)
        except ValueError as exc:
            raise self.fail(
                where,
                f"digest {text!r} is not a digest csvimport can verify: {exc}",
                hint=f"Write e.g. {example}.",
                key="digest",
            ) from None
        salt = self.text(where, table, "salt", None, "the source column of salts")
        salted = digest.salted
        if salted and salt is None:
            raise self.fail(
                where,
                f"digest {digest.name!r} uses a salt, but no salt column is given.",
                hint='Add salt = "<the source column of each user\'s salt>".',
                key="salt",
            )
        if not salted and salt is not None:
            raise self.fail(
                where,
                f"gives a salt column, but digest {digest.name!r} uses no salt.",
                hint="Remove salt, or declare where the salt goes, e.g. "
                'digest = "sha256(salt + password)".',
                key="salt",
            )
        return LegacyHash(digest.name, salt)

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
        where = f"[attributes.{toml_key(name)}]"
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
        if is_cognito_attribute(name):
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


def group_name_ok(name: str) -> bool:
    return 0 < len(name) <= GROUP_NAME_MAX and all(
        unicodedata.category(c)[0] in GROUP_NAME_CATEGORIES for c in name
    )


def is_cognito_attribute(name: str) -> bool:
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
