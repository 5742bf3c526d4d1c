"""Who migrates at first sign-in instead of resetting: ``build --password-fallback``.

Cognito imports some password hashes and not others (:mod:`csvimport.hashformats`); a
user whose hash it cannot take is imported without one and must reset their password
(``reset``, the default, as before). With ``migrate``, such a user whose hash
:mod:`csvimport.legacyhash` can verify is left out of the import files and listed in
``deferred.csv``: the pool's user migration trigger creates them at their first sign-in,
checking the password they type against the legacy hash. They must not be imported: the
trigger fires only for users who do not exist in the pool (facts §7).

A bare hex digest says nothing of how it was made: it is verifiable only as the mapping's
``[legacy_hash]`` declares it (``digest = "sha256(salt + password)"``, ``salt =
"<column>"``), and only when its length is the declared digest's and, for a salted
digest, the user has a salt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from csvimport.build.mapping.spec import LegacyHash
from csvimport.hashformats import MALFORMED, OUT_OF_BOUNDS, HashClass
from csvimport.legacyhash import (
    VERIFIABLE,
    SaltedDigest,
    UnknownScheme,
    identify,
    parse_digest,
    time_verify,
)

# What deferred.csv says of every deferred user, after their scheme: why they are deferred.
MIGRATES: Final = "migrates at first sign-in"
# The summary's reason for a user who must reset because they have no hash at all.
NO_HASH_WHY: Final = "no hash"
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class Fallback:
    """One user's fate under ``migrate``.

    ``deferred``: left out of the import, ``scheme`` their hash's scheme, ``reason`` why in
    plain language (deferred.csv). Otherwise the user is imported and must reset, and
    ``why`` says, in a few words, what stops them migrating (the summary groups by it).
    """

    deferred: bool
    scheme: str = ""
    why: str = ""
    reason: str = ""


class Deferral:
    """Decides, user by user, who is deferred; built once per build from the mapping."""

    def __init__(self, legacy_hash: LegacyHash | None) -> None:
        self.declared: SaltedDigest | None = None
        self.salt_column: str | None = None
        if legacy_hash is not None:
            self.declared = parse_digest(legacy_hash.digest)
            self.salt_column = legacy_hash.salt

    def decide(self, value: str, verdict: HashClass | None, salt: str = "") -> Fallback:
        """Say whether the user with hash ``value`` (which Cognito cannot import: its
        ``verdict``, None when built with --password-hashes off) is deferred; ``salt`` is
        their [legacy_hash] salt."""
        value = value.strip()
        if not value:
            return Fallback(False, why=NO_HASH_WHY)
        declared = self.declared
        scheme = identify(value, digest=declared)
        if scheme is None:
            if _HEX.fullmatch(value) is None:
                return Fallback(False, why="unknown scheme")
            if declared is None:
                return Fallback(False, why="a hex digest the mapping does not declare")
            return Fallback(False, why=f"a hex digest not of {declared.name}'s length")
        if declared is not None and scheme == declared.name and declared.salted and not salt:
            return Fallback(False, scheme, f"{scheme} without a salt")
        if scheme not in VERIFIABLE:
            return Fallback(False, scheme, f"{scheme}, which csvimport cannot verify")
        return Fallback(True, scheme, reason=f"{scheme}: {_cannot_import(verdict)}; {MIGRATES}")

    def reset_reason(self, verdict_reason: str, fallback: Fallback) -> str:
        """passwords.csv's reason for a user who has a hash, must reset, and cannot migrate."""
        return f"{verdict_reason}; it cannot migrate at first sign-in: {fallback.why}"


def _cannot_import(verdict: HashClass | None) -> str:
    """Why Cognito's import does not take the hash, for deferred.csv."""
    if verdict is None:
        return "built with --password-hashes off"
    if verdict.status in (OUT_OF_BOUNDS, MALFORMED):
        return f"Cognito cannot import it ({verdict.reason})"
    return "Cognito cannot import it"


def time_probes(probes: dict[str, str], declared: SaltedDigest | None) -> dict[str, float]:
    """Seconds one password check takes on this machine for each cost label's hash in
    ``probes`` (label -> a deferred user's hash), slowest first: the migration function
    checks one per sign-in, inside the trigger's 5 s (``legacyhash.at_risk``). Labels
    only: the hashes are never kept."""
    seconds = {}
    for label, value in probes.items():
        try:
            seconds[label] = round(time_verify(value, digest=declared, repeat=1), 3)
        except UnknownScheme:  # identify knew it, so verify does: defensive only
            continue
    return dict(sorted(seconds.items(), key=lambda item: (-item[1], item[0])))
