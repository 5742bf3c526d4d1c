"""AwsOptions: explicit values first, then the AWS environment; clients built from it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from csvimport.aws import AwsOptions
from csvimport.errors import ConfigError, ServiceError

from .helpers import answering


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


def sends_until_it_gives_up(client: Any, exc: type[Exception]) -> int:
    """How many times the client really sent the request before raising ``exc``."""
    sent: list[str] = []
    client.meta.events.register("before-send", lambda **kwargs: sent.append("sent"))
    with pytest.raises(exc):
        client.get_csv_header(UserPoolId="us-east-1_x")
    return len(sent)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any credentials (nothing here checks them), and no profile of the developer's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.mark.usefixtures("credentials")
def test_an_endpoint_that_never_answered_gets_two_tries_not_every_retry() -> None:
    closed = AwsOptions("us-east-1", endpoint_url="http://127.0.0.1:9", retries=5)
    client = closed.client("cognito-idp")
    assert sends_until_it_gives_up(client, EndpointConnectionError) == 2  # not 1 + 5 retries


NOT_FOUND = b'{"__type": "ResourceNotFoundException", "message": "no such pool"}'
AWS_JSON = "application/x-amz-json-1.1"


@pytest.mark.usefixtures("credentials")
def test_an_endpoint_that_answered_once_gets_every_retry_when_the_connection_drops() -> None:
    with answering(400, NOT_FOUND, AWS_JSON) as url:
        client = AwsOptions("us-east-1", endpoint_url=url, retries=3).client("cognito-idp")
        with pytest.raises(ClientError):  # an answer, if not a happy one
            client.get_csv_header(UserPoolId="us-east-1_x")
    # The connection drops after the endpoint answered: a blip, every retry applies.
    assert sends_until_it_gives_up(client, EndpointConnectionError) == 4  # 1 + 3 retries


@pytest.mark.usefixtures("credentials")
def test_a_web_page_at_the_endpoint_is_a_service_error_not_an_empty_answer() -> None:
    page = b"<html><body>Sign in to the guest network</body></html>"
    with answering(200, page, "text/html") as url:
        client = AwsOptions("us-east-1", endpoint_url=url, retries=0).client("cognito-idp")
        with pytest.raises(ServiceError) as caught:
            client.describe_user_pool(UserPoolId="us-east-1_x")
    assert caught.value.message == (
        f"DescribeUserPool: {url}/ answered HTTP 200 with {len(page)} bytes of text/html, "
        "not an AWS answer"
    )
    assert caught.value.exit_status == 3
    assert caught.value.hint and "proxy" in caught.value.hint
