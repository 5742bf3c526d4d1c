"""The build's choices the command line offers (``--duplicates``, ``--password-fallback``),
apart from the modules that act on them (pandas, the mapping), so that the command line
can name them without loading those.
"""

from __future__ import annotations

from enum import StrEnum


class DuplicatePolicy(StrEnum):
    """What to do with users that collide (the ``--duplicates`` option)."""

    KEEP_FIRST = "keep-first"  # the first in source order goes to Cognito
    KEEP_LATEST = "keep-latest"  # the most recently updated ([legacy].updated) goes
    REJECT_ALL = "reject-all"  # none of them goes: a person must decide


class PasswordFallback(StrEnum):
    """What becomes of a user whose password hash is present but Cognito cannot import."""

    RESET = "reset"  # imported without it: they must reset their password
    MIGRATE = "migrate"  # left out, when verifiable: the migration trigger creates them
