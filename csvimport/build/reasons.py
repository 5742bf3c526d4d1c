"""Each rule's reason in plain language, with the fix: what rejects.csv, the build's
summary and the report say of a refused user. Apart from ``validate`` (pandas and pandera),
so that the report, which names reasons but validates nothing, does not load them.
"""

from __future__ import annotations

# rule id -> plain-language reason with the fix. "{attr}" stands for the attribute: a
# rejected value's reason names it (``reason``), a summary of many says "this attribute".
_REASONS: dict[str, str] = {
    "username_missing": "No username: every user needs cognito:username. Map a column to it.",
    "username_whitespace": "The username contains a space or tab, which Cognito refuses.",
    "username_too_long": "The username is longer than 128 characters.",
    "username_characters": "The username contains control or invisible characters.",
    "username_looks_like_alias": "The username looks like an email/phone, which this pool "
    "uses as an alias; Cognito refuses such usernames. Map a different username column.",
    "value_too_long": "The value is longer than Cognito's 2,048-character limit.",
    "newline": "The value of {attr} holds a line break, which Cognito's CSV format cannot "
    'carry. To fold line breaks, add fold_line_breaks = ", " (or " ") to the mapping\'s '
    "table for {attr}; or edit the value in the legacy source.",
    "backslash": "The value of {attr} ends with a backslash or has one right before a comma; "
    "how Cognito's CSV format reads that is not documented, so the value could reach Cognito "
    "changed. Edit the value in the legacy source, or map {attr} from another column.",
    "boolean": "Must be true or false (or empty).",
    "email": "Not a valid email address.",
    "phone": "Not an E.164 phone number (+, country code, digits), e.g. +14325551212.",
    "birthdate": "Must be a real date written mm/dd/yyyy.",
    "updated_at": "Must be whole seconds since 1970 (epoch).",
    "number": "Must be a number for this custom attribute.",
    "number_range": "The number is outside the range the pool allows for this attribute.",
    "length": "The text is shorter or longer than the pool allows for this attribute.",
    "datetime": "Must be a date-time for this custom attribute.",
    "required": "The pool requires this attribute and the user has no value for it.",
    "auto_verified": "None of the pool's auto-verified attributes (email_verified / "
    "phone_number_verified) is true; Cognito refuses such users. Mark a verified channel.",
    "email_verified_without_email": "email_verified is true but the email is empty.",
    "phone_verified_without_phone": "phone_number_verified is true but the phone number is empty.",
    "mfa": "cognito:mfa_enabled contradicts the pool's MFA setting.",
    "row_too_long": "The user's CSV row would be longer than Cognito's 16,000 characters.",
    # Not schema rules: the mapping's transforms that refused a value (csvimport.build.mapping)
    # where their name differs from the schema's rule, and the duplicate policy's verdict.
    "date": "Not a date the mapping could read; set `format` for this attribute in the "
    'mapping (e.g. "%d/%m/%Y") or fix the legacy value.',
    "timestamp": "Not a time the mapping could read (epoch seconds or milliseconds, or an "
    "ISO 8601 date-time); set `format` in the mapping or fix the legacy value.",
    "duplicate": "Same username (or unique email/phone) as another user in the source; "
    "rejects.csv names the row it collided with.",
    # Not schema rules: records the CSV file itself garbles (csvimport.build.sources.csvlayout).
    "stray_quote": "A quote opened in this user's value closes lines later: the lines between "
    "were read into the value. rejects.csv names the lines; fix the quote in the source and "
    "build again.",
    "swallowed_line": "A line a stray quote read into another user's value, likely a user of "
    "its own; rejects.csv names the line and the quote. Fix the quote and build again.",
    "too_few_fields": "The row has fewer fields than the header (rejects.csv names its line); "
    "fix the row in the source and build again.",
    "too_many_fields": "The row has more fields than the header (rejects.csv names its line); "
    "fix the row in the source and build again.",
}
GENERIC_ATTRIBUTE = "this attribute"


def reason(rule: str, attribute: str = "") -> str:
    """The plain-language reason for ``rule``, naming ``attribute`` where it says which."""
    return _REASONS.get(rule, rule).replace("{attr}", attribute or GENERIC_ATTRIBUTE)


# rule id -> its reason, for summaries of many rows
REASONS: dict[str, str] = {rule: reason(rule) for rule in _REASONS}
