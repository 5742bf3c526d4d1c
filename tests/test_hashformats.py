"""Classifying legacy password hashes, and proving every conversion exact.

Each conversion is proven the same way: a hash made by the library (or the published test
vector) of the legacy system is converted, then the original password is verified against
the converted hash by the reference library, as the sandbox does at sign-in.
"""

from __future__ import annotations

import base64
import hashlib

import argon2
import bcrypt
import pytest
from passlib.hash import pbkdf2_sha256
from werkzeug.security import generate_password_hash

from csvimport.hashformats import (
    CONVERTED,
    IMPORTABLE,
    MALFORMED,
    NO_HASH,
    OUT_OF_BOUNDS,
    UNSUPPORTED,
    check_hash,
    classify_hash,
)
from csvimport.sandbox.passwords import check_hash as sandbox_check_hash
from csvimport.sandbox.passwords import verify_password

from .helpers import PASSWORD, make_hash

# Django's own test vector (tests/auth_tests/test_hashers.py, test_pbkdf2, Django 5.x).
DJANGO_VECTOR = (
    "lètmein",
    "pbkdf2_sha256$600000$seasalt$OAXyhAQ/4ZDA9V5RMExt3C1OwQdUpLZ99vm1McFlLRA=",
)


def pbkdf2_verifies(password: str, cognito_hash: str) -> bool:
    """Verify with libpass, whose format ``$pbkdf2-sha256$`` is, never with csvimport's
    own decoding."""
    return bool(pbkdf2_sha256.verify(password, cognito_hash))


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


# --- the build's classifier against the sandbox's own rules ------------------------------
# The sandbox reads hashes with the reference libraries and its own parsing
# (csvimport/sandbox/passwords.py), never with csvimport.hashformats. Here the two meet on
# hashes at and beyond every documented bound, made by the reference libraries: a wrong
# bound or encoding on either side shows as a disagreement.


def _reference_hashes() -> dict[str, str]:
    b4 = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    values = {f"bcrypt ${p}$": f"${p}{b4[3:]}" for p in ("2a", "2b", "2x", "2y", "2")}
    values |= {f"bcrypt cost {c}": b4[:4] + c + b4[6:] for c in ("03", "04", "12", "13", "31")}
    values |= {"bcrypt one short": b4[:-1], "bcrypt one long": b4 + "a"}
    values["scrypt made by hashlib"] = make_hash("SCRYPT")
    values |= {f"scrypt {v}": v for v in (
        "65536$8$1$00$00", "131072$8$1$00$00", "3$8$1$00$00", "1$8$1$00$00",
        "16384$16$1$00$00", "16384$8$2$00$00", "16384$8$1$0$00", "16384$8$1$AB$CD",
        "16384$8$1$$00",
    )}  # fmt: skip
    for m, t, p, kind, version in [
        (19456, 2, 1, argon2.Type.ID, 19), (19457, 2, 1, argon2.Type.ID, 19),
        (19456, 3, 1, argon2.Type.ID, 19), (19456, 2, 2, argon2.Type.ID, 19),
        (8, 1, 1, argon2.Type.I, 19), (8, 1, 1, argon2.Type.D, 19), (8, 1, 1, argon2.Type.ID, 16),
    ]:  # fmt: skip
        values[f"argon2 {kind.name} v={version} m={m},t={t},p={p}"] = argon2.low_level.hash_secret(
            PASSWORD.encode(), b"saltsalt", time_cost=t, memory_cost=m, parallelism=p,
            hash_len=16, type=kind, version=version,
        ).decode()  # fmt: skip
    values["argon2 library defaults"] = argon2.PasswordHasher().hash(PASSWORD)
    values["argon2 padded base64"] = "$argon2id$v=19$m=512,t=2,p=1$c2FsdHNhbHQ=$aGFzaGhhc2g="
    digest = "A" * 43  # 32 bytes
    values |= {f"pbkdf2 {r} iterations": f"$pbkdf2-sha256${r}$c2FsdA${digest}" for r in
               ("1", "600000", "600001", "0", "01000")}  # fmt: skip
    values["pbkdf2 made by libpass"] = make_hash("PBKDF2_SHA256")
    values["pbkdf2 4-byte digest"] = "$pbkdf2-sha256$1000$c2FsdA$aGFzaA"
    values["pbkdf2 padded"] = f"$pbkdf2-sha256$1000$c2FsdA==${digest}="
    values["pbkdf2 empty salt"] = f"$pbkdf2-sha256$1000$${digest}"
    return values


REFERENCE_HASHES = _reference_hashes()


@pytest.mark.parametrize("name", sorted(REFERENCE_HASHES))
def test_the_build_and_the_sandbox_agree_on_every_algorithm_for(name: str) -> None:
    value = REFERENCE_HASHES[name]
    verdicts = {
        algorithm: (check_hash(algorithm, value).ok, sandbox_check_hash(algorithm, value).ok)
        for algorithm in ("BCRYPT", "SCRYPT", "ARGON2ID", "PBKDF2_SHA256")
    }
    assert all(build == sandbox for build, sandbox in verdicts.values()), verdicts


def test_the_reference_hashes_reach_every_bound_on_both_sides() -> None:
    # a corpus that never crossed a bound would agree trivially
    accepted = {n for n, v in REFERENCE_HASHES.items() if classify_hash(v).status == IMPORTABLE}
    assert len(accepted) >= 10 and len(REFERENCE_HASHES) - len(accepted) >= 15
    for name in ("bcrypt cost 12", "scrypt 65536$8$1$00$00", "pbkdf2 600000 iterations",
                 "argon2 ID v=19 m=19456,t=2,p=1"):  # fmt: skip
        assert name in accepted
    for name in ("bcrypt cost 13", "scrypt 131072$8$1$00$00", "pbkdf2 600001 iterations",
                 "argon2 ID v=19 m=19457,t=2,p=1", "argon2 ID v=19 m=19456,t=3,p=1"):  # fmt: skip
        assert name not in accepted


@pytest.mark.parametrize(
    "legacy",
    [
        DJANGO_VECTOR[1],
        generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
        generate_password_hash(PASSWORD, method="scrypt:16384:8:1"),
    ],
    ids=["django", "werkzeug-pbkdf2", "werkzeug-scrypt"],
)
def test_every_conversion_is_a_hash_the_sandbox_takes_and_verifies(legacy: str) -> None:
    password = DJANGO_VECTOR[0] if legacy == DJANGO_VECTOR[1] else PASSWORD
    verdict = classify_hash(legacy)
    assert verdict.status == CONVERTED and verdict.algorithm is not None
    assert sandbox_check_hash(verdict.algorithm, verdict.value).ok
    assert verify_password(verdict.algorithm, verdict.value, password)
    assert not verify_password(verdict.algorithm, verdict.value, password + "x")
