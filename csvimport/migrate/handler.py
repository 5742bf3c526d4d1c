"""The user-migration Lambda function: ``csvimport.migrate.handler.handler``.

Cognito calls it for a user who is not in the pool, at sign-in with a password
(``UserMigration_Authentication``) or in the forgot-password flow
(``UserMigration_ForgotPassword``). It finds the user in the legacy source by what they
typed (:mod:`csvimport.migrate.lookup`), maps them with the build's mapping and the pool's
rules (:class:`~csvimport.build.mapping.user.UserMapper`), checks the password against the
legacy hash (:func:`csvimport.legacyhash.verify`), and answers the attributes the import
file would have carried: CONFIRMED and no welcome message at sign-in, RESET_REQUIRED in the
forgot-password flow (only for a user with a verified email or phone).

Anything else raises, so Cognito creates nobody: a wrong password, an unknown user, a user
the mapping or the pool's rules refuse, a hash in no known scheme all raise
:class:`MigrationRefused` with one message that says none of these; an unreachable legacy
database raises :class:`MigrationUnavailable` (the user may retry). The event holds the
password and is never logged: each call logs one JSON line (aws-lambda-powertools' Logger)
with the trigger, the legacy id ("" when no one legacy user was found), the outcome
(:class:`Outcome`) and the milliseconds.

Configuration: the ``migration/`` folder (:mod:`csvimport.migrate.settings`), read once
per container, with the legacy source's connection, and kept across invocations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.cognito_user_pool_event import (
    UserMigrationTriggerEvent,
)

from csvimport.build.mapping.spec import USERNAME
from csvimport.build.mapping.user import MappedUser, UserMapper
from csvimport.build.sources.base import SourceError
from csvimport.errors import CsvImportError
from csvimport.legacyhash import SaltedDigest, UnknownScheme, parse_digest, verify
from csvimport.migrate.lookup import LegacyUsers, Record
from csvimport.migrate.settings import MigrationFolder, folder_from_env, load_folder

AUTHENTICATION: Final = "UserMigration_Authentication"
FORGOT_PASSWORD: Final = "UserMigration_ForgotPassword"
# What the app is told for every refusal: which one it was is for the log only.
REFUSED_MESSAGE: Final = "Incorrect username or password."
UNAVAILABLE_MESSAGE: Final = "The sign-in cannot be completed now; try again in a moment."
# Import columns that are no user attribute Cognito accepts in userAttributes.
NOT_ATTRIBUTES: Final = frozenset({USERNAME, "cognito:mfa_enabled", "password_hash"})
SERVICE: Final = "csvimport-migration"

LOGGER = Logger(service=SERVICE)


class Outcome(StrEnum):
    """What became of one call: the log line's ``outcome``."""

    MIGRATED = "migrated"  # signed in: CONFIRMED
    RESET_REQUIRED = "reset_required"  # forgot password: RESET_REQUIRED
    UNKNOWN_USER = "unknown_user"
    AMBIGUOUS = "ambiguous"  # more than one legacy user answers to what was typed
    REJECTED = "rejected"  # the mapping or the pool's rules refuse the user
    NO_HASH = "no_hash"
    UNKNOWN_SCHEME = "unknown_scheme"
    WRONG_PASSWORD = "wrong_password"
    NO_VERIFIED_CHANNEL = "no_verified_channel"  # forgot password: nowhere to send a code
    UNSUPPORTED_TRIGGER = "unsupported_trigger"
    SOURCE_UNAVAILABLE = "source_unavailable"
    CONFIG_ERROR = "config_error"
    ERROR = "error"  # a bug: the traceback is in the function's own log


# Refusals of a sign-in made before any password check: each spends a decoy check
# (Migrator._check_decoy), so that they take as long as a wrong password.
UNCHECKED = frozenset({Outcome.UNKNOWN_USER, Outcome.AMBIGUOUS, Outcome.REJECTED,
                       Outcome.NO_HASH, Outcome.UNKNOWN_SCHEME})  # fmt: skip


class MigrationRefused(Exception):
    """Incorrect username or password."""

    def __init__(self, outcome: Outcome, legacy_id: str | None = None) -> None:
        super().__init__(REFUSED_MESSAGE)
        self.outcome = outcome
        self.legacy_id = legacy_id


class MigrationUnavailable(Exception):
    """The legacy source cannot be reached: the sign-in fails, and may be retried."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(UNAVAILABLE_MESSAGE)
        self.outcome = outcome


@dataclass(frozen=True)
class Answer:
    """What the function tells Cognito to create."""

    legacy_id: str
    attributes: dict[str, str]
    final_status: str  # CONFIRMED | RESET_REQUIRED
    outcome: Outcome


class Migrator:
    """Migrates one user per call; holds the mapping, the pool's rules and the source."""

    def __init__(self, folder: MigrationFolder, users: LegacyUsers | None = None) -> None:
        self.folder = folder
        self.settings = folder.settings
        self.snapshot = folder.snapshot
        self.mapper = UserMapper(folder.mapping, folder.snapshot)
        self.users = users or LegacyUsers(folder)
        digest = self.settings.digest
        self.digest: SaltedDigest | None = parse_digest(digest) if digest else None
        self._casefold = {attribute: self._folds(attribute) for attribute in self.settings.lookup}
        # The slowest hash this container has checked, and its seconds: a sign-in refused
        # before any check (unknown user, no hash...) checks the password against it, so
        # the answer's timing does not tell who has a legacy account. Memory only.
        self._decoy: tuple[str, str, float] | None = None

    def _folds(self, attribute: str) -> bool:
        """Whether the lookup by ``attribute`` compares lowered: in a case-insensitive pool,
        or where the mapping changes the value's case."""
        rule = next((r for r in self.folder.mapping.rules if r.attribute == attribute), None)
        changes_case = rule is not None and rule.transform in ("lower", "upper", "email")
        return not self.snapshot.case_sensitive or changes_case

    def migrate(self, trigger: str, typed: str, password: str | None) -> Answer:
        """Answer for the user who typed ``typed``; raise MigrationRefused or
        MigrationUnavailable (a SourceError from the source, or any other csvimport error
        such as a secret without a password, becomes the latter)."""
        if trigger not in (AUTHENTICATION, FORGOT_PASSWORD):
            raise MigrationRefused(Outcome.UNSUPPORTED_TRIGGER)
        try:
            return self._migrate(trigger, typed, password)
        except MigrationRefused as refused:
            if password is not None and refused.outcome in UNCHECKED:
                self._check_decoy(password)
            raise

    def _check_decoy(self, password: str) -> None:
        """Spend on a refused sign-in the time a password check would have taken."""
        if self._decoy is not None:
            stored, salt, _ = self._decoy
            verify(password, stored, digest=self.digest, salt=salt)  # checked before: known

    def _migrate(self, trigger: str, typed: str, password: str | None) -> Answer:
        try:
            record, user = self.find(typed)
        except SourceError:
            raise MigrationUnavailable(Outcome.SOURCE_UNAVAILABLE) from None
        except CsvImportError:  # e.g. a secret without a password, a column the source lacks
            raise MigrationUnavailable(Outcome.CONFIG_ERROR) from None
        if not user.ok:
            raise MigrationRefused(Outcome.REJECTED, user.legacy_id)
        attributes = {
            name: value
            for name, value in user.attributes.items()
            if value != "" and name not in NOT_ATTRIBUTES
        }
        if trigger == FORGOT_PASSWORD:
            if not _verified_channel(user.attributes):
                raise MigrationRefused(Outcome.NO_VERIFIED_CHANNEL, user.legacy_id)
            return Answer(user.legacy_id, attributes, "RESET_REQUIRED", Outcome.RESET_REQUIRED)
        self.check_password(record, user, password or "")
        return Answer(user.legacy_id, attributes, "CONFIRMED", Outcome.MIGRATED)

    def find(self, typed: str) -> tuple[Record, MappedUser]:
        """The one legacy user answering to ``typed``, by the first sign-in attribute that
        finds any: its record and its mapping. A record whose mapped value is not what was
        typed is not that user."""
        for attribute, column in self.settings.lookup.items():
            if (attribute == "email" and "@" not in typed) or (
                attribute == "phone_number" and not typed.startswith("+")
            ):
                continue
            casefold = self._casefold[attribute]
            matches = []
            for record in self.users.find(column, typed, casefold=casefold):
                user = self.mapper.map(record)
                if self._same(user.attributes.get(attribute, ""), typed):
                    matches.append((record, user))
            if len(matches) > 1:
                raise MigrationRefused(Outcome.AMBIGUOUS)
            if matches:
                return matches[0]
        raise MigrationRefused(Outcome.UNKNOWN_USER)

    def _same(self, mapped: str, typed: str) -> bool:
        if mapped == typed:
            return True
        return not self.snapshot.case_sensitive and mapped.lower() == typed.lower()

    def check_password(self, record: Record, user: MappedUser, password: str) -> None:
        stored = record.get(self.settings.password_column, "")
        if not stored.strip():
            raise MigrationRefused(Outcome.NO_HASH, user.legacy_id)
        salt = record.get(self.settings.salt_column, "") if self.settings.salt_column else ""
        start = time.perf_counter()
        try:
            matched = verify(password, stored, digest=self.digest, salt=salt)
        except UnknownScheme:
            raise MigrationRefused(Outcome.UNKNOWN_SCHEME, user.legacy_id) from None
        seconds = time.perf_counter() - start
        if self._decoy is None or seconds > self._decoy[2]:
            self._decoy = (stored, salt, seconds)
        if not matched:
            raise MigrationRefused(Outcome.WRONG_PASSWORD, user.legacy_id)


def _verified_channel(attributes: dict[str, str]) -> bool:
    """Whether Cognito has somewhere to send a reset code: a verified email or phone."""
    return any(
        attributes.get(f"{channel}_verified", "").lower() == "true" and attributes.get(channel)
        for channel in ("email", "phone_number")
    )


# --- the Lambda entry point: one Migrator per container ------------------------------

_MIGRATOR: Migrator | None = None


def migrator() -> Migrator:
    """The container's Migrator, made at the first call (and again after a failed one)."""
    global _MIGRATOR
    if _MIGRATOR is None:
        _MIGRATOR = Migrator(load_folder(folder_from_env()))
    return _MIGRATOR


def reset() -> None:
    """Close and forget the container's Migrator and its connection (a test, a new folder)."""
    global _MIGRATOR
    if _MIGRATOR is not None:
        _MIGRATOR.users.close()
    _MIGRATOR = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one user-migration trigger call; raise to make Cognito create nobody."""
    start = time.perf_counter()
    outcome, legacy_id = Outcome.ERROR, None
    trigger = str(event.get("triggerSource", ""))
    try:
        event.setdefault("response", {})
        typed_event = UserMigrationTriggerEvent(event)
        try:
            current = migrator()
        except CsvImportError:
            outcome = Outcome.CONFIG_ERROR
            raise MigrationUnavailable(outcome) from None
        password = event.get("request", {}).get("password") if trigger == AUTHENTICATION else None
        try:
            answer = current.migrate(trigger, typed_event.user_name, password)
        except MigrationRefused as refused:
            outcome, legacy_id = refused.outcome, refused.legacy_id
            raise MigrationRefused(refused.outcome) from None
        except MigrationUnavailable as unavailable:
            outcome = unavailable.outcome
            raise MigrationUnavailable(outcome) from None
        outcome, legacy_id = answer.outcome, answer.legacy_id
        response = typed_event.response
        response.user_attributes = answer.attributes
        response.final_user_status = answer.final_status
        response.message_action = "SUPPRESS"
        return event
    finally:
        milliseconds = round((time.perf_counter() - start) * 1000, 1)
        LOGGER.info(
            "user migration",
            extra={"trigger": trigger, "legacy_id": legacy_id or "", "outcome": outcome.value,
                   "ms": milliseconds},
        )  # fmt: skip
