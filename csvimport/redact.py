"""Credentials and personal data out of what csvimport prints or shares.

:func:`mask_credentials` hides secrets in URLs and messages; :func:`mask_email`,
:func:`mask_phone` and :func:`mask_username` show a person's values the way the report
and the preflight share them (enough to recognise, never the whole value).

A database URL may carry a secret in its userinfo (``user:SECRET@host``) or in its query
string (``?password=SECRET``, ``?sslpassword=...``, ``?token=...``), and drivers' messages
may quote a URL or a libpq-style ``password=SECRET`` keyword. Every URL or message that
csvimport prints (``csvimport.cli``), stores (the run manifest) or raises goes through
:func:`mask_credentials`, which shows each such secret as ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# Names of query parameters (and libpq keywords) whose value is a credential. Broad on
# purpose: masking a value that was not secret costs a less telling message; the reverse
# leaks a password.
SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|auth|cred|signature", re.IGNORECASE)

# scheme://user:PASSWORD@host. In a message, the password runs to the "@" after which a
# host holds no further "@"; in a URL alone, to its last "@" (a password that is not
# percent-encoded may hold "@", "/", "?" or spaces: better to hide a host than show it).
_SCHEME_USER = r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)"
_USERINFO = re.compile(_SCHEME_USER + r"(?P<password>.*?)@(?=[^@/?#\s]*(?:[/?#\s]|$))")
_USERINFO_WHOLE = re.compile("^" + _SCHEME_USER + r"(?P<password>.*)@", re.DOTALL)
# name=value, in a query string (after ? & or ;) or a libpq keyword string (after a space).
_PARAM = re.compile(
    r"(?P<head>(?:^|[?&;\s])(?P<name>[^=&;?#\s]+)=)(?P<value>'(?:[^'\\]|\\.)*'|[^&;#\s]*)"
)


def mask_credentials(text: str, *, url: bool = False) -> str:
    """Return ``text`` with every credential the URLs in it may carry shown as ``***``:
    userinfo passwords, and the values of parameters whose name says password, secret,
    token, key, auth or the like. The username stays. ``url``: ``text`` is one URL, as
    given (then everything up to its last "@" is taken for userinfo)."""
    if url:
        text = _USERINFO_WHOLE.sub(lambda m: m["head"] + MASK + "@", text)
    text = _USERINFO.sub(lambda m: m["head"] + MASK + "@", text)
    return _PARAM.sub(_mask_param, text)


def _mask_param(match: re.Match[str]) -> str:
    if match["value"] and SECRET_NAME.search(unquote(match["name"])):
        return match["head"] + MASK
    return match[0]


def is_masked(url: str) -> bool:
    """Whether a URL csvimport stored had a credential masked, so cannot be used as is."""
    return MASK in url


def mask_email(value: str) -> str:
    """Mask an email for sharing: ``john.doe@example.com`` -> ``j***@e***.com``.

    The top-level domain stays when it looks like one, which tells a reader whether the
    address is plausible without naming the person or their employer.
    """
    local, at, domain = value.rpartition("@")
    if not at:
        return mask_username(value)
    name, dot, tld = domain.rpartition(".")
    if dot and tld.isalnum() and len(tld) <= 10:
        return f"{local[:1]}***@{name[:1]}***.{tld}"
    return f"{local[:1]}***@{domain[:1]}***"


def mask_phone(value: str) -> str:
    """Mask a phone, keeping its length: ``+14155551212`` -> ``+1******1212``.

    The ``+`` and first digit hint at the country, the last four digits let the owner
    recognise it; a number too short for that to hide most of it is starred whole.
    """
    head = 2 if value.startswith("+") else 0
    body = max(0, len(value) - head)
    tail = 4 if body >= 8 else 0
    return value[:head] + "*" * (body - tail) + value[len(value) - tail :]


def mask_username(value: str) -> str:
    """Mask a username: ``jdoe1987`` -> ``jd…7``, ``bob`` -> ``b…``.

    Enough for someone who knows the user to recognise them, never the whole name.
    """
    if len(value) <= 3:
        return value[:1] + "…" if value else ""
    if len(value) <= 6:
        return f"{value[0]}…{value[-1]}"
    return f"{value[:2]}…{value[-1]}"
