"""What the values say about a column's part where its name alone does not.

:func:`~csvimport.assess.profile.find_roles` reads the column names. Legacy tables name
things their own way (``member_id``, ``email_ok``, ``born``, ``active``), so once every
value has been profiled, :func:`refine_roles` looks at what the values are: a complete,
unique column whose name ends in "id" is the legacy id; a yes/no column named after the
email (or phone) is its verified flag; a date column named after birth is the birthdate;
a yes/no flag that says who is *active* disables the others (``disabled_when = false``).
Each finding keeps its reason, which the starter mapping writes beside the stanza.

While the source is read, two collectors gather what the proposal needs and a profile
does not keep: the legacy roles of the groups column (:class:`GroupRoles`) and which
country the phone numbers written without ``+country code`` belong to
(:class:`NationalPhones`).

Every rule here is a guess about how people name and fill their tables; each threshold is
one named constant marked GUESS.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import Final

import pandas as pd
import phonenumbers

from csvimport.assess.model import ColumnProfile, GroupsProfile, Roles

# GUESS: a column whose normalised name ends so, is filled and unique in every row, and
# plays no other part, is the legacy system's id (member_id, customer_no are common).
LEGACY_ID_SUFFIXES: Final = ("id", "no")
# GUESS: a yes/no column whose normalised name holds one of these words is the verified
# flag of that attribute (email_ok, mail_confirmed, sms_checked).
VERIFIED_WORDS: Final = {
    "email_verified": ("email", "mail"),
    "phone_number_verified": ("phone", "mobile", "cell", "sms", "tel"),
}
# GUESS: a date column whose normalised name holds one of these is the birthdate.
BIRTH_WORDS: Final = ("birth", "born", "dob")
# GUESS: a disabled flag by one of these names says who is *active*: disabled_when = false.
ENABLED_NAMES: Final = ("enabled", "isenabled", "active", "isactive")
# GUESS: the separators tried between a user's legacy roles, in this order on a tie.
GROUP_SEPARATORS: Final = (",", ";", "|")
# GUESS: distinct legacy roles counted one by one; beyond, only how many rows had others.
MAX_GROUP_ROLES: Final = 200
# GUESS: the countries tried for phone numbers without +country code, most likely first
# (the first wins a tie: "(415) 555-0123" is a valid number in the US and in Germany).
PHONE_REGIONS: Final = ("US", "GB", "DE", "FR", "IN", "AU", "BR", "MX", "ES", "IT", "NL", "JP")
# GUESS: distinct numbers without +country code looked at (each tried in every region).
PHONE_REGION_SAMPLE: Final = 200
# GUESS: the region is proposed when at least this share of the sample is valid in it.
PHONE_REGION_MIN_SHARE: Final = 0.5


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _is_flag(profile: ColumnProfile) -> bool:
    """Every filled value is a yes/no spelling (and some are filled)."""
    return profile.filled > 0 and sum(profile.boolean_spellings.values()) == profile.filled


def _taken(roles: Roles) -> set[str]:
    parts = (roles.username, roles.email, roles.email_verified, roles.phone_number,
             roles.phone_number_verified, roles.password, roles.legacy_id, roles.disabled,
             roles.groups)  # fmt: skip
    return {c for c in parts if c is not None} | set(roles.attributes)


def refine_roles(roles: Roles, columns: list[ColumnProfile]) -> Roles:
    """``roles`` (found by name) completed from what the columns' values are."""
    found = replace(roles, attributes=dict(roles.attributes), by_values=dict(roles.by_values))
    for profile in columns:
        name, taken = _normalise(profile.name), _taken(found)
        if profile.name in taken or not profile.filled:
            continue
        if (found.legacy_id is None and profile.complete and profile.distinct == profile.rows
                and name.endswith(LEGACY_ID_SUFFIXES)):  # fmt: skip
            found.legacy_id = profile.name
            found.by_values["legacy_id"] = (
                f"{profile.name}: filled and unique in all {profile.rows:,} rows, named as an id"
            )
            continue
        if _is_flag(profile):
            for role, words in VERIFIED_WORDS.items():
                if getattr(found, role) is None and any(w in name for w in words):
                    setattr(found, role, profile.name)
                    found.by_values[role] = (
                        f"{profile.name}: every value is a yes/no spelling, and its name "
                        f"mentions {next(w for w in words if w in name)}"
                    )
                    break
            continue
        if (profile.main_kind() == "date" and "birthdate" not in found.attributes.values()
                and any(w in name for w in BIRTH_WORDS)):  # fmt: skip
            found.attributes[profile.name] = "birthdate"
            found.by_values["birthdate"] = f"{profile.name}: dates, named after a birth"
    if found.disabled is not None:
        found.disabled_when = _normalise(found.disabled) not in ENABLED_NAMES
    return found


def disabled_reason(column: str, when: bool, profile: ColumnProfile | None) -> str:
    """Why the mapping reads ``column`` as the legacy disabled flag, and which value disables."""
    which = "true" if when else "false"
    says = "who is disabled" if when else "who is active"
    reason = f"The column {column} says {says}: users whose {column} is {which} are disabled"
    if profile is not None and not _is_flag(profile):
        others = profile.filled - sum(profile.boolean_spellings.values())
        reason += f" (but {others:,} of its values are no yes/no spelling: check them)"
    return reason


class GroupRoles:
    """The legacy roles of the groups column: which separator, which roles, how many rows."""

    def __init__(self, column: str, *, limit: int = MAX_GROUP_ROLES) -> None:
        self.column, self.limit = column, limit
        self.separator: str | None = None
        self.roles: Counter[str] = Counter()
        self.more = 0  # memberships in roles past the first ``limit`` distinct ones

    def add(self, values: pd.Series) -> None:
        values = values[values.str.strip() != ""]
        if values.empty:
            return
        if self.separator is None:  # decided on the first chunk with roles
            counts = {s: int(values.str.contains(s, regex=False).sum()) for s in GROUP_SEPARATORS}
            self.separator = max(GROUP_SEPARATORS, key=lambda s: counts[s])
        roles = values.str.split(self.separator, regex=False).explode().str.strip()
        for role, n in roles[roles != ""].value_counts().items():
            if str(role) in self.roles or len(self.roles) < self.limit:
                self.roles[str(role)] += int(n)
            else:
                self.more += int(n)

    def profile(self) -> GroupsProfile:
        return GroupsProfile(column=self.column, separator=self.separator or GROUP_SEPARATORS[0],
                             roles=dict(self.roles.most_common()), more=self.more)  # fmt: skip


class NationalPhones:
    """A sample of the distinct phone numbers written without +country code."""

    def __init__(self) -> None:
        self.sample: set[str] = set()

    def add(self, values: list[str]) -> None:
        for value in values:
            if len(self.sample) >= PHONE_REGION_SAMPLE:
                return
            if not value.lstrip().startswith("+"):
                self.sample.add(value)

    def regions(self) -> dict[str, int]:
        """Region -> how many sampled numbers are valid numbers of that region (none: {})."""
        valid: Counter[str] = Counter()
        for value in sorted(self.sample):
            for region in PHONE_REGIONS:
                try:
                    number = phonenumbers.parse(value, region)
                except phonenumbers.NumberParseException:
                    break
                if (phonenumbers.is_valid_number(number)
                        and phonenumbers.region_code_for_number(number) == region):  # fmt: skip
                    valid[region] += 1
        return {region: valid[region] for region in PHONE_REGIONS if valid[region]}


def phone_region(profile: ColumnProfile | None) -> tuple[str | None, str]:
    """The ``phone_region`` to propose for the phone column, and why (None: none)."""
    if profile is None or not profile.national_sample:
        return None, ""
    sample, regions = profile.national_sample, profile.national_regions
    if not regions:
        return None, (f"none of the {sample:,} sampled is a valid number of the countries "
                      f"tried ({', '.join(PHONE_REGIONS)}): set phone_region yourself")  # fmt: skip
    best = max(regions, key=lambda r: (regions[r], -PHONE_REGIONS.index(r)))
    share = regions[best] / sample
    why = f"{regions[best]:,} of the {sample:,} sampled are valid {best} numbers"
    if share < PHONE_REGION_MIN_SHARE:
        return None, why + ", too few to assume it: set phone_region yourself"
    return best, why
