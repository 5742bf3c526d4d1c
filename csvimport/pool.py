"""Read what a Cognito user pool expects of an import file, and keep it as a snapshot.

``build`` validates against a :class:`PoolSnapshot` rather than against the live pool, so
a build can run offline (``--pool-spec``) and ``start`` can later check the pool has not
changed since.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from csvimport.errors import ConfigError
from csvimport.files import replaced_private
from csvimport.retry import paced

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

SNAPSHOT_VERSION = 1


def get_csv_header(client: CognitoIdentityProviderClient, pool_id: str) -> list[str]:
    """Return the columns, in order, that Cognito wants in an import file (GetCSVHeader)."""
    return list(paced(client).get_csv_header(UserPoolId=pool_id)["CSVHeader"])


@dataclass(frozen=True)
class Attribute:
    """One attribute of the pool's schema, named as in the CSV header."""

    name: str
    data_type: str = "String"  # String | Number | Boolean | DateTime
    required: bool = False
    mutable: bool = True
    developer_only: bool = False
    min_length: int | None = None
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None

    @property
    def custom(self) -> bool:
        return self.name.startswith("custom:")


@dataclass(frozen=True)
class PoolSnapshot:
    """The parts of a user pool that decide whether Cognito imports a row."""

    user_pool_id: str
    name: str
    header: list[str]
    attributes: list[Attribute]
    auto_verified: list[str] = field(default_factory=list)
    username_attributes: list[str] = field(default_factory=list)
    alias_attributes: list[str] = field(default_factory=list)
    case_sensitive: bool = True  # the API's default when UsernameConfiguration is absent
    mfa: str = "OFF"
    email_sending_account: str = "COGNITO_DEFAULT"
    recovery_mechanisms: list[str] = field(default_factory=list)

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    def required(self) -> list[str]:
        """Attributes every row must set: the schema's required ones and username attributes."""
        names = [a.name for a in self.attributes if a.required and a.name != "sub"]
        return names + [a for a in self.username_attributes if a not in names]

    def unique_attributes(self) -> list[str]:
        """Attributes whose values must be unique: username attributes and aliases."""
        return [a for a in ("email", "phone_number", "preferred_username")
                if a in self.username_attributes or a in self.alias_attributes]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"version": SNAPSHOT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PoolSnapshot:
        data = dict(data)
        data.pop("version", None)
        data["attributes"] = [Attribute(**a) for a in data.get("attributes", [])]
        return cls(**data)

    def fingerprint(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def save(self, path: Path) -> None:
        with replaced_private(path) as f:
            f.write(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PoolSnapshot:
        """Read a snapshot saved by ``save`` (a run's ``pool.json``, or ``--pool-spec``)."""
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(
                f"pool snapshot {path} does not exist",
                hint="Pass a pool.json written by an earlier `csvimport build` (in its run "
                "directory), or read the live pool with --pool-id.",
            ) from None
        except (ValueError, TypeError, KeyError) as exc:  # not UTF-8 or JSON, wrong shape
            raise ConfigError(
                f"pool snapshot {path} is not a csvimport pool snapshot ({exc})",
                hint="Use the pool.json from a run directory; do not edit it by hand.",
            ) from None


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def read_pool(client: CognitoIdentityProviderClient, pool_id: str) -> PoolSnapshot:
    """Take a snapshot of a live pool (DescribeUserPool + GetCSVHeader).

    A pool that does not exist is a ConfigError (a wrong --pool-id or region), not an
    AWS failure.
    """
    client = paced(client)
    try:
        pool: Any = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    except client.exceptions.ResourceNotFoundException:
        raise ConfigError(
            f"user pool {pool_id} does not exist in region {client.meta.region_name}",
            hint="Check --pool-id, and --region / --profile (or AWS_REGION / AWS_PROFILE): "
            "a pool id starts with its region, e.g. eu-west-1_AbC123.",
        ) from None
    header = get_csv_header(client, pool_id)
    attributes = []
    for schema in pool.get("SchemaAttributes", []):
        name = schema["Name"]
        custom = name.startswith("custom:") or name.startswith("dev:")
        strings = schema.get("StringAttributeConstraints") or {}
        numbers = schema.get("NumberAttributeConstraints") or {}
        attributes.append(
            Attribute(
                name=name.removeprefix("dev:"),
                data_type=schema.get("AttributeDataType", "String"),
                required=bool(schema.get("Required", False)) and not custom,
                mutable=bool(schema.get("Mutable", True)),
                developer_only=bool(schema.get("DeveloperOnlyAttribute", False)),
                min_length=_int(strings.get("MinLength")),
                max_length=_int(strings.get("MaxLength")),
                min_value=_float(numbers.get("MinValue")),
                max_value=_float(numbers.get("MaxValue")),
            )
        )
    recovery = (pool.get("AccountRecoverySetting") or {}).get("RecoveryMechanisms") or []
    return PoolSnapshot(
        user_pool_id=pool_id,
        name=pool["Name"],
        header=header,
        attributes=attributes,
        auto_verified=list(pool.get("AutoVerifiedAttributes") or []),
        username_attributes=list(pool.get("UsernameAttributes") or []),
        alias_attributes=list(pool.get("AliasAttributes") or []),
        case_sensitive=bool((pool.get("UsernameConfiguration") or {}).get("CaseSensitive", True)),
        mfa=pool.get("MfaConfiguration") or "OFF",
        email_sending_account=(pool.get("EmailConfiguration") or {}).get(
            "EmailSendingAccount", "COGNITO_DEFAULT"
        ),
        recovery_mechanisms=[m["Name"] for m in sorted(recovery, key=lambda m: m["Priority"])],
    )


LIST_USERS_PAGE = 60  # the API's maximum

# UNVERIFIED: how ListUsers reads a quotation mark or a backslash inside a filter's value.
# The API documents quotation marks escaped with a backslash in the filter string; taken
# here to mean that inside the value `"` is written `\"` and `\` is written `\\`. Every
# answer is compared with the value itself, so a wrong guess can miss a taken name (never
# invent one).
FILTER_ESCAPES = {"\\": "\\\\", '"': '\\"'}


def list_users_filter(attribute: str, value: str) -> str:
    """The ListUsers ``Filter`` that finds users whose ``attribute`` is exactly ``value``."""
    escaped = "".join(FILTER_ESCAPES.get(ch, ch) for ch in value)
    return f'{attribute} = "{escaped}"'


def existing_usernames(
    client: CognitoIdentityProviderClient, pool_id: str, *, case_sensitive: bool
) -> set[str]:
    """Return the usernames already in the pool (folded as the pool compares them).

    Pages through ListUsers paced under the account's UserList quota, which the
    applications using the pool share (``csvimport.retry.USER_LIST``).
    """
    names: set[str] = set()
    kwargs: dict[str, Any] = {
        "UserPoolId": pool_id,
        "Limit": LIST_USERS_PAGE,
        "AttributesToGet": [],
    }
    users = paced(client)
    while True:
        page: Any = users.list_users(**kwargs)
        for user in page.get("Users", []):
            name = user["Username"]
            names.add(name if case_sensitive else name.lower())
        token = page.get("PaginationToken")
        if not token:
            return names
        kwargs["PaginationToken"] = token
