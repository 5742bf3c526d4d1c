"""Classifying legacy password hashes, and proving every conversion exact.

Each conversion is proven the same way: a hash made by the library (or the published test
vector) of the legacy system is converted, then the original password is verified against
the converted hash by the reference library, as the sandbox does at sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import argon2
import bcrypt
import pytest
from werkzeug.security import generate_password_hash

from csvimport.hashformats import (
    CONVERTED,
    IMPORTABLE,
    MALFORMED,
    NO_HASH,
    OUT_OF_BOUNDS,
    UNSUPPORTED,
    ab64_decode,
    check_hash,
    classify_hash,
)
from csvimport.sandbox.passwords import verify_password

from .helpers import PASSWORD, make_hash

# Django's own test vector (tests/auth_tests/test_hashers.py, test_pbkdf2, Django 5.x).
DJANGO_VECTOR = (
    "lètmein",
    "pbkdf2_sha256$600000$seasalt$OAXyhAQ/4ZDA9V5RMExt3C1OwQdUpLZ99vm1McFlLRA=",
)


def pbkdf2_verifies(password: str, cognito_hash: str) -> bool:
    """Verify with hashlib.pbkdf2_hmac, reading the salt and digest as plain base64."""
    _, _, iterations, salt, digest = cognito_hash.split("$")
    expected = ab64_decode(digest)
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), ab64_decode(salt), int(iterations))
    return hmac.compare_digest(derived, expected)


@pytest.mark.parametrize("algorithm", ["BCRYPT", "SCRYPT", "ARGON2ID", "PBKDF2_SHA256"])
def test_a_hash_in_cognitos_form_is_importable_as_it_is(algorithm: str) -> None:
    value = make_hash(algorithm)
    verdict = classify_hash(value)
    assert (verdict.algorithm, verdict.status, verdict.value) == (algorithm, IMPORTABLE, value)


@pytest.mark.parametrize("prefix", ["2a", "2b", "2y"])
def test_every_bcrypt_prefix_is_bcrypt(prefix: str) -> None:
    value = "$" + prefix + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()[3:]
    assert classify_hash(value).algorithm == "BCRYPT"
    assert verify_password("BCRYPT", value, PASSWORD)


@pytest.mark.parametrize(
    ("value", "status", "why"),
    [
        ("", NO_HASH, "no password hash"),
        ("   ", NO_HASH, "no password hash"),
        ("$2b$13$" + "a" * 53, OUT_OF_BOUNDS, "cost 13"),
        ("$2b$10$short", MALFORMED, "BCRYPT"),
        ("131072$8$1$00$00", OUT_OF_BOUNDS, "N=131072"),
        ("16384$16$1$00$00", OUT_OF_BOUNDS, "r=16"),
        ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", OUT_OF_BOUNDS, "m=65536"),
        ("$pbkdf2-sha256$600001$c2FsdA$aGFzaA", OUT_OF_BOUNDS, "600001 iterations"),
        ("$argon2i$v=19$m=512,t=2,p=1$c2FsdA$aGFzaA", UNSUPPORTED, "Argon2i"),
        ("$6$salt$abc", UNSUPPORTED, "crypt"),
        ("5f4dcc3b5aa765d61d8327deb882cf99", UNSUPPORTED, "MD5"),
        ("hunter2", UNSUPPORTED, "unknown form"),
    ],
)
def test_a_hash_cognito_cannot_take_says_why(value: str, status: str, why: str) -> None:
    verdict = classify_hash(value)
    assert (verdict.algorithm, verdict.status, verdict.value) == (None, status, "")
    assert why in verdict.reason


def test_django_pbkdf2_converts_exactly_on_djangos_own_test_vector() -> None:
    password, django_hash = DJANGO_VECTOR
    verdict = classify_hash(django_hash)
    assert (verdict.algorithm, verdict.status) == ("PBKDF2_SHA256", CONVERTED)
    assert check_hash("PBKDF2_SHA256", verdict.value).ok
    assert pbkdf2_verifies(password, verdict.value)
    assert verify_password("PBKDF2_SHA256", verdict.value, password)  # as the sandbox does
    assert not verify_password("PBKDF2_SHA256", verdict.value, "letmein")


def test_django_pbkdf2_salt_is_hashed_as_its_utf8_bytes() -> None:
    salt = "sel-ümlaut+/="  # not base64: Django hashes the salt text itself
    digest = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt.encode(), 1000)
    verdict = classify_hash(f"pbkdf2_sha256$1000${salt}${base64.b64encode(digest).decode()}")
    assert verdict.status == CONVERTED
    assert pbkdf2_verifies(PASSWORD, verdict.value)


def test_werkzeug_pbkdf2_converts_exactly() -> None:
    legacy = generate_password_hash(PASSWORD, method="pbkdf2:sha256:600000")
    verdict = classify_hash(legacy)
    assert (verdict.algorithm, verdict.status) == ("PBKDF2_SHA256", CONVERTED)
    assert pbkdf2_verifies(PASSWORD, verdict.value)
    assert verify_password("PBKDF2_SHA256", verdict.value, PASSWORD)
    assert not verify_password("PBKDF2_SHA256", verdict.value, PASSWORD + "!")


def test_werkzeug_pbkdf2_above_cognitos_iterations_is_out_of_bounds() -> None:
    verdict = classify_hash(generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000000"))
    assert (verdict.algorithm, verdict.status) == (None, OUT_OF_BOUNDS)
    assert "Werkzeug" in verdict.reason and "1000000 iterations" in verdict.reason


def test_werkzeug_scrypt_converts_exactly() -> None:
    legacy = generate_password_hash(PASSWORD, method="scrypt:16384:8:1")
    verdict = classify_hash(legacy)
    assert (verdict.algorithm, verdict.status) == ("SCRYPT", CONVERTED)
    n, r, p, salt_hex, digest_hex = verdict.value.split("$")
    derived = hashlib.scrypt(PASSWORD.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r),
                             p=int(p), dklen=len(digest_hex) // 2, maxmem=2**26)  # fmt: skip
    assert derived.hex() == digest_hex
    assert verify_password("SCRYPT", verdict.value, PASSWORD)
    assert not verify_password("SCRYPT", verdict.value, "wrong")


def test_werkzeug_default_scrypt_is_within_bounds() -> None:
    assert classify_hash(generate_password_hash(PASSWORD)).algorithm == "SCRYPT"


def test_argon2_with_cognitos_bounds_is_importable() -> None:
    value = argon2.PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash(PASSWORD)
    assert classify_hash(value).status == IMPORTABLE
