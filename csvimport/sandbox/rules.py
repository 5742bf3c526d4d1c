"""What Cognito checks on each row of an import file, for one user pool.

``PoolRules`` is built from moto's user pool object; ``PoolRules.check_row`` returns the
reason a row fails (or ``None``), without looking at which users already exist.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import settings as S
from .passwords import check_hash

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{1,14}$")
EMAIL, PHONE = _EMAIL, _PHONE  # what Cognito reads as an email address and an E.164 phone
_USERNAME_CATEGORIES = ("L", "M", "S", "N", "P")  # botocore: [\p{L}\p{M}\p{S}\p{N}\p{P}]+
BOOLEAN_COLUMNS = ("email_verified", "phone_number_verified", "cognito:mfa_enabled")


def parse_bool(value: str) -> bool | None:
    """Read a Cognito boolean cell: True, False, or None when blank. ValueError otherwise."""
    if value == "":
        return None
    probe = value.lower() if S.BOOLEAN_CASE_INSENSITIVE else value
    if probe == "true":
        return True
    if probe == "false":
        return False
    raise ValueError(value)


def fold(pool_case_sensitive: bool, value: str) -> str:
    """Fold a username (or email) the way the pool compares them."""
    return value if pool_case_sensitive else value.lower()


@dataclass
class CustomAttribute:
    name: str  # with the custom: prefix
    data_type: str
    min_length: int | None = None
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None


@dataclass
class PoolRules:
    """The parts of a pool's configuration that decide whether a row imports."""

    header: list[str]
    auto_verified: list[str]
    required: list[str]
    mfa: str
    case_sensitive: bool
    username_attributes: list[str]
    alias_attributes: list[str]
    custom: dict[str, CustomAttribute] = field(default_factory=dict)

    @classmethod
    def from_pool(cls, pool: Any) -> PoolRules:
        """Read the rules off a moto ``CognitoIdpUserPool``."""
        config = pool.extended_config
        custom: dict[str, CustomAttribute] = {}
        required: list[str] = []
        for attr in pool.schema_attributes.values():
            if attr.custom:
                if attr.developer_only:
                    continue
                ca = CustomAttribute(attr.name, attr.data_type)
                strc = attr.string_constraints or {}
                numc = attr.number_constraints or {}
                ca.min_length = _int_or_none(strc.get("MinLength"))
                ca.max_length = _int_or_none(strc.get("MaxLength"))
                ca.min_value = _float_or_none(numc.get("MinValue"))
                ca.max_value = _float_or_none(numc.get("MaxValue"))
                custom[attr.name] = ca
            elif attr.required and attr.name != "sub":
                required.append(attr.name)
        header = list(S.STANDARD_HEADER) + list(custom) + list(S.TRAILING_HEADER)
        username_cfg = config.get("UsernameConfiguration") or {}
        return cls(
            header=header,
            auto_verified=list(config.get("AutoVerifiedAttributes") or []),
            required=required,
            mfa=pool.mfa_config or "OFF",
            case_sensitive=bool(username_cfg.get("CaseSensitive", True)),
            username_attributes=list(config.get("UsernameAttributes") or []),
            alias_attributes=list(config.get("AliasAttributes") or []),
            custom=custom,
        )

    def unique_attributes(self) -> list[str]:
        """Attributes whose (verified) values must be unique in the pool."""
        return [a for a in ("email", "phone_number", "preferred_username")
                if a in self.username_attributes or a in self.alias_attributes]  # fmt: skip

    def check_row(self, row: dict[str, str], algorithm: str | None) -> str | None:
        """Return the log message that fails this row, or None if it may be imported."""
        m = S.ROW_MESSAGES
        username = row.get("cognito:username", "")
        if not username:
            return m["no_username"]
        why = self._username_problem(username)
        if why:
            return m["bad_username"].format(why=why)
        for name, value in row.items():
            if name != "password_hash" and len(value) > S.MAX_VALUE_CHARS:
                return m["value_too_long"].format(attr=name)
        flags: dict[str, bool | None] = {}
        for name in BOOLEAN_COLUMNS:
            try:
                flags[name] = parse_bool(row.get(name, ""))
            except ValueError:
                return m["bad_boolean"].format(attr=name)
        email, phone = row.get("email", ""), row.get("phone_number", "")
        if email and not _EMAIL.match(email):
            return m["bad_email"]
        if phone and not _PHONE.match(phone):
            return m["bad_phone"]
        for attr, value in (("email", email), ("phone_number", phone)):
            if flags[f"{attr}_verified"] and not value:
                return m["verified_without_value"].format(attr=attr)
        if len(self.auto_verified) == 1:
            only = self.auto_verified[0]
            if not flags.get(f"{only}_verified"):
                return m["only_auto_verified"].format(attr=f"{only}_verified")
        elif not any(flags.get(f"{a}_verified") for a in self.auto_verified):
            return m["auto_verified"]
        for attr in self.required + self.username_attributes:
            if not row.get(attr):
                return m["required"].format(attr=attr)
        mfa_flag = flags["cognito:mfa_enabled"]
        if (self.mfa == "ON" and mfa_flag is False) or (self.mfa == "OFF" and mfa_flag is True):
            return m["mfa"].format(value=row["cognito:mfa_enabled"], mfa=self.mfa)
        birthdate = row.get("birthdate", "")
        if birthdate and not _is_mmddyyyy(birthdate):
            return m["bad_birthdate"]
        updated_at = row.get("updated_at", "")
        if updated_at and not updated_at.isdigit():
            return m["bad_updated_at"]
        for name, spec in self.custom.items():
            value = row.get(name, "")
            if value:
                problem = _custom_problem(spec, value)
                if problem:
                    return problem
        password_hash = row.get("password_hash", "")
        if algorithm and password_hash:
            verdict = check_hash(algorithm, password_hash)
            if not verdict.ok:
                return m["bad_hash"].format(algorithm=algorithm, why=verdict.why)
        return None

    def attribute_problem(self, name: str, value: str) -> str | None:
        """Why one attribute value cannot be stored (the row checks that concern a single
        value), or None. For users made one at a time, e.g. by the migration trigger."""
        m = S.ROW_MESSAGES
        if len(value) > S.MAX_VALUE_CHARS:
            return m["value_too_long"].format(attr=name)
        if name in BOOLEAN_COLUMNS:
            try:
                parse_bool(value)
            except ValueError:
                return m["bad_boolean"].format(attr=name)
        if name == "email" and not _EMAIL.match(value):
            return m["bad_email"]
        if name == "phone_number" and not _PHONE.match(value):
            return m["bad_phone"]
        if name == "birthdate" and not _is_mmddyyyy(value):
            return m["bad_birthdate"]
        if name == "updated_at" and not value.isdigit():
            return m["bad_updated_at"]
        if name in self.custom:
            return _custom_problem(self.custom[name], value)
        return None

    def username_problem(self, username: str) -> str | None:
        """Why Cognito refuses this username in this pool, or None."""
        return self._username_problem(username)

    def _username_problem(self, username: str) -> str | None:
        if len(username) > S.MAX_USERNAME_CHARS:
            return f"longer than {S.MAX_USERNAME_CHARS} characters"
        for ch in username:
            if ch.isspace():
                return "it contains a space or tab"
            if unicodedata.category(ch)[0] not in _USERNAME_CATEGORIES:
                return f"it contains the character U+{ord(ch):04X}"
        if "email" in self.alias_attributes and _EMAIL.match(username):
            return "it looks like an email address, and email is an alias in this pool"
        if "phone_number" in self.alias_attributes and _PHONE.match(username):
            return "it looks like a phone number, and phone_number is an alias in this pool"
        return None


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _is_mmddyyyy(value: str) -> bool:
    if not re.fullmatch(r"\d{2}/\d{2}/\d{4}", value):
        return False
    try:
        datetime.strptime(value, "%m/%d/%Y")
    except ValueError:
        return False
    return True


def _custom_problem(spec: CustomAttribute, value: str) -> str | None:
    m = S.ROW_MESSAGES
    if spec.data_type == "Number":
        if not re.fullmatch(S.NUMBER_PATTERN, value):
            return m["custom_type"].format(attr=spec.name, type="Number")
        number = float(value)
        if spec.min_value is not None and number < spec.min_value:
            return m["custom_constraint"].format(attr=spec.name, why=f"below {spec.min_value:g}")
        if spec.max_value is not None and number > spec.max_value:
            return m["custom_constraint"].format(attr=spec.name, why=f"above {spec.max_value:g}")
    elif spec.data_type == "Boolean":
        try:
            parse_bool(value)
        except ValueError:
            return m["custom_type"].format(attr=spec.name, type="Boolean")
    elif spec.data_type == "DateTime":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return m["custom_type"].format(attr=spec.name, type="DateTime")
    else:
        if spec.min_length is not None and len(value) < spec.min_length:
            return m["custom_constraint"].format(
                attr=spec.name, why=f"shorter than {spec.min_length} characters"
            )
        if spec.max_length is not None and len(value) > spec.max_length:
            return m["custom_constraint"].format(
                attr=spec.name, why=f"longer than {spec.max_length} characters"
            )
    return None
