"""The local Cognito sandbox: moto's HTTP server plus csvimport's import-job API.

One WSGI app serves everything on one port:
- ``/_sandbox/upload/...``: the presigned-URL target of import jobs (an S3 stand-in);
- ``/_sandbox/...``: a small JSON control API for tests (settings, faults, clock, the
  password-reset messages the sandbox "sent");
- everything else: moto, with the Cognito and Logs handlers swapped for csvimport's.
"""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import moto.cognitoidp.urls
import moto.logs.urls
from moto.core.config import default_user_config
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.logs.models import logs_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wsgi import get_input_stream

from . import responses
from . import settings as S
from .jobs import Clock, JobRunner, JobStore
from .lambdas import SPEC_KEY as FUNCTIONS_KEY
from .lambdas import parse_functions
from .logindex import index_of
from .responses import SandboxCognitoResponse, SandboxLogsResponse
from .settings import Faults, SandboxSettings

StartResponse = Callable[..., Any]
SANDBOX_ACCESS_KEY = "testing"  # moto maps any key to its default account 123456789012
LOGS_ROLE_NAME = "csvimport-sandbox-cognito-logs"
LOGS_ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "cognito-idp.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}  # fmt: skip
LOGS_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                   "logs:DescribeLogStreams", "logs:PutLogEvents"],
        "Resource": "arn:aws:logs:*:*:log-group:/aws/cognito/*",
    }],
}  # fmt: skip
SPEC_EXTRA_KEY = "x-csvimport"  # sandbox-only options inside a pool spec


@dataclass(frozen=True)
class PoolInfo:
    """What a client needs to use a sandbox pool (the first line `csvimport sandbox` prints)."""

    endpoint_url: str
    region: str
    user_pool_id: str
    user_pool_name: str
    logs_role_arn: str
    user_pool_client_id: str

    def to_json(self) -> dict[str, str]:
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "user_pool_id": self.user_pool_id,
            "user_pool_name": self.user_pool_name,
            "logs_role_arn": self.logs_role_arn,
            "user_pool_client_id": self.user_pool_client_id,
        }


def load_pool_spec(path: str | Path) -> dict[str, Any]:
    """Read a pool spec: CreateUserPool's parameters as JSON, plus an optional x-csvimport key."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"pool spec {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"pool spec {path} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict) or "PoolName" not in spec:
        raise ValueError(f"pool spec {path} must be a JSON object with at least PoolName")
    try:
        sandbox_options(spec)
    except ValueError as exc:
        raise ValueError(f"pool spec {path}: {exc}") from None
    return spec


def sandbox_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's x-csvimport object, checked; ValueError naming the accepted form."""
    extra = spec.get(SPEC_EXTRA_KEY) or {}
    known = {"password_hash_import": bool, "client": dict, FUNCTIONS_KEY: dict}
    if not isinstance(extra, dict) or any(
        key not in known or not isinstance(value, known[key]) for key, value in extra.items()
    ):
        raise ValueError(
            f'"{SPEC_EXTRA_KEY}" must be an object with optional keys '
            '"password_hash_import" (true/false), "client" (CreateUserPoolClient parameters) '
            f'and "{FUNCTIONS_KEY}" (local handlers of Lambda ARNs)'
        )
    parse_functions(extra.get(FUNCTIONS_KEY, {}))
    return extra


def _install_handlers() -> None:
    """Point moto's URL tables at csvimport's handlers (before the first request), and
    have moto's IAM know AWS's managed policies (it leaves them out unless configured):
    a CloudWatch Logs role may be given e.g. CloudWatchLogsFullAccess."""
    moto.cognitoidp.urls.url_paths["{0}/$"] = SandboxCognitoResponse.dispatch
    moto.logs.urls.url_paths["{0}/$"] = SandboxLogsResponse.dispatch
    default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True


def _s3_error(status: str, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()
    return status, [("Content-Type", "application/xml")], body


class SandboxApp:
    """The WSGI app: upload target, control API and fault injection in front of moto."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.pool_creator: Callable[[dict[str, Any]], PoolInfo] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/upload/"):
            status, headers, body = self._upload(environ, path)
        elif path.startswith("/_sandbox/"):
            status, headers, body = self._control(environ, path)
        else:
            fault = self._api_fault(environ)
            if fault is None:
                return self.moto(environ, start_response)  # type: ignore[no-any-return]
            status, headers, body = fault
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    # -- faults on the AWS APIs -------------------------------------------------------
    def _api_fault(
        self, environ: dict[str, Any]
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target:
            return None
        operation = target.rsplit(".", 1)[-1]
        is_logs = target.startswith("Logs_")
        faults = self.store.faults
        if faults.should_throttle(operation):
            code = "ThrottlingException" if is_logs else "TooManyRequestsException"
            body = json.dumps({"__type": code, "message": "Rate exceeded"}).encode()
            return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")], body
        if faults.should_fail_server(operation):
            code = "ServiceUnavailableException" if is_logs else "InternalErrorException"
            body = json.dumps({"__type": code, "message": "Internal server error"}).encode()
            return (
                "500 Internal Server Error",
                [("Content-Type", "application/x-amz-json-1.1")],
                body,
            )
        return None

    # -- the presigned URL ------------------------------------------------------------
    def _upload(
        self, environ: dict[str, Any], path: str
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        if environ.get("REQUEST_METHOD") != "PUT":
            return _s3_error(
                "405 Method Not Allowed",
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )
        parts = path.split("/")  # ['', '_sandbox', 'upload', region, pool, job]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        job_id = parts[-1] if len(parts) == 6 else ""
        store = self.store
        with store.lock:
            job = store.jobs.get(job_id)
            expected = (
                store.signature(job_id, query.get("X-Amz-Expires", ""),
                                query.get("X-Amz-Security-Token", ""))
                if job else None
            )  # fmt: skip
            signed = f"host;{S.SSE_HEADER}" == query.get("X-Amz-SignedHeaders")
            if (
                job is None or not signed or expected != query.get("X-Amz-Signature")
                or query.get("X-Amz-Security-Token") != job.url_token
                or environ.get("HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION") != S.SSE_VALUE
            ):  # fmt: skip
                return _s3_error(
                    "403 Forbidden",
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.",
                )
            if store.clock.now() > job.url_expires:
                return _s3_error("403 Forbidden", "AccessDenied", "Request has expired")
            if job.status != "Created":
                return _s3_error("403 Forbidden", "AccessDenied", "Access Denied")
        if "CONTENT_LENGTH" not in environ or environ["CONTENT_LENGTH"] == "":
            return _s3_error("411 Length Required", "MissingContentLength",
                             "You must provide the Content-Length HTTP header.")  # fmt: skip
        length = int(environ["CONTENT_LENGTH"])
        body = get_input_stream(environ).read(length)
        if store.faults.take_upload_refusal():
            return _s3_error("403 Forbidden", "AccessDenied", "Access Denied")
        if store.faults.take_upload_failure():
            return _s3_error("503 Slow Down", "SlowDown", "Please reduce your request rate.")
        if len(body) != length:
            return _s3_error("400 Bad Request", "IncompleteBody",
                             "You did not provide the number of bytes specified by the "
                             "Content-Length HTTP header.")  # fmt: skip
        store.accept_upload(job_id, body)
        return "200 OK", [("ETag", f'"{uuid.uuid4().hex}"')], b""

    # -- the control API --------------------------------------------------------------
    def _control(
        self, environ: dict[str, Any], path: str
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        payload: dict[str, Any] = {}
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = get_input_stream(environ).read(length) if length else b""
            try:
                payload = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return self._json("400 Bad Request", {"error": "body must be JSON"})
        store = self.store
        try:
            if path == "/_sandbox/state" and method == "GET":
                return self._json("200 OK", {
                    "settings": store.settings.to_json(),
                    "faults": store.faults.to_json(),
                    "throttled": store.faults.throttled(),
                    "calls": store.faults.calls(),
                    "clock_offset": store.clock.offset,
                })  # fmt: skip
            if path == "/_sandbox/jobs" and method == "GET":
                with store.lock:
                    jobs = [{"JobId": j.job_id, "JobName": j.job_name, "UserPoolId": j.pool_id,
                             "Status": j.status, "Uploads": j.uploads}
                            for j in store.jobs.values()]  # fmt: skip
                return self._json("200 OK", {"jobs": jobs})
            if path == "/_sandbox/messages" and method in ("GET", "DELETE"):
                # The recovery codes the sandbox "sent" (never logged): a JSON list,
                # optionally filtered by ?UserPoolId=...&Username=...; DELETE clears them.
                ledger = responses.recovery_ledger(store)
                if method == "DELETE":
                    ledger.clear()
                    return self._json("200 OK", [])
                query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
                return self._json(
                    "200 OK", ledger.select(query.get("UserPoolId"), query.get("Username"))
                )
            if path == "/_sandbox/settings" and method == "POST":
                store.settings.update(**payload)
                return self._json("200 OK", store.settings.to_json())
            if path == "/_sandbox/faults" and method == "POST":
                store.faults.update(**payload)
                return self._json("200 OK", store.faults.to_json())
            if path == "/_sandbox/clock" and method == "POST":
                store.clock.advance(float(payload.get("advance_seconds", 0)))
                return self._json("200 OK", {"clock_offset": store.clock.offset})
            if path == "/_sandbox/pools" and method == "POST" and self.pool_creator:
                return self._json("200 OK", self.pool_creator(payload).to_json())
        except (ValueError, TypeError) as exc:
            return self._json("400 Bad Request", {"error": str(exc)})
        return self._json("404 Not Found", {"error": f"no sandbox control route {method} {path}"})

    @staticmethod
    def _json(status: str, body: Any) -> tuple[str, list[tuple[str, str]], bytes]:
        return status, [("Content-Type", "application/json")], json.dumps(body).encode()


class QuietRequestHandler(MotoRequestHandler):
    """Logs no requests: a request line would carry the presigned URL's secret token."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class Sandbox:
    """A local Cognito + CloudWatch Logs endpoint with import jobs, on 127.0.0.1.

    Only one Sandbox may run per process: moto's backends are process-global.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        settings: SandboxSettings | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.settings = settings or SandboxSettings()
        self.faults = faults or Faults()
        self.clock = Clock()
        self._tmp = tempfile.TemporaryDirectory(prefix="csvimport-sandbox-")
        self.store = JobStore(
            settings=self.settings, faults=self.faults, clock=self.clock,
            upload_dir=Path(self._tmp.name),
        )  # fmt: skip
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._runner: JobRunner | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> Sandbox:
        """Start serving in background threads; returns self."""
        if responses.STORE is not None:
            raise RuntimeError("another csvimport sandbox is already running in this process")
        _install_handlers()
        responses.STORE = self.store
        app = SandboxApp(self.store)
        app.pool_creator = self.create_pool
        try:
            self._server = make_server(
                self.host, self.port, app, threaded=True, request_handler=QuietRequestHandler
            )
        except SystemExit:  # werkzeug exits the process when the port is taken
            responses.STORE = None
            raise OSError(f"cannot listen on {self.host}:{self.port}: the port is in use") from None
        self.store.base_url = self.endpoint_url
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="csvimport-sandbox-http", daemon=True
        )
        self._thread.start()
        self._runner = JobRunner(self.store)
        self._runner.start()
        return self

    def stop(self) -> None:
        """Stop serving and forget every pool, user and job."""
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.store.functions.close()  # the local Lambda functions' processes
        if responses.STORE is self.store:
            responses.STORE = None
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()  # moto's own "reset everything" (its /moto-api/reset)
        self._tmp.cleanup()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: Any) -> Any:
        """A boto3 client for this sandbox (fake credentials, this region)."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=SANDBOX_ACCESS_KEY,
            aws_secret_access_key=SANDBOX_ACCESS_KEY,
        )

    def log_events_examined(self, group: str, stream: str) -> int:
        """How many events of a log stream reads have looked at so far (see ``logindex``):
        tests compare it before and after a page to measure what the page cost."""
        streams = logs_backends[DEFAULT_ACCOUNT_ID][self.region].groups[group].streams
        return index_of(streams[stream]).examined

    def logs_role_arn(self) -> str:
        """The CloudWatch Logs role import jobs may use, created on first call."""
        iam = self.client("iam")
        try:
            return str(iam.get_role(RoleName=LOGS_ROLE_NAME)["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(
                RoleName=LOGS_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(LOGS_ROLE_TRUST)
            )
            iam.put_role_policy(
                RoleName=LOGS_ROLE_NAME,
                PolicyName="cognito-import-logs",
                PolicyDocument=json.dumps(LOGS_ROLE_POLICY),
            )
            return str(role["Role"]["Arn"])

    def create_pool(self, spec: dict[str, Any]) -> PoolInfo:
        """Create a pool (and an app client) from a pool spec, over the real API."""
        extra = sandbox_options(spec)
        spec = {key: value for key, value in spec.items() if key != SPEC_EXTRA_KEY}
        for function in parse_functions(extra.get(FUNCTIONS_KEY, {})):
            self.store.functions.register(function)
        cognito = self.client("cognito-idp")
        pool = cognito.create_user_pool(**spec)["UserPool"]
        client_spec = extra.get("client") or {
            "ClientName": "csvimport-sandbox-app",
            "ExplicitAuthFlows": [
                "ALLOW_USER_PASSWORD_AUTH",
                "ALLOW_ADMIN_USER_PASSWORD_AUTH",
                "ALLOW_REFRESH_TOKEN_AUTH",
            ],
        }
        app_client = cognito.create_user_pool_client(UserPoolId=pool["Id"], **client_spec)
        if extra.get("password_hash_import", False):
            self.store.hash_import_pools.add(pool["Id"])
        return PoolInfo(
            endpoint_url=self.endpoint_url,
            region=self.region,
            user_pool_id=pool["Id"],
            user_pool_name=pool["Name"],
            logs_role_arn=self.logs_role_arn(),
            user_pool_client_id=app_client["UserPoolClient"]["ClientId"],
        )
