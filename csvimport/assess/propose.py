"""Propose a user pool and a strategy from an assessment, each choice with its reason.

:func:`propose` reads an :class:`~csvimport.assess.model.Assessment` and decides what can
never be changed once the pool exists (sign-in by username or email, case sensitivity,
required attributes, custom attributes), what the import needs (auto-verified attributes
from the legacy verified flags), and how the passwords come across (bulk import only, bulk
plus migration at first sign-in, or reset for everyone). Every decision carries a short
reason in plain language with the numbers behind it: a person reviews the proposal before
creating a pool.

:func:`write_proposal` writes it as files (:data:`FILES`): the CreateUserPool spec that
``csvimport sandbox --pool-spec`` takes, the same pool as a CloudFormation template (with
the CloudWatch Logs role import jobs need, and the app client the migration needs), a
starter mapping for ``csvimport build``, and ``proposal.json`` for the assessment's page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from csvimport.assess.content import disabled_reason, phone_region
from csvimport.assess.model import (
    DEFAULT_POOL_NAME,
    Assessment,
    ColumnProfile,
    DuplicateCounts,
    PasswordCensus,
    Roles,
)
from csvimport.build.choices import PasswordFallback
from csvimport.build.mapping.spec import (
    GROUP_NAME_MAX,
    PASSWORD_HASH,
    STANDARD_ATTRIBUTES,
    USERNAME,
    Disabled,
    Groups,
    group_name_ok,
)
from csvimport.build.mapping.suggest import suggest_mapping
from csvimport.build.mapping.transforms import BOOLEAN_WORDS
from csvimport.cloudformation import (
    TEMPLATE_FORMAT_VERSION,
    fn_if,
    policy,
    ref,
    service_trust,
)
from csvimport.files import fsync_folder, replaced_private

# --- the limits (facts §10) and the thresholds of the rules ---------------------------------

MAX_CUSTOM_ATTRIBUTES: Final = 50  # per pool, and never deleted
MAX_CUSTOM_NAME: Final = 20  # characters of a custom attribute's name (without custom:)
MAX_VALUE_LENGTH: Final = 2048  # characters of any attribute value
# A String attribute's MaxLength is the longest value seen times this, capped at
# MAX_VALUE_LENGTH: the limit can never be raised once the pool exists.
LENGTH_HEADROOM: Final = 2
# Email sign-in needs an address for every user: a user without one cannot be imported.
# Below this share of rows with an address, the pool signs in with usernames.
EMAIL_SIGN_IN_MIN_FILL: Final = 0.99
# Users whose hash only the migration function can verify: at or above this share of the
# census's users, the strategy adds the migration at first sign-in; below it they
# reset their password like the users without a usable hash (a Lambda function to run and
# keep for a handful of users is not worth it).
MIGRATION_MIN_SHARE: Final = 0.01
# When the users who keep their password (imported or migrated) are fewer than this share
# of all users, everyone resets: one message and one path for all.
RESET_ALL_BELOW_SHARE: Final = 0.05
# Cognito's own email sender: at most 50 emails a day per account (facts §6).
COGNITO_EMAILS_PER_DAY: Final = 50
# The name of the custom attribute that keeps the legacy id (Cognito gives a new sub).
LEGACY_ID_ATTRIBUTE: Final = "legacy_id"

# Source roles that are no attribute of the pool, and why: no custom attribute for them.
NOT_ATTRIBUTES: Final = {
    "password": "the password hash: the import file's password_hash, not an attribute",
    "disabled": "whether the user is disabled: AdminDisableUser after the import, not an attribute",
    "groups": "group memberships: AdminAddUserToGroup after the import, not an attribute",
}
# Value kinds (ColumnProfile.kinds) -> the custom attribute type, and the mapping's transform.
KIND_TYPES: Final = {
    "integer": ("Number", None),
    "number": ("Number", None),
    "boolean": ("Boolean", "boolean"),
    "date": ("DateTime", None),
    "timestamp": ("DateTime", None),
}
# A custom DateTime attribute takes ISO 8601 values (csvimport.build.validate), which no
# transform writes (`date` writes Cognito's mm/dd/yyyy, `timestamp` epoch seconds): dates and
# timestamps already written so pass as they are; other spellings stay String.
ISO_DATE_PREFIX: Final = "%Y-%m-%d"

MFA: Final = "OFF"
MFA_REASON: Final = (
    "MFA off: a legacy second factor cannot be imported, and the import file's "
    "cognito:mfa_enabled must agree with the pool. MFA can be turned on later."
)
RECOVERY: Final = {"email": "verified_email", "phone_number": "verified_phone_number"}

POOL_SPEC_FILE: Final = "pool-spec.json"
TEMPLATE_FILE: Final = "pool.template.json"
MAPPING_FILE: Final = "mapping.toml"
PROPOSAL_FILE: Final = "proposal.json"
MAPPING_ORIGIN: Final = "`csvimport assess` for the proposed pool (pool-spec.json)"
FILES: Final = (POOL_SPEC_FILE, TEMPLATE_FILE, MAPPING_FILE, PROPOSAL_FILE)

# The app client's sign-in flows. USER_PASSWORD_AUTH where users keep their password: the
# migration trigger fires on it and not on the SDKs' default SRP, and users imported with a
# hash cannot use SRP until their first sign-in (facts §7).
PASSWORD_AUTH: Final = "ALLOW_USER_PASSWORD_AUTH"
AUTH_FLOWS: Final = ("ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
PASSWORD_AUTH_REASON: Final = (
    "An app client with USER_PASSWORD_AUTH beside SRP: {who} sign in with it the first time "
    "(the migration trigger never fires on SRP, and an imported hash cannot serve SRP until "
    "the first sign-in)."
)
# Where Cognito's import jobs write their logs: the role may write there and nowhere else.
IMPORT_LOG_GROUPS: Final = (
    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/cognito/*"
)
IMPORT_LOG_ACTIONS: Final = ("logs:CreateLogGroup", "logs:CreateLogStream",
                             "logs:DescribeLogStreams", "logs:PutLogEvents")  # fmt: skip


class Strategy(StrEnum):
    """How the passwords come across."""

    BULK_ONLY = "bulk import only"
    BULK_AND_MIGRATION = "bulk plus migration at first sign-in"
    RESET_ALL = "reset for everyone"


@dataclass(frozen=True)
class CustomAttribute:
    """A proposed custom attribute (``custom:NAME``) and the source column it keeps."""

    name: str
    column: str
    data_type: str  # String | Number | DateTime | Boolean
    max_length: int | None = None  # String only
    mutable: bool = True
    transform: str | None = None  # the mapping's transform for the column
    reason: str = ""

    def schema(self) -> dict[str, Any]:
        """The attribute's entry in CreateUserPool's Schema (CloudFormation's is the same)."""
        entry: dict[str, Any] = {"Name": self.name, "AttributeDataType": self.data_type,
                                 "Mutable": self.mutable, "Required": False}  # fmt: skip
        if self.max_length is not None:
            entry["StringAttributeConstraints"] = {"MinLength": "0",
                                                   "MaxLength": str(self.max_length)}  # fmt: skip
        return entry


@dataclass(frozen=True)
class Choice:
    """One decision about the pool, its value as the API spells it, and why."""

    name: str
    value: Any
    reason: str


@dataclass(frozen=True)
class Proposal:
    """A proposed pool, the starter mapping's inputs and the password strategy."""

    pool_name: str
    username_attributes: list[str]
    alias_attributes: list[str]
    case_sensitive: bool
    auto_verified: list[str]
    required: list[str]
    custom: list[CustomAttribute]
    left_out: dict[str, str]  # source column -> why it is no attribute of the pool
    strategy: Strategy
    strategy_numbers: dict[str, int]
    choices: list[Choice]
    # what the starter mapping reads: attribute -> its stanza, the legacy id column, columns
    known: dict[str, dict[str, Any]] = field(default_factory=dict)
    legacy_id: str | None = None
    columns: list[str] = field(default_factory=list)
    source: str = ""
    # what the import file cannot carry (csvimport followups), and the phone numbers' region
    disabled: Disabled | None = None
    groups: Groups | None = None
    phone_region: str | None = None
    # the starter mapping's comments: stanza ("legacy", "groups", an attribute) -> why
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def password_hash_import(self) -> bool:
        """Whether the pool must take password hashes (some users keep theirs by import)."""
        return _imports_hashes(self.strategy, self.strategy_numbers)

    @property
    def migration(self) -> bool:
        return self.strategy is Strategy.BULK_AND_MIGRATION

    @property
    def password_auth(self) -> bool:
        """Whether the app client needs USER_PASSWORD_AUTH: some users keep their password."""
        return PASSWORD_AUTH in self.choice("app_client_flows").value

    @property
    def password_fallback(self) -> PasswordFallback:
        """What ``build --password-fallback`` the strategy asks for."""
        return PasswordFallback.MIGRATE if self.migration else PasswordFallback.RESET

    def choice(self, name: str) -> Choice:
        return next(c for c in self.choices if c.name == name)

    def header(self) -> list[str]:
        """The columns of the proposed pool's import files: its CSV header (GetCSVHeader:
        the standard columns, the custom ones), and password_hash when hashes are imported
        (a hash job's file carries it)."""
        standard = [a for a in STANDARD_ATTRIBUTES if a != PASSWORD_HASH]
        custom = [f"custom:{a.name}" for a in self.custom]
        at = standard.index("updated_at") + 1
        header = standard[:at] + custom + standard[at:]
        return header + ([PASSWORD_HASH] if self.password_hash_import else [])

    def to_json(self) -> dict[str, Any]:
        return {
            "pool_name": self.pool_name,
            "choices": [
                {"name": c.name, "value": c.value, "reason": c.reason} for c in self.choices
            ],  # fmt: skip
            "custom_attributes": [
                {
                    "name": f"custom:{a.name}",
                    "column": a.column,
                    "type": a.data_type,
                    "max_length": a.max_length,
                    "mutable": a.mutable,
                    "reason": a.reason,
                }
                for a in self.custom
            ],  # fmt: skip
            "left_out": dict(self.left_out),
            "strategy": {
                "name": self.strategy.value,
                "reason": self.choice("strategy").reason,
                "numbers": dict(self.strategy_numbers),
                "password_fallback": self.password_fallback.value,
            },
        }


def _imports_hashes(strategy: Strategy, numbers: dict[str, int]) -> bool:
    usable = numbers.get("importable", 0) + numbers.get("convertible", 0)
    return strategy is not Strategy.RESET_ALL and usable > 0


# --- the rules ------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def _share(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def _duplicates(assessment: Assessment, role: str) -> DuplicateCounts | None:
    return next((d for d in assessment.duplicates if d.role == role), None)


def _profile(assessment: Assessment, column: str | None) -> ColumnProfile | None:
    return None if column is None else assessment.column(column)


def _sign_in(assessment: Assessment) -> tuple[list[str], list[str], str]:
    """(UsernameAttributes, AliasAttributes, reason)."""
    roles, rows = assessment.roles, assessment.rows
    email = _profile(assessment, roles.email)
    dups = _duplicates(assessment, "email")
    shared = dups.folded if dups is not None else 0
    if dups is None and email is not None:  # no duplicate count: the profile's distinct values
        shared = email.filled - email.distinct_folded
    addresses = 0 if email is None else email.kinds.get("email", 0)
    without = rows - addresses
    if email is None:
        why_not = "the source has no email column"
    elif shared:
        why_not = (f"{shared:,} rows share an email address with an earlier row once case is "
                   "ignored, and an email used to sign in must be unique")  # fmt: skip
    elif rows == 0 or addresses / rows < EMAIL_SIGN_IN_MIN_FILL:
        why_not = (f"{without:,} of {rows:,} rows ({_pct(without, rows)}) have no valid email "
                   f"address, more than the {_share(1 - EMAIL_SIGN_IN_MIN_FILL)} email sign-in "
                   "may leave out (each of them could not be imported)")  # fmt: skip
    else:
        why_not = ""
    if why_not:
        reason = f"Sign in with a username: {why_not}."
        if roles.username is None:
            reason += " The source has no username column: name the one to use in mapping.toml."
        return [], [], reason
    gap = f" ({without:,} rows without one cannot be imported)" if without else ""
    facts = (f"addresses are unique after case folding and {_pct(addresses, rows)} of rows "
             f"have one{gap}")  # fmt: skip
    username = _profile(assessment, roles.username)
    if username is None or roles.username == roles.email:
        return ["email"], [], (
            f"Sign in with the email address: {facts}, and there is no separate username column."
        )  # fmt: skip
    emailish = username.kinds.get("email", 0)
    if emailish:
        return ["email"], [], (
            f"Sign in with the email address: {facts}; not as an alias beside the username, "
            f"because {emailish:,} usernames look like email addresses, which Cognito refuses "
            "in a pool with an email alias."
        )  # fmt: skip
    return [], ["email"], (
        f"Sign in with the username or the email address (email as an alias): {facts}; users "
        "keep their legacy usernames."
    )  # fmt: skip


def _case_only(assessment: Assessment, role: str) -> tuple[int, list[str], str] | None:
    """(rows equal to another only after case folding, masked examples, column) for the
    column playing ``role``; from the column's profile when no duplicate count was made."""
    dups = _duplicates(assessment, role)
    if dups is not None:
        return dups.folded - dups.exact, dups.case_only_examples, dups.column
    column = getattr(assessment.roles, role)
    profile = _profile(assessment, column)
    if profile is None:
        return None
    return profile.distinct - profile.distinct_folded, [], profile.name


def _case(assessment: Assessment, sign_in_with: list[str]) -> tuple[bool, str]:
    """(CaseSensitive, reason). Emails take part when they sign users in (a
    case-insensitive pool compares email and preferred_username without case too)."""
    parts = []
    for role in ["username", *(["email"] if sign_in_with else [])]:
        found = _case_only(assessment, role)
        if found is None or found[0] <= 0:
            continue
        count, examples, column = found
        shown = f" (e.g. {', '.join(examples[:5])})" if examples else ""
        parts.append(f"{count:,} {role} values of {column} differ from another only in "
                     f"case{shown}")  # fmt: skip
    if not parts:
        return False, (
            "Case-insensitive usernames: no two usernames differ only in case, and users "
            "expect 'Ada' and 'ada' to be the same account."
        )
    return True, (
        "Case-sensitive usernames: " + "; ".join(parts) + ". A case-insensitive pool would "
        "take one of each such pair (the build's --duplicates policy drops the others). To "
        "have case-insensitive sign-in instead, resolve them in the source first: case "
        "sensitivity can never be changed later."
    )


def _true_rows(profile: ColumnProfile) -> int:
    return sum(n for spelling, n in profile.boolean_spellings.items()
               if BOOLEAN_WORDS.get(spelling.strip().lower()) == "true")  # fmt: skip


def _auto_verified(assessment: Assessment) -> tuple[list[str], str]:
    roles, rows = assessment.roles, assessment.rows
    verified, parts = [], []
    for attribute, column, flag in (
        ("email", roles.email, roles.email_verified),
        ("phone_number", roles.phone_number, roles.phone_number_verified),
    ):
        profile = _profile(assessment, flag)
        if column is None or profile is None:
            continue
        true = _true_rows(profile)
        verified.append(attribute)
        parts.append(
            f"{attribute} from {flag} (filled in {_pct(profile.filled, rows)} of rows, true "
            f"in {_pct(true, rows)}: {true:,} of {rows:,})"
        )
    if verified:
        note = ""
        if len(verified) == 1:
            profile = _profile(assessment, getattr(roles, f"{verified[0]}_verified"))
            assert profile is not None
            unverified = rows - _true_rows(profile)
            if unverified:
                note = (f" {unverified:,} users whose {verified[0]} is not verified cannot be "
                        "imported: Cognito needs a verified email or phone for each.")  # fmt: skip
        if "phone_number" in verified:
            note += SMS_NOTE
        return verified, "Auto-verify " + "; ".join(parts) + "." + note
    if roles.email is not None:
        return ["email"], (
            "Auto-verify email: the source has no verified flag, and an import job needs an "
            "auto-verified attribute. Map email_verified = true only if the legacy system "
            "verified every address."
        )
    if roles.phone_number is not None:
        return ["phone_number"], (
            "Auto-verify phone_number: the source has no verified flag, and an import job "
            "needs an auto-verified attribute."
        )
    return ["email"], (
        "Auto-verify email, although the source has neither email nor phone column: Cognito "
        "imports only users with a verified email or phone, so none of these users can be "
        "imported by CSV until one is added."
    )


# UNVERIFIED: whether CreateUserPool refuses an auto-verified phone_number without an
# SmsConfiguration; Cognito sends the codes by SMS through Amazon SNS, which needs that role.
SMS_NOTE: Final = (
    " Verifying phone numbers sends SMS through Amazon SNS: give the pool an SmsConfiguration "
    "(an IAM role Cognito assumes) before creating it; this proposal has none."
)


# The standard attributes proposed as required when every row has one: the channels that
# reach a user (recovery, verification). Others filled in every row are only named: required
# is forever, and whether every future user must give a name is the product's call.
REQUIRED_CANDIDATES: Final = ("email", "phone_number")
REQUIRED_CAUTION: Final = (
    "Required can never be changed: every user created later (sign-up, admin) must give "
    "these too; take any out whose absence you will ever accept."
)


def _required(assessment: Assessment) -> tuple[list[str], str]:
    roles = assessment.roles
    standard = {"email": roles.email, "phone_number": roles.phone_number}
    standard.update({attribute: column for column, attribute in roles.attributes.items()})
    required, complete, optional, partial = [], [], [], []
    for attribute, column in standard.items():
        profile = _profile(assessment, column)
        if profile is None:
            continue
        if not profile.complete:
            missing = profile.rows - profile.filled
            partial.append(f"{attribute} ({column}: {missing:,} rows empty, "
                           f"{_pct(profile.filled, profile.rows)} filled)")  # fmt: skip
        elif attribute in REQUIRED_CANDIDATES:
            required.append(attribute)
            complete.append(f"{attribute} ({column}: all {profile.rows:,} rows)")
        else:
            optional.append(attribute)
    parts = []
    if complete:
        parts.append("Required: " + ", ".join(complete) + ", filled in every row. "
                     + REQUIRED_CAUTION)  # fmt: skip
    else:
        parts.append("No required attribute: no email or phone column is filled in every row.")
    if optional:
        parts.append(
            "Filled in every row but not required, as a pool cannot drop a required "
            "attribute and not every future user may have one: " + ", ".join(optional) + "."
        )
    if partial:
        parts.append("Not required, because users without them would be rejected: "
                     + "; ".join(partial) + ".")  # fmt: skip
    return required, " ".join(parts)


def custom_name(column: str) -> tuple[str, str]:
    """A custom attribute's name for a source column (at most MAX_CUSTOM_NAME characters),
    and how it was shortened ("" when it was not)."""
    name = re.sub(r"[^a-z0-9]+", "_", column.casefold()).strip("_") or "column"
    if len(name) <= MAX_CUSTOM_NAME:
        return name, ""
    kept: list[str] = []
    for word in name.split("_"):
        if len("_".join([*kept, word])) > MAX_CUSTOM_NAME:
            break
        kept.append(word)
    if kept:
        how = f"shortened to its first whole words ({len(name)} characters are over the "
        return "_".join(kept), how + f"{MAX_CUSTOM_NAME} allowed)"
    return name[:MAX_CUSTOM_NAME], (
        f"cut to {MAX_CUSTOM_NAME} characters (its first word alone is longer)"
    )


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while True:
        suffix = f"_{n}"
        candidate = name[: MAX_CUSTOM_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _type_of(profile: ColumnProfile) -> tuple[str, str | None, str]:
    """(type, transform, why) from the kinds of the column's values."""
    kind = profile.main_kind()
    if kind not in KIND_TYPES:
        return "String", None, f"String ({kind or 'no'} values)"
    data_type, transform = KIND_TYPES[kind]
    share = profile.kinds[kind]
    if share < profile.filled:
        others = profile.filled - share
        return "String", None, (
            f"String, not {data_type}: {others:,} of its {profile.filled:,} values are not "
            f"{kind} values"
        )  # fmt: skip
    formats = sorted(profile.date_formats)
    if data_type == "DateTime" and not (formats and all(f.startswith(ISO_DATE_PREFIX)
                                                        for f in formats)):  # fmt: skip
        seen = ", ".join(formats) or "not profiled"
        return "String", None, f"String, not DateTime: its {kind}s are not ISO 8601 ({seen})"
    return data_type, transform, f"{data_type}: every value is of kind {kind!r}"


def _custom(assessment: Assessment) -> tuple[list[CustomAttribute], dict[str, str], str]:
    roles = assessment.roles
    taken_columns = {getattr(roles, r) for r in ("username", "email", "email_verified",
                     "phone_number", "phone_number_verified", *NOT_ATTRIBUTES)}  # fmt: skip
    taken_columns |= set(roles.attributes)
    left_out: dict[str, str] = {}
    for role, why in NOT_ATTRIBUTES.items():
        column = getattr(roles, role)
        if column is not None:
            left_out[column] = why
    candidates: list[tuple[ColumnProfile, bool]] = []
    legacy = _profile(assessment, roles.legacy_id)
    if legacy is not None:
        candidates.append((legacy, True))
    for profile in assessment.columns:
        if profile.name in taken_columns or profile.name == roles.legacy_id:
            continue
        if profile.filled == 0:
            left_out[profile.name] = "empty in every row"
            continue
        candidates.append((profile, False))
    # The legacy id first, then the most filled: the pool's limit leaves out the emptiest.
    ordered = candidates[:1] if legacy is not None else []
    ordered += sorted(candidates[len(ordered) :], key=lambda c: -c[0].filled)
    kept, dropped = ordered[:MAX_CUSTOM_ATTRIBUTES], ordered[MAX_CUSTOM_ATTRIBUTES:]
    for profile, _ in dropped:
        left_out[profile.name] = (
            f"over the pool's {MAX_CUSTOM_ATTRIBUTES} custom attributes: the "
            f"{MAX_CUSTOM_ATTRIBUTES} fuller columns were kept (this one is filled in "
            f"{_pct(profile.filled, profile.rows)} of rows)"
        )
    taken: set[str] = set()
    attributes = []
    source_order = {c.name: i for i, c in enumerate(assessment.columns)}
    for profile, is_legacy in sorted(kept, key=lambda c: (not c[1], source_order[c[0].name])):
        if is_legacy:
            name, how = LEGACY_ID_ATTRIBUTE, f"named {LEGACY_ID_ATTRIBUTE} (the legacy id)"
        else:
            name, how = custom_name(profile.name)
        unique = _unique(name, taken)
        if unique != name:
            how = (how + "; " if how else "") + f"{name!r} was taken, so {unique!r}"
        taken.add(unique)
        if is_legacy:
            data_type, transform, why = "String", None, "String, whatever its values look like "
            why += "(leading zeros and long ids survive as text)"
        else:
            data_type, transform, why = _type_of(profile)
        max_length = None
        if data_type == "String":
            max_length = min(MAX_VALUE_LENGTH, max(1, LENGTH_HEADROOM * profile.max_length))
            why += (f"; up to {max_length:,} characters ({LENGTH_HEADROOM}x the longest "
                    f"value, {profile.max_length:,}, at most {MAX_VALUE_LENGTH:,})")  # fmt: skip
        reason = f"From {profile.name}: {why}"
        if how:
            reason += f"; {how}"
        if is_legacy:
            reason += "; immutable, so the link to the legacy user cannot be edited away"
        attributes.append(CustomAttribute(
            name=unique, column=profile.name, data_type=data_type, max_length=max_length,
            mutable=not is_legacy, transform=transform, reason=reason + ".",
        ))  # fmt: skip
    summary = (
        f"{len(attributes)} custom attributes for the source columns that match no standard "
        f"attribute (custom attributes can never be deleted; at most {MAX_CUSTOM_ATTRIBUTES})."
    )
    if dropped:
        summary += (f" {len(dropped)} columns left out for the limit: "
                    + ", ".join(p.name for p, _ in dropped) + ".")  # fmt: skip
    return attributes, left_out, summary


def _strategy(census: PasswordCensus, rows: int) -> tuple[Strategy, dict[str, int], str]:
    usable = census.importable + census.convertible
    later = census.at_first_sign_in
    lost = census.unknown + census.empty
    total = usable + later + lost
    keep = usable + later
    numbers = {"users": rows, "importable": census.importable,
               "convertible": census.convertible, "at_first_sign_in": later,
               "unknown": census.unknown, "empty": census.empty}  # fmt: skip
    imported = (f"{usable:,} of {total:,} users ({_pct(usable, total)}) have a hash Cognito "
                f"imports ({census.importable:,} as they are, {census.convertible:,} "
                "converted)")  # fmt: skip
    if census.column is None:
        strategy, resets = Strategy.RESET_ALL, rows
        text = ("Reset for everyone: the source has no password column, so every imported user "
                "sets a new password (ForgotPassword) at their first sign-in")  # fmt: skip
    elif total == 0 or keep / total < RESET_ALL_BELOW_SHARE:
        strategy, resets = Strategy.RESET_ALL, total
        text = (f"Reset for everyone: only {keep:,} of {total:,} users ({_pct(keep, total)}) "
                "have a hash Cognito imports or the migration function verifies, under the "
                f"{_share(RESET_ALL_BELOW_SHARE)} worth a second path; {lost:,} have no "
                "usable hash")  # fmt: skip
    elif later and later / total >= MIGRATION_MIN_SHARE:
        strategy, resets = Strategy.BULK_AND_MIGRATION, lost
        text = (f"Bulk import plus migration at first sign-in: {imported}; {later:,} "
                f"({_pct(later, total)}) have one only the migration function can verify, so "
                "they are left out of the import (build --password-fallback migrate) and "
                "migrate when they first sign in")  # fmt: skip
    else:
        strategy, resets = Strategy.BULK_ONLY, lost + later
        text = f"Bulk import only: {imported}"
        if later:
            text += (
                f"; the {later:,} whose hash only the migration function can verify are "
                f"under {_share(MIGRATION_MIN_SHARE)} of users, so they reset instead"
            )
    if resets and strategy is not Strategy.RESET_ALL:
        text += (
            f"; {resets:,} ({_pct(resets, total)}) reset their password, "
            f"{census.empty:,} having no hash, {census.unknown:,} an unknown scheme"
            + (f", {later:,} one left to reset" if strategy is Strategy.BULK_ONLY and later else "")
        )
    if resets > COGNITO_EMAILS_PER_DAY:
        text += (f"; resetting more than {COGNITO_EMAILS_PER_DAY} users a day needs Amazon SES "
                 "(EmailConfiguration.EmailSendingAccount = DEVELOPER)")  # fmt: skip
    if strategy is not Strategy.RESET_ALL and len(set(census.by_scheme) - {"unknown"}) > 1:
        text += "; Cognito takes one hash algorithm per job, so the build writes a job per scheme"
    return strategy, numbers, text + "."


def _stanzas(
    roles: Roles, *, email_is_username: bool, custom: list[CustomAttribute], hashes: bool
) -> dict[str, dict[str, Any]]:
    """What the starter mapping reads for each attribute of the proposed pool (the rest it
    matches by name)."""
    known: dict[str, dict[str, Any]] = {}
    if email_is_username and roles.email is not None:
        known[USERNAME] = {"column": roles.email, "transform": "email"}
    elif roles.username is not None:
        known[USERNAME] = {"column": roles.username}
    for attribute, column in (("email", roles.email), ("phone_number", roles.phone_number)):
        if column is not None:
            known[attribute] = {"column": column}
    for attribute, flag in (("email_verified", roles.email_verified),
                            ("phone_number_verified", roles.phone_number_verified)):  # fmt: skip
        if flag is not None:
            known[attribute] = {"column": flag, "transform": "boolean", "default": "false"}
    for column, attribute in roles.attributes.items():
        known[attribute] = {"column": column}
    for a in custom:
        known[f"custom:{a.name}"] = {"column": a.column}
        if a.transform:
            known[f"custom:{a.name}"]["transform"] = a.transform
    if hashes and roles.password is not None:
        known[PASSWORD_HASH] = {"column": roles.password}
    return known


def _recovery(auto_verified: list[str]) -> tuple[list[str], str]:
    mechanisms = [RECOVERY[a] for a in auto_verified if a in RECOVERY]
    if not mechanisms:
        return [], "No account recovery: the pool verifies no email or phone."
    return mechanisms, (
        "Account recovery by " + " then ".join(mechanisms) + ": imported users without an "
        "imported hash reset their password by a code sent there."
    )


def _app_client(strategy: Strategy, numbers: dict[str, int]) -> Choice:
    migrating = strategy is Strategy.BULK_AND_MIGRATION
    who = [*(["users with an imported hash"] if _imports_hashes(strategy, numbers) else []),
           *(["users who migrate"] if migrating else [])]  # fmt: skip
    if not who:
        return Choice("app_client_flows", list(AUTH_FLOWS), (
            "An app client with SRP only: every user sets a new password, so no one signs in "
            "with a legacy one."
        ))  # fmt: skip
    flows = [PASSWORD_AUTH, *AUTH_FLOWS]
    return Choice("app_client_flows", flows, PASSWORD_AUTH_REASON.format(who=" and ".join(who)))


def _group_name(role: str) -> str:
    """The Cognito group a legacy role becomes: its name, spaces made dashes ("" when it
    still is no group name, which leaves the role out)."""
    name = re.sub(r"\s+", "-", role.strip())[:GROUP_NAME_MAX]
    return name if group_name_ok(name) else ""


def _followups(
    assessment: Assessment,
) -> tuple[Disabled | None, Groups | None, Choice | None, dict[str, str]]:
    """The legacy disabled flag and groups the follow-up pass carries, the choice, and why
    each ("disabled", "groups": the starter mapping's notes)."""
    roles, found = assessment.roles, assessment.groups
    disabled = groups = None
    parts: dict[str, str] = {}
    if roles.disabled is not None:
        when = True if roles.disabled_when is None else roles.disabled_when
        disabled = Disabled(roles.disabled, when)
        parts["disabled"] = (
            disabled_reason(roles.disabled, when, _profile(assessment, roles.disabled))
            + " (AdminDisableUser after the import)"
        )
    if found is not None and found.roles:
        names = tuple((role, _group_name(role)) for role in found.roles)
        groups = Groups(found.column, names, found.separator)
        listed = ", ".join(f"{role} ({n:,} user{'s' if n != 1 else ''})"
                           for role, n in list(found.roles.items())[:8])  # fmt: skip
        parts["groups"] = (
            f"The column {found.column} holds each user's legacy roles, separated by "
            f"{found.separator!r}: "
            f"{listed}{', ...' if len(found.roles) > 8 else ''}; each becomes the group of its "
            "name (AdminAddUserToGroup after the import; rename them in [groups.names])"
        )
        if found.more:
            parts["groups"] += (f"; {found.more:,} memberships in roles beyond the "
                                f"{len(found.roles):,} counted are not in [groups.names]: "
                                "followups lists them as unmapped")  # fmt: skip
    if not parts:
        return None, None, None, {}
    value = {"disabled": None if disabled is None else {"column": disabled.column,
                                                          "disabled_when": disabled.when},
             "groups": None if groups is None else groups.column}  # fmt: skip
    notes = {key: part + "." for key, part in parts.items()}
    return disabled, groups, Choice("follow_ups", value, " ".join(notes.values())), notes


def _notes(assessment: Assessment, choices: list[Choice]) -> dict[str, str]:
    """The starter mapping's comments: why a column plays its part, found by its values,
    and why the follow-ups and the phone region."""
    by_values = assessment.roles.by_values
    notes = {("legacy" if role == "legacy_id" else role): f"Found by its values: {why}."
             for role, why in by_values.items()}  # fmt: skip
    for choice in choices:
        if choice.name == "phone_region":
            notes["options"] = choice.reason
    return notes


def propose(assessment: Assessment, *, pool_name: str = DEFAULT_POOL_NAME) -> Proposal:
    """Propose the pool and the password strategy for ``assessment``, each with its reason."""
    username_attributes, alias_attributes, sign_in_reason = _sign_in(assessment)
    sign_in = {"UsernameAttributes": username_attributes, "AliasAttributes": alias_attributes}
    case_sensitive, case_reason = _case(assessment, username_attributes + alias_attributes)
    auto_verified, verified_reason = _auto_verified(assessment)
    required, required_reason = _required(assessment)
    custom, left_out, custom_reason = _custom(assessment)
    strategy, numbers, strategy_reason = _strategy(assessment.passwords, assessment.rows)
    recovery, recovery_reason = _recovery(auto_verified)
    choices = [
        Choice("sign_in", sign_in, sign_in_reason),
        Choice("case_sensitive", case_sensitive, case_reason),
        Choice("auto_verified", auto_verified, verified_reason),
        Choice("required", required, required_reason),
        Choice("custom_attributes", [f"custom:{a.name}" for a in custom], custom_reason),
        Choice("account_recovery", recovery, recovery_reason),
        Choice("mfa", MFA, MFA_REASON),
        Choice("strategy", strategy.value, strategy_reason),
        _app_client(strategy, numbers),
    ]
    disabled, groups, followups, followup_notes = _followups(assessment)
    if followups is not None:
        choices.append(followups)
    region, region_reason = phone_region(_profile(assessment, assessment.roles.phone_number))
    if region_reason:
        read_as = f" are read as {region} numbers" if region else ""
        why = f"Phone numbers without +country code{read_as}: {region_reason}."
        choices.append(Choice("phone_region", region, why))
    known = _stanzas(assessment.roles, email_is_username=bool(username_attributes),
                     custom=custom, hashes=_imports_hashes(strategy, numbers))  # fmt: skip
    return Proposal(
        pool_name=pool_name,
        username_attributes=username_attributes,
        alias_attributes=alias_attributes,
        case_sensitive=case_sensitive,
        auto_verified=auto_verified,
        required=required,
        custom=custom,
        left_out=left_out,
        strategy=strategy,
        strategy_numbers=numbers,
        choices=choices,
        known=known,
        legacy_id=assessment.roles.legacy_id,
        columns=[c.name for c in assessment.columns],
        source=assessment.source,
        disabled=disabled,
        groups=groups,
        phone_region=region,
        notes={**_notes(assessment, choices), **followup_notes},
    )


# --- the outputs ----------------------------------------------------------------------------


def _schema(proposal: Proposal) -> list[dict[str, Any]]:
    standard = [{"Name": name, "AttributeDataType": "String", "Mutable": True, "Required": True}
                for name in proposal.required]  # fmt: skip
    return standard + [a.schema() for a in proposal.custom]


def _recovery_setting(proposal: Proposal) -> dict[str, Any]:
    mechanisms = proposal.choice("account_recovery").value
    return {"RecoveryMechanisms": [{"Name": m, "Priority": i + 1}
                                   for i, m in enumerate(mechanisms)]}  # fmt: skip


def _pool_settings(proposal: Proposal) -> dict[str, Any]:
    """CreateUserPool's parameters, as the API and CloudFormation both spell them."""
    settings: dict[str, Any] = {}
    if proposal.username_attributes:
        settings["UsernameAttributes"] = list(proposal.username_attributes)
    if proposal.alias_attributes:
        settings["AliasAttributes"] = list(proposal.alias_attributes)
    settings["UsernameConfiguration"] = {"CaseSensitive": proposal.case_sensitive}
    settings["AutoVerifiedAttributes"] = list(proposal.auto_verified)
    settings["MfaConfiguration"] = proposal.choice("mfa").value
    if proposal.choice("account_recovery").value:
        settings["AccountRecoverySetting"] = _recovery_setting(proposal)
    settings["Schema"] = _schema(proposal)
    return settings


def _client_settings(proposal: Proposal) -> dict[str, Any]:
    flows = list(proposal.choice("app_client_flows").value)
    return {"ClientName": f"{proposal.pool_name}-app", "ExplicitAuthFlows": flows,
            "GenerateSecret": False, "PreventUserExistenceErrors": "ENABLED"}  # fmt: skip


def pool_spec(proposal: Proposal) -> dict[str, Any]:
    """The CreateUserPool spec ``csvimport sandbox --pool-spec`` takes (its ``x-csvimport``
    says whether the pool takes password hashes, and the app client to create)."""
    return {
        "PoolName": proposal.pool_name,
        **_pool_settings(proposal),
        "x-csvimport": {
            "password_hash_import": proposal.password_hash_import,
            "client": _client_settings(proposal),
        },  # fmt: skip
    }


def template(proposal: Proposal) -> dict[str, Any]:
    """The proposed pool as an AWS CloudFormation template, with what an import needs.

    Besides the pool, it creates the role import jobs write their CloudWatch Logs with
    (trusting cognito-idp.amazonaws.com, writing to ``/aws/cognito/*`` only: without it no
    job starts); where users keep their password, the app client with USER_PASSWORD_AUTH
    (see :data:`PASSWORD_AUTH_REASON`); and for the migration strategy, a parameter that
    sets the trigger once the function exists (``csvimport migration-package`` deploys it). The
    pool is kept when the stack is deleted or a change would replace it: it holds the users.
    """
    settings = _pool_settings(proposal)
    parameters: dict[str, Any] = {
        "PoolName": {
            "Type": "String",
            "Default": proposal.pool_name,
            "MinLength": 1,
            "MaxLength": 128,
            "Description": "The user pool's name.",
        },  # fmt: skip
    }
    conditions: dict[str, Any] = {}
    pool_properties: dict[str, Any] = {"UserPoolName": ref("PoolName"), **settings,
                                       "DeletionProtection": "ACTIVE"}  # fmt: skip
    if proposal.migration:
        parameters["UserMigrationFunctionArn"] = {
            "Type": "String",
            "Default": "",
            "Description": "The migration function's ARN (the FunctionArn output of "
            "csvimport migration-package's stack); empty until it is deployed.",
        }
        conditions["HasMigrationFunction"] = {
            "Fn::Not": [{"Fn::Equals": [ref("UserMigrationFunctionArn"), ""]}]
        }
        pool_properties["LambdaConfig"] = fn_if(
            "HasMigrationFunction", {"UserMigration": ref("UserMigrationFunctionArn")}
        )
    resources: dict[str, Any] = {
        "UserPool": {
            "Type": "AWS::Cognito::UserPool",
            # A change to what can never change (sign-in, schema) replaces the pool: keep
            # the old one and its users rather than delete them.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": pool_properties,
        },
        "ImportLogsRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "Lets Cognito user import jobs write their CloudWatch Logs "
                "(/aws/cognito/*), as CreateUserImportJob's CloudWatchLogsRoleArn.",
                "AssumeRolePolicyDocument": service_trust("cognito-idp.amazonaws.com"),
                "Policies": [
                    policy(
                        "cognito-import-logs",
                        [
                            {
                                "Effect": "Allow",
                                "Action": list(IMPORT_LOG_ACTIONS),
                                "Resource": {"Fn::Sub": IMPORT_LOG_GROUPS},
                            }
                        ],
                    )
                ],
            },
        },  # fmt: skip
    }
    outputs: dict[str, Any] = {
        "UserPoolId": {
            "Description": "csvimport build/start --pool-id.",
            "Value": ref("UserPool"),
        },  # fmt: skip
        "ImportLogsRoleArn": {
            "Description": "csvimport start --logs-role-arn (or CSVIMPORT_LOGS_ROLE_ARN).",
            "Value": {"Fn::GetAtt": ["ImportLogsRole", "Arn"]},
        },
    }
    if proposal.password_auth:
        resources["AppClient"] = {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {"UserPoolId": ref("UserPool"), **_client_settings(proposal)},
        }
        outputs["AppClientId"] = {
            "Description": "The app client with USER_PASSWORD_AUTH, for users' first sign-in "
            "with their legacy password.",
            "Value": ref("AppClient"),
        }
    document: dict[str, Any] = {
        "AWSTemplateFormatVersion": TEMPLATE_FORMAT_VERSION,
        "Description": f"Cognito user pool proposed by csvimport assess ({proposal.strategy}).",
        "Parameters": parameters,
    }
    if conditions:
        document["Conditions"] = conditions
    return {**document, "Resources": resources, "Outputs": outputs}


def mapping_text(proposal: Proposal) -> str:
    """The starter mapping for the proposed pool (``csvimport build --mapping``)."""
    return suggest_mapping(
        proposal.columns, proposal.header(), source_name=proposal.source, known=proposal.known,
        legacy_id=proposal.legacy_id, origin=MAPPING_ORIGIN, disabled=proposal.disabled,
        groups=proposal.groups, phone_region=proposal.phone_region, notes=proposal.notes,
    )  # fmt: skip


def write_proposal(proposal: Proposal, folder: Path) -> list[Path]:
    """Write the proposal's files (:data:`FILES`) into ``folder``; return their paths.

    Each is replaced whole; mode 0600, as the folder's other files (masked examples are
    still about people).
    """
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        POOL_SPEC_FILE: json.dumps(pool_spec(proposal), indent=2) + "\n",
        TEMPLATE_FILE: json.dumps(template(proposal), indent=2) + "\n",
        MAPPING_FILE: mapping_text(proposal),
        PROPOSAL_FILE: json.dumps(proposal.to_json(), indent=2, ensure_ascii=False) + "\n",
    }
    paths = []
    for name, text in texts.items():
        with replaced_private(folder / name) as f:
            f.write(text)
        paths.append(folder / name)
    fsync_folder(folder)
    return paths
