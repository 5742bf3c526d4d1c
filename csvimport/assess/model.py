"""What an assessment found: the data ``profile`` fills and ``propose`` and the page read.

Values here are counts, lengths and masked examples only: no personal data unmasked, no
password hash (a hash is described by its scheme name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

# The proposed pool's name unless `csvimport assess --pool-name` says another.
DEFAULT_POOL_NAME: Final = "csvimport-proposed"


@dataclass
class ColumnProfile:
    """One source column, over every row."""

    name: str
    rows: int  # rows read
    filled: int  # rows with a non-empty value
    distinct: int  # distinct non-empty values, exact
    distinct_folded: int  # distinct after case folding (str.casefold), exact
    max_length: int  # in characters
    p99_length: int
    # What the values look like, value kind -> rows: "email", "phone", "boolean", "date",
    # "timestamp", "integer", "number", "password hash", "text". A value counts once;
    # "email" counts valid addresses only.
    kinds: dict[str, int] = field(default_factory=dict)
    phone_countries: dict[str, int] = field(default_factory=dict)  # "GB" -> rows, "unknown"
    # the raw spellings as they appear ("Yes", "0"): propose lowercases them to read them
    boolean_spellings: dict[str, int] = field(default_factory=dict)
    date_formats: dict[str, int] = field(default_factory=dict)  # strftime "%Y-%m-%d" -> rows
    hash_schemes: dict[str, int] = field(default_factory=dict)  # legacyhash scheme -> rows
    examples: list[str] = field(default_factory=list)  # masked (csvimport.redact)
    # phone numbers without +country code: how many distinct ones were sampled, and per
    # country how many of them are valid numbers there (csvimport.assess.content)
    national_sample: int = 0
    national_regions: dict[str, int] = field(default_factory=dict)

    @property
    def fill_rate(self) -> float:
        return self.filled / self.rows if self.rows else 0.0

    @property
    def complete(self) -> bool:
        return self.rows > 0 and self.filled == self.rows

    def main_kind(self) -> str | None:
        """The kind most filled values have, or None when the column is empty."""
        return max(self.kinds, key=lambda k: self.kinds[k]) if self.kinds else None


@dataclass
class DuplicateCounts:
    """Duplicates among one identifier's non-empty values."""

    column: str
    role: str  # "username", "email" or "phone_number"
    exact: int  # rows whose value an earlier row already had
    folded: int  # the same after case folding (for usernames and emails); includes exact
    # case-only collisions: values equal only after folding, masked examples
    case_only_examples: list[str] = field(default_factory=list)
    # rows each `build --duplicates` policy would drop, policy -> rows
    dropped_by_policy: dict[str, int] = field(default_factory=dict)


@dataclass
class PasswordCensus:
    """The password hashes of the source's password column, by what can happen to them."""

    column: str | None  # None when the source has no password column
    importable: int = 0  # Cognito imports the hash as it is
    convertible: int = 0  # csvimport converts it to a form Cognito imports
    at_first_sign_in: int = 0  # only the migration function can verify it
    unknown: int = 0  # no scheme recognised: must reset
    empty: int = 0  # no hash: must reset
    by_scheme: dict[str, int] = field(default_factory=dict)  # scheme (or "unknown") -> rows


@dataclass
class Roles:
    """Which source column plays which part, as the starter mapping reads it (None: none)."""

    username: str | None = None
    email: str | None = None
    email_verified: str | None = None
    phone_number: str | None = None
    phone_number_verified: str | None = None
    password: str | None = None
    legacy_id: str | None = None
    disabled: str | None = None
    # the value of the disabled column that means disabled (False: the column says who is
    # active); None without a disabled column
    disabled_when: bool | None = None
    groups: str | None = None
    # other source column -> the standard attribute it maps to ("given_name", ...)
    attributes: dict[str, str] = field(default_factory=dict)
    # role (or standard attribute) -> why it was found by its values rather than its name
    by_values: dict[str, str] = field(default_factory=dict)


@dataclass
class GroupsProfile:
    """The legacy roles of the groups column, which ``csvimport followups`` carries."""

    column: str
    separator: str  # between a user's roles
    roles: dict[str, int] = field(default_factory=dict)  # legacy role -> users, most first
    more: int = 0  # memberships in roles beyond those counted (content.MAX_GROUP_ROLES)


@dataclass
class Assessment:
    source: str  # as the operator named it, credentials masked
    rows: int
    columns: list[ColumnProfile]
    roles: Roles
    duplicates: list[DuplicateCounts]
    passwords: PasswordCensus
    # With --mapping and a pool: the build's predicted outcome, e.g. {"written": 980,
    # "rejected": {"email: not an email address": 12}, "duplicates": 8, "deferred": 0}.
    predicted: dict[str, Any] | None = None
    # Records the source garbles (a stray quote, a ragged row): not users, not profiled.
    garbled: int = 0
    groups: GroupsProfile | None = None

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
