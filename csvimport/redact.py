"""Credentials out of everything csvimport prints or stores: :func:`mask_credentials`.

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
