"""How csvimport reaches AWS: one options object, from which sessions and clients are built.

The command line builds an :class:`AwsOptions` once from its flags and the environment
and passes the clients it makes down to the library, so tests and the sandbox only change
``endpoint_url``. Credentials never pass through here: boto3 finds them itself, and
nothing in this module logs or stores them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from csvimport import retry
from csvimport.errors import ServiceError

CONNECT_TIMEOUT_SECONDS = 10
# Long enough for a slow DescribeUserImportJob or a busy sandbox, short enough to notice
# a hung endpoint.
READ_TIMEOUT_SECONDS = 60


def _refuse_a_non_aws_answer(*, http_response: Any, model: Any, **_: Any) -> None:
    """A botocore ``after-call`` handler for JSON-protocol services: a 2xx answer whose body
    is not JSON did not come from AWS (a captive portal, a proxy's page, a web server at
    the --endpoint-url); botocore would hand on an empty result."""
    if not 200 <= http_response.status_code < 300 or not http_response.content:
        return
    try:
        json.loads(http_response.content)
    except ValueError:
        kind = http_response.headers.get("content-type") or "no content type"
        raise ServiceError(
            f"{model.name}: {http_response.url.split('?')[0]} answered HTTP "
            f"{http_response.status_code} with {len(http_response.content):,} bytes of "
            f"{kind}, not an AWS answer",
            hint=NOT_AWS_HINT,
        ) from None


NOT_AWS_HINT = (
    "Check --endpoint-url (or AWS_ENDPOINT_URL) and any proxy between this machine and AWS "
    "(HTTPS_PROXY, a captive portal): the address must be the AWS endpoint or a csvimport "
    "sandbox."
)


@dataclass(frozen=True)
class AwsOptions:
    """Where and as whom to call AWS; None leaves the choice to boto3's own configuration.

    ``retries`` is how many times a failed call is retried after the first try, by
    botocore's standard retry mode (throttling, 5xx answers and connection errors, with
    exponential backoff); csvimport retries nothing on top (``csvimport.retry``).
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    retries: int = retry.DEFAULT_MAX_ATTEMPTS - 1

    @classmethod
    def resolve(
        cls,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        retries: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> AwsOptions:
        """Fill what was not given from the environment (``os.environ`` by default).

        Region falls back to AWS_REGION, then AWS_DEFAULT_REGION; profile to AWS_PROFILE;
        endpoint_url to AWS_ENDPOINT_URL; retries to AWS_MAX_ATTEMPTS minus one (that
        variable counts the first try, as everywhere in AWS's SDKs), then 5
        (``csvimport.retry.DEFAULT_MAX_ATTEMPTS`` attempts in all).
        Empty values count as unset.
        """
        env = os.environ if environ is None else environ
        if retries is None:
            retries = retry.max_attempts_from(env) - 1
        return cls(
            region=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            profile=profile or env.get("AWS_PROFILE") or None,
            endpoint_url=endpoint_url or env.get("AWS_ENDPOINT_URL") or None,
            retries=retries,
        )

    def session(self) -> boto3.Session:
        """Return a new boto3 session for this profile and region."""
        return boto3.Session(profile_name=self.profile, region_name=self.region)

    def client(self, service_name: str) -> Any:
        """Return a boto3 client for ``service_name`` with csvimport's retries and timeouts."""
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS
        ).merge(retry.botocore_config(self.retries + 1))
        client = self.session().client(
            service_name,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            config=config,
        )
        retry.install(client)
        service = client.meta.service_model.service_id.hyphenize()
        if client.meta.service_model.protocol == "json":
            client.meta.events.register(f"after-call.{service}", _refuse_a_non_aws_answer)
        return client
