"""AwsOptions: explicit values first, then the AWS environment; clients built from it."""

from __future__ import annotations

import pytest

from csvimport.aws import AwsOptions
from csvimport.errors import ConfigError


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, AwsOptions()),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, AwsOptions("eu-west-1")),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, AwsOptions("us-west-2")),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-west-2"}, AwsOptions("us-west-2")),
        ({"AWS_PROFILE": "work"}, AwsOptions(profile="work")),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
            AwsOptions(endpoint_url="http://127.0.0.1:5000"),
        ),
        ({"AWS_MAX_ATTEMPTS": "1"}, AwsOptions(retries=0)),
    ],
)
def test_resolve_falls_back_to_the_environment(
    environ: dict[str, str], expected: AwsOptions
) -> None:
    assert AwsOptions.resolve(environ=environ) == expected


def test_resolve_prefers_explicit_values_to_the_environment() -> None:
    environ = {"AWS_REGION": "eu-west-1", "AWS_PROFILE": "env", "AWS_ENDPOINT_URL": "http://env"}
    options = AwsOptions.resolve(
        region="ap-south-1", profile="flag", endpoint_url="http://flag", environ=environ
    )
    assert options == AwsOptions("ap-south-1", "flag", "http://flag")


@pytest.mark.parametrize("value", ["0", "-1", "five"])
def test_resolve_rejects_a_bad_aws_max_attempts(value: str) -> None:
    with pytest.raises(ConfigError, match="AWS_MAX_ATTEMPTS"):
        AwsOptions.resolve(environ={"AWS_MAX_ATTEMPTS": value})


def test_client_uses_the_endpoint_region_retries_and_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)  # boto3 reads it on its own
    client = AwsOptions("eu-west-1", endpoint_url="http://127.0.0.1:9").client("cognito-idp")
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.retries["total_max_attempts"] == 6  # the first try + 5 retries
    assert client.meta.config.connect_timeout == 10
    assert client.meta.config.read_timeout == 60
