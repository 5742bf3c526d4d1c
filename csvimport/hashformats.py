"""Cognito's password-hash formats and bounds (facts §6), without any hashing library.

``check_hash`` says whether a hash string is one Cognito's import accepts for an
algorithm. It is shared by the sandbox (to fail rows as Cognito does) and by ``build``
(to classify legacy hashes before they are sent).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

ALGORITHMS = ("BCRYPT", "SCRYPT", "ARGON2ID", "PBKDF2_SHA256")

BCRYPT_MAX_COST = 12
SCRYPT_MAX_N = 65_536
SCRYPT_R = 8
SCRYPT_P = 1
ARGON2_MAX_MEMORY_KIB = 19_456
ARGON2_MAX_TIME = 2
ARGON2_PARALLELISM = 1
PBKDF2_MAX_ITERATIONS = 600_000
# GUESS (UNVERIFIED): how the salt and hash of a `$pbkdf2-sha256$` string are encoded.
# The sandbox takes passlib's "adapted base64" (standard base64 with "." for "+", no
# padding), which also reads plain unpadded base64.
PBKDF2_ENCODING = "ab64"
# GUESS (UNVERIFIED): the SCRYPT salt is hex that is decoded to bytes before hashing.
SCRYPT_SALT_IS_HEX_BYTES = True

_BCRYPT = re.compile(r"^\$(2[abxy])\$(\d{2})\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$")
_SCRYPT = re.compile(r"^(\d+)\$(\d+)\$(\d+)\$([0-9a-fA-F]+)\$([0-9a-fA-F]+)$")
_ARGON2 = re.compile(
    r"^\$argon2id\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$"
)
_PBKDF2 = re.compile(r"^\$pbkdf2-sha256\$(\d+)\$([A-Za-z0-9+/.]+={0,2})\$([A-Za-z0-9+/.]+={0,2})$")


@dataclass(frozen=True)
class HashCheck:
    """The verdict on one hash: ``ok``, or the reason it would fail the row."""

    ok: bool
    reason: str = ""


def ab64_decode(text: str) -> bytes:
    """Decode passlib's adapted base64 (or plain base64), padding as needed."""
    text = text.replace(".", "+").rstrip("=")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def check_hash(algorithm: str, value: str) -> HashCheck:
    """Say whether ``value`` is a well-formed ``algorithm`` hash within Cognito's bounds."""
    if algorithm not in ALGORITHMS:
        return HashCheck(False, f"unknown algorithm {algorithm!r}")
    if algorithm == "BCRYPT":
        m = _BCRYPT.match(value)
        if not m:
            return HashCheck(False, "not in $2a|b|x|y$cost$<22-char salt><31-char hash> form")
        cost = int(m.group(2))
        if not 4 <= cost <= BCRYPT_MAX_COST:
            return HashCheck(False, f"cost {cost} is outside 4..{BCRYPT_MAX_COST}")
        return HashCheck(True)
    if algorithm == "SCRYPT":
        m = _SCRYPT.match(value)
        if not m:
            return HashCheck(False, "not in N$r$p$hexSalt$hexHash form")
        n, r, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if n < 2 or n & (n - 1) or n > SCRYPT_MAX_N:
            return HashCheck(False, f"N={n} is not a power of two up to {SCRYPT_MAX_N}")
        if r != SCRYPT_R or p != SCRYPT_P:
            return HashCheck(False, f"r={r}, p={p}; Cognito needs r={SCRYPT_R}, p={SCRYPT_P}")
        if len(m.group(4)) % 2 or len(m.group(5)) % 2:
            return HashCheck(False, "salt or hash has an odd number of hex digits")
        return HashCheck(True)
    if algorithm == "ARGON2ID":
        m = _ARGON2.match(value)
        if not m:
            return HashCheck(False, "not in $argon2id$v=19$m=M,t=T,p=P$salt$hash form")
        version, mem, time_cost, par = (int(m.group(i)) for i in range(1, 5))
        if version != 19:
            return HashCheck(False, f"version {version}; Cognito needs v=19")
        if mem > ARGON2_MAX_MEMORY_KIB or time_cost > ARGON2_MAX_TIME or par != ARGON2_PARALLELISM:
            return HashCheck(
                False,
                f"m={mem}, t={time_cost}, p={par}; Cognito allows m<={ARGON2_MAX_MEMORY_KIB}, "
                f"t<={ARGON2_MAX_TIME}, p={ARGON2_PARALLELISM}",
            )
        return HashCheck(True)
    m = _PBKDF2.match(value)
    if not m:
        return HashCheck(False, "not in $pbkdf2-sha256$iterations$salt$hash form")
    iterations = int(m.group(1))
    if not 1 <= iterations <= PBKDF2_MAX_ITERATIONS:
        return HashCheck(
            False, f"{iterations} iterations; Cognito allows 1..{PBKDF2_MAX_ITERATIONS}"
        )
    try:
        ab64_decode(m.group(2))
        ab64_decode(m.group(3))
    except (binascii.Error, ValueError):
        return HashCheck(False, "salt or hash is not base64")
    return HashCheck(True)
