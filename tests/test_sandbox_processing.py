"""How the sandbox imports each row: Cognito's dialect and the pool's own rules."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest

from csvimport.sandbox import Sandbox

from .helpers import Importer, cognito_csv, user

FAILED_AUTO_VERIFIED = (
    "The User Record does not set the auto verified attribute email_verified to true."
)


def outcomes(importer: Importer, job_id: str) -> dict[int, str]:
    """Line number -> '[OUTCOME] message' from the job's log."""
    result: dict[int, str] = {}
    for line in importer.log_lines(job_id):
        head, _, message = line.partition(" - ")
        outcome, _, number = head.partition(" Line Number ")
        result[int(number)] = f"{outcome} {message}"
    return result


def test_every_row_gets_one_log_line_numbered_from_one(importer: Importer) -> None:
    run = importer.run([user("ann"), user("bob", email_verified="false"), user("ANN")])
    assert run.job["Status"] == "Succeeded"
    assert (run.job["ImportedUsers"], run.job["SkippedUsers"], run.job["FailedUsers"]) == (1, 1, 1)
    assert outcomes(importer, run.job_id) == {
        1: "[SUCCEEDED] The import succeeded.",
        2: f"[FAILED] {FAILED_AUTO_VERIFIED}",
        3: "[SKIPPED] The user already exists.",
    }


def test_imported_users_are_reset_required_with_their_attributes(importer: Importer) -> None:
    importer.run([user("carol", name="Carol, the Second", custom__legacy_id="L-7",
                       email_verified="TRUE", phone_number="+14325551212")])  # fmt: skip
    carol = importer.users()["carol"]
    assert carol["status"] == "RESET_REQUIRED"
    assert carol["name"] == "Carol, the Second"  # `\,` read back as a comma
    assert carol["custom:legacy_id"] == "L-7"
    assert carol["email_verified"] == "true"
    assert carol["phone_number"] == "+14325551212"
    assert "sub" in carol


def test_values_are_trimmed(importer: Importer) -> None:
    importer.run([user("dave", given_name="  Dave  ")])
    assert importer.users()["dave"]["given_name"] == "Dave"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cognito:username": ""}, "The User Record does not set cognito:username."),
        ({"cognito:username": "has space"}, "The cognito:username is invalid: it contains a space or tab."),
        ({"cognito:username": "x" * 129}, "The cognito:username is invalid: longer than 128 characters."),
        ({"email_verified": "false"}, FAILED_AUTO_VERIFIED),
        ({"email_verified": "yes"}, "The value of email_verified is not true or false."),
        ({"email": "", "email_verified": "true"}, "email_verified is true but email is empty."),
        ({"email": "not-an-email"}, "The email is not a valid email address."),
        ({"phone_number": "555-1212"}, "The phone_number is not in E.164 format (+ then country code and digits)."),
        ({"phone_number": "", "phone_number_verified": "true"}, "phone_number_verified is true but phone_number is empty."),
        ({"cognito:mfa_enabled": "true"}, "cognito:mfa_enabled is true but the user pool's MFA configuration is OFF."),
        ({"birthdate": "1985-02-01"}, "The birthdate is not a real date in mm/dd/yyyy format."),
        ({"birthdate": "02/30/1985"}, "The birthdate is not a real date in mm/dd/yyyy format."),
        ({"updated_at": "yesterday"}, "updated_at is not a number of seconds since the epoch."),
        ({"custom:credits": "lots"}, "The value of custom:credits does not match its type Number."),
        ({"custom:credits": "1001"}, "The value of custom:credits is outside its constraints: above 1000."),
        ({"custom:legacy_id": "x" * 17}, "The value of custom:legacy_id is outside its constraints: longer than 16 characters."),
        ({"address": "x" * 2049}, "The value of address is longer than 2,048 characters."),
    ],
)  # fmt: skip
def test_a_row_breaking_a_pool_rule_fails_with_a_reason(
    importer: Importer, changes: dict[str, str], message: str
) -> None:
    row = user("eve")
    row.update(changes)
    run = importer.run([row, user("fine")])
    assert outcomes(importer, run.job_id) == {
        1: f"[FAILED] {message}",
        2: "[SUCCEEDED] The import succeeded.",
    }
    assert set(importer.users()) == {"fine"}


def test_a_row_with_too_many_values_fails(importer: Importer) -> None:
    header = importer.header()
    body = cognito_csv(header, [user("ok")]) + ("a," * len(header)).encode() + b"\n"
    run = importer.run(body)
    assert outcomes(importer, run.job_id)[2].startswith("[FAILED] The User Record has")


def test_a_row_longer_than_16000_characters_fails(importer: Importer) -> None:
    long_row = user("long", **{f"{k}": "y" * 2000 for k in ("name", "given_name", "family_name",
                     "middle_name", "nickname", "profile", "picture", "website", "address")})  # fmt: skip
    run = importer.run([long_row])
    assert outcomes(importer, run.job_id) == {
        1: "[FAILED] The User Record is longer than 16,000 characters."
    }


def test_crlf_line_endings_and_blank_lines_are_accepted(importer: Importer) -> None:
    body = (
        cognito_csv(importer.header(), [user("r1"), user("r2")]).replace(b"\n", b"\r\n") + b"\r\n"
    )
    run = importer.run(body)
    assert run.job["ImportedUsers"] == 2


def test_case_insensitive_pool_skips_a_username_differing_only_in_case(importer: Importer) -> None:
    run = importer.run([user("Frank"), user("frank", email="other@example.com")])
    assert (run.job["ImportedUsers"], run.job["SkippedUsers"]) == (1, 1)


def test_case_sensitive_pool_keeps_both_spellings(make_pool: Any, importer_for: Any) -> None:
    importer = importer_for(make_pool(UsernameConfiguration={"CaseSensitive": True}))
    run = importer.run([user("Grace"), user("grace", email="g2@example.com")])
    assert run.job["ImportedUsers"] == 2
    assert set(importer.users()) == {"Grace", "grace"}


def test_users_already_in_the_pool_are_skipped_on_a_second_import(importer: Importer) -> None:
    importer.run([user("h1"), user("h2")])
    run = importer.run([user("h1"), user("h3")])
    assert (run.job["ImportedUsers"], run.job["SkippedUsers"]) == (1, 1)


def test_phone_only_pool_needs_phone_number_verified(make_pool: Any, importer_for: Any) -> None:
    importer = importer_for(make_pool(AutoVerifiedAttributes=["phone_number"]))
    run = importer.run([
        user("p1", phone_number="+14325551212", phone_number_verified="true", email_verified="false"),
        user("p2", email_verified="true"),
    ])  # fmt: skip
    assert outcomes(importer, run.job_id) == {
        1: "[SUCCEEDED] The import succeeded.",
        2: "[FAILED] The User Record does not set the auto verified attribute "
        "phone_number_verified to true.",
    }


def test_pool_with_two_auto_verified_attributes_needs_one_of_them(
    make_pool: Any, importer_for: Any
) -> None:
    importer = importer_for(make_pool(AutoVerifiedAttributes=["email", "phone_number"]))
    run = importer.run([
        user("q1", email_verified="false", phone_number="+14325551212", phone_number_verified="true"),
        user("q2", email_verified="false"),
    ])  # fmt: skip
    lines = outcomes(importer, run.job_id)
    assert lines[1] == "[SUCCEEDED] The import succeeded."
    assert lines[2] == (
        "[FAILED] The User Record does not set any of the auto verified attributes to true. "
        "(Example: email_verified to true)."
    )


@pytest.mark.parametrize(
    ("mfa", "value", "ok"),
    [("ON", "true", True), ("ON", "", True), ("ON", "false", False),
     ("OFF", "false", True), ("OFF", "true", False),
     ("OPTIONAL", "true", True), ("OPTIONAL", "false", True)],
)  # fmt: skip
def test_mfa_enabled_must_agree_with_the_pools_mfa_configuration(
    make_pool: Any, importer_for: Any, mfa: str, value: str, ok: bool
) -> None:
    spec: dict[str, Any] = {"MfaConfiguration": mfa}
    if mfa != "OFF":
        spec["SmsConfiguration"] = {"SnsCallerArn": "arn:aws:iam::123456789012:role/sms"}
    importer = importer_for(make_pool(**spec))
    run = importer.run([user("m", cognito__mfa_enabled=value)])
    assert run.job["ImportedUsers"] == (1 if ok else 0)


def test_required_attribute_missing_fails_the_row(make_pool: Any, importer_for: Any) -> None:
    importer = importer_for(make_pool(Schema=[
        {"Name": "family_name", "AttributeDataType": "String", "Required": True},
    ]))  # fmt: skip
    run = importer.run([user("r1", family_name="Smith"), user("r2")])
    assert (
        outcomes(importer, run.job_id)[2]
        == "[FAILED] The required attribute family_name is missing."
    )


def test_email_alias_must_be_unique_among_verified_users_and_usernames_not_emails(
    make_pool: Any, importer_for: Any
) -> None:
    importer = importer_for(make_pool(AliasAttributes=["email"]))
    run = importer.run([
        user("a1", email="same@example.com"),
        user("a2", email="SAME@example.com"),
        user("a3@example.com"),
    ])  # fmt: skip
    lines = outcomes(importer, run.job_id)
    assert lines[1] == "[SUCCEEDED] The import succeeded."
    assert lines[2] == "[FAILED] An account with the given email already exists."
    assert lines[3].startswith("[FAILED] The cognito:username is invalid: it looks like an email")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"\xef\xbb\xbf",
            "The CSV file starts with a byte order mark; save it as UTF-8 without BOM.",
        ),
        (b"\xff\xfe", "The CSV file is not valid UTF-8."),
        (b"", "The CSV file is empty."),
    ],
)
def test_an_unreadable_file_fails_the_whole_job(
    importer: Importer, body: bytes, message: str
) -> None:
    good = cognito_csv(importer.header(), [user("x")])
    run = importer.run(body + good if body else b"\n")
    assert run.job["Status"] == "Failed"
    assert run.job["CompletionMessage"] == message
    assert run.job["ImportedUsers"] == 0
    assert importer.users() == {}


def test_a_header_missing_a_column_fails_the_whole_job(importer: Importer) -> None:
    header = [c for c in importer.header() if c != "given_name"]
    run = importer.run([user("x")], header=header)
    assert run.job["Status"] == "Failed"
    assert run.job["CompletionMessage"] == "The CSV header is missing required columns: given_name."


def test_a_header_with_an_unknown_column_fails_the_whole_job(importer: Importer) -> None:
    run = importer.run([user("x")], header=[*importer.header(), "custom:nope"])
    assert (
        run.job["CompletionMessage"]
        == "The CSV header has columns that are not in the user pool: custom:nope."
    )


def test_column_order_does_not_matter(importer: Importer) -> None:
    run = importer.run([user("rev")], header=list(reversed(importer.header())))
    assert run.job["ImportedUsers"] == 1


def test_too_many_failures_fail_the_job_and_leave_rows_unprocessed(importer: Importer) -> None:
    users = [user(f"bad{i}", email_verified="false") for i in range(40)] + [user("late")]
    run = importer.run(users)
    assert run.job["Status"] == "Failed"
    assert (
        run.job["CompletionMessage"]
        == "Too many users have failed or been skipped during the import."
    )
    processed = run.job["ImportedUsers"] + run.job["SkippedUsers"] + run.job["FailedUsers"]
    assert processed == 30 < len(users)
    assert len(importer.log_lines(run.job_id)) == processed


def test_a_role_cognito_cannot_assume_fails_the_whole_job(
    importer: Importer, sandbox: Sandbox
) -> None:
    iam = sandbox.client("iam")
    arn = iam.create_role(RoleName="not-for-cognito", AssumeRolePolicyDocument=(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    ))["Role"]["Arn"]  # fmt: skip
    job = importer.cognito.create_user_import_job(
        JobName="bad-role", UserPoolId=importer.info.user_pool_id, CloudWatchLogsRoleArn=arn
    )["UserImportJob"]
    from .helpers import upload

    upload(job["PreSignedUrl"], cognito_csv(importer.header(), [user("x")]))
    importer.start(job["JobId"])
    run = importer.wait(job["JobId"])
    assert run.job["Status"] == "Failed"
    assert "could not assume the CloudWatch Logs role" in run.job["CompletionMessage"]
    assert importer.users() == {}


COGNITO_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "cognito-idp.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})  # fmt: skip


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: list[str], resource: str = "arn:aws:logs:*:*:log-group:/aws/cognito/*",
          effect: str = "Allow") -> dict[str, Any]:  # fmt: skip
    return {"Effect": effect, "Action": actions, "Resource": resource}


LOGS_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams",
                "logs:PutLogEvents"]  # fmt: skip


def role_with(sandbox: Sandbox, *, inline: str | None = None, attach: tuple[str, ...] = ()) -> str:
    """A role Cognito may assume, with an inline policy and attached managed policies."""
    iam = sandbox.client("iam")
    name = f"cognito-logs-{uuid.uuid4().hex[:12]}"
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=COGNITO_TRUST)["Role"]["Arn"])
    if inline is not None:
        iam.put_role_policy(RoleName=name, PolicyName="logs", PolicyDocument=inline)
    for policy_arn in attach:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return arn


def managed_policy(sandbox: Sandbox, document: str) -> str:
    iam = sandbox.client("iam")
    name = f"cognito-logs-{uuid.uuid4().hex[:12]}"
    return str(iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]["Arn"])


def run_with_role(importer: Importer, role_arn: str) -> str:
    """Import one user with the given CloudWatch Logs role; the job's final status."""
    other = Importer(
        importer.cognito, importer.logs, replace(importer.info, logs_role_arn=role_arn)
    )
    run = other.run([user(f"u{uuid.uuid4().hex[:8]}")])
    return f"{run.job['Status']}: {run.job.get('CompletionMessage', '')}"


def test_a_role_whose_logs_permissions_come_from_an_attached_managed_policy_imports(
    importer: Importer, sandbox: Sandbox
) -> None:
    attached = managed_policy(sandbox, policy(allow(LOGS_ACTIONS)))
    assert run_with_role(importer, role_with(sandbox, attach=(attached,))).startswith("Succeeded")


def test_a_managed_policy_counts_by_its_default_version(
    importer: Importer, sandbox: Sandbox
) -> None:
    iam = sandbox.client("iam")
    attached = managed_policy(sandbox, policy(allow(LOGS_ACTIONS)))
    iam.create_policy_version(PolicyArn=attached, SetAsDefault=True,
                              PolicyDocument=policy(allow(["s3:GetObject"], "*")))  # fmt: skip
    role = role_with(sandbox, attach=(attached,))
    assert run_with_role(importer, role).startswith("Failed: Amazon Cognito could not assume")
    iam.set_default_policy_version(PolicyArn=attached, VersionId="v1")
    assert run_with_role(importer, role).startswith("Succeeded")


def test_the_aws_managed_cloudwatch_logs_full_access_policy_attaches_and_lets_a_job_log(
    importer: Importer, sandbox: Sandbox
) -> None:
    full = "arn:aws:iam::aws:policy/CloudWatchLogsFullAccess"
    assert run_with_role(importer, role_with(sandbox, attach=(full,))).startswith("Succeeded")
    # Its document is honoured, not its name: a managed policy without logs rights fails.
    s3_only = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    assert run_with_role(importer, role_with(sandbox, attach=(s3_only,))).startswith("Failed")


@pytest.mark.parametrize(
    "inline",
    [
        policy(allow(LOGS_ACTIONS, "arn:aws:logs:*:*:log-group:/other/*")),  # another group
        policy(allow(["logs:Describe*", "logs:Get*"], "*")),  # read only
        policy(allow(["logs:*"], "*"), allow(["logs:PutLogEvents"], "*", effect="Deny")),
        policy({"Effect": "Allow", "NotAction": "logs:*", "Resource": "*"}),
    ],
    ids=["other-group", "read-only", "explicit-deny", "not-action"],
)
def test_a_role_without_the_logs_rights_on_the_pools_group_fails_the_job(
    importer: Importer, sandbox: Sandbox, inline: str
) -> None:
    assert run_with_role(importer, role_with(sandbox, inline=inline)).startswith("Failed")


def test_a_deny_in_an_attached_policy_overrides_an_inline_allow(
    importer: Importer, sandbox: Sandbox
) -> None:
    deny = managed_policy(sandbox, policy(allow(["logs:*"], "*", effect="Deny")))
    role = role_with(sandbox, inline=policy(allow(LOGS_ACTIONS)), attach=(deny,))
    assert run_with_role(importer, role).startswith("Failed")
