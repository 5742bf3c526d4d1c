"""Verify a password against an imported hash with the reference libraries.

The sandbox uses this at sign-in, so that a user imported with a legacy hash really signs
in with the original password, as in Cognito.
"""

from __future__ import annotations

import hashlib
import hmac

import argon2
import bcrypt

from csvimport.hashformats import SCRYPT_SALT_IS_HEX_BYTES, ab64_decode, check_hash


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
        salt = bytes.fromhex(salt_hex) if SCRYPT_SALT_IS_HEX_BYTES else salt_hex.encode()
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
    _, _, iterations, salt_text, hash_text = stored_hash.split("$")
    expected = ab64_decode(hash_text)
    derived = hashlib.pbkdf2_hmac(
        "sha256", secret, ab64_decode(salt_text), int(iterations), dklen=len(expected)
    )
    return hmac.compare_digest(derived, expected)
