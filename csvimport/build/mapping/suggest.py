"""The starter mapping ``csvimport map`` writes: source columns matched to pool attributes.

Columns are matched by their normalised names and a table of synonyms, each match with the
transform its attribute needs; the text is a TOML mapping file for a person to review
(:mod:`csvimport.build.mapping.spec` reads it).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, Final

import pandas as pd

from csvimport.build.mapping.spec import (
    PLACEHOLDER_PREFIX,
    USERNAME,
    USERNAME_PLACEHOLDER,
    Disabled,
    Groups,
    is_cognito_attribute,
    toml_key,
    toml_string,
)
from csvimport.build.mapping.transforms import line_breaks

# What `suggest_mapping` proposes line breaks fold into (postal addresses read well so),
# where some of the first MAP_SAMPLE_ROWS source rows span lines.
FOLD_SUGGESTION: Final = ", "
MAP_SAMPLE_ROWS: Final = 10_000

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
NOTE_WIDTH: Final = 88  # characters of a note's comment line, after "# "
# Advice written beside an attribute the starter could not map, where one is known.
UNMATCHED_ADVICE: Final = {
    "email_verified": 'value = "true"  # if the legacy system verified every address; '
    "Cognito imports a user only if an auto-verified attribute is true",
    "phone_number_verified": 'value = "true"  # if every phone number was verified',
    "cognito:mfa_enabled": 'value = "false"  # match the pool\'s MFA configuration',
}


def _comment_text(text: str) -> str:
    """Return ``text`` safe inside a TOML comment: control characters escaped."""
    return toml_string(text)[1:-1]


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
    known: Mapping[str, Mapping[str, Any]] | None = None,
    legacy_id: str | None = None,
    origin: str = "`csvimport map` as a starting point",
    disabled: Disabled | None = None,
    groups: Groups | None = None,
    phone_region: str | None = None,
    notes: Mapping[str, str] | None = None,
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

    ``known`` gives matches already decided (attribute -> its stanza, e.g. ``{"column":
    "mail", "transform": "email"}``; without a transform, the attribute's usual one), and
    ``legacy_id`` the legacy id column: both win over matching by name (``csvimport assess``
    knows which column plays which part from the data). It also knows the legacy
    ``disabled`` flag, the ``groups`` column and the ``phone_region`` of numbers without
    +country code; ``notes`` are written as comments above the stanza they name ("legacy",
    "groups", "options" or an attribute): why each was chosen. ``origin`` says in the
    header who wrote the mapping.
    """
    notes = notes or {}

    def note(key: str) -> list[str]:
        text = _comment_text(notes.get(key, ""))
        return [f"# {line}" for line in textwrap.wrap(text, NOTE_WIDTH)]

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

    if legacy_id is None:
        legacy_id = find(LEGACY_ID_SYNONYMS, set())
    updated = find(SYNONYMS["updated_at"], set())
    used: set[str] = set()
    matched: dict[str, dict[str, Any]] = {}
    for attribute, stanza in (known or {}).items():
        if attribute in attributes:
            matched[attribute] = dict(stanza)
            transform = _suggested_transform(attribute)
            if transform and not {"transform", "value"} & set(stanza):
                matched[attribute]["transform"] = transform
            used.update([stanza["column"]] if "column" in stanza else stanza.get("join", []))
    for attribute in attributes:
        if attribute in matched or not is_cognito_attribute(attribute):
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
        f"# Written by {origin}: review every line before a build.",
        '# Each [attributes.X] takes one of: column = "col", join = ["a", "b"], value = "const";',
        "# optional: transform (text, boolean, email, phone, date, timestamp, lower, upper),",
        "# default (when the value is empty), region (phone), format (date, timestamp),",
        "# separator (join), fold_line_breaks. See schemas/mappings/example-legacy.toml.",
        "",
    ]
    if legacy_id is not None:
        lines += [
            "[legacy]",
            *note("legacy"),
            "# The column that identifies a legacy user in line maps and rejects.",
            f"id = {toml_string(legacy_id)}",
        ]
        if updated is not None:
            lines += [
                "# When a user was last updated (duplicate policy: keep most recently updated).",
                f"updated = {toml_string(updated)}",
            ]
    else:
        lines += [
            "# No legacy id column found: users are identified by their cognito:username.",
            "# [legacy]",
            '# id = ""  # the column that identifies a legacy user',
        ]
    if disabled is not None:
        lines += [
            *([] if legacy_id is not None else ["[legacy]"]),
            *note("disabled"),
            "# The legacy flag: `csvimport followups` disables these users after the import.",
            f"disabled = {toml_string(disabled.column)}",
            f"disabled_when = {'true' if disabled.when else 'false'}",
        ]
    if groups is not None:
        lines += [
            "",
            "# What the CSV cannot carry: `csvimport followups` adds the users to these groups.",
            *note("groups"),
            "[groups]",
            f"column = {toml_string(groups.column)}",
            f"separator = {toml_string(groups.separator)}",
            "",
            '# legacy role = Cognito group ("" leaves a role out on purpose)',
            "[groups.names]",
            *(f"{toml_key(role)} = {toml_string(group)}" for role, group in groups.names),
        ]
    region = (
        [*note("options"), f"phone_region = {toml_string(phone_region)}"]
        if phone_region
        else ['# phone_region = "US"']
    )
    lines += [
        "",
        "[options]",
        "# The region of phone numbers written without +country code (e.g. US, GB, DE):",
        *region,
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
            f"[attributes.{toml_key(USERNAME)}]",
            f"column = {toml_string(USERNAME_PLACEHOLDER)}",
        ]
    for attribute in ordered:
        lines += ["", f"[attributes.{toml_key(attribute)}]", *note(attribute)]
        for key, value in matched[attribute].items():
            if isinstance(value, list):
                lines.append(f"{key} = [{', '.join(toml_string(v) for v in value)}]")
            else:
                lines.append(f"{key} = {toml_string(value)}")
        spans = [c for c in multiline if c in (matched[attribute].get("join") or
                                               [matched[attribute].get("column")])]  # fmt: skip
        if spans:
            names = ", ".join(_comment_text(c) for c in spans)
            lines += [
                f"# Some sampled values of {names} span lines, which Cognito's CSV cannot carry:",
                "# such users are rejected, unless their line breaks are folded (uncomment):",
                f"# fold_line_breaks = {toml_string(FOLD_SUGGESTION)}",
            ]
    unmatched = [a for a in attributes if a not in matched and a != USERNAME]
    if unmatched:
        lines += ["", "# Pool attributes no source column matched: map them or leave them out."]
        for attribute in unmatched:
            lines += ["#", f"# [attributes.{toml_key(attribute)}]"]
            advice = UNMATCHED_ADVICE.get(attribute)
            lines.append(f"# {advice}" if advice else '# column = ""')
            transform = _suggested_transform(attribute)
            if transform:
                lines.append(f"# transform = {toml_string(transform)}")
    read = {legacy_id, updated, disabled and disabled.column, groups and groups.column} | {
        c
        for spec in matched.values()
        for c in ([spec["column"]] if "column" in spec else spec.get("join", []))
    }
    unused = [c for c in columns if c not in read]
    if unused:
        lines += ["", "# Source columns not used: " + ", ".join(toml_string(c) for c in unused)]
    return "\n".join(lines) + "\n"


def _suggested_transform(attribute: str) -> str | None:
    if attribute.endswith("_verified"):
        return "boolean"
    return SUGGESTED_TRANSFORMS.get(attribute)
