"""Legacy password hashes: which scheme a stored hash is in, and whether a password matches.

The migration function checks a user's password against the hash the legacy system kept,
so Cognito never needs to import that hash. Every scheme is verified by a maintained
library (facts §7): bcrypt by ``bcrypt``, Argon2 by ``argon2-cffi``, the crypt family,
phpass, LDAP, Django's PBKDF2 and bcrypt-SHA256 and passlib's PBKDF2 by libpass (imported
as ``passlib``); hashlib only where the format is itself a hashlib call (declared hex
digests, Werkzeug's PBKDF2 and scrypt, Django's scrypt, Cognito's own SCRYPT form).

- ``SCHEMES``: the scheme names, a fixed vocabulary; ``describe(scheme)`` says each in
  a few words for people.
- ``identify(value)``: the scheme of a stored hash, or None. Deterministic and total:
  it never raises. A bare hex string is no scheme of its own (MD5? SHA-1 of what?); it is
  one only through a declared digest: ``identify(value, digest=parse_digest("sha1(password)"))``.
- ``parse_digest(text)``: a declaration such as ``"sha256(salt + password)"``.
- ``verify(password, stored, digest=, salt=)``: True or False, in constant time for the
  comparison; ``UnknownScheme`` when the stored value is in no scheme identify knows.
- ``time_verify`` / ``slow_schemes``: how long verifying takes on this machine, so a
  preflight can warn when a scheme risks the trigger's ``TRIGGER_SECONDS``.

Passwords are hashed as their UTF-8 bytes, as every library here does by default.
Whether a hash is importable by Cognito is not this module's question:
``csvimport.hashformats.classify_hash`` answers it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import argon2
import bcrypt
from passlib import hash as passlib_hash

from csvimport.hashformats import SCRYPT_SALT_IS_HEX_BYTES

# Cognito calls the user migration trigger synchronously and waits 5 seconds (facts §7).
TRIGGER_SECONDS = 5
# GUESS: the share of TRIGGER_SECONDS one verification may take before a preflight should
# warn. The rest is for a cold start, the legacy lookup and Cognito's own round trip, and
# a Lambda function with less than 1,769 MB of memory has less than this machine's core.
RISK_FRACTION = 0.2


class UnknownScheme(ValueError):
    """The stored hash is in no scheme csvimport can verify.

    If it is a hex digest, declare how it was made in the mapping's [legacy_hash] table
    (for example digest = "sha256(salt + password)" and salt = the salt's column).
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or " ".join((self.__doc__ or "").split()))


# --- declared hex digests -------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-fA-F]+")
DIGEST_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
DIGEST_ORDERS = ("password", "salt + password", "password + salt")
_DIGEST_TEXT = re.compile(
    r"(md5|sha1|sha256|sha512)\s*\(\s*(password|salt\s*\+\s*password|password\s*\+\s*salt)\s*\)",
    re.IGNORECASE,
)
DIGEST_FORMS = (
    "one of md5, sha1, sha256, sha512 applied to password, salt + password or "
    'password + salt, with hex output: for example "sha256(salt + password)" or "md5(password)"'
)


@dataclass(frozen=True)
class SaltedDigest:
    """A hex digest declared by the mapping: ``algorithm`` over ``order``.

    ``order`` is one of DIGEST_ORDERS; the salt is the salt column's text as UTF-8.
    """

    algorithm: str
    order: str

    def __post_init__(self) -> None:
        if self.algorithm not in DIGEST_ALGORITHMS or self.order not in DIGEST_ORDERS:
            raise ValueError(f"unknown password digest {self.name!r}: write {DIGEST_FORMS}")

    @property
    def name(self) -> str:
        """The declaration normalised, e.g. "sha256(salt + password)": its scheme name."""
        return f"{self.algorithm}({self.order})"

    @property
    def salted(self) -> bool:
        """Whether the user's salt is part of the digest."""
        return self.order != "password"

    @property
    def hex_length(self) -> int:
        """How many hex digits the digest has."""
        return 2 * hashlib.new(self.algorithm).digest_size

    def matches(self, value: str) -> bool:
        """Whether ``value`` has this digest's shape: hex of its length."""
        return len(value) == self.hex_length and _HEX.fullmatch(value) is not None

    def hexdigest(self, password: str, salt: str = "") -> str:
        """This digest of ``password`` (with ``salt`` where the declaration has one)."""
        if self.order == "salt + password":
            data = salt + password
        elif self.order == "password + salt":
            data = password + salt
        else:
            data = password
        return hashlib.new(self.algorithm, data.encode("utf-8")).hexdigest()


def parse_digest(text: str) -> SaltedDigest:
    """Read a digest declaration such as "sha256(salt + password)".

    Case and spaces do not matter. Raises ValueError naming the accepted forms.
    """
    m = _DIGEST_TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"unknown password digest {text!r}: write {DIGEST_FORMS}")
    order = " + ".join(part.strip() for part in m.group(2).lower().split("+"))
    return SaltedDigest(m.group(1).lower(), order)


DIGESTS = tuple(SaltedDigest(a, o) for a in DIGEST_ALGORITHMS for o in DIGEST_ORDERS)

# --- the schemes ----------------------------------------------------------------------------

# CHOICE: work factors no real system uses. A stored hash beyond them is treated as no
# scheme at all (the user resets) rather than as one verification that holds the function
# for minutes or exhausts its memory at every sign-in.
MAX_BCRYPT_COST = 20  # 2^20 rounds: minutes
MAX_ROUNDS = 100_000_000  # PBKDF2 iterations, sha256/sha512-crypt rounds
MAX_PHPASS_LOG2 = 26  # phpass: 2^26 MD5 rounds
MAX_ARGON2_MEMORY_KIB = 2**21  # 2 GiB
MAX_ARGON2_TIME = 100
MAX_ARGON2_PARALLELISM = 64
MAX_SCRYPT_MEMORY = 2**30  # bytes: 128 * N * r
MAX_SCRYPT_PARALLELISM = 16
MAX_HASH_LENGTH = 1024  # longer than any scheme here writes


@dataclass(frozen=True)
class _Scheme:
    name: str
    description: str
    pattern: re.Pattern[str]
    # Parses the stored value fully and returns its work parameters (for cost labels);
    # raises on anything malformed or beyond the MAX_ bounds.
    parse: Callable[[str], dict[str, int]]
    check: Callable[[str, str], bool]  # (password, stored) -> matches


def _bounded(value: int, ceiling: int, what: str) -> int:
    if not 0 < value <= ceiling:
        raise ValueError(f"{what} {value} is beyond {ceiling}")
    return value


def _passlib(name: str) -> object:
    return getattr(passlib_hash, name)


def _passlib_parse(name: str) -> Callable[[str], dict[str, int]]:
    """Parse with libpass's own reader (exact: salt, digest length, encoding)."""
    handler = _passlib(name)

    def parse(value: str) -> dict[str, int]:
        with warnings.catch_warnings():
            # libpass warns about oddities it tolerates; a hostile value is simply refused.
            warnings.simplefilter("error")
            parsed = handler.from_string(value)  # type: ignore[attr-defined]
        rounds = getattr(parsed, "rounds", None)
        if rounds is None:
            return {}
        return {"rounds": _bounded(int(rounds), MAX_ROUNDS, "rounds")}

    return parse


def _passlib_check(name: str) -> Callable[[str, str], bool]:
    handler = _passlib(name)

    def check(password: str, stored: str) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(handler.verify(password, stored))  # type: ignore[attr-defined]

    return check


# bcrypt: $2a$, $2b$ and $2y$ are the same algorithm for every password a legacy system
# could have hashed correctly; $2x$ (crypt_blowfish's buggy 8-bit handling) and $2$ are not
# verifiable by the bcrypt library, so they are no scheme here.
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


def _bcrypt_parse(value: str) -> dict[str, int]:
    m = _BCRYPT.fullmatch(value)
    if not m:
        raise ValueError("not a bcrypt hash")
    cost = int(m.group(1))
    if cost < 4:
        raise ValueError("bcrypt cost below 4")
    return {"cost": _bounded(cost, MAX_BCRYPT_COST, "cost")}


def _bcrypt_check(password: str, stored: str) -> bool:
    secret = password.encode("utf-8")
    if b"\0" in secret:
        return False  # C implementations stop at NUL: no legacy hash can hold such a password
    # Every bcrypt implementation uses the first 72 bytes only; bcrypt >= 5 refuses more.
    return bool(bcrypt.checkpw(secret[:72], stored.encode("ascii")))


def _argon2_parse(kind: argon2.Type) -> Callable[[str], dict[str, int]]:
    def parse(value: str) -> dict[str, int]:
        params = argon2.extract_parameters(value)
        if params.type is not kind or params.version not in (16, 19):
            raise ValueError("another Argon2 variant or version")
        return {
            "m": _bounded(params.memory_cost, MAX_ARGON2_MEMORY_KIB, "memory"),
            "t": _bounded(params.time_cost, MAX_ARGON2_TIME, "time cost"),
            "p": _bounded(params.parallelism, MAX_ARGON2_PARALLELISM, "parallelism"),
        }

    return parse


def _argon2_check(password: str, stored: str) -> bool:
    try:
        return bool(argon2.PasswordHasher().verify(stored, password.encode("utf-8")))
    except argon2.exceptions.VerificationError:
        return False


# Django's Argon2PasswordHasher: "argon2" + an argon2-cffi PHC string.
def _django_argon2_parse(value: str) -> dict[str, int]:
    inner = value.removeprefix("argon2")
    for kind in (argon2.Type.ID, argon2.Type.I):
        try:
            return _argon2_parse(kind)(inner)
        except ValueError:
            continue
    raise ValueError("not a Django Argon2 hash")


def _django_argon2_check(password: str, stored: str) -> bool:
    return _argon2_check(password, stored.removeprefix("argon2"))


def _django_bcrypt_parse(value: str) -> dict[str, int]:
    return _bcrypt_parse(value.removeprefix("bcrypt$"))


def _django_bcrypt_check(password: str, stored: str) -> bool:
    return _bcrypt_check(password, stored.removeprefix("bcrypt$"))


def _django_bcrypt_sha256_parse(value: str) -> dict[str, int]:
    return _bcrypt_parse(value.removeprefix("bcrypt_sha256$"))


def _scrypt_bounds(n: int, r: int, p: int) -> dict[str, int]:
    if n < 2 or n & (n - 1):
        raise ValueError("scrypt N is not a power of two")
    _bounded(128 * n * r, MAX_SCRYPT_MEMORY, "scrypt memory")
    _bounded(p, MAX_SCRYPT_PARALLELISM, "scrypt parallelism")
    return {"N": n, "r": r, "p": p}


def _scrypt_parse(
    pattern: re.Pattern[str], n: int, r: int, p: int
) -> Callable[[str], dict[str, int]]:
    """Parse with ``pattern``, whose groups ``n``, ``r``, ``p`` hold scrypt's parameters."""

    def parse(value: str) -> dict[str, int]:
        m = pattern.fullmatch(value)
        if not m:
            raise ValueError("not in the scheme's form")
        return _scrypt_bounds(int(m.group(n)), int(m.group(r)), int(m.group(p)))

    return parse


def _scrypt_matches(password: str, salt: bytes, n: str, r: str, p: str, expected: bytes) -> bool:
    """Whether scrypt of ``password`` (UTF-8) with these parameters is ``expected``."""
    cost, block, lanes = int(n), int(r), int(p)
    derived = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=cost, r=block, p=lanes, dklen=len(expected),
        # hashlib's default maxmem (32 MiB) refuses common parameters; allow the bounds'.
        maxmem=128 * block * (cost + lanes + 2) + 2**20,
    )  # fmt: skip
    return hmac.compare_digest(derived, expected)


# Cognito's own SCRYPT import form, N$r$p$hexSalt$hexHash, beyond Cognito's bounds.
# The key length must be fixed: scrypt's and PBKDF2's shorter keys are prefixes of the
# longer, so a cut-off value would still match. GUESS (UNVERIFIED): 32 or 64 bytes, the
# lengths scrypt libraries write (hashlib's default is 64).
_COGNITO_SCRYPT = re.compile(
    r"([1-9][0-9]{0,9})\$([1-9][0-9]{0,3})\$([1-9][0-9]{0,3})\$((?:[0-9a-fA-F]{2})+)"
    r"\$((?:[0-9a-fA-F]{64}){1,2})"
)


def _cognito_scrypt_check(password: str, stored: str) -> bool:
    n, r, p, salt_hex, hash_hex = stored.split("$")
    salt = bytes.fromhex(salt_hex) if SCRYPT_SALT_IS_HEX_BYTES else salt_hex.encode("ascii")
    return _scrypt_matches(password, salt, n, r, p, bytes.fromhex(hash_hex))


# Werkzeug's generate_password_hash (Flask): "pbkdf2:<hash>:<iterations>$salt$hex" and
# "scrypt:N:r:p$salt$hex"; the salt is text hashed as its UTF-8 bytes.
# Werkzeug writes the full key: the hash's digest size for PBKDF2, 64 bytes for scrypt.
_WERKZEUG_PBKDF2 = re.compile(
    r"pbkdf2:(sha1|sha256|sha512):([1-9][0-9]{0,9})\$([^$]+)\$([0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})"
)
_WERKZEUG_KEY_HEX = {"sha1": 40, "sha256": 64, "sha512": 128}
_WERKZEUG_SCRYPT = re.compile(
    r"scrypt:([1-9][0-9]{0,9}):([1-9][0-9]{0,3}):([1-9][0-9]{0,3})\$([^$]+)\$([0-9a-f]{128})"
)


def _werkzeug_pbkdf2_parse(value: str) -> dict[str, int]:
    m = _WERKZEUG_PBKDF2.fullmatch(value)
    if not m or len(m.group(4)) != _WERKZEUG_KEY_HEX[m.group(1)]:
        raise ValueError("not pbkdf2:hash:iterations$salt$hex")
    return {"rounds": _bounded(int(m.group(2)), MAX_ROUNDS, "iterations")}


def _werkzeug_pbkdf2_check(password: str, stored: str) -> bool:
    method, salt, hash_hex = stored.split("$")
    _, name, iterations = method.split(":")
    expected = bytes.fromhex(hash_hex)
    derived = hashlib.pbkdf2_hmac(
        name, password.encode("utf-8"), salt.encode("utf-8"), int(iterations), len(expected)
    )
    return hmac.compare_digest(derived, expected)


def _werkzeug_scrypt_check(password: str, stored: str) -> bool:
    method, salt, hash_hex = stored.split("$")
    _, n, r, p = method.split(":")
    return _scrypt_matches(password, salt.encode("utf-8"), n, r, p, bytes.fromhex(hash_hex))


# Django's ScryptPasswordHasher: "scrypt$N$salt$r$p$base64"; 64-byte key, text salt.
_DJANGO_SCRYPT = re.compile(
    r"scrypt\$([1-9][0-9]{0,9})\$([^$]+)\$([1-9][0-9]{0,3})\$([1-9][0-9]{0,3})\$([A-Za-z0-9+/]{86}==)"
)


def _django_scrypt_check(password: str, stored: str) -> bool:
    _, n, salt, r, p, hash_b64 = stored.split("$")
    expected = base64.b64decode(hash_b64, validate=True)  # 64 bytes: Django's dklen
    return _scrypt_matches(password, salt.encode("utf-8"), n, r, p, expected)


def _lib(name: str, description: str, pattern: str) -> _Scheme:
    """A scheme that libpass reads and verifies; ``pattern`` guards its prefix and alphabet."""
    parse = _passlib_parse(name)
    return _Scheme(name, description, re.compile(pattern), parse, _passlib_check(name))


# crypt's base64 alphabet, in its order (phpass's cost character is an index into it).
_H64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PHPASS_MIN_COST = 7  # phpass (and libpass) refuse fewer than 2^7 rounds


def _exact(name: str, description: str, pattern: str, *, rounds: int = 0) -> _Scheme:
    """A scheme libpass verifies, read by a pattern as strict as libpass's own parser.

    The build identifies every deferred user's hash, and libpass's parser costs ~20 µs a
    hash where a pattern costs ~2; tests/test_legacyhash.py holds each pattern to accept
    nothing libpass refuses. Group ``rounds`` holds the rounds (``rounds`` is the default
    when the hash leaves them out), or for phpass the cost character.
    """
    compiled = re.compile(pattern)

    def parse(value: str) -> dict[str, int]:
        m = compiled.fullmatch(value)
        if not m:
            raise ValueError(f"not a {name} hash")
        written = m.groupdict().get("rounds")
        if name == "phpass":
            cost = _H64.index(written or "")
            if cost < _PHPASS_MIN_COST:
                raise ValueError("phpass cost below 7")
            return {"cost": _bounded(cost, MAX_PHPASS_LOG2, "cost")}
        if written is None and not rounds:
            return {}
        return {"rounds": _bounded(int(written or rounds), MAX_ROUNDS, "rounds")}

    return _Scheme(name, description, compiled, parse, _passlib_check(name))


# LDAP's {SSHA}-family: base64 of the digest followed by the salt (4 to 16 bytes, the sizes
# libpass reads); {SHA} and {MD5}: the digest alone.
LDAP_SALT_BYTES = (4, 16)


def _ldap(name: str, tag: str, algorithm: str) -> _Scheme:
    """An LDAP scheme libpass verifies, read by decoding (as strict as libpass's parser)."""
    pattern = re.compile(rf"\{{{tag}\}}([A-Za-z0-9+/]+={{0,2}})")
    size = hashlib.new(algorithm).digest_size
    salted = name.startswith("ldap_salted_")
    label = f"LDAP {'salted' if salted else 'unsalted'} {algorithm.upper()} ({{{tag}}})"

    def parse(value: str) -> dict[str, int]:
        m = pattern.fullmatch(value)
        if not m:
            raise ValueError(f"not a {name} value")
        salt = len(base64.b64decode(m.group(1), validate=True)) - size
        low, high = LDAP_SALT_BYTES if salted else (0, 0)
        if not low <= salt <= high:
            raise ValueError("salt or digest of the wrong length")
        return {}

    return _Scheme(name, label, pattern, parse, _passlib_check(name))


# Argon2's PHC string: salt of 8 bytes or more, hash of 4 or more, unpadded base64.
_ARGON2 = (
    r"(v=1[69]\$)?m=[0-9]{1,10},t=[0-9]{1,10},p=[0-9]{1,3}\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{6,}"
)


def _argon2(name: str, kind: argon2.Type) -> _Scheme:
    pattern = re.compile(rf"\${name}\${_ARGON2}")
    text = f"{name.capitalize()} (PHC string), any parameters"
    return _Scheme(name, text, pattern, _argon2_parse(kind), _argon2_check)


_B64 = r"[A-Za-z0-9+/]+={0,2}"
_AB64 = r"[A-Za-z0-9./]+"
_ROUNDS = r"[1-9][0-9]{0,9}"
# Ordered; the patterns are disjoint (each starts with its own prefix), so the order only
# decides which is tried first, never which one wins.
_TABLE: tuple[_Scheme, ...] = (
    _Scheme("bcrypt", "bcrypt ($2a$/$2b$/$2y$), any cost", _BCRYPT, _bcrypt_parse, _bcrypt_check),
    _argon2("argon2id", argon2.Type.ID),
    _argon2("argon2i", argon2.Type.I),
    _argon2("argon2d", argon2.Type.D),
    _exact("md5_crypt", "MD5-crypt ($1$)", r"\$1\$[./0-9A-Za-z]{0,8}\$[./0-9A-Za-z]{22}"),
    _exact(
        "sha256_crypt",
        "SHA-256-crypt ($5$)",
        r"\$5\$(?:rounds=(?P<rounds>[1-9][0-9]{3,8})\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{43}",
        rounds=5000,  # crypt's default when the hash does not say
    ),
    _exact(
        "sha512_crypt",
        "SHA-512-crypt ($6$)",
        r"\$6\$(?:rounds=(?P<rounds>[1-9][0-9]{3,8})\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{86}",
        rounds=5000,
    ),
    _exact(
        "phpass",
        "phpass portable hash ($P$/$H$: WordPress, phpBB)",
        r"\$[PH]\$(?P<rounds>[./0-9A-Za-z])[./0-9A-Za-z]{30}",
    ),
    # Django's salt: letters and digits, as Django makes it and libpass reads it; the hash:
    # padded base64 of the 32 or 20 bytes.
    _exact(
        "django_pbkdf2_sha256",
        "Django PBKDF2-SHA256 (pbkdf2_sha256$)",
        r"pbkdf2_sha256\$(?P<rounds>[1-9][0-9]{0,9})\$[A-Za-z0-9]+\$[A-Za-z0-9+/]{43}=",
    ),
    _exact(
        "django_pbkdf2_sha1",
        "Django PBKDF2-SHA1 (pbkdf2_sha1$)",
        r"pbkdf2_sha1\$(?P<rounds>[1-9][0-9]{0,9})\$[A-Za-z0-9]+\$[A-Za-z0-9+/]{27}=",
    ),
    _Scheme(
        "django_bcrypt",
        "Django bcrypt (bcrypt$)",
        re.compile(r"bcrypt\$\$2[aby]\$.+"),
        _django_bcrypt_parse,
        _django_bcrypt_check,
    ),
    _Scheme(
        "django_bcrypt_sha256",
        "Django bcrypt over SHA-256 (bcrypt_sha256$)",
        re.compile(r"bcrypt_sha256\$\$2[aby]\$.+"),
        _django_bcrypt_sha256_parse,
        _passlib_check("django_bcrypt_sha256"),
    ),
    _Scheme(
        "django_argon2",
        "Django Argon2 (argon2$argon2id$ or argon2$argon2i$)",
        re.compile(rf"argon2\$argon2id?\${_ARGON2}"),
        _django_argon2_parse,
        _django_argon2_check,
    ),
    _Scheme(
        "django_scrypt",
        "Django scrypt (scrypt$N$salt$r$p$hash)",
        _DJANGO_SCRYPT,
        _scrypt_parse(_DJANGO_SCRYPT, 1, 3, 4),
        _django_scrypt_check,
    ),
    _ldap("ldap_salted_sha1", "SSHA", "sha1"),
    _ldap("ldap_salted_sha256", "SSHA256", "sha256"),
    _ldap("ldap_salted_sha512", "SSHA512", "sha512"),
    _ldap("ldap_salted_md5", "SMD5", "md5"),
    _ldap("ldap_sha1", "SHA", "sha1"),
    _ldap("ldap_md5", "MD5", "md5"),
    _lib(
        "pbkdf2_sha256",
        "passlib PBKDF2-SHA256 ($pbkdf2-sha256$)",
        rf"\$pbkdf2-sha256\${_ROUNDS}\${_AB64}\${_AB64}",
    ),
    _lib(
        "pbkdf2_sha512",
        "passlib PBKDF2-SHA512 ($pbkdf2-sha512$)",
        rf"\$pbkdf2-sha512\${_ROUNDS}\${_AB64}\${_AB64}",
    ),
    _lib(
        "pbkdf2_sha1",
        "passlib PBKDF2-SHA1 ($pbkdf2$)",
        rf"\$pbkdf2\${_ROUNDS}\${_AB64}\${_AB64}",
    ),
    _Scheme(
        "scrypt",
        "scrypt in Cognito's N$r$p$salt$hash form",
        _COGNITO_SCRYPT,
        _scrypt_parse(_COGNITO_SCRYPT, 1, 2, 3),
        _cognito_scrypt_check,
    ),
    _Scheme(
        "werkzeug_pbkdf2",
        "Werkzeug/Flask PBKDF2 (pbkdf2:sha256:N$)",
        _WERKZEUG_PBKDF2,
        _werkzeug_pbkdf2_parse,
        _werkzeug_pbkdf2_check,
    ),
    _Scheme(
        "werkzeug_scrypt",
        "Werkzeug/Flask scrypt (scrypt:N:r:p$)",
        _WERKZEUG_SCRYPT,
        _scrypt_parse(_WERKZEUG_SCRYPT, 1, 2, 3),
        _werkzeug_scrypt_check,
    ),
)
_BY_NAME = {scheme.name: scheme for scheme in _TABLE}

# Left out on purpose: Django's "sha1$salt$hex" and "md5$salt$hex" read the same as old
# Werkzeug's "sha1$salt$hex" (an HMAC), so identify could not tell them apart; declare a
# digest instead where the legacy system is known.

SCHEMES: tuple[str, ...] = (*_BY_NAME, *(digest.name for digest in DIGESTS))
DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        **{scheme.name: scheme.description for scheme in _TABLE},
        **{d.name: f"declared hex digest {d.name}" for d in DIGESTS},
    }
)
VERIFIABLE: frozenset[str] = frozenset(SCHEMES)


def describe(scheme: str) -> str:
    """A few words naming ``scheme`` for people; the name itself when it is not one of ours."""
    return DESCRIPTIONS.get(scheme, scheme)


def _clean(value: object) -> str | None:
    """The stored value stripped, or None when no scheme could be written that way."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > MAX_HASH_LENGTH or not text.isascii() or not text.isprintable():
        return None
    return text


def _parameters(text: str, digest: SaltedDigest | None) -> tuple[str, dict[str, int]] | None:
    if _HEX.fullmatch(text):  # every scheme in the table has a "$", ":" or "{"
        return (digest.name, {}) if digest is not None and digest.matches(text) else None
    for scheme in _TABLE:
        if scheme.pattern.fullmatch(text):
            try:
                return scheme.name, scheme.parse(text)
            except Exception:  # identify is total: a value it cannot read is no scheme
                return None
    return None


def identify(value: str, *, digest: SaltedDigest | None = None) -> str | None:
    """The scheme ``value`` (a stored hash) is in, or None.

    Surrounding spaces are ignored. A bare hex string is a scheme only when it has the
    shape of the declared ``digest``, whose ``name`` is then the answer; every other
    scheme wins over the digest, so a table mixing old digests and newer bcrypt hashes
    reads right. Never raises.
    """
    found = _parameters(text, digest) if (text := _clean(value)) else None
    return found[0] if found else None


def cost_label(value: str, *, digest: SaltedDigest | None = None) -> str | None:
    """The scheme and its work parameters, e.g. "bcrypt cost=13"; None when unknown.

    Hashes with the same label take the same time to verify: a preflight times one each.
    """
    found = _parameters(text, digest) if (text := _clean(value)) else None
    if found is None:
        return None
    name, params = found
    return " ".join([name, *(f"{key}={number}" for key, number in params.items())])


def verify(
    password: str, stored: str, *, digest: SaltedDigest | None = None, salt: str = ""
) -> bool:
    """Whether ``password`` is the one ``stored`` was made from.

    ``digest`` (with the user's ``salt``) is how bare hex values were made; ``salt`` is
    ignored by every other scheme, which carries its own. Raises UnknownScheme when
    ``stored`` is in no scheme ``identify`` knows. Comparisons are constant-time.
    """
    scheme = identify(stored, digest=digest)
    if scheme is None:
        raise UnknownScheme()
    text = stored.strip()
    try:
        if digest is not None and scheme == digest.name:
            computed = digest.hexdigest(password, salt)
            return hmac.compare_digest(computed.encode("ascii"), text.lower().encode("ascii"))
        return _BY_NAME[scheme].check(password, text)
    except (ValueError, TypeError, argon2.exceptions.VerificationError):
        # A password no legacy system could have hashed (lone surrogates, NUL where the
        # library refuses it, beyond a library's size limit) matches no hash.
        return False


# --- how long verifying takes -------------------------------------------------------------

# A password that matches nothing: a mismatch costs the same work as a match.
_PROBE = "csvimport-timing-probe"


def time_verify(
    stored: str, *, digest: SaltedDigest | None = None, salt: str = "", repeat: int = 3
) -> float:
    """Seconds one ``verify`` of ``stored`` takes on this machine: the median of ``repeat``.

    Raises UnknownScheme as verify does. Measures the stored hash's own parameters.
    """
    seconds = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        verify(_PROBE, stored, digest=digest, salt=salt)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def at_risk(seconds: float, *, fraction: float = RISK_FRACTION) -> bool:
    """Whether a verification this slow risks the trigger's TRIGGER_SECONDS limit."""
    return seconds > fraction * TRIGGER_SECONDS


def slow_schemes(
    stored_hashes: Iterable[str],
    *,
    digest: SaltedDigest | None = None,
    repeat: int = 1,
    fraction: float = RISK_FRACTION,
) -> dict[str, float]:
    """Time one hash of each cost label among ``stored_hashes``; those at risk, with seconds.

    The answer is keyed by ``cost_label`` (never a hash); unknown values are skipped.
    ``fraction`` of TRIGGER_SECONDS is the limit (``at_risk``).
    """
    representatives: dict[str, str] = {}
    for value in stored_hashes:
        label = cost_label(value, digest=digest)
        if label is not None:
            representatives.setdefault(label, value)
    timed = {
        label: time_verify(value, digest=digest, repeat=repeat)
        for label, value in representatives.items()
    }
    return {
        label: seconds for label, seconds in timed.items() if at_risk(seconds, fraction=fraction)
    }
