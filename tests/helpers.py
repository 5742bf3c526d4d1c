"""Helpers for tests that drive the sandbox as a Cognito client would."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from csvimport.sandbox import PoolInfo
from csvimport.sources.base import ROW, SOURCE_REASON, SOURCE_RULE, Source

TERMINAL = {"Succeeded", "Failed", "Stopped", "Expired"}


_pool_counter = iter(range(1, 1_000_000))


def pool_spec(**overrides: Any) -> dict[str, Any]:
    """A small pool spec: email auto-verified, case-insensitive, one custom attribute."""
    spec: dict[str, Any] = {
        "PoolName": f"pool-{next(_pool_counter)}",
        "AutoVerifiedAttributes": ["email"],
        "UsernameConfiguration": {"CaseSensitive": False},
        "MfaConfiguration": "OFF",
        "Schema": [
            {"Name": "legacy_id", "AttributeDataType": "String",
             "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "16"}},
            {"Name": "credits", "AttributeDataType": "Number",
             "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "1000"}},
        ],
        "x-csvimport": {"password_hash_import": True},
    }  # fmt: skip
    spec.update(overrides)
    return spec


def cognito_csv(header: list[str], users: list[dict[str, str]]) -> bytes:
    """Write users in Cognito's dialect: every header column, `\\,` for commas, `\\n`."""
    lines = [",".join(header)]
    for user in users:
        lines.append(",".join(user.get(col, "").replace(",", "\\,") for col in header))
    return ("\n".join(lines) + "\n").encode("utf-8")


def user(username: str, **attrs: str) -> dict[str, str]:
    """A row for the default pool: verified email derived from the username."""
    row = {
        "cognito:username": username,
        "email": f"{username.lower()}@example.com",
        "email_verified": "true",
        "cognito:mfa_enabled": "false",
    }
    row.update({k.replace("__", ":"): v for k, v in attrs.items()})
    return row


def upload(url: str, body: bytes, **headers: str) -> requests.Response:
    headers = {"x-amz-server-side-encryption": "aws:kms", **headers}
    return requests.put(url, data=body, headers=headers, timeout=10)


@dataclass
class JobRun:
    job: dict[str, Any]
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return str(self.job["JobId"])


class Importer:
    """Drives a whole import through the API exactly as a Cognito client would."""

    def __init__(self, cognito: Any, logs: Any, info: PoolInfo) -> None:
        self.cognito, self.logs, self.info = cognito, logs, info

    def header(self) -> list[str]:
        return list(self.cognito.get_csv_header(UserPoolId=self.info.user_pool_id)["CSVHeader"])

    def create(self, name: str = "job", algorithm: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "JobName": name,
            "UserPoolId": self.info.user_pool_id,
            "CloudWatchLogsRoleArn": self.info.logs_role_arn,
        }
        if algorithm:
            kwargs["PasswordHashingAlgorithm"] = algorithm
        return dict(self.cognito.create_user_import_job(**kwargs)["UserImportJob"])

    def start(self, job_id: str) -> dict[str, Any]:
        return dict(
            self.cognito.start_user_import_job(UserPoolId=self.info.user_pool_id, JobId=job_id)[
                "UserImportJob"
            ]
        )

    def describe(self, job_id: str) -> dict[str, Any]:
        return dict(
            self.cognito.describe_user_import_job(UserPoolId=self.info.user_pool_id, JobId=job_id)[
                "UserImportJob"
            ]
        )

    def wait(self, job_id: str, timeout: float = 30) -> JobRun:
        run = JobRun(job={})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.describe(job_id)
            run.seen.append(job)
            if job["Status"] in TERMINAL:
                run.job = job
                return run
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not end within {timeout}s: {run.seen[-1]}")

    def run(
        self, users: list[dict[str, str]] | bytes, *, algorithm: str | None = None,
        header: list[str] | None = None, name: str = "job",
    ) -> JobRun:  # fmt: skip
        if isinstance(users, bytes):
            body = users
        else:
            columns = header or self.header() + (["password_hash"] if algorithm else [])
            body = cognito_csv(columns, users)
        job = self.create(name, algorithm)
        assert upload(job["PreSignedUrl"], body).status_code == 200
        self.start(job["JobId"])
        return self.wait(job["JobId"])

    def log_lines(self, job_id: str) -> list[str]:
        group = f"/aws/cognito/userpools/{self.info.user_pool_id}/{self.info.user_pool_name}"
        messages: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": job_id}
        while True:
            page = self.logs.filter_log_events(**kwargs)
            messages += [e["message"] for e in page["events"]]
            if not page.get("nextToken"):
                return messages
            kwargs["nextToken"] = page["nextToken"]

    def users(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"UserPoolId": self.info.user_pool_id, "Limit": 60}
        while True:
            page = self.cognito.list_users(**kwargs)
            for u in page["Users"]:
                out[u["Username"]] = {
                    "status": u["UserStatus"],
                    **{a["Name"]: a["Value"] for a in u["Attributes"]},
                }
            if not page.get("PaginationToken"):
                return out
            kwargs["PaginationToken"] = page["PaginationToken"]


def records(src: Source) -> list[dict[str, Any]]:
    """Every record of every chunk, checking the chunk contract on the way."""
    out: list[dict[str, Any]] = []
    columns = src.columns()
    for chunk in src.chunks():
        # Rows the source garbles (csvimport.sources.csvlayout) come with their rule and reason.
        assert list(chunk.columns) in ([*columns, ROW], [*columns, ROW, SOURCE_RULE, SOURCE_REASON])
        for name in columns:
            assert all(isinstance(value, str) for value in chunk[name]), name
        out.extend(chunk.to_dict("records"))
    return out


# A mapping of legacy columns (LEGACY_COLUMNS) onto the test pools' attributes.
LEGACY_MAPPING = """
[legacy]
id = "id"
updated = "modified"

[options]
phone_region = "US"

[attributes."cognito:username"]
column = "login"

[attributes.email]
column = "email"
transform = "email"

[attributes.email_verified]
column = "verified"
transform = "boolean"
default = "false"

[attributes.phone_number]
column = "mobile"
transform = "phone"

[attributes.name]
join = ["first", "last"]

[attributes."custom:legacy_id"]
column = "id"
"""
LEGACY_COLUMNS = ["id", "login", "email", "verified", "mobile", "first", "last", "modified"]


def build_run(
    cognito: Any, info: PoolInfo, directory: Path, *, users: int = 5, max_rows: int = 500_000,
    extra: tuple[str, ...] = (),
) -> Path:  # fmt: skip
    """A run directory for the pool with ``users`` valid legacy users (user1, user2, ...)
    and then the ``extra`` legacy CSV lines, built by csvimport's own build."""
    from csvimport.build import BuildOptions, build
    from csvimport.pool import read_pool
    from csvimport.sources.base import SourceSpec

    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "legacy.csv"
    lines = [",".join(LEGACY_COLUMNS)]
    lines += [f"{n},user{n},user{n}@example.com,y,,First,Last {n},2024-01-01"
              for n in range(1, users + 1)]  # fmt: skip
    lines += extra
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = directory / "mapping.toml"
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    run_dir = directory / "run"
    build(BuildOptions(SourceSpec(str(source)), mapping, run_dir, max_rows=max_rows),
          read_pool(cognito, info.user_pool_id))  # fmt: skip
    return run_dir


@contextmanager
def answering(status: int, body: bytes, content_type: str) -> Iterator[str]:
    """A local HTTP server answering every POST with the same answer; yields its URL.
    Stands for whatever may sit at an --endpoint-url that is not AWS."""

    class Same(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Same)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# Values a sign-in may bring: quotes, LIKE wildcards, SQL and parameter syntax, non-ASCII,
# a line break; each beside a near miss that a LIKE, a case- or accent-insensitive or a
# space-padding comparison would also find.
HOSTILE = [
    "o'brien\"q@x.com",
    "100%@x.com",
    "a_b@x.com",
    "zoë@exämple.com",
    "line\nbreak@x.com",
    "' OR '1'='1",
    ":value %(value)s ? $1",
    "back\\slash@x.com",
    "😀@x.com",
]
NEAR_MISSES = ["100x@x.com", "aXb@x.com", "zoe@example.com", "ZOË@exämple.com", "a_b@x.com "]


def lookup_people() -> list[dict[str, str]]:
    """Users for lookup tests: each hostile value once, the near misses, one email twice."""
    emails = [*HOSTILE, *NEAR_MISSES, "twice@x.com", "twice@x.com"]
    return [{"email": email, "name": f"User {n}"} for n, email in enumerate(emails, 1)]
