"""The attribute transforms: legacy spellings of a value into Cognito's (facts §2).

``boolean`` -> ``true``/``false``, ``phone`` -> E.164, ``email`` -> validated with the
domain in lower case, ``date`` -> ``mm/dd/yyyy``, ``timestamp`` -> epoch seconds, and
``text``, ``lower``, ``upper``; and the folding of line breaks, which Cognito's CSV cannot
carry. A transform knows nothing of the mapping file: it gets the values and a
:class:`Context` (its name and parameters) and never raises for a bad value.

Transforms run column by column with pandas' vectorised string methods (in pyarrow when
strings are Arrow arrays, pandas' default when pyarrow is installed), and the slow
libraries (phonenumbers, email-validator) only see the values that a fast pre-check cannot
settle. Each pre-check is exact - it accepts nothing the library would refuse or write
differently - which the tests check against the libraries themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from typing import Any, Final

import email_validator
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.build.validate import WHITESPACE

# The transforms a mapping may name, in the order its error messages list them.
TRANSFORMS: Final = ("text", "boolean", "email", "phone", "date", "timestamp", "lower", "upper")
# What `fold_line_breaks` replaces: a run of line breaks ("\r\n", "\r", "\n") with the
# whitespace around and between them, so "a \r\n\r\n b" folds to one "a, b". Spelt with
# the validator's whitespace class, not \s, so that pandas hands it to pyarrow's RE2.
LINE_BREAK_RUN: Final = f"[{WHITESPACE}]*[\r\n][{WHITESPACE}]*"

BOOLEAN_WORDS: Final = {
    **dict.fromkeys(("1", "y", "yes", "true", "t", "on"), "true"),
    **dict.fromkeys(("0", "n", "no", "false", "f", "off"), "false"),
}
BOOLEAN_REASON: Final = "not a boolean (expected true/false, yes/no, y/n, 1/0, t/f or on/off)"

# Dates without a `format` are tried in this order. Only forms that cannot be misread are
# here, plus mm/dd/yyyy, which is Cognito's own (so mapping an already-mapped file is a
# no-op); a day-first source must say `format = "%d/%m/%Y"`.
DATE_FORMATS: Final = (
    "%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d",
    "%d %b %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y", "%b %d, %Y", "%B %d, %Y",
)  # fmt: skip
DATE_REASON: Final = (
    "not a date (expected YYYY-MM-DD, MM/DD/YYYY or e.g. 1 Feb 1985; "
    "set the attribute's format for other forms)"
)
# The patterns below run through pandas' string methods. They keep to what Python's re and
# RE2 (pyarrow's engine, which pandas uses when strings are Arrow arrays) read alike: no
# lookarounds, no \d or \s (Unicode in re, ASCII in RE2), [0-9] for digits.

# An ISO 8601 date-time given to `date`: keep the date as written, whatever the time zone.
ISO_DATE_TIME: Final = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ][0-9:.,]+(?:Z|[+-][0-9:]+)?$"
SHORT_YEAR_REASON: Final = "not a date with a four-digit year (Cognito writes mm/dd/yyyy)"

# Epoch values: up to 10 digits are seconds (to 2286), 13 digits milliseconds. Anything in
# between or longer is ambiguous, so it is refused rather than guessed.
EPOCH: Final = r"-?[0-9]+(?:\.[0-9]*)?"
TIMESTAMP_REASON: Final = (
    "not a timestamp (expected epoch seconds, epoch milliseconds or an ISO 8601 date and time)"
)

# Phone numbers: the fast paths look at what is left after dropping spaces, dashes, dots and
# parentheses.
PHONE_PUNCTUATION: Final = r"[ \-.()]"
# Why phonenumbers could not read a number, or found it impossible. A local-only number (no
# area code) counts as impossible here, though phonenumbers' is_possible_number accepts it:
# "+15552671" would import but reach nobody.
PHONE_PARSE_REASONS: Final = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}
PHONE_LENGTH_REASONS: Final = {
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong number of digits",
}

# A conservative email shape: every address of at most EMAIL_FAST_MAX_LENGTH characters
# that it matches, and that is neither an RFC 2142 mailbox name nor at a special-use domain,
# email-validator accepts and normalises to the local part as given + "@" + the domain in
# lower case (the tests check this against email-validator itself). Everything else -
# quoted or non-ASCII local parts, labels with "--" (Punycode), long addresses - is left
# to email-validator.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
EMAIL_SHAPE: Final = (
    rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)+[A-Za-z]{{2,63}}"
)
EMAIL_FAST_MAX_LENGTH: Final = 64  # below every length limit email-validator checks
# RFC 2142 mailbox names: email-validator lower-cases these local parts.
EMAIL_CASE_INSENSITIVE_LOCALS: Final = (
    "info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster",
    "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp",
)  # fmt: skip
EMAIL_SPECIAL_LOCAL: Final = rf"(?i:{'|'.join(EMAIL_CASE_INSENSITIVE_LOCALS)})@"
EMAIL_SPECIAL_DOMAIN: Final = rf"\.(?i:{'|'.join(email_validator.SPECIAL_USE_DOMAIN_NAMES)})$"


# --- transforms ---------------------------------------------------------------------
#
# A transform takes a Series of trimmed, non-empty values (pandas' "str" dtype) and returns
# (mapped, reasons): two "str" Series with its index, reasons "" where the value mapped.
# It decides what it can with pandas' vectorised string methods and hands only the rest,
# one value at a time, to the library that knows.


@dataclass(frozen=True)
class Context:
    """What a transform needs besides the values: its name and its parameters.

    Equal contexts transform alike, so a context can key a cache of transformed values.
    """

    transform: str
    region: str | None = None  # phone: the region of numbers without +country code
    format: str | None = None  # date, timestamp: the input format (None: the usual forms)


def _blank(like: Any) -> Any:
    """Return a "str" Series of "" with the index of ``like``."""
    return pd.Series("", index=like.index, dtype="str")


def convert(values: Any, context: Context) -> tuple[Any, Any]:
    """Transform a Series of trimmed values; return (mapped, reasons) with its index.

    A value with a reason failed, and its mapped value is "". An empty value maps to "".
    """
    nonempty = values != ""
    if nonempty.all():
        return transform(values, context)
    mapped, reasons = transform(values[nonempty], context)
    return mapped.reindex(values.index, fill_value=""), reasons.reindex(values.index, fill_value="")


def convert_value(value: str, context: Context) -> tuple[str, str]:
    """Transform one trimmed value as :func:`convert` does; return (mapped, reason).

    The single-user path (the migration function maps one user per sign-in): the
    libraries' own answers for emails and phone numbers (which the vectorised fast paths
    are tested to agree with), plain Python for ASCII booleans, and :func:`convert` on a
    one-value Series for the rest.
    """
    if value == "":
        return "", ""
    if context.transform == "email":
        return _email_slow(value)
    if context.transform == "phone":
        return _phone_slow(value, context.region)
    if context.transform in ("lower", "upper", "boolean") and value.isascii():
        # only ASCII letters fold to ASCII words, in Arrow as in Python
        if context.transform == "lower":
            return value.lower(), ""
        if context.transform == "upper":
            return value.upper(), ""
        word = BOOLEAN_WORDS.get(value.lower())
        return (word, "") if word is not None else ("", BOOLEAN_REASON)
    if context.transform == "text":
        return value, ""
    if context.transform == "timestamp" and _EPOCH.fullmatch(value) and value.isascii():
        return _epoch_seconds(value)
    mapped, reasons = convert(pd.Series([value], dtype="str"), context)
    return str(mapped.iat[0]), str(reasons.iat[0])


_EPOCH: Final = re.compile(EPOCH)


def _epoch_seconds(value: str) -> tuple[str, str]:
    """One epoch value (ASCII, matching EPOCH) as ``_timestamp`` maps it."""
    whole = re.sub(r"\.[0-9]*$", "", value)
    negative = whole.startswith("-")
    digits = len(whole) - negative
    if digits <= 10:
        # floor, as for dates: -1.5 is 2 seconds before 1970, not 1
        below = negative and re.search(r"\.[0-9]*[1-9]", value) is not None
        return str(int(whole) - below), ""
    if digits == 13 and whole == value:
        return str(int(whole) // 1000), ""
    return "", (
        f"an epoch value of {digits} digits is neither seconds (up to 10 digits) "
        "nor milliseconds (13 digits)"
    )


def convert_one(value: str, context: Context) -> tuple[str, str]:
    """Transform one value (a constant or a default of the mapping file)."""
    mapped, reasons = convert(pd.Series([value.strip()], dtype="str"), context)
    return str(mapped.iat[0]), str(reasons.iat[0])


def line_breaks(values: Any) -> Any:
    """Tell which values hold a line break ("\\r" or "\\n")."""
    return values.str.contains("\n", regex=False) | values.str.contains("\r", regex=False)


def fold(values: Any, text: str) -> Any:
    """Return ``values`` with each run of line breaks (LINE_BREAK_RUN) replaced by ``text``."""
    # A backslash in a replacement starts a group reference, for re and RE2 alike.
    return values.str.replace(LINE_BREAK_RUN, text.replace("\\", "\\\\"), regex=True)


def fold_line_breaks(values: Any, text: str) -> tuple[Any, int]:
    """Fold the line breaks of the values that have any; return them and how many did.

    Plain searches find them: a regex over every value would cost more, and most values
    of a column have no line break.
    """
    breaks = line_breaks(values)
    count = int(breaks.sum())
    if count:
        values = values.copy()
        values[breaks] = fold(values[breaks], text)
    return values, count


def _text(values: Any, context: Context) -> tuple[Any, Any]:
    return values, _blank(values)


def _lower(values: Any, context: Context) -> tuple[Any, Any]:
    return values.str.lower(), _blank(values)


def _upper(values: Any, context: Context) -> tuple[Any, Any]:
    return values.str.upper(), _blank(values)


def _boolean(values: Any, context: Context) -> tuple[Any, Any]:
    mapped = values.str.lower().map(BOOLEAN_WORDS)
    known = mapped.notna()
    return mapped.where(known, ""), _blank(values).where(known, BOOLEAN_REASON)


def _email(values: Any, context: Context) -> tuple[Any, Any]:
    fast = (values.str.len() <= EMAIL_FAST_MAX_LENGTH) & _re2_match(values, EMAIL_SHAPE, full=True)
    if fast.any():
        shaped = values[fast]
        special = shaped.str.match(EMAIL_SPECIAL_LOCAL) | shaped.str.contains(EMAIL_SPECIAL_DOMAIN)
        fast[fast] = ~special
    mapped = values.where(fast, "")
    upper = fast.copy()
    if fast.any():
        upper[fast] = values[fast].str.contains("@[^@]*[A-Z]")
    if upper.any():
        mapped[upper] = [_lower_domain(v) for v in values[upper].tolist()]
    return _settle(values, mapped, _blank(values), ~fast, _email_slow)


def _lower_domain(address: str) -> str:
    at = address.rindex("@")
    return address[:at] + address[at:].lower()


def _settle(
    values: Any, mapped: Any, reasons: Any, rest: Any, slow: Callable[[str], tuple[str, str]]
) -> tuple[Any, Any]:
    """Fill in the values the fast path left (``rest``) one by one with ``slow``."""
    if rest.any():
        results = [slow(v) for v in values[rest].tolist()]
        mapped[rest] = [out for out, _ in results]
        reasons[rest] = [why for _, why in results]
    return mapped, reasons


@lru_cache(maxsize=65_536)  # across chunks: the same bad address often recurs
def _email_slow(value: str) -> tuple[str, str]:
    """Return (normalised address, "") or ("", reason), as email-validator sees it."""
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized, ""
    except email_validator.EmailNotValidError as exc:
        return "", _email_reason(str(exc))


def _email_reason(message: str) -> str:
    """Turn email-validator's sentence into a reason: "not a valid email address: ..."."""
    detail = message.strip().rstrip(".")
    detail = detail[:1].lower() + detail[1:]
    return f"not a valid email address: {detail}" if detail else "not a valid email address"


def _phone(values: Any, context: Context) -> tuple[Any, Any]:
    region = context.region
    compact = values.str.replace(PHONE_PUNCTUATION, "", regex=True)
    shape, forbidden = _international_patterns()
    fast = _matches(compact, shape, forbidden)
    mapped = compact.where(fast, "")
    national = _national_patterns(region) if region else None
    if national is not None:
        shape, forbidden, code = national
        local = ~fast
        local[local] = _matches(compact[local], shape, forbidden)
        mapped[local] = code + compact[local]
        fast |= local
    return _settle(values, mapped, _blank(values), ~fast, lambda value: _phone_slow(value, region))


def _matches(values: Any, shape: str, forbidden: str) -> Any:
    """Return which values match ``shape`` and do not start with ``forbidden``."""
    ok = _re2_match(values, shape, full=True)
    if forbidden and ok.any():
        ok[ok] = ~_re2_match(values[ok], forbidden, full=False)
    return ok


def _re2_match(values: Any, pattern: str, *, full: bool) -> Any:
    """Return which values ``pattern`` (read alike by re and RE2) matches at their start,
    or with ``full`` as a whole: ``str.match`` and ``str.fullmatch``, faster.

    Arrow strings go straight to pyarrow: pandas would first parse the pattern with
    Python's re to decide whether RE2 may run it, which for phonenumbers' patterns (some
    thousands of characters) costs more than matching a chunk's values.
    """
    if isinstance(values.array, pd.arrays.ArrowStringArray):
        anchored = f"^(?:{pattern})$" if full else f"^(?:{pattern})"  # RE2's $: the very end
        found = pc.match_substring_regex(pa.array(values.array), anchored)
        return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)
    return values.str.fullmatch(pattern) if full else values.str.match(pattern)


@cache
def _international_patterns() -> tuple[str, str]:
    """Return (shape, forbidden start) of +E.164 numbers phonenumbers takes as they are.

    Built once per process from phonenumbers' own metadata and length check: for every
    country code, the national lengths it finds possible (IS_POSSIBLE, not local-only),
    within E.164's 7-15 digits. A national number that starts with 0, or with anything
    phonenumbers might strip as a national prefix (the 1 of NANP, the 8 of Russia, ...),
    is left to phonenumbers itself.
    """
    # Country codes are prefix-free: tries of their digits let the regex engine pick the
    # branch digit by digit instead of trying some 200 alternatives in turn.
    shapes: dict[str, Any] = {}
    prefixes: dict[str, Any] = {}
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        metadata = _metadata(phonenumbers.region_code_for_country_code(code), code)
        lengths = _possible_lengths(code)
        if metadata is None or not lengths:
            continue
        _trie_add(shapes, str(code), _national_shape(lengths))
        prefix = metadata.national_prefix_for_parsing or metadata.national_prefix
        if prefix:
            _trie_add(prefixes, str(code), f"(?:{_ascii_digits(prefix)})")
    return r"\+" + _trie_regex(shapes), r"\+" + _trie_regex(prefixes)


@cache
def _national_patterns(region: str) -> tuple[str, str, str] | None:
    """Return (shape, forbidden start, "+" + country code) of ``region``'s national numbers.

    They are the digit strings that phonenumbers, parsing them for ``region``, takes as they
    are and finds possible: no leading 0, no international or national prefix, and not
    starting with the country code (phonenumbers might read it as one).
    """
    code = phonenumbers.country_code_for_region(region)
    metadata = _metadata(region, code)
    lengths = _possible_lengths(code)
    if metadata is None or not lengths or not metadata.international_prefix:
        return None
    starts = (metadata.international_prefix, str(code), metadata.national_prefix_for_parsing)
    forbidden = "|".join(f"(?:{_ascii_digits(s)})" for s in starts if s)
    return _national_shape(lengths), forbidden, f"+{code}"


def _metadata(region: str, code: int) -> phonenumbers.PhoneMetadata | None:
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
    return phonenumbers.PhoneMetadata.metadata_for_region(region)


def _ascii_digits(pattern: str) -> str:
    r"""Return a phonenumbers regex with \d spelt [0-9], which re and RE2 read alike."""
    return pattern.replace(r"\d", "[0-9]")


@cache
def _possible_lengths(code: int) -> tuple[int, ...]:
    """Return the national lengths phonenumbers finds possible for a country code."""
    return tuple(
        n
        for n in range(2, 18)
        if 7 <= len(str(code)) + n <= 15
        and phonenumbers.is_possible_number_with_reason(
            phonenumbers.PhoneNumber(country_code=code, national_number=int("1" * n))
        )
        == phonenumbers.ValidationResult.IS_POSSIBLE
    )


def _national_shape(lengths: Sequence[int]) -> str:
    """Return the regex of national numbers of these lengths that do not start with 0."""
    return "[1-9](?:" + "|".join(f"[0-9]{{{n - 1}}}" for n in lengths) + ")"


def _trie_add(trie: dict[str, Any], digits: str, tail: str) -> None:
    for digit in digits:
        trie = trie.setdefault(digit, {})
    trie[""] = tail


def _trie_regex(node: dict[str, Any]) -> str:
    """Return the regex of a trie whose leaves (key "") hold the regex of what follows."""
    branches = [rest if digit == "" else digit + _trie_regex(rest) for digit, rest in node.items()]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


@lru_cache(maxsize=65_536)  # across chunks: the same bad number often recurs
def _phone_slow(value: str, region: str | None) -> tuple[str, str]:
    """Return (E.164, "") or ("", reason) for one value, as phonenumbers reads it."""
    if value.startswith("+"):
        invalid = "not a valid phone number"
    elif region:
        invalid = f"not a valid phone number for region {region}"
    else:
        invalid = "not a valid phone number (no +country code, and no phone_region set)"
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        detail = PHONE_PARSE_REASONS.get(exc.error_type) if value.startswith("+") else None
        return "", f"{invalid} ({detail})" if detail else invalid
    if number.extension:
        return (
            "",
            f"has an extension ({number.extension}), which a Cognito phone number cannot hold",
        )
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        return "", f"{invalid} ({PHONE_LENGTH_REASONS.get(possible, 'wrong length')})"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) > 16:
        return "", f"{invalid} (longer than E.164's 15 digits)"
    return e164, ""


def _date(values: Any, context: Context) -> tuple[Any, Any]:
    fmt = context.format
    if fmt is not None:
        parsed = pd.to_datetime(values, format=fmt, errors="coerce")
        reason = f"not a date in the format {fmt} (e.g. {date(1985, 2, 1).strftime(fmt)})"
    else:
        texts = values.str.replace(ISO_DATE_TIME, r"\1", regex=True)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
        for candidate in DATE_FORMATS:
            todo = parsed.isna()
            if not todo.any():
                break
            parsed[todo] = pd.to_datetime(texts[todo], format=candidate, errors="coerce")
        reason = DATE_REASON
    parsed_ok = parsed.notna()
    # A year before 1000 is a typo, or a two-digit year read as such ("85" -> 0085).
    ok = parsed_ok & (parsed.dt.year >= 1000)
    mapped = _blank(values)
    good = parsed[ok]
    if len(good):
        # mm/dd/yyyy built column-wise in Arrow: a Python f-string per value costs more
        # than parsing the dates (a million users' birthdates are mostly distinct per chunk)
        parts = [
            pc.utf8_lpad(pc.cast(pa.array(numbers.to_numpy()), pa.large_string()), width, "0")
            for numbers, width in ((good.dt.month, 2), (good.dt.day, 2), (good.dt.year, 4))
        ]
        slash = pa.scalar("/", pa.large_string())
        mapped[ok] = pd.Series(pc.binary_join_element_wise(*parts, slash), dtype="str").array
    reasons = _blank(values).where(ok, reason).where(ok | ~parsed_ok, SHORT_YEAR_REASON)
    return mapped, reasons


def _timestamp(values: Any, context: Context) -> tuple[Any, Any]:
    mapped = _blank(values)
    reasons = _blank(values)
    epoch = values.str.fullmatch(EPOCH)
    if epoch.any():
        numbers = values[epoch]
        whole = numbers.str.replace(r"\.[0-9]*$", "", regex=True)
        negative = whole.str.startswith("-")
        digits = whole.str.len() - negative.astype("int64")
        seconds = digits <= 10
        milliseconds = (digits == 13) & (whole == numbers)
        if seconds.any():
            # floor, as for dates: -1.5 is 2 seconds before 1970, not 1
            below = negative & numbers.str.contains(r"\.[0-9]*[1-9]")
            since = whole[seconds].astype("int64") - below[seconds].astype("int64")
            mapped[since.index] = since.astype("str")
        if milliseconds.any():
            since = whole[milliseconds].astype("int64") // 1000
            mapped[since.index] = since.astype("str")
        odd = digits[~(seconds | milliseconds)]
        reasons[odd.index] = [
            f"an epoch value of {n} digits is neither seconds (up to 10 digits) "
            "nor milliseconds (13 digits)"
            for n in odd.tolist()
        ]
    rest = ~epoch
    if rest.any():
        fmt = context.format
        texts = values[rest]
        parsed = pd.to_datetime(texts, format=fmt or "ISO8601", utc=True, errors="coerce")
        ok = parsed.notna()
        if not fmt:
            # pandas' ISO 8601 reader takes a backslash and a digit as the year 0: an ISO
            # value starts with its year's digits
            ok &= texts.str.match(r"[0-9]")
        # seconds since 1970, floored, in whole microseconds: nanoseconds overflow outside
        # the years 1677-2262 (raising mid-build), microseconds do not
        micros = parsed[ok].dt.tz_localize(None).to_numpy().astype("datetime64[us]")
        since = pd.Series(micros.astype("int64") // 1_000_000, index=parsed.index[ok])
        mapped[since.index] = since.astype("str")
        reason = (
            f"not a timestamp in the format {fmt} (or epoch seconds or milliseconds)"
            if fmt
            else TIMESTAMP_REASON
        )
        reasons[parsed.index[~ok]] = reason
    return mapped, reasons


_BY_NAME: Final[dict[str, Callable[[Any, Context], tuple[Any, Any]]]] = {
    "text": _text,
    "lower": _lower,
    "upper": _upper,
    "boolean": _boolean,
    "email": _email,
    "phone": _phone,
    "date": _date,
    "timestamp": _timestamp,
}


def transform(values: Any, context: Context) -> tuple[Any, Any]:
    """Transform a Series of trimmed, non-empty values; return (mapped, reasons)."""
    return _BY_NAME[context.transform](values, context)
