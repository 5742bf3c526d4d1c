"""The sandbox's knobs, and every choice it makes where AWS documents nothing.

Each ``SANDBOX CHOICE`` constant below is behaviour the facts file
(``shared/cognito-import-facts.md``) leaves open. They live here, in one place, so that
when real Cognito is observed to behave differently, one edit corrects the sandbox.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# --- documented by AWS (facts file) -------------------------------------------------
PRESIGNED_URL_TTL_SECONDS = 15 * 60  # facts §4: the URL is valid 15 minutes
MAX_FILE_BYTES = 100 * 1024 * 1024  # facts §2
MAX_USERS_PER_FILE = 500_000  # facts §2 (header not counted)
MAX_ROW_CHARS = 16_000  # facts §2
MAX_VALUE_CHARS = 2_048  # facts §2
MAX_USERNAME_CHARS = 128  # facts §2 (API limit)
MAX_JOBS_PER_POOL = 1_000  # facts §3 (quotas)
LIST_USERS_MAX_LIMIT = 60  # botocore QueryLimitType
# GUESS: ListUsers with Limit=0 (botocore allows 0..60) answers a page of the default size,
# as moto does, rather than an empty page; UNVERIFIED against Cognito.
LIST_USERS_LIMIT_ZERO_MEANS = 60
LIST_USERS_TOKEN_KIND = "users"  # ListUsers' PaginationToken: "users:<sequence number>"
# The attributes ListUsers' Filter accepts (facts §9); custom attributes are refused.
LIST_USERS_FILTER_ATTRIBUTES = frozenset({
    "username", "email", "phone_number", "name", "given_name", "family_name",
    "preferred_username", "cognito:user_status", "status", "sub",
})  # fmt: skip
SSE_HEADER = "x-amz-server-side-encryption"
SSE_VALUE = "aws:kms"
STANDARD_HEADER = [
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "email_verified", "gender", "birthdate",
    "zoneinfo", "locale", "phone_number", "phone_number_verified", "address", "updated_at",
]  # fmt: skip
TRAILING_HEADER = ["cognito:mfa_enabled", "cognito:username"]
ACTIVE_STATUSES = frozenset({"Pending", "InProgress", "Stopping"})
TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped", "Expired"})
MSG_SUCCEEDED = "Import Job Completed Successfully."
MSG_TOO_MANY_FAILED = "Too many users have failed or been skipped during the import."
MSG_STOPPED = "The Import Job was stopped by the developer."
MSG_EXPIRED = "The user import job has expired."
# facts §6: Cognito's default email sender sends at most 50 emails a day per account.
DAILY_EMAIL_LIMIT = 50
# facts §6: the UserAccountRecovery quota (30 RPS per account, not adjustable) is shared by:
RECOVERY_OPERATIONS = frozenset(
    {"ForgotPassword", "ConfirmForgotPassword", "AdminResetUserPassword", "AdminSetUserPassword"}
)
RECOVERY_RPS_QUOTA = 30  # what real Cognito allows; the sandbox enforces settings.recovery_rps
# facts §9: the UserUpdate quota (25 RPS per account, not adjustable) is shared by
# AdminAddUserToGroup, AdminDisableUser, AdminDeleteUser and AdminUpdateUserAttributes; the
# sandbox enforces settings.user_update_rps on all four.
USER_UPDATE_RPS_QUOTA = 25
# facts §9: at most 100 groups per user and 10,000 groups per pool.
MAX_GROUPS_PER_USER = 100
MAX_GROUPS_PER_POOL = 10_000
# facts §7: the user migration trigger. Cognito calls it synchronously, waits 5 s for an
# answer, retries, and fails the sign-in after 3 attempts (settings.trigger_* hold them).
TRIGGER_TIMEOUT_SECONDS = 5.0
TRIGGER_ATTEMPTS = 3
# Sign-in flows that send the password, and so may call it (SRP never does). ADMIN_NO_SRP_AUTH
# is the old name of ADMIN_USER_PASSWORD_AUTH (botocore's ExplicitAuthFlowsType).
MIGRATION_AUTH_FLOWS = frozenset(
    {"USER_PASSWORD_AUTH", "ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"}
)
# The ExplicitAuthFlows values (new and legacy) that let an app client use a password flow;
# a client created without ExplicitAuthFlows allows refresh, SRP and custom auth only (BC).
CLIENT_FLOWS_FOR = {
    "USER_PASSWORD_AUTH": frozenset({"ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"}),
    "ADMIN_USER_PASSWORD_AUTH": frozenset({"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"}),
    "ADMIN_NO_SRP_AUTH": frozenset({"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"}),
}
DEFAULT_CLIENT_FLOWS = ("ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_CUSTOM_AUTH")
# facts §7 [KC]: the app's error when the client does not allow USER_PASSWORD_AUTH, and when
# Cognito cannot invoke the function (the sandbox: no local handler is named for its ARN).
ERR_USER_PASSWORD_AUTH_DISABLED = (
    "InvalidParameterException",
    "USER_PASSWORD_AUTH flow not enabled for this client",
)
ERR_MIGRATION_NOT_INVOKABLE = (
    "UserNotFoundException",
    "Exception migrating user in app client {client_id}",
)
# The UserMigration response (facts §7 [MU]): its allowed values, and its defaults when absent.
MIGRATION_FINAL_STATUSES = frozenset({"CONFIRMED", "RESET_REQUIRED"})
MIGRATION_DEFAULT_FINAL_STATUS = "RESET_REQUIRED"
# SANDBOX CHOICE: messageAction SUPPRESS or absent (the welcome is sent); AdminCreateUser's
# other value, RESEND, has no meaning for a new user and is refused as invalid.
MIGRATION_MESSAGE_ACTIONS = frozenset({"SUPPRESS"})
MIGRATION_DELIVERY_MEDIUMS = frozenset({"EMAIL", "SMS"})
MIGRATION_DEFAULT_DELIVERY = ("SMS",)

# --- SANDBOX CHOICES: not documented anywhere; change here when reality disagrees ----
# A job left in Created expires "within 24-48 hours" (facts §3): the sandbox uses 24 h.
JOB_EXPIRY_SECONDS = 24 * 3600
# The CloudWatch Logs role (facts §5): Cognito assumes it as this service principal, and
# a job fails as a whole unless the role's policies allow every one of these actions on
# the pool's log group (the documented policy; which of them Cognito checks, and when,
# is unknown). IAM conditions are not evaluated.
ASSUME_ROLE_ACTION = "sts:AssumeRole"
COGNITO_PRINCIPAL = "cognito-idp.amazonaws.com"
LOGS_ROLE_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams",
                     "logs:PutLogEvents")  # fmt: skip
# A FilterLogEvents nextToken (opaque, of this kind) resumes after the (timestamp, event
# id) of the last event given: a line logged late still comes on a later page, exactly
# once, when it sorts after that event; one that sorts before it (stamped earlier, in
# another stream) is not in that pagination, only in a new read. AWS documents neither.
LOG_FILTER_TOKEN_KIND = "after"
# Line numbers in the log: AWS's own mapping numbers the first data row 1 (facts §5).
FIRST_LINE_NUMBER = 1
# A job fails as a whole once this many rows failed or were skipped AND they are more
# than this fraction of the rows seen so far; the remaining rows are never processed
# (facts §3 only says "too many").
FAIL_JOB_AFTER_BAD_ROWS = 30
FAIL_JOB_BAD_FRACTION = 0.5
# Errors for which the facts give no code: a second active job in the account, starting
# a job that is not in Created, stopping a job that already ended.
ERR_OTHER_JOB_ACTIVE = (
    "PreconditionNotMetException",
    "An import job is already active in this account.",
)
ERR_NOT_STARTABLE = (
    "InvalidParameterException",
    "Import job {job_id} cannot be started: its status is {status}.",
)
ERR_NOT_STOPPABLE = (
    "InvalidParameterException",
    "Import job {job_id} cannot be stopped: its status is {status}.",
)
ERR_NO_UPLOAD = (
    "PreconditionNotMetException",
    "No csv file was uploaded for {job_id}",
)  # seen publicly
ERR_HASH_NOT_ENABLED = (
    "OperationNotEnabledException",
    "Password hash import is not enabled for this user pool.",
)
# Account recovery when a pool sets none: a verified phone first, then a verified email
# (Cognito's legacy behaviour; the order is the sandbox's reading of it).
DEFAULT_RECOVERY_MECHANISMS = [
    {"Name": "verified_phone_number", "Priority": 1},
    {"Name": "verified_email", "Priority": 2},
]
# Password resets (AdminResetUserPassword, ForgotPassword; facts §6 leaves these open).
# The reset code: moto's ConfirmForgotPassword checks only codes that start with this
# prefix (any other code is accepted), so the sandbox's codes carry it, then 6 digits.
RESET_CODE_PREFIX = "moto-confirmation-code:"
# The daily email limit counts per account across all its regions (facts: "per account"),
# on the sandbox clock's UTC day; only the reset codes the sandbox delivers count.
EMAIL_LIMIT_PER_REGION = False
# Pools whose EmailConfiguration.EmailSendingAccount is one of these (or absent) use
# Cognito's default sender and so the daily email limit; DEVELOPER (SES) is not limited.
DEFAULT_EMAIL_SENDING_ACCOUNTS = frozenset({"COGNITO_DEFAULT"})
ERR_DAILY_EMAIL_LIMIT = (
    "LimitExceededException",
    "Exceeded daily email limit for the operation or the account. If a higher limit is "
    "required, please configure your user pool to use your own Amazon SES configuration for "
    "sending email.",
)  # facts §6 quotes only "Exceeded daily email limit ..."; the rest is the sandbox's
# No verified email/phone the recovery setting allows: moto's (and Cognito's seen) text.
ERR_NO_RECOVERY_CHANNEL = (
    "InvalidParameterException",
    "Cannot reset password for the user as there is no registered/verified email or phone_number",
)
# AccountRecoverySetting admin_only: ForgotPassword answers moto's error; an admin reset
# answers a parameter error (the pool has no self-service recovery to send a code with).
ERR_ADMIN_ONLY_FORGOT = ("NotAuthorizedException", "Contact administrator to reset password.")
ERR_ADMIN_ONLY_ADMIN_RESET = (
    "InvalidParameterException",
    "Cannot reset password for the user: the user pool's account recovery is admin_only, so "
    "there is no self-service channel to send a code through; use AdminSetUserPassword.",
)
# The user's channel is SMS but the pool has no SmsConfiguration.SnsCallerArn. The channel
# is chosen from the recovery setting and the user's verified attributes alone: the
# sandbox does not fall back to email when SMS cannot be sent. Only the operations below
# check it: ForgotPassword keeps "sending" SMS without one, as the sandbox always did
# (tests/test_sandbox_passwords.py relies on it); add it here to make both strict.
SMS_CONFIG_REQUIRED_FOR = frozenset({"AdminResetUserPassword"})
ERR_SMS_NOT_CONFIGURED = (
    "InvalidSmsRoleAccessPolicyException",
    "The user pool has no SmsConfiguration (SnsCallerArn), so Amazon Cognito cannot send the "
    "reset code by SMS.",
)
# An unknown app client id (moto's message is the bare id), and a user the client's pool
# does not have in ConfirmForgotPassword (moto blames the client); Cognito's wording as
# commonly reported, not documented.
ERR_CLIENT_MISSING = ("ResourceNotFoundException", "User pool client {client_id} does not exist.")
ERR_USER_NOT_IN_CLIENTS_POOL = (
    "UserNotFoundException",
    "Username/client id combination not found.",
)
# settings.recovery_rps throttles the RECOVERY_OPERATIONS of an account with a fixed
# one-second window on the sandbox clock (real Cognito's bucket is unknown).
ERR_RECOVERY_THROTTLED = ("TooManyRequestsException", "Rate exceeded")
# settings.user_update_rps throttles USER_UPDATE_OPERATIONS the same way.
ERR_USER_UPDATE_THROTTLED = ("TooManyRequestsException", "Rate exceeded")
# GUESS: the facts give the group limits but not the error past them; LimitExceededException
# is what Cognito answers for its other limits on resources.
ERR_USER_GROUP_LIMIT = (
    "LimitExceededException",
    f"A user can be a member of at most {MAX_GROUPS_PER_USER} groups.",
)
ERR_POOL_GROUP_LIMIT = (
    "LimitExceededException",
    f"A user pool can have at most {MAX_GROUPS_PER_POOL} groups.",
)
# --- the user migration trigger (facts §7 leaves these open) ---
# ADMIN_USER_PASSWORD_AUTH on a client that does not allow it: Cognito's wording is unknown.
ERR_ADMIN_PASSWORD_AUTH_DISABLED = (
    "InvalidParameterException",
    "Auth flow not enabled for this client",
)
# What the app sees when the function raises (UNVERIFIED in the facts: commonly
# UserNotFoundException); {error} is the exception's message, as Lambda reports it.
ERR_MIGRATION_FAILED = ("UserNotFoundException", "UserMigration failed with error {error}.")
# ... and when every attempt timed out (Lambda's own timeout wording inside).
ERR_MIGRATION_TIMEOUT = (
    "UnexpectedLambdaException",
    "UserMigration failed with error Task timed out after {seconds:.2f} seconds.",
)
# An answer Cognito cannot use (bad finalUserStatus, messageAction, desiredDeliveryMediums,
# attributes, ...): botocore's InvalidLambdaResponseException; the wording is the sandbox's.
ERR_MIGRATION_INVALID_RESPONSE = (
    "InvalidLambdaResponseException",
    "Invalid lambda response: {why}",
)
# An email/phone alias the answer gives is held by another user and forceAliasCreation is
# not true: AdminCreateUser's error for the same case.
ERR_MIGRATION_ALIAS_EXISTS = (
    "AliasExistsException",
    "An account with the given {attr} already exists.",
)
# The answer names a username another user has (AdminCreateUser's error for the same case).
ERR_MIGRATION_USERNAME_EXISTS = ("UsernameExistsException", "User account already exists.")
# A typed email (phone) in a pool with an email (phone) alias: the new user needs a username
# of its own in the answer's userAttributes; the wording is seen publicly.
ERR_MIGRATION_ALIAS_AS_USERNAME = (
    "InvalidParameterException",
    "Username cannot be of {kind} format since user pool is configured for {kind} alias.",
)
# A typed name that is not an email/phone in a pool whose UsernameAttributes are those: moto's
# AdminCreateUser wording.
ERR_MIGRATION_NOT_A_USERNAME_ATTRIBUTE = (
    "InvalidParameterException",
    "Username should be either an email or a phone number.",
)
# The event: common parameters version "1" and this SDK version string (what Cognito sends
# for calls it cannot attribute to an SDK, as seen publicly); `response` carries every
# documented key as null (aws-lambda-powertools' TypeScript schema requires them, nullable).
# request.validationData carries InitiateAuth's ClientMetadata and request.clientMetadata
# ForgotPassword's (MU); a key is left out when the app sent no ClientMetadata.
MIGRATION_EVENT_VERSION = "1"
MIGRATION_SDK_VERSION = "aws-sdk-unknown-unknown"
MIGRATION_RESPONSE_KEYS = (
    "userAttributes", "finalUserStatus", "messageAction",
    "desiredDeliveryMediums", "forceAliasCreation", "enableSMSMFA",
)  # fmt: skip
# Cognito retries a call that timed out; one that raised is not retried (its answer is final).
MIGRATION_RETRY_FUNCTION_ERRORS = False
# A function's start (its process and module import; Lambda's init phase) does not count
# toward the 5 s: a local Python start under load is slower than Lambda's. It has its own bound.
FUNCTION_INIT_TIMEOUT_SECONDS = 10.0
# The forgot-password flow creates the user in this status (the code is sent to reset it),
# whatever finalUserStatus says; the answer must still be valid.
MIGRATION_FORGOT_PASSWORD_STATUS = "RESET_REQUIRED"
# Aliases: a user "exists" under an email/phone alias only when that value is verified;
# these sign-in attributes count unverified (UsernameAttributes values always do).
ALIASES_WITHOUT_VERIFICATION = frozenset({"preferred_username"})
# forceAliasCreation moves these aliases (MU names email and phone); a taken alias of any
# other kind (preferred_username) fails whatever the answer says.
MIGRATION_MOVABLE_ALIASES = frozenset({"email", "phone_number"})
# A moved alias: the previous holder keeps the value, marked unverified (so it no longer
# signs in with it); when the value is a UsernameAttribute it is removed from that user.
MOVED_ALIAS_STAYS_UNVERIFIED = True
# The user's name is the name as typed, its case kept even in a case-insensitive pool (the
# pool still finds it in any case); in pools whose UsernameAttributes sign in, the sub; when
# the typed name is an email/phone alias, the answer's `username`.
MIGRATION_USERNAME_KEEPS_CASE = True
# An answer that leaves out the typed email/phone (UsernameAttributes, or an alias typed)
# gets it filled in from what was typed; one that gives another value is invalid.
MIGRATION_TYPED_VALUE_FILLS_ATTRIBUTE = True
# Required attributes the answer leaves out are not refused (Cognito's rule is not
# documented); empty attribute values in the answer are left out, not stored as "".
MIGRATION_CHECKS_REQUIRED_ATTRIBUTES = False
MIGRATION_DROPS_EMPTY_VALUES = True
# The welcome message (messageAction absent) is recorded in the messages ledger once per
# desired medium the user has an address for, as this operation; an email counts toward the
# daily email limit, and past the limit it is not sent while the migration still stands.
MIGRATION_WELCOME_OPERATION = "UserMigrationWelcome"
MIGRATION_WELCOME_OVER_LIMIT_FAILS = False

# Custom Number attributes: what Cognito reads as a number is undocumented. UNVERIFIED
# guess: ASCII decimal digits with an optional sign, fraction and exponent; never nan, inf
# or other scripts' digits (which Python's float() would take).
NUMBER_PATTERN = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# Booleans: docs write true/false, the sample TRUE/FALSE; the sandbox accepts any case.
BOOLEAN_CASE_INSENSITIVE = True
# SCRYPT's N$r$p$hexSalt$hexHash form (facts §6): whether the salt is hashed as the bytes
# its hex spells or as the hex text itself is undocumented; the sandbox decodes it.
SCRYPT_SALT_IS_HEX_BYTES = True
# The CSV dialect (facts §2) documents one escape, "\," for a comma inside a value. How
# any other backslash reads is undocumented: the sandbox reads it literally (so "a\\b" is
# two backslashes). Set False to read "\\" as one backslash.
BACKSLASH_IS_LITERAL = True
# Line endings: undocumented; the sandbox accepts \n and \r\n. Blank lines are ignored.
ACCEPT_CRLF = True
# Whole-job failure messages (Cognito's wording is unknown).
MSG_BAD_ENCODING = "The CSV file is not valid UTF-8."
MSG_BOM = "The CSV file starts with a byte order mark; save it as UTF-8 without BOM."
MSG_HEADER_MISSING = "The CSV header is missing required columns: {columns}."
MSG_HEADER_UNKNOWN = "The CSV header has columns that are not in the user pool: {columns}."
MSG_HEADER_DUPLICATE = "The CSV header repeats columns: {columns}."
MSG_TOO_BIG = "The CSV file is larger than 100 MB."
MSG_TOO_MANY_USERS = "The CSV file has more than 500,000 users."
MSG_EMPTY_FILE = "The CSV file is empty."
MSG_ROLE = ("Amazon Cognito could not assume the CloudWatch Logs role {arn} or it lacks the "
            "logs permissions; the role must trust cognito-idp.amazonaws.com.")  # fmt: skip
MSG_POOL_GONE = "The user pool no longer exists."
# CloudWatch Logs' words for a missing group and a missing stream (ResourceNotFoundException).
ERR_LOG_GROUP_MISSING = "The specified log group does not exist."
ERR_LOG_STREAM_MISSING = "The specified log stream does not exist."
MSG_HASH_COLUMN_WITHOUT_ALGORITHM = ("The CSV file has a password_hash column but the job has "
                                     "no PasswordHashingAlgorithm.")  # fmt: skip
# Per-row log messages. The first is AWS's documented wording; the rest are the sandbox's.
ROW_MESSAGES = {
    "succeeded": "The import succeeded.",
    "exists": "The user already exists.",
    "auto_verified": ("The User Record does not set any of the auto verified attributes to true. "
                      "(Example: email_verified to true)."),
    "only_auto_verified": ("The User Record does not set the auto verified attribute "
                           "{attr} to true."),
    "no_username": "The User Record does not set cognito:username.",
    "bad_username": "The cognito:username is invalid: {why}.",
    "columns": "The User Record has {got} values but the header has {want} columns.",
    "row_too_long": "The User Record is longer than 16,000 characters.",
    "value_too_long": "The value of {attr} is longer than 2,048 characters.",
    "verified_without_value": "{attr}_verified is true but {attr} is empty.",
    "bad_email": "The email is not a valid email address.",
    "bad_phone": "The phone_number is not in E.164 format (+ then country code and digits).",
    "bad_boolean": "The value of {attr} is not true or false.",
    "required": "The required attribute {attr} is missing.",
    "mfa": "cognito:mfa_enabled is {value} but the user pool's MFA configuration is {mfa}.",
    "bad_birthdate": "The birthdate is not a real date in mm/dd/yyyy format.",
    "bad_updated_at": "updated_at is not a number of seconds since the epoch.",
    "custom_type": "The value of {attr} does not match its type {type}.",
    "custom_constraint": "The value of {attr} is outside its constraints: {why}.",
    "alias_exists": "An account with the given {attr} already exists.",
    "bad_hash": "The password_hash is not a valid {algorithm} hash within Cognito's bounds: {why}.",
}  # fmt: skip


@dataclass
class SandboxSettings:
    """How the sandbox's import jobs behave in time; all mutable while it runs."""

    job_seconds: float = 5.0  # how long processing the rows of one job takes
    pending_seconds: float = 0.2  # Pending -> InProgress delay after StartUserImportJob
    log_lag_seconds: float = 0.0  # log lines appear this long after their row is processed
    tick_seconds: float = 0.05  # how often the job runner wakes up
    first_line_number: int = FIRST_LINE_NUMBER
    fail_job_after_bad_rows: int = FAIL_JOB_AFTER_BAD_ROWS
    fail_job_bad_fraction: float = FAIL_JOB_BAD_FRACTION
    url_ttl_seconds: float = PRESIGNED_URL_TTL_SECONDS
    job_expiry_seconds: float = JOB_EXPIRY_SECONDS
    # emails per sandbox-clock UTC day per account through Cognito's default sender
    daily_email_limit: int = DAILY_EMAIL_LIMIT
    # calls per second per account of RECOVERY_OPERATIONS; 0 = unlimited (real: 30)
    recovery_rps: int = 0
    # calls per second per account of AdminAddUserToGroup and AdminDisableUser together
    # (the UserUpdate quota); 0 = unlimited (real: 25)
    user_update_rps: int = 0
    # the user migration trigger: Cognito's wait per call, and its attempts (facts §7)
    trigger_timeout_seconds: float = TRIGGER_TIMEOUT_SECONDS
    trigger_attempts: int = TRIGGER_ATTEMPTS
    # SANDBOX CHOICE: every Nth ListUsers page holds half the users asked for (at least one)
    # while more remain, as Cognito may answer short pages (facts §9); 0 = never. N counts
    # the pages served since the setting was last changed, so which pages are short does
    # not depend on what ran before.
    list_users_short_pages: int = 0
    _list_users_pages: int = field(default=0, repr=False)

    def update(self, **changes: Any) -> None:
        """Change some settings; unknown names are an error."""
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown sandbox settings: {sorted(unknown)}; known: {sorted(known)}")
        for key, value in changes.items():
            setattr(self, key, type(getattr(self, key))(value))
        if "list_users_short_pages" in changes:
            self._list_users_pages = 0

    def short_list_users_page(self) -> bool:
        """Whether the ListUsers page being served is a short one (list_users_short_pages)."""
        if not self.list_users_short_pages:
            return False
        self._list_users_pages += 1
        return self._list_users_pages % self.list_users_short_pages == 0

    def reset(self, **changes: Any) -> None:
        """Put every setting back to its default, then apply ``changes``."""
        defaults = SandboxSettings(**changes)
        for f in fields(self):
            setattr(self, f.name, getattr(defaults, f.name))

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if not key.startswith("_")}


@dataclass
class Faults:
    """Faults injected into the sandbox's answers, for tests of retries and resumption.

    throttle_every: every Nth matching API call answers TooManyRequestsException
        (ThrottlingException for CloudWatch Logs calls); 0 = never.
    throttle_fraction: that fraction of matching calls is throttled (seeded RNG).
    throttle_operations: operation names the throttling applies to (empty = all).
    server_error_every: every Nth matching API call answers HTTP 500 InternalErrorException.
    upload_failures: the next N uploads to a presigned URL answer HTTP 503.
    upload_refusals: the next N uploads to a presigned URL answer HTTP 403 AccessDenied
        (as S3 does for a policy or proxy refusal; not the expired-URL wording).
    empty_log_pages_every: every Nth FilterLogEvents page (and first GetLogEvents page)
        is empty but carries a token to continue from the same place.

    ``throttled()`` counts the calls answered with throttling, per operation, since the
    faults were last changed: the attempts a client really made against a throttled call.
    ``calls()`` counts every API call the sandbox received (throttled or not), per
    operation, since then: what a resumed pass really asked Cognito to do.
    """

    throttle_every: int = 0
    throttle_fraction: float = 0.0
    throttle_operations: list[str] = field(default_factory=list)
    server_error_every: int = 0
    upload_failures: int = 0
    upload_refusals: int = 0
    empty_log_pages_every: int = 0
    seed: int = 1234
    _counters: dict[str, int] = field(default_factory=dict, repr=False)
    _throttled: Counter[str] = field(default_factory=Counter, repr=False)
    _calls: Counter[str] = field(default_factory=Counter, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **changes: Any) -> None:
        """Change some faults (unknown names are an error) and restart their counters."""
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown sandbox faults: {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)
            self._counters.clear()
            self._throttled.clear()
            self._calls.clear()
            self._rng.seed(self.seed)

    def clear(self) -> None:
        """Remove every fault."""
        self.update(
            throttle_every=0,
            throttle_fraction=0.0,
            throttle_operations=[],
            server_error_every=0,
            upload_failures=0,
            upload_refusals=0,
            empty_log_pages_every=0,
        )

    def _every(self, key: str, every: int) -> bool:
        count = self._counters.get(key, 0) + 1
        self._counters[key] = count
        return every > 0 and count % every == 0

    def should_throttle(self, operation: str) -> bool:
        """Whether to answer this call with throttling (asked once per API call)."""
        with self._lock:
            self._calls[operation] += 1
            if self.throttle_operations and operation not in self.throttle_operations:
                return False
            hit = self._every("throttle", self.throttle_every)
            if not hit and self.throttle_fraction > 0:
                hit = self._rng.random() < self.throttle_fraction
            self._throttled[operation] += hit
            return hit

    def throttled(self) -> dict[str, int]:
        """Calls answered with throttling since the faults last changed, by operation."""
        with self._lock:
            return {operation: n for operation, n in self._throttled.items() if n}

    def calls(self) -> dict[str, int]:
        """API calls received since the faults last changed, by operation."""
        with self._lock:
            return dict(self._calls)

    def should_fail_server(self, operation: str) -> bool:
        with self._lock:
            if self.throttle_operations and operation not in self.throttle_operations:
                return False
            return self._every("server_error", self.server_error_every)

    def take_upload_failure(self) -> bool:
        return self._take("upload_failures")

    def take_upload_refusal(self) -> bool:
        return self._take("upload_refusals")

    def _take(self, name: str) -> bool:
        """Use up one of the fault's next N occurrences; whether there was one."""
        with self._lock:
            left: int = getattr(self, name)
            if left > 0:
                setattr(self, name, left - 1)
            return left > 0

    def empty_log_page(self) -> bool:
        with self._lock:
            return self._every("empty_log_page", self.empty_log_pages_every)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
