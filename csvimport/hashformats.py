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
# Iterations without leading zeros, a salt (possibly empty) and a digest: the form as
# libpass (passlib), whose format this is, reads it.
_PBKDF2 = re.compile(
    r"^\$pbkdf2-sha256\$([1-9][0-9]*)\$([A-Za-z0-9+/.]*={0,2})\$([A-Za-z0-9+/.]+={0,2})$"
)
PBKDF2_DIGEST_BYTES = 32  # SHA-256's output: libpass reads no other length


@dataclass(frozen=True)
class HashCheck:
    """The verdict on one hash: ``ok``, or the reason it would fail the row."""

    ok: bool
    reason: str = ""
    # The hash is in the algorithm's form but a parameter is beyond Cognito's bounds.
    out_of_bounds: bool = False


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
            return HashCheck(False, f"cost {cost} is outside 4..{BCRYPT_MAX_COST}", True)
        return HashCheck(True)
    if algorithm == "SCRYPT":
        m = _SCRYPT.match(value)
        if not m:
            return HashCheck(False, "not in N$r$p$hexSalt$hexHash form")
        n, r, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if n < 2 or n & (n - 1) or n > SCRYPT_MAX_N:
            return HashCheck(False, f"N={n} is not a power of two up to {SCRYPT_MAX_N}", True)
        if r != SCRYPT_R or p != SCRYPT_P:
            return HashCheck(False, f"r={r}, p={p}; Cognito needs r={SCRYPT_R}, p={SCRYPT_P}", True)
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
                True,
            )
        return HashCheck(True)
    m = _PBKDF2.match(value)
    if not m:
        return HashCheck(False, "not in $pbkdf2-sha256$iterations$salt$hash form")
    iterations = int(m.group(1))
    if not 1 <= iterations <= PBKDF2_MAX_ITERATIONS:
        return HashCheck(
            False, f"{iterations} iterations; Cognito allows 1..{PBKDF2_MAX_ITERATIONS}", True
        )
    try:
        ab64_decode(m.group(2))
        digest = ab64_decode(m.group(3))
    except (binascii.Error, ValueError):
        return HashCheck(False, "salt or hash is not base64")
    if len(digest) != PBKDF2_DIGEST_BYTES:
        return HashCheck(
            False, f"the hash is {len(digest)} bytes; SHA-256 gives {PBKDF2_DIGEST_BYTES}"
        )
    return HashCheck(True)


# --- classifying a legacy hash ------------------------------------------------------------

# What ``classify_hash`` says about a user's hash; the build writes it to passwords.csv.
IMPORTABLE = "importable"  # in Cognito's form and bounds, sent as it is
CONVERTED = "converted"  # a legacy encoding rewritten, exactly, into Cognito's form
NO_HASH = "no hash"  # empty: the user must reset
UNSUPPORTED = "unsupported algorithm"  # not a form Cognito or a known conversion takes
OUT_OF_BOUNDS = "out of bounds"  # the right form, but a cost Cognito refuses
MALFORMED = "malformed"  # looks like an algorithm Cognito takes, but is not well formed
HASHES_OFF = "hashes off"  # csvimport build --password-hashes off

# Cognito's own forms, told apart by their shape alone.
_SHAPES = (
    (re.compile(r"^\$2[abxy]\$"), "BCRYPT"),
    (re.compile(r"^\$argon2id\$"), "ARGON2ID"),
    (re.compile(r"^\$pbkdf2-sha256\$"), "PBKDF2_SHA256"),
    (re.compile(r"^[0-9]+\$[0-9]+\$[0-9]+\$"), "SCRYPT"),
)
# Legacy encodings of the same algorithms, converted only where the conversion is exact
# (tests/test_hashformats.py proves each one with the library that made the hash).
# Django's PBKDF2PasswordHasher: the salt is text, hashed as its UTF-8 bytes; the digest
# is standard padded base64.
_DJANGO_PBKDF2 = re.compile(r"^pbkdf2_sha256\$([0-9]+)\$([^$]+)\$([A-Za-z0-9+/]+={0,2})$")
# Werkzeug's generate_password_hash (Flask): the salt is text, hashed as its UTF-8 bytes;
# the digest is hex.
_WERKZEUG_PBKDF2 = re.compile(r"^pbkdf2:sha256:([0-9]+)\$([^$]+)\$([0-9a-f]+)$")
_WERKZEUG_SCRYPT = re.compile(r"^scrypt:([0-9]+):([0-9]+):([0-9]+)\$([^$]+)\$([0-9a-f]+)$")
# Other well-known forms, named in the reason so a reader knows what they have.
_UNSUPPORTED_NAMES = (
    (re.compile(r"^\$argon2(i|d)\$"), "Argon2i/Argon2d (Cognito takes Argon2id only)"),
    (re.compile(r"^\$(1|5|6)\$"), "crypt MD5/SHA-256/SHA-512"),
    (re.compile(r"^[0-9a-fA-F]{32}$"), "an unsalted MD5-like digest"),
    (re.compile(r"^[0-9a-fA-F]{40}$"), "an unsalted SHA-1-like digest"),
    (re.compile(r"^[0-9a-fA-F]{64}$"), "an unsalted SHA-256-like digest"),
)


@dataclass(frozen=True)
class HashClass:
    """A legacy hash classified: the algorithm to import it with and the value to send.

    ``algorithm`` is None when the user cannot keep the password (``status`` says why,
    ``reason`` in plain language); ``value`` is then "".
    """

    algorithm: str | None
    status: str
    reason: str = ""
    value: str = ""


def pbkdf2_base64(data: bytes) -> str:
    """Encode a PBKDF2 salt or digest for Cognito's ``$pbkdf2-sha256$`` form.

    Standard base64 without padding: it reads the same as passlib's adapted base64 (which
    decodes "+" too) and as plain base64, so it is right whichever of the two Cognito
    means (PBKDF2_ENCODING is a guess); passlib's own "." would be wrong for plain base64.
    """
    return base64.b64encode(data).decode("ascii").rstrip("=")


def classify_hash(value: str) -> HashClass:
    """Classify one legacy password hash: importable, convertible, or why it is not.

    A hash in one of Cognito's forms is checked against its bounds (``check_hash``); a
    known legacy encoding is converted when the conversion is exact and the result is
    within bounds; anything else, and an empty value, is not importable.
    """
    value = value.strip()
    if not value:
        return HashClass(None, NO_HASH, "no password hash")
    for shape, algorithm in _SHAPES:
        if shape.match(value):
            return _checked(algorithm, value, IMPORTABLE)
    converted = _convert(value)
    if converted is not None:
        return converted
    named = next((name for pattern, name in _UNSUPPORTED_NAMES if pattern.match(value)), None)
    return HashClass(
        None, UNSUPPORTED, f"{named or 'an unknown form'}, which Cognito cannot import"
    )


def _checked(algorithm: str, value: str, status: str, source: str = "") -> HashClass:
    verdict = check_hash(algorithm, value)
    if verdict.ok:
        return HashClass(algorithm, status, source, value)
    where = f"{source}: " if source else f"{algorithm}: "
    if verdict.out_of_bounds:
        return HashClass(None, OUT_OF_BOUNDS, where + verdict.reason)
    return HashClass(None, MALFORMED, where + verdict.reason)


def _convert(value: str) -> HashClass | None:
    """Rewrite a known legacy encoding into Cognito's form; None when it is none of them."""
    m = _DJANGO_PBKDF2.match(value)
    if m:
        try:
            digest = base64.b64decode(m.group(3), validate=True)
        except (binascii.Error, ValueError):
            return HashClass(None, MALFORMED, "Django pbkdf2_sha256: the hash is not base64")
        salt = m.group(2).encode("utf-8")
        target = f"$pbkdf2-sha256${int(m.group(1))}${pbkdf2_base64(salt)}${pbkdf2_base64(digest)}"
        return _checked("PBKDF2_SHA256", target, CONVERTED, "from Django pbkdf2_sha256")
    m = _WERKZEUG_PBKDF2.match(value)
    if m and len(m.group(3)) % 2 == 0:
        salt = m.group(2).encode("utf-8")
        digest = bytes.fromhex(m.group(3))
        target = f"$pbkdf2-sha256${int(m.group(1))}${pbkdf2_base64(salt)}${pbkdf2_base64(digest)}"
        return _checked("PBKDF2_SHA256", target, CONVERTED, "from Werkzeug pbkdf2:sha256")
    m = _WERKZEUG_SCRYPT.match(value)
    if m and len(m.group(5)) % 2 == 0 and SCRYPT_SALT_IS_HEX_BYTES:
        n, r, p = (int(m.group(i)) for i in (1, 2, 3))
        salt_hex = m.group(4).encode("utf-8").hex()
        target = f"{n}${r}${p}${salt_hex}${m.group(5)}"
        return _checked("SCRYPT", target, CONVERTED, "from Werkzeug scrypt")
    return None
