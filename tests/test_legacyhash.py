"""Legacy hash schemes: each one proven with a hash its reference implementation made.

The hashes come from outside the code under test wherever one exists: OpenSSL's
``passwd`` (the crypt family), the bcrypt and argon2-cffi libraries, Django's own hashers,
Werkzeug's generate_password_hash, phpass's published test vectors, and hashlib for the
formats that are a hashlib call written out (LDAP's, passlib's PBKDF2, Cognito's scrypt).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import subprocess
import warnings

import argon2
import argon2.low_level
import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from passlib import hash as passlib_hash
from werkzeug import security as werkzeug

from csvimport import hashformats, legacyhash
from csvimport.legacyhash import UnknownScheme, identify, parse_digest, verify

PASSWORD = "correct horse ☃ battery"  # non-ASCII on purpose: hashed as UTF-8
WRONG = "correct horse ☃ battery!"


# --- reference hashes ---------------------------------------------------------------------


def openssl_passwd(flag: str, password: str, *extra: str) -> str:
    """A crypt hash made by OpenSSL's `passwd` (-1 md5-crypt, -5 sha256, -6 sha512)."""
    done = subprocess.run(
        ["openssl", "passwd", flag, *extra, "-stdin"],
        input=password.encode("utf-8"),
        capture_output=True,
        check=True,
    )
    return done.stdout.decode("ascii").strip()


def django_hashers() -> object:
    from django.conf import settings as django_settings

    if not django_settings.configured:
        django_settings.configure()  # Django's defaults: PBKDF2 first, as a new project has
    from django.contrib.auth import hashers

    return hashers


def ldap(tag: str, algorithm: str, password: str, salt: bytes) -> str:
    """RFC 2307-style {SSHA}-family value: base64(H(password + salt) + salt)."""
    digest = hashlib.new(algorithm, password.encode("utf-8") + salt).digest()
    return "{" + tag + "}" + base64.b64encode(digest + salt).decode("ascii")


def ab64(data: bytes) -> str:
    """passlib's adapted base64: "." for "+", no padding."""
    return base64.b64encode(data).decode("ascii").replace("+", ".").rstrip("=")


def reference_hashes() -> list[tuple[str, str]]:
    """(scheme, hash of PASSWORD) for every scheme, each made outside csvimport."""
    hashers = django_hashers()
    salt = b"\x00salt\xffNaCl"
    cases = [
        ("bcrypt", bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()),
        ("bcrypt", bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(13, b"2a")).decode()),
        (
            "argon2id",
            argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=2).hash(PASSWORD),
        ),
        ("argon2i", argon2_low_level(argon2.low_level.Type.I, time_cost=2, memory_cost=512)),
        ("argon2d", argon2_low_level(argon2.low_level.Type.D, time_cost=1, memory_cost=256)),
        ("md5_crypt", openssl_passwd("-1", PASSWORD)),
        ("sha256_crypt", openssl_passwd("-5", PASSWORD)),
        ("sha512_crypt", openssl_passwd("-6", PASSWORD)),
        ("django_pbkdf2_sha256", hashers.PBKDF2PasswordHasher().encode(PASSWORD, "s4lt", 1000)),
        ("django_pbkdf2_sha1", hashers.PBKDF2SHA1PasswordHasher().encode(PASSWORD, "s4lt", 1000)),
        ("django_bcrypt", django_cheap(hashers.BCryptPasswordHasher, rounds=4)),
        ("django_bcrypt_sha256", django_cheap(hashers.BCryptSHA256PasswordHasher, rounds=4)),
        ("django_argon2", django_cheap(hashers.Argon2PasswordHasher, memory_cost=256)),
        ("django_scrypt", django_cheap(hashers.ScryptPasswordHasher, work_factor=2**10)),
        ("ldap_salted_sha1", ldap("SSHA", "sha1", PASSWORD, salt)),
        ("ldap_salted_sha256", ldap("SSHA256", "sha256", PASSWORD, salt)),
        ("ldap_salted_sha512", ldap("SSHA512", "sha512", PASSWORD, salt)),
        ("ldap_salted_md5", ldap("SMD5", "md5", PASSWORD, salt)),
        ("ldap_sha1", ldap("SHA", "sha1", PASSWORD, b"")),
        ("ldap_md5", ldap("MD5", "md5", PASSWORD, b"")),
        ("pbkdf2_sha256", passlib_pbkdf2("sha256", "$pbkdf2-sha256$", 1000)),
        ("pbkdf2_sha512", passlib_pbkdf2("sha512", "$pbkdf2-sha512$", 1000)),
        ("pbkdf2_sha1", passlib_pbkdf2("sha1", "$pbkdf2$", 1000)),
        ("scrypt", cognito_scrypt(2**12, 16, 1)),  # r beyond Cognito's 8
        ("werkzeug_pbkdf2", werkzeug.generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")),
        ("werkzeug_pbkdf2", werkzeug.generate_password_hash(PASSWORD, "pbkdf2:sha512:1000")),
        ("werkzeug_scrypt", werkzeug.generate_password_hash(PASSWORD, "scrypt:1024:8:1")),
    ]
    return cases


def argon2_low_level(kind: argon2.low_level.Type, *, time_cost: int, memory_cost: int) -> str:
    """An Argon2 PHC string from argon2-cffi's low-level API (which also makes Argon2i/d)."""
    return argon2.low_level.hash_secret(
        PASSWORD.encode(), b"saltsaltsalt", time_cost=time_cost, memory_cost=memory_cost,
        parallelism=1, hash_len=32, type=kind,
    ).decode()  # fmt: skip


def django_cheap(hasher_class: type, **params: int) -> str:
    """Django's own encode with its work factors lowered (the format is the same)."""
    hasher = type("Cheap", (hasher_class,), params)()
    return str(hasher.encode(PASSWORD, hasher.salt()))


def passlib_pbkdf2(name: str, prefix: str, rounds: int) -> str:
    salt = b"\x01\x02salty\xfe"
    digest = hashlib.pbkdf2_hmac(name, PASSWORD.encode(), salt, rounds)
    return f"{prefix}{rounds}${ab64(salt)}${ab64(digest)}"


def cognito_scrypt(n: int, r: int, p: int) -> str:
    salt = bytes(range(16))
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=n, r=r, p=p, maxmem=2**28, dklen=32)
    return f"{n}${r}${p}${salt.hex()}${digest.hex()}"


REFERENCE = reference_hashes() if shutil.which("openssl") else []


def test_openssl_is_there_to_make_the_crypt_hashes() -> None:
    assert shutil.which("openssl"), "install openssl: it makes the reference crypt hashes"


@pytest.mark.parametrize(("scheme", "stored"), REFERENCE, ids=[s for s, _ in REFERENCE])
def test_each_reference_hash_is_identified_and_verified(scheme: str, stored: str) -> None:
    assert identify(stored) == scheme
    assert scheme in legacyhash.VERIFIABLE
    assert verify(PASSWORD, stored) is True
    assert verify(WRONG, stored) is False
    assert verify("", stored) is False


def test_every_scheme_has_a_reference_hash_or_is_a_declared_digest() -> None:
    proven = {scheme for scheme, _ in REFERENCE} | {"phpass"}  # PHPASS_VECTORS below
    digests = {digest.name for digest in legacyhash.DIGESTS}
    assert set(legacyhash.SCHEMES) == proven | digests
    assert all(legacyhash.describe(scheme) != scheme for scheme in legacyhash.SCHEMES)


# --- published vectors ----------------------------------------------------------------------

# openwall/phpass test.php: "A correct hash for "test12345"" (WordPress's $P$ form); phpBB3
# writes the same hash with $H$ (passlib's phpass docs: "the checksums are the same").
# passlib's docs: "An example hash (of password) is $P$8ohUJ.1sdFw09/bMaAQPTGDNi2BIUt1".
# The cost character is log2 of the rounds in phpass's itoa64 alphabet: "9" is 11, "8" 10.
PHPASS_VECTORS = [
    ("test12345", "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", 11),
    ("test12345", "$H$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", 11),
    ("password", "$P$8ohUJ.1sdFw09/bMaAQPTGDNi2BIUt1", 10),
]


@pytest.mark.parametrize(("password", "stored", "cost"), PHPASS_VECTORS)
def test_phpass_published_vectors_verify(password: str, stored: str, cost: int) -> None:
    assert identify(stored) == "phpass"
    assert verify(password, stored) is True
    assert verify(password + "6", stored) is False
    assert legacyhash.cost_label(stored) == f"phpass cost={cost}"


def test_django_default_hasher_at_its_own_iterations_verifies() -> None:
    hashers = django_hashers()
    stored = hashers.make_password(PASSWORD)  # Django 5.2: pbkdf2_sha256, 1,000,000 rounds
    assert identify(stored) == "django_pbkdf2_sha256"
    assert legacyhash.cost_label(stored) == (
        f"django_pbkdf2_sha256 rounds={hashers.PBKDF2PasswordHasher.iterations}"
    )
    assert verify(PASSWORD, stored) is True
    assert hashers.check_password(PASSWORD, stored)  # the reference agrees


def test_ldap_values_built_by_hand_are_what_libpass_reads() -> None:
    stored = ldap("SSHA512", "sha512", PASSWORD, b"pepper")
    assert passlib_hash.ldap_salted_sha512.verify(PASSWORD, stored)
    assert passlib_hash.ldap_salted_sha1.verify(PASSWORD, ldap("SSHA", "sha1", PASSWORD, b"NaCl"))


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_variants_read_alike(prefix: str) -> None:
    made = bcrypt.hashpw(b"hunter2", bcrypt.gensalt(4)).decode()
    stored = prefix + made[4:]
    assert identify(stored) == "bcrypt"
    assert verify("hunter2", stored) is True


def test_bcrypt_uses_the_first_72_bytes_as_every_implementation_did() -> None:
    long = "ü" * 40  # 80 bytes: legacy bcrypt hashed the first 72
    stored = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()
    assert verify(long, stored) is True
    assert verify("ü" * 36, stored) is True
    assert verify("ü" * 35, stored) is False


def test_sha512_crypt_with_rounds_from_openssl() -> None:
    stored = openssl_passwd("-6", PASSWORD, "-salt", "rounds=20000$saltsalt")
    assert stored.startswith("$6$rounds=20000$")
    assert identify(stored) == "sha512_crypt"
    assert legacyhash.cost_label(stored) == "sha512_crypt rounds=20000"
    assert verify(PASSWORD, stored) is True
    assert verify(WRONG, stored) is False


def test_cognito_importable_bcrypt_is_still_identified_here() -> None:
    # classify_hash decides importability; identify only names the scheme.
    stored = bcrypt.hashpw(b"x", bcrypt.gensalt(12)).decode()
    assert hashformats.classify_hash(stored).status == hashformats.IMPORTABLE
    assert identify(stored) == "bcrypt"


# --- declared digests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("sha256(salt + password)", "sha256(salt + password)"),
        ("  SHA256( Salt+Password ) ", "sha256(salt + password)"),
        ("sha1(password+salt)", "sha1(password + salt)"),
        ("md5(password)", "md5(password)"),
        ("sha512 (password + salt)", "sha512(password + salt)"),
    ],
)
def test_parse_digest_normalises_the_declaration(text: str, name: str) -> None:
    digest = parse_digest(text)
    assert digest.name == name
    assert digest.name in legacyhash.SCHEMES
    assert parse_digest(digest.name) == digest


@pytest.mark.parametrize(
    "text",
    ["", "sha256", "sha3(password)", "md5(md5(password))", "sha256(salt + password + salt)",
     "sha256(pepper + password)", "bcrypt(password)", "sha256(salt + password"],
)  # fmt: skip
def test_parse_digest_refuses_other_forms_naming_the_accepted_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"md5, sha1, sha256, sha512 applied to password"):
        parse_digest(text)


def test_a_digest_built_by_hand_is_checked_as_parse_digest_checks() -> None:
    with pytest.raises(ValueError, match="applied to password"):
        legacyhash.SaltedDigest("sha3_256", "password")
    with pytest.raises(ValueError, match="applied to password"):
        legacyhash.SaltedDigest("md5", "pepper + password")


@pytest.mark.parametrize("digest", legacyhash.DIGESTS, ids=lambda d: d.name)
def test_each_declared_digest_verifies_hashlib_output(digest: legacyhash.SaltedDigest) -> None:
    salt = "NaCl-ß"
    data = {
        "password": PASSWORD,
        "salt + password": salt + PASSWORD,
        "password + salt": PASSWORD + salt,
    }[digest.order]
    stored = hashlib.new(digest.algorithm, data.encode("utf-8")).hexdigest()
    assert identify(stored) is None  # bare hex: no scheme of its own
    assert identify(stored, digest=digest) == digest.name
    assert verify(PASSWORD, stored, digest=digest, salt=salt) is True
    assert verify(PASSWORD, stored.upper(), digest=digest, salt=salt) is True
    assert verify(WRONG, stored, digest=digest, salt=salt) is False
    if digest.salted:
        assert verify(PASSWORD, stored, digest=digest, salt="other") is False


def test_a_declared_digest_never_claims_another_schemes_hash() -> None:
    digest = parse_digest("md5(password)")
    stored = openssl_passwd("-1", PASSWORD)
    assert identify(stored, digest=digest) == "md5_crypt"
    assert verify(PASSWORD, stored, digest=digest) is True
    sha1 = hashlib.sha1(PASSWORD.encode()).hexdigest()  # wrong length for md5
    assert identify(sha1, digest=digest) is None
    with pytest.raises(UnknownScheme):
        verify(PASSWORD, sha1, digest=digest)


# --- hostile input ------------------------------------------------------------------------------

HOSTILE = [
    "",
    " ",
    "$",
    "$2b$",
    "$2b$13$",
    "$2x$10$" + "a" * 53,  # crypt_blowfish's buggy variant: no library verifies it
    "$2b$03$" + "a" * 53,  # cost below bcrypt's minimum
    "$2b$31$" + "a" * 53,  # cost beyond MAX_BCRYPT_COST
    "$2b$12$" + "a" * 52,
    "$argon2id$",
    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$",
    "$argon2id$v=19$m=4294967295,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
    "$argon2id$v=19$m=65536,t=4294967295,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
    "$argon2x$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
    "$1$saltsalt$",
    "$1$saltsalt$short",
    "$5$rounds=999999999$saltsalt$" + "a" * 43,  # rounds beyond MAX_ROUNDS
    "$6$rounds=10$saltsalt$" + "a" * 86,  # below crypt's 1000 minimum
    "$6$rounds=99999999999999$saltsalt$" + "a" * 86,
    "$6$saltsalt$" + "a" * 85,
    "$P$",
    "$P$Z" + "a" * 30,  # phpass cost character beyond 30
    "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L",
    "pbkdf2_sha256$",
    "pbkdf2_sha256$4294967295$salt$aGFzaA==",
    "pbkdf2_sha256$1000$salt$not base64!",
    "pbkdf2_sha256$1000$salt$",
    "bcrypt$$2b$12$",
    "bcrypt_sha256$$2b$04$short",
    "argon2$argon2id$v=19$m=1",
    "scrypt$16384$salt$8$1$",
    "scrypt$3$salt$8$1$" + "A" * 88,  # N not a power of two
    "{SSHA}",
    "{SSHA}not base64!!",
    "{SSHA256}AAAA",  # too short for a SHA-256 digest
    "{CRYPT}$6$x",
    "$pbkdf2-sha256$",
    "$pbkdf2-sha256$29000$c2FsdA$",
    "$pbkdf2-sha256$0$c2FsdA$" + "a" * 43,
    "2097152$8$1$00$" + "00" * 32,  # scrypt N beyond the memory bound
    "1024$8$99$00$" + "00" * 32,
    "pbkdf2:sha256:9999999999$salt$" + "00" * 32,
    "pbkdf2:md4:1000$salt$" + "00" * 32,
    "scrypt:33554432:8:1$salt$" + "00" * 32,
    "d41d8cd98f00b204e9800998ecf8427e",  # bare MD5 hex: only a declared digest reads it
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "plain text password",
    "$2b$12$ü" + "a" * 52,
    "\x00$2b$04$" + "a" * 53,
    "$2b$04$" + "a" * 53 + "\n\x00",
    "x" * 10_000,
]


# The schemes identify reads with its own patterns, for speed: each must accept nothing
# libpass's parser refuses (libpass verifies them, and would refuse at sign-in).
EXACT = ["md5_crypt", "sha256_crypt", "sha512_crypt", "phpass", "django_pbkdf2_sha256",
         "django_pbkdf2_sha1", "ldap_salted_sha1", "ldap_salted_sha256", "ldap_salted_sha512",
         "ldap_salted_md5", "ldap_sha1", "ldap_md5"]  # fmt: skip


def variants(stored: str) -> list[str]:
    """``stored`` with each character replaced by a few others, cut, and extended."""
    out = [stored, stored + "a", stored + "=", stored[:-1], "$" + stored]
    for i in range(len(stored)):
        out += [stored[:i] + c + stored[i + 1 :] for c in "$.=A0!+/_-"]
    return out


@pytest.mark.parametrize("scheme", EXACT)
def test_patterns_identify_uses_accept_nothing_libpass_refuses(scheme: str) -> None:
    handler = getattr(passlib_hash, scheme)
    references = [v for s, v in REFERENCE if s == scheme] + [v for _, v, _ in PHPASS_VECTORS]
    references += [openssl_passwd("-5", "x", "-salt", "rounds=1000$abc")] * (
        scheme == "sha256_crypt"
    )
    salts = [b"1234", b"0123456789abcdef", b"123", b"0123456789abcdefg"]
    references += [ldap(f"S{tag}", algorithm, "x", salt) for salt in salts
                   for tag, algorithm in [("SHA", "sha1"), ("MD5", "md5")]]  # fmt: skip
    accepted = 0
    for reference in references:
        for value in variants(reference):
            if identify(value) == scheme:
                accepted += 1
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    handler.from_string(value)  # raises if libpass refuses it
    assert accepted >= 1


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_no_scheme_and_verify_refuses_them(value: str) -> None:
    assert identify(value) is None
    assert legacyhash.cost_label(value) is None
    with pytest.raises(UnknownScheme, match="declare how it was made"):
        verify(PASSWORD, value)


@pytest.mark.parametrize("value", [None, 12, b"$2b$04$", ["$1$"]])
def test_identify_is_total_even_for_non_strings(value: object) -> None:
    assert identify(value) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("scheme", "stored"), REFERENCE, ids=[s for s, _ in REFERENCE])
def test_every_truncation_of_a_reference_hash_is_refused_or_fails_cleanly(
    scheme: str, stored: str
) -> None:
    for end in range(len(stored)):
        value = stored[:end]
        found = identify(value)
        if found is None:
            with pytest.raises(UnknownScheme):
                verify(PASSWORD, value)
        else:  # e.g. an LDAP value cut at a base64 boundary still parses, and never matches
            assert verify(PASSWORD, value) is False


@pytest.mark.parametrize(
    "password",
    ["", "\x00", "pass\x00word", "\ud800", "😀" * 100, "x" * 5000],
    ids=["empty", "nul", "inner-nul", "lone-surrogate", "400-bytes", "5000-chars"],
)
def test_odd_passwords_never_match_and_never_raise(password: str) -> None:
    for _, stored in REFERENCE:
        if legacyhash.cost_label(stored) != "bcrypt cost=13":  # proven above; 1 s a try
            assert verify(password, stored) is False


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_identify_never_raises_on_any_text(value: str) -> None:
    found = identify(value)
    assert found is None or found in legacyhash.SCHEMES


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["$2b$04$", "$argon2id$v=19$", "$1$", "$5$", "$6$rounds=", "$P$",
                     "pbkdf2_sha256$", "{SSHA}", "$pbkdf2-sha256$", "bcrypt$", "scrypt$",
                     "pbkdf2:sha256:", "scrypt:"]),
    st.text(alphabet="$./=+,:0123456789abcdefghijmnopqrstuvwxyzABCDEFGHXYZ", max_size=120),
)  # fmt: skip
def test_verify_only_ever_answers_or_raises_unknown_scheme(prefix: str, rest: str) -> None:
    with contextlib.suppress(UnknownScheme):
        assert verify(PASSWORD, prefix + rest) in (True, False)


# --- timing ----------------------------------------------------------------------------------------


def test_time_verify_measures_the_stored_hashs_own_cost() -> None:
    cheap = bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode()
    dearer = bcrypt.hashpw(b"x", bcrypt.gensalt(10)).decode()
    assert legacyhash.time_verify(dearer) > legacyhash.time_verify(cheap)


def test_slow_schemes_names_cost_labels_at_risk_never_hashes() -> None:
    cheap = bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode()
    other = bcrypt.hashpw(b"y", bcrypt.gensalt(4)).decode()
    crypt = openssl_passwd("-6", "x")
    digest = parse_digest("md5(password)")
    hashes = [cheap, other, crypt, "junk", hashlib.md5(b"x").hexdigest()]
    assert legacyhash.slow_schemes(hashes, digest=digest) == {}
    every = legacyhash.slow_schemes(hashes, digest=digest, fraction=0)
    assert sorted(every) == ["bcrypt cost=4", "md5(password)", "sha512_crypt rounds=5000"]
    assert all(seconds > 0 for seconds in every.values())
    assert legacyhash.at_risk(legacyhash.TRIGGER_SECONDS) is True
    assert legacyhash.at_risk(0.001) is False
    assert legacyhash.TRIGGER_SECONDS == 5
