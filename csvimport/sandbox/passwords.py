"""Cognito's password-hash import (facts §6), as the sandbox implements it on its own.

The sandbox is the oracle csvimport's build is checked against, so it shares nothing with
the build's classifier (``csvimport.hashformats``): a wrong bound or a wrong encoding there
must make the sandbox fail the row, not agree with it. Each form is read by the library
that defines it where there is one (an Argon2 PHC string by argon2-cffi, a
``$pbkdf2-sha256$`` string by libpass, the maintained passlib fork whose format it is),
and otherwise parsed here from the documented form (bcrypt's ``$2a|b|x|y$``, Cognito's own
``N$r$p$hexSalt$hexHash``). Passwords are verified with the reference libraries: bcrypt,
argon2-cffi, libpass, and hashlib's scrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

import argon2
import bcrypt
from passlib.hash import pbkdf2_sha256

from . import settings as S

# Documented bounds (facts §6).
ALGORITHMS = ("BCRYPT", "SCRYPT", "ARGON2ID", "PBKDF2_SHA256")
BCRYPT_COSTS = range(4, 13)  # the bcrypt library's minimum 4; Cognito's maximum 12
SCRYPT_MAX_N = 65_536
SCRYPT_R, SCRYPT_P = 8, 1
ARGON2_VERSION = 19
ARGON2_MAX_MEMORY_KIB = 19_456
ARGON2_MAX_TIME = 2
ARGON2_PARALLELISM = 1
PBKDF2_ITERATIONS = range(1, 600_001)

# bcrypt's modular crypt form as documented: $2a|b|x|y$, two cost digits, then 22 salt
# and 31 hash characters of bcrypt's base64 alphabet.
_BCRYPT = re.compile(r"\$(2[abxy])\$([0-9]{2})\$[./A-Za-z0-9]{53}")
_SCRYPT = re.compile(r"([0-9]+)\$([0-9]+)\$([0-9]+)\$((?:[0-9a-fA-F]{2})+)\$((?:[0-9a-fA-F]{2})+)")


@dataclass(frozen=True)
class Verdict:
    """Whether Cognito's import takes a hash: ``why`` is the reason when it does not."""

    why: str = ""

    @property
    def ok(self) -> bool:
        return not self.why


def check_hash(algorithm: str, value: str) -> Verdict:
    """Say whether ``value`` is a well-formed ``algorithm`` hash within Cognito's bounds."""
    if algorithm == "BCRYPT":
        m = _BCRYPT.fullmatch(value)
        if not m:
            return Verdict("not in $2a|b|x|y$cost$<22-char salt><31-char hash> form")
        cost = int(m.group(2))
        if cost not in BCRYPT_COSTS:
            return Verdict(f"cost {cost} is outside {BCRYPT_COSTS[0]}..{BCRYPT_COSTS[-1]}")
        return Verdict()
    if algorithm == "SCRYPT":
        m = _SCRYPT.fullmatch(value)
        if not m:
            return Verdict("not in N$r$p$hexSalt$hexHash form (whole bytes of hex)")
        n, r, p = (int(m.group(i)) for i in (1, 2, 3))
        if n < 2 or n & (n - 1) or n > SCRYPT_MAX_N:
            return Verdict(f"N={n} is not a power of two up to {SCRYPT_MAX_N}")
        if (r, p) != (SCRYPT_R, SCRYPT_P):
            return Verdict(f"r={r}, p={p}; Cognito needs r={SCRYPT_R}, p={SCRYPT_P}")
        return Verdict()
    if algorithm == "ARGON2ID":
        try:
            params = argon2.extract_parameters(value)
        except argon2.exceptions.InvalidHashError:
            return Verdict("not an Argon2 hash string ($argon2id$v=19$m=M,t=T,p=P$salt$hash)")
        if "=" in "".join(value.split("$")[-2:]):  # the PHC string format's base64 is unpadded
            return Verdict("the salt or hash of the Argon2 string is padded base64")
        if params.type is not argon2.Type.ID:
            return Verdict(f"an Argon2 hash of type {params.type.name}; Cognito takes Argon2id")
        if params.version != ARGON2_VERSION:
            return Verdict(f"version {params.version}; Cognito needs v={ARGON2_VERSION}")
        m_kib, t, p = params.memory_cost, params.time_cost, params.parallelism
        if m_kib > ARGON2_MAX_MEMORY_KIB or t > ARGON2_MAX_TIME or p != ARGON2_PARALLELISM:
            return Verdict(
                f"m={m_kib}, t={t}, p={p}; Cognito allows m<={ARGON2_MAX_MEMORY_KIB}, "
                f"t<={ARGON2_MAX_TIME}, p={ARGON2_PARALLELISM}"
            )
        return Verdict()
    if algorithm == "PBKDF2_SHA256":
        try:
            parsed = pbkdf2_sha256.from_string(value)
        except ValueError as exc:
            return Verdict(f"not a $pbkdf2-sha256$iterations$salt$hash string ({exc})")
        if parsed.rounds not in PBKDF2_ITERATIONS:
            return Verdict(
                f"{parsed.rounds} iterations; Cognito allows "
                f"{PBKDF2_ITERATIONS[0]}..{PBKDF2_ITERATIONS[-1]}"
            )
        return Verdict()
    return Verdict(f"unknown algorithm {algorithm!r}")


def verify_password(algorithm: str, stored_hash: str, password: str) -> bool:
    """Return whether ``password`` matches ``stored_hash`` made with ``algorithm``."""
    if not check_hash(algorithm, stored_hash).ok:
        return False
    secret = password.encode("utf-8")
    if algorithm == "BCRYPT":
        # The bcrypt library reads $2a$/$2b$/$2y$; $2x$ hashes are checked as $2a$.
        normalised = stored_hash.replace("$2x$", "$2a$", 1)
        return bcrypt.checkpw(secret, normalised.encode("ascii"))
    if algorithm == "SCRYPT":
        n, r, p, salt_hex, hash_hex = stored_hash.split("$")
        salt = bytes.fromhex(salt_hex) if S.SCRYPT_SALT_IS_HEX_BYTES else salt_hex.encode()
        expected = bytes.fromhex(hash_hex)
        derived = hashlib.scrypt(
            secret, salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=2**26
        )
        return hmac.compare_digest(derived, expected)
    if algorithm == "ARGON2ID":
        try:
            return bool(argon2.PasswordHasher().verify(stored_hash, secret))
        except argon2.exceptions.VerificationError:
            return False
    return bool(pbkdf2_sha256.verify(secret, stored_hash))
