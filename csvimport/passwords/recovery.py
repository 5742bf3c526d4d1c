"""Whether an imported user can reset their password, and through which channel.

The one rule both ``report`` (must reset / cannot reset) and ``resets`` (who gets a code,
who cannot) apply, so that they never disagree. Cognito sends a reset code through the
first mechanism of the pool's account-recovery order that the user has verified (facts §6;
the sandbox does the same): ``admin_only`` means users cannot reset themselves, and a code
by SMS needs the pool's SMS configuration.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# When the pool sets no AccountRecoverySetting, Cognito's legacy order: a verified phone
# first, then a verified email. UNVERIFIED guess (the sandbox makes the same choice).
DEFAULT_RECOVERY = ("verified_phone_number", "verified_email")
ADMIN_ONLY = "admin_only"


class Channel(StrEnum):
    """How a reset code reaches the user."""

    EMAIL = "email"
    PHONE = "phone"


CHANNEL_OF = {"verified_email": Channel.EMAIL, "verified_phone_number": Channel.PHONE}


class Blocked(StrEnum):
    """Why an imported user cannot reset their password themselves."""

    ADMIN_ONLY = "admin_only"  # the pool's account recovery is admin-only
    NO_CHANNEL = "no_channel"  # nothing verified among the pool's recovery mechanisms
    NO_SMS = "no_sms"  # the code would go by SMS and the pool has no SMS configuration
    # the mapping's [legacy].disabled says the legacy system had disabled them: never
    # invited back into the account by a code (csvimport followups disables them)
    LEGACY_DISABLED = "legacy_disabled"

    @property
    def explanation(self) -> str:
        """The reason in plain words, for people."""
        return BLOCKED_EXPLANATION[self]


BLOCKED_EXPLANATION = {
    Blocked.ADMIN_ONLY: "the pool's account recovery is admin-only: users cannot reset themselves",
    Blocked.NO_CHANNEL: "no verified email or phone number in the pool's recovery settings",
    Blocked.NO_SMS: "their code would go by SMS, and the pool has no SMS configuration",
    Blocked.LEGACY_DISABLED: "disabled in the legacy system",
}


@dataclass(frozen=True)
class RecoveryPolicy:
    """What a pool offers for password recovery: its mechanisms in priority order, and
    whether it can send text messages."""

    mechanisms: tuple[str, ...]
    sms_configured: bool

    @classmethod
    def of_pool(cls, pool: Mapping[str, Any]) -> RecoveryPolicy:
        """The policy of a pool as DescribeUserPool describes it (its ``UserPool``)."""
        setting = pool.get("AccountRecoverySetting") or {}
        ordered = sorted(setting.get("RecoveryMechanisms") or [], key=lambda m: m["Priority"])
        return cls(
            mechanisms=tuple(m["Name"] for m in ordered) or DEFAULT_RECOVERY,
            sms_configured=bool((pool.get("SmsConfiguration") or {}).get("SnsCallerArn")),
        )

    @classmethod
    def read(cls, client: Any, pool_id: str) -> RecoveryPolicy:
        """The live pool's policy (DescribeUserPool)."""
        return cls.of_pool(client.describe_user_pool(UserPoolId=pool_id)["UserPool"])


@dataclass(frozen=True)
class ResetVerdict:
    """Can the user reset: the channel their code goes through, or why not (one of the two)."""

    channel: Channel | None
    blocked: Blocked | None = None

    @property
    def can_reset(self) -> bool:
        return self.channel is not None


def reset_verdict(policy: RecoveryPolicy, verified: Collection[str]) -> ResetVerdict:
    """Decide whether a user whose verified channels are ``verified`` (``verified_email``,
    ``verified_phone_number``) can reset their password in a pool with ``policy``."""
    if ADMIN_ONLY in policy.mechanisms:
        return ResetVerdict(None, Blocked.ADMIN_ONLY)
    usable = [m for m in policy.mechanisms if m in verified and m in CHANNEL_OF]
    if not usable:
        return ResetVerdict(None, Blocked.NO_CHANNEL)
    channel = CHANNEL_OF[usable[0]]
    if channel is Channel.PHONE and not policy.sms_configured:
        return ResetVerdict(None, Blocked.NO_SMS)
    return ResetVerdict(channel)
