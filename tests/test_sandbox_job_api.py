"""The import-job API of the sandbox: header, create/describe/list/start/stop, status machine."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from csvimport.sandbox import PoolInfo, Sandbox
from csvimport.sandbox.settings import STANDARD_HEADER

from .helpers import Importer, cognito_csv, upload, user


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_csv_header_lists_standard_then_custom_then_mfa_and_username(importer: Importer) -> None:
    assert importer.header() == [
        *STANDARD_HEADER, "custom:legacy_id", "custom:credits",
        "cognito:mfa_enabled", "cognito:username",
    ]  # fmt: skip


def test_csv_header_of_a_pool_without_schema_is_the_documented_default(
    cognito: Any, sandbox: Sandbox
) -> None:
    info = sandbox.create_pool({"PoolName": "plain", "AutoVerifiedAttributes": ["email"]})
    header = cognito.get_csv_header(UserPoolId=info.user_pool_id)["CSVHeader"]
    assert ",".join(header) == (
        "name,given_name,family_name,middle_name,nickname,preferred_username,profile,picture,"
        "website,email,email_verified,gender,birthdate,zoneinfo,locale,phone_number,"
        "phone_number_verified,address,updated_at,cognito:mfa_enabled,cognito:username"
    )


def test_describe_user_pool_keeps_standard_attributes_next_to_a_custom_schema(
    cognito: Any, pool: PoolInfo
) -> None:
    attrs = cognito.describe_user_pool(UserPoolId=pool.user_pool_id)["UserPool"]["SchemaAttributes"]
    names = [a["Name"] for a in attrs]
    assert {"email", "phone_number", "birthdate", "custom:legacy_id", "custom:credits"} <= set(
        names
    )
    assert names.index("custom:legacy_id") > names.index("updated_at")


def test_unknown_pool_is_resource_not_found(cognito: Any) -> None:
    with pytest.raises(ClientError) as exc:
        cognito.get_csv_header(UserPoolId="us-east-1_doesnotexist")
    assert error_code(exc) == "ResourceNotFoundException"


def test_create_returns_a_created_job_with_cognitos_fields(
    importer: Importer, pool: PoolInfo
) -> None:
    job = importer.create("run-1 chunk-0001")
    assert re.fullmatch(r"import-[0-9a-zA-Z]{10}", job["JobId"])
    assert job["Status"] == "Created"
    assert job["JobName"] == "run-1 chunk-0001"
    assert job["UserPoolId"] == pool.user_pool_id
    assert job["CloudWatchLogsRoleArn"] == pool.logs_role_arn
    assert (job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"]) == (0, 0, 0)
    assert job["PreSignedUrl"].startswith(pool.endpoint_url + "/")
    assert "X-Amz-SignedHeaders=host%3Bx-amz-server-side-encryption" in job["PreSignedUrl"]
    assert "X-Amz-Expires=900" in job["PreSignedUrl"]
    assert "StartDate" not in job and "CompletionDate" not in job
    assert importer.describe(job["JobId"]) == job


def test_create_accepts_a_password_hashing_algorithm(importer: Importer) -> None:
    job = importer.create(algorithm="BCRYPT")
    assert job["PasswordHashingAlgorithm"] == "BCRYPT"


def test_create_with_hashing_on_an_ineligible_pool_is_operation_not_enabled(
    make_pool: Any, importer_for: Any
) -> None:
    info = make_pool(**{"x-csvimport": {}})
    with pytest.raises(ClientError) as exc:
        importer_for(info).create(algorithm="SCRYPT")
    assert error_code(exc) == "OperationNotEnabledException"


@pytest.mark.parametrize("name", ["bad/name", "x" * 129])
def test_create_refuses_a_job_name_outside_cognitos_pattern(importer: Importer, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        importer.create(name)
    assert error_code(exc) == "InvalidParameterException"


def test_list_is_newest_first_and_paginates(
    importer: Importer, cognito: Any, pool: PoolInfo
) -> None:
    ids = [importer.create(f"job-{i}")["JobId"] for i in range(5)]
    seen: list[str] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool.user_pool_id, "MaxResults": 2}
    pages = 0
    while True:
        page = cognito.list_user_import_jobs(**kwargs)
        pages += 1
        seen += [j["JobId"] for j in page["UserImportJobs"]]
        if "PaginationToken" not in page:
            break
        kwargs["PaginationToken"] = page["PaginationToken"]
    assert seen == list(reversed(ids))
    assert pages == 3


def test_list_refuses_more_than_60_results(cognito: Any, pool: PoolInfo) -> None:
    with pytest.raises(ClientError) as exc:
        cognito.list_user_import_jobs(UserPoolId=pool.user_pool_id, MaxResults=61)
    assert error_code(exc) == "InvalidParameterException"


def test_start_without_upload_is_precondition_not_met(importer: Importer) -> None:
    job = importer.create()
    with pytest.raises(ClientError) as exc:
        importer.start(job["JobId"])
    assert error_code(exc) == "PreconditionNotMetException"
    assert exc.value.response["Error"]["Message"] == f"No csv file was uploaded for {job['JobId']}"


def test_a_job_goes_pending_in_progress_succeeded_with_growing_counters(
    importer: Importer, sandbox: Sandbox
) -> None:
    sandbox.settings.update(job_seconds=1.5, pending_seconds=0.2)
    users = [user(f"user{i}") for i in range(30)]
    job = importer.create()
    upload(job["PreSignedUrl"], importer_csv(importer, users))
    started = importer.start(job["JobId"])
    assert started["Status"] == "Pending"
    assert "StartDate" in started
    run = importer.wait(job["JobId"])
    statuses = [j["Status"] for j in run.seen]
    assert statuses[0] == "Pending" and "InProgress" in statuses and statuses[-1] == "Succeeded"
    partial = [j["ImportedUsers"] for j in run.seen if j["Status"] == "InProgress"]
    assert any(0 < n < 30 for n in partial), partial
    assert partial == sorted(partial)
    assert run.job["ImportedUsers"] == 30
    assert run.job["CompletionMessage"] == "Import Job Completed Successfully."
    assert run.job["StartDate"] <= run.job["CompletionDate"]


def importer_csv(importer: Importer, users: list[dict[str, str]]) -> bytes:
    return cognito_csv(importer.header(), users)


def test_only_one_job_is_active_per_account(
    importer: Importer, make_pool: Any, importer_for: Any, sandbox: Sandbox
) -> None:
    sandbox.settings.update(job_seconds=2.0)
    first = importer.create("first")
    upload(first["PreSignedUrl"], importer_csv(importer, [user("a")]))
    importer.start(first["JobId"])
    other = importer_for(make_pool())  # another pool of the same account
    second = other.create("second")
    upload(second["PreSignedUrl"], importer_csv(other, [user("b")]))
    with pytest.raises(ClientError) as exc:
        other.start(second["JobId"])
    assert error_code(exc) == "PreconditionNotMetException"
    assert "already active" in exc.value.response["Error"]["Message"]
    assert importer.wait(first["JobId"]).job["Status"] == "Succeeded"
    other.start(second["JobId"])
    assert other.wait(second["JobId"]).job["Status"] == "Succeeded"


def test_stop_a_running_job_then_it_cannot_be_restarted(
    importer: Importer, cognito: Any, pool: PoolInfo, sandbox: Sandbox
) -> None:
    sandbox.settings.update(job_seconds=5.0)
    job = importer.create()
    upload(job["PreSignedUrl"], importer_csv(importer, [user(f"u{i}") for i in range(100)]))
    importer.start(job["JobId"])
    stopping = cognito.stop_user_import_job(UserPoolId=pool.user_pool_id, JobId=job["JobId"])
    assert stopping["UserImportJob"]["Status"] == "Stopping"
    run = importer.wait(job["JobId"])
    assert run.job["Status"] == "Stopped"
    assert run.job["CompletionMessage"] == "The Import Job was stopped by the developer."
    assert run.job["ImportedUsers"] < 100
    with pytest.raises(ClientError) as exc:
        importer.start(job["JobId"])
    assert error_code(exc) == "InvalidParameterException"


def test_a_finished_job_can_be_neither_started_nor_stopped(
    importer: Importer, cognito: Any, pool: PoolInfo
) -> None:
    run = importer.run([user("solo")])
    assert run.job["Status"] == "Succeeded"
    with pytest.raises(ClientError) as started:
        importer.start(run.job_id)
    with pytest.raises(ClientError) as stopped:
        cognito.stop_user_import_job(UserPoolId=pool.user_pool_id, JobId=run.job_id)
    assert error_code(started) == error_code(stopped) == "InvalidParameterException"


def test_a_job_not_started_within_a_day_expires_and_cannot_start(
    importer: Importer, sandbox: Sandbox
) -> None:
    job = importer.create()
    upload(job["PreSignedUrl"], importer_csv(importer, [user("late")]))
    sandbox.clock.advance(24 * 3600 + 1)
    described = importer.describe(job["JobId"])
    assert described["Status"] == "Expired"
    assert described["CompletionMessage"] == "The user import job has expired."
    with pytest.raises(ClientError) as exc:
        importer.start(job["JobId"])
    assert error_code(exc) == "InvalidParameterException"


def test_unknown_job_is_resource_not_found(importer: Importer) -> None:
    with pytest.raises(ClientError) as exc:
        importer.describe("import-0000000000")
    assert error_code(exc) == "ResourceNotFoundException"


def test_after_the_clock_moves_a_day_new_jobs_run_and_every_date_follows_the_clock(
    importer: Importer, sandbox: Sandbox, logs: Any
) -> None:
    sandbox.clock.advance(24 * 3600 + 60)
    run = importer.run([user("tomorrow")])
    assert run.job["Status"] == "Succeeded", run.job
    now = datetime.fromtimestamp(sandbox.clock.now(), tz=UTC)
    dates = [run.job["CreationDate"], run.job["StartDate"], run.job["CompletionDate"]]
    assert all(abs((date - now).total_seconds()) < 60 for date in dates), dates
    assert dates == sorted(dates)
    listed = importer.cognito.list_user_import_jobs(UserPoolId=importer.info.user_pool_id,
                                                    MaxResults=10)["UserImportJobs"]  # fmt: skip
    assert [j["Status"] for j in listed] == ["Succeeded"]
    # What the job wrote is stamped by the same clock: the log line (not dropped as "too
    # new" by CloudWatch's window) and the imported user.
    group = f"/aws/cognito/userpools/{importer.info.user_pool_id}/{importer.info.user_pool_name}"
    [event] = logs.get_log_events(logGroupName=group, logStreamName=f"{run.job_id}/job")["events"]
    for millis in (event["timestamp"], event["ingestionTime"]):
        assert abs(millis / 1000 - now.timestamp()) < 60
    created = importer.cognito.admin_get_user(UserPoolId=importer.info.user_pool_id,
                                              Username="tomorrow")["UserCreateDate"]  # fmt: skip
    assert abs((created - now).total_seconds()) < 60


def test_a_job_expires_a_day_after_its_creation_on_the_sandbox_clock(
    importer: Importer, sandbox: Sandbox
) -> None:
    sandbox.clock.advance(3 * 24 * 3600)
    job = importer.create()
    sandbox.clock.advance(24 * 3600 - 60)
    assert importer.describe(job["JobId"])["Status"] == "Created"
    sandbox.clock.advance(120)
    expired = importer.describe(job["JobId"])
    assert expired["Status"] == "Expired"
    assert expired["CompletionDate"] > expired["CreationDate"] + timedelta(days=1)
