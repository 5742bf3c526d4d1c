"""Fault injection: throttling and server errors on chosen calls, over the control API too."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from csvimport.sandbox import PoolInfo, Sandbox


def no_retry_client(sandbox: Sandbox, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=sandbox.endpoint_url, region_name=sandbox.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )  # fmt: skip


def test_every_nth_call_is_throttled_with_too_many_requests(
    sandbox: Sandbox, pool: PoolInfo
) -> None:
    sandbox.faults.update(throttle_every=3, throttle_operations=["GetCSVHeader"])
    client = no_retry_client(sandbox, "cognito-idp")
    results = []
    for _ in range(6):
        try:
            client.get_csv_header(UserPoolId=pool.user_pool_id)
            results.append("ok")
        except ClientError as exc:
            results.append(exc.response["Error"]["Code"])
    assert results == ["ok", "ok", "TooManyRequestsException"] * 2
    # other operations are untouched
    for _ in range(4):
        client.describe_user_pool(UserPoolId=pool.user_pool_id)
    assert sandbox.faults.throttled() == {"GetCSVHeader": 2}
    sandbox.faults.update(throttle_every=1)  # a change of faults starts the count again
    assert sandbox.faults.throttled() == {}


def test_botocore_retries_ride_out_occasional_throttling(sandbox: Sandbox, pool: PoolInfo) -> None:
    sandbox.faults.update(throttle_every=2)
    client = boto3.client(
        "cognito-idp", endpoint_url=sandbox.endpoint_url, region_name=sandbox.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )  # fmt: skip
    for _ in range(5):
        assert client.get_csv_header(UserPoolId=pool.user_pool_id)["CSVHeader"]


def test_a_throttled_fraction_is_reproducible_from_its_seed(
    sandbox: Sandbox, pool: PoolInfo
) -> None:
    client = no_retry_client(sandbox, "cognito-idp")

    def pattern() -> list[bool]:
        sandbox.faults.update(throttle_fraction=0.5, seed=7)
        hits = []
        for _ in range(20):
            try:
                client.get_csv_header(UserPoolId=pool.user_pool_id)
                hits.append(False)
            except ClientError:
                hits.append(True)
        return hits

    first, second = pattern(), pattern()
    assert first == second
    assert 3 <= sum(first) <= 17


def test_logs_calls_are_throttled_with_throttling_exception(sandbox: Sandbox) -> None:
    sandbox.faults.update(throttle_every=1, throttle_operations=["DescribeLogGroups"])
    with pytest.raises(ClientError) as exc:
        no_retry_client(sandbox, "logs").describe_log_groups()
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"


def test_server_errors_answer_500_internal_error(sandbox: Sandbox, pool: PoolInfo) -> None:
    sandbox.faults.update(server_error_every=1, throttle_operations=["ListUserImportJobs"])
    with pytest.raises(ClientError) as exc:
        no_retry_client(sandbox, "cognito-idp").list_user_import_jobs(
            UserPoolId=pool.user_pool_id, MaxResults=10
        )
    assert exc.value.response["Error"]["Code"] == "InternalErrorException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_the_control_api_sets_faults_settings_and_the_clock_over_http(
    sandbox: Sandbox, pool: PoolInfo
) -> None:
    base = sandbox.endpoint_url + "/_sandbox"
    assert requests.post(f"{base}/faults", json={"throttle_every": 1}, timeout=5).ok
    assert requests.post(f"{base}/settings", json={"job_seconds": 2.5}, timeout=5).ok
    assert requests.post(f"{base}/clock", json={"advance_seconds": 60}, timeout=5).json() == {
        "clock_offset": 60.0
    }
    state = requests.get(f"{base}/state", timeout=5).json()
    assert state["faults"]["throttle_every"] == 1
    assert state["settings"]["job_seconds"] == 2.5
    with pytest.raises(ClientError):
        no_retry_client(sandbox, "cognito-idp").get_csv_header(UserPoolId=pool.user_pool_id)
    assert requests.get(f"{base}/state", timeout=5).json()["throttled"] == {"GetCSVHeader": 1}
    bad = requests.post(f"{base}/faults", json={"no_such_fault": 1}, timeout=5)
    assert bad.status_code == 400 and "no_such_fault" in bad.json()["error"]


def test_the_control_api_creates_pools_from_a_spec(sandbox: Sandbox, cognito: Any) -> None:
    response = requests.post(
        sandbox.endpoint_url + "/_sandbox/pools",
        json={"PoolName": "via-http", "AutoVerifiedAttributes": ["email"]}, timeout=10,
    )  # fmt: skip
    info = response.json()
    assert info["user_pool_name"] == "via-http"
    assert (
        cognito.describe_user_pool(UserPoolId=info["user_pool_id"])["UserPool"]["Name"]
        == "via-http"
    )
