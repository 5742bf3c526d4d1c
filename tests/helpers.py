"""Helpers the tests share: driving the sandbox as a Cognito client would, building and
importing runs, running the command line, and sample data. Test modules import from here,
never from one another."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import http.server
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import argon2
import bcrypt
import boto3
import requests
from botocore.config import Config
from hypothesis import strategies as st
from passlib.hash import md5_crypt, pbkdf2_sha256

from csvimport import cli
from csvimport.build.builder import BuildOptions, build
from csvimport.build.choices import PasswordFallback
from csvimport.build.sources.base import ROW, SOURCE_REASON, SOURCE_RULE, Source, SourceSpec
from csvimport.outcomes import (
    AdoptionPoint,
    JobSummary,
    Outcome,
    Password,
    PasswordState,
    ReasonGroup,
    Reconciliation,
    RunReport,
    UserResult,
)
from csvimport.passwords.recovery import RecoveryPolicy
from csvimport.pool import Attribute, PoolSnapshot, read_pool
from csvimport.report.logs import LogWait, raw_path
from csvimport.report.reconcile import Reconciler
from csvimport.report.render import CLIP_CHARS, TABLE_ROWS
from csvimport.report.results import write_results
from csvimport.retry import Backoff
from csvimport.run.jobs import Importer as RunImporter
from csvimport.run.jobs import Pacing, StartOptions
from csvimport.run.journal import Journal
from csvimport.rundir import RunDir
from csvimport.sandbox import PoolInfo, Sandbox
from csvimport.sandbox.settings import STANDARD_HEADER, TRAILING_HEADER

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
        # Rows the source garbles (csvimport.build.sources.csvlayout) come with their rule and reason.
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
ODD_PHONES = ["(415) 555-{:04d}", "+1 415-555-{:04d}", "+44 20 7946 {:04d}", "12"]


def messy_legacy_csv(path: Path, users: int) -> None:
    """Deterministic legacy users (LEGACY_COLUMNS) with the mess real data has: odd phone
    formats, unverified or invalid emails, usernames that differ only in case."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(LEGACY_COLUMNS)
        for n in range(users):
            login = f"User{n - 1}" if n % 97 == 96 else f"user{n}"  # a case-variant duplicate
            out.writerow([
                n + 1, login, f"{login.lower()}@example.com" if n % 101 else f"{login} at home",
                "n" if n % 33 == 0 else "y", ODD_PHONES[n % 4].format(n) if n % 3 else "",
                f"First{n}", f"Last, {n}", f"2024-01-{1 + n % 28:02d}",
            ])  # fmt: skip


def build_run(
    cognito: Any, info: PoolInfo, directory: Path, *, users: int = 5, max_rows: int = 500_000,
    extra: tuple[str, ...] = (), columns: list[str] = LEGACY_COLUMNS,
    mapping_text: str = LEGACY_MAPPING,
) -> Path:  # fmt: skip
    """A run directory for the pool with ``users`` valid legacy users (user1, user2, ...)
    and then the ``extra`` legacy CSV lines, built by csvimport's own build. With other
    ``columns`` and ``mapping_text``, give ``users=0`` and the rows as ``extra``."""
    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec
    from csvimport.pool import read_pool

    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "legacy.csv"
    lines = [",".join(columns)]
    lines += [f"{n},user{n},user{n}@example.com,y,,First,Last {n},2024-01-01"
              for n in range(1, users + 1)]  # fmt: skip
    lines += extra
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = directory / "mapping.toml"
    mapping.write_text(mapping_text, encoding="utf-8")
    run_dir = directory / "run"
    build(BuildOptions(SourceSpec(str(source)), mapping, run_dir, max_rows=max_rows),
          read_pool(cognito, info.user_pool_id))  # fmt: skip
    return run_dir


def build_rows(
    work: Path, columns: Sequence[str], rows: Sequence[Sequence[str]], mapping_text: str,
    snapshot: Any,
) -> tuple[Path, Any]:  # fmt: skip
    """Build ``rows`` (a CSV with ``columns``) with ``mapping_text`` for the pool
    ``snapshot``, offline, into ``work/run``: (the run directory, the BuildResult)."""
    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec

    source = work / "legacy.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([columns, *rows])
    mapping = work / "mapping.toml"
    mapping.write_text(mapping_text, encoding="utf-8")
    run = work / "run"
    return run, build(BuildOptions(SourceSpec(str(source)), mapping, run), snapshot)


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


# --- runs: imported and reported, with the library --------------------------------------


FAST = Pacing(poll_first=0.05, poll_max=0.2, other_job_poll=0.1, stop_timeout=10,
              backoff=Backoff(base=0.01, cap=0.05, rng=random.Random(7)))  # fmt: skip


# id, login, email, verified, mobile, first, last, modified
MESSY = (
    "101,norm,norm@example.com,n,,Norm,Unverified,2024-01-01",  # rejected: auto-verified
    "102,USER1,user1-again@example.com,y,,Dup,Case,2024-01-01",  # duplicate of user1
    "103,=cmd|'/C_calc'!A0,evil@example.com,y,,Eve,Il,2024-01-01",  # a formula for a name
)


def run_all(run_dir: Path, cognito: Any, pool: PoolInfo, **options: Any) -> None:
    run = RunDir.open(run_dir)
    RunImporter(run, Journal.load(run), cognito, pacing=FAST).start(
        StartOptions(pool.logs_role_arn, **options)
    )


def reconcile(
    run_dir: Path, cognito: Any, logs: Any, **wait: Any
) -> tuple[RunReport, list[UserResult], list[str]]:
    """The run's report, results and notes as `csvimport report` makes them (against the
    live pool's recovery settings)."""
    run = RunDir.open(run_dir)
    notes: list[str] = []
    reconciler = Reconciler(run, Journal.load(run), logs,
                            recovery=RecoveryPolicy.read(cognito, run.user_pool_id),
                            on_note=notes.append,
                            wait=LogWait(**{"seconds": 10, "first_pause": 0.1, **wait}))  # fmt: skip
    report, results = reconciler.build()
    return report, results, notes


def reported_run(pool: PoolInfo, cognito: Any, logs: Any, tmp_path: Path) -> tuple[Path, str, Path]:
    """A 3-user run imported and reconciled: its directory, its one job and the job's log
    as the report keeps it (logs/JOB.jsonl)."""
    run_dir = build_run(cognito, pool, tmp_path, users=3)
    run_all(run_dir, cognito, pool)
    reconcile(run_dir, cognito, logs)
    [attempt] = Journal.load(RunDir.open(run_dir)).attempts
    assert attempt.job_id is not None
    return run_dir, attempt.job_id, raw_path(run_dir, attempt.job_id)


# The legacy mapping with the follow-ups the CSV cannot carry: an is_active flag and roles.
FOLLOWUP_COLUMNS = [*LEGACY_COLUMNS, "active", "roles"]
FOLLOWUP_MAPPING = (
    LEGACY_MAPPING.replace(
        'updated = "modified"', 'updated = "modified"\ndisabled = "active"\ndisabled_when = false'
    )
    + """
[groups]
column = "roles"
separator = ","

[groups.names]
admin = "Admins"
staff = "Staff"
guest = ""
"""
)


def followup_line(n: int, active: str, roles: str) -> str:
    """A legacy CSV line of user{n} for FOLLOWUP_COLUMNS."""
    return f'{n},user{n},user{n}@example.com,y,,First,Last {n},2024-01-01,{active},"{roles}"'


def followup_run(cognito: Any, logs: Any, pool: PoolInfo, directory: Path,
                 lines: Sequence[str]) -> RunDir:  # fmt: skip
    """A run of FOLLOWUP_MAPPING's users (``lines``), imported and reported on."""
    run_dir = build_run(cognito, pool, directory, users=0, extra=tuple(lines),
                        columns=FOLLOWUP_COLUMNS, mapping_text=FOLLOWUP_MAPPING)  # fmt: skip
    run_all(run_dir, cognito, pool)
    _, results, _ = reconcile(run_dir, cognito, logs)
    write_results(run_dir, results)
    return RunDir.open(run_dir)


def imported_run(cognito: Any, logs: Any, pool: PoolInfo, directory: Path, users: int) -> RunDir:
    """A run whose users were imported (RESET_REQUIRED) and reported on."""
    run_dir = build_run(cognito, pool, directory, users=users)
    run_all(run_dir, cognito, pool)
    _, results, _ = reconcile(run_dir, cognito, logs)
    write_results(run_dir, results)
    return RunDir.open(run_dir)


# --- the command line, as a user runs it ---------------------------------------------------


# Nothing listens on the discard port, so a connection there is refused at once.
CLOSED_ENDPOINT = "http://127.0.0.1:9"


def cli_env(**overrides: str | None) -> dict[str, str]:
    """An environment with sandbox credentials and none of the developer's AWS settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CSVIMPORT_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        # Never ask an instance metadata service for credentials or a region.
        AWS_EC2_METADATA_DISABLED="true",
        # No retries with backoff against the closed port: fail in well under a second.
        AWS_MAX_ATTEMPTS="1",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def env_for(sandbox: Sandbox, pool: PoolInfo, **overrides: str | None) -> dict[str, str]:
    settings: dict[str, str | None] = {"AWS_ENDPOINT_URL": sandbox.endpoint_url,
                                       "AWS_MAX_ATTEMPTS": "3",
                                       "CSVIMPORT_LOGS_ROLE_ARN": pool.logs_role_arn}  # fmt: skip
    return cli_env(**{**settings, **overrides})


def csvimport(
    env: dict[str, str], *args: str, timeout: float = 120, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``csvimport ARGS`` with exactly the environment ``env``, as a user would.

    In this process by default (``csvimport.cli.main``, the function ``python -m
    csvimport`` calls, with its own stdin, stdout, stderr and environment): starting
    Python and importing pandas, boto3 and pandera cost about 2 seconds a command. With
    ``process=True`` in a new ``python -m csvimport``: for what only a process shows (its
    exit on a signal, the module entry point, a timeout).
    """
    if process:
        return subprocess.run([sys.executable, "-m", "csvimport", *args], capture_output=True,
                              text=True, env=env, timeout=timeout)  # fmt: skip
    return run_in_process(env, args)


_IN_PROCESS = threading.Lock()


def run_in_process(env: dict[str, str], args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``csvimport.cli.main(args)`` with ``env`` as the whole environment, an empty stdin,
    and stdout and stderr captured; its exit status from the SystemExit it ends with."""
    out, err = io.StringIO(), io.StringIO()
    with _IN_PROCESS, _environment(env), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err), _stdin(io.StringIO("")):  # fmt: skip
        try:
            cli.main(list(args))
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return subprocess.CompletedProcess(["csvimport", *args], status, out.getvalue(), err.getvalue())


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _stdin(stream: io.StringIO) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = saved


# --- the sandbox's insides and faults -----------------------------------------------------


def bare_client(sandbox: Sandbox) -> Any:
    """A Cognito client without botocore's retries: only csvimport's own retry layer is
    left between a fault and a crash."""
    return boto3.client(
        "cognito-idp", endpoint_url=sandbox.endpoint_url, region_name=sandbox.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip


def sandbox_jobs(sandbox: Sandbox, pool_id: str) -> list[dict[str, Any]]:
    jobs = requests.get(f"{sandbox.endpoint_url}/_sandbox/jobs", timeout=5).json()["jobs"]
    return [j for j in jobs if j["UserPoolId"] == pool_id]


def messages(sandbox: Sandbox, **query: str) -> list[dict[str, Any]]:
    response = requests.get(f"{sandbox.endpoint_url}/_sandbox/messages", params=query, timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    return body


# A damaged journal.json, and what the refusal names: (content, or None for a change to a
# real journal; the words after "is damaged: ").
DAMAGED_JOURNALS: dict[str, tuple[bytes | None, str]] = {
    "binary-garbage": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage", "it is not JSON"),
    "empty-file": (b"", "it is not JSON"),
    "a-list": (b"[]", "it holds a JSON array, not the journal's object"),
    "an-empty-object": (b"{}", "it lacks version, run_id, user_pool_id, attempts"),
    "a-future-version": (None, "version 7, not 1"),
    "a-version-that-is-true": (None, "version True, not 1"),
    "no-attempts": (None, "it lacks attempts"),
    "attempts-not-a-list": (None, "attempts must be a list"),
    "an-attempt-without-step": (None, "attempt 1 lacks step"),
    "a-counter-that-is-text": (None, "attempt 1: imported must be a whole number, not '3'"),
    "an-unknown-step": (None, "attempt 1: step 'exploded' is not one of creating, created"),
    "an-unknown-chunk": (None, "attempt 1: chunk-0099.csv is not a chunk of this run"),
    "another-pool": (None, "it is for user pool us-east-1_other, this run's is "),
}


def damaged_journal(run_dir: Path, case: str) -> Path:
    """Write a journal with one attempt, then damage it as ``case`` says."""
    run = RunDir.open(run_dir)
    journal = Journal.load(run)
    journal.add(run.chunks[0], f"csvimport-{run.run_id}-chunk-0001-1")
    content, _ = DAMAGED_JOURNALS[case]
    if content is not None:
        journal.path.write_bytes(content)
        return journal.path
    data = json.loads(journal.path.read_text())
    attempt = data["attempts"][0]
    changes = {
        "a-future-version": lambda: data.update(version=7),
        "a-version-that-is-true": lambda: data.update(version=True),
        "no-attempts": lambda: data.pop("attempts"),
        "attempts-not-a-list": lambda: data.update(attempts={"0": attempt}),
        "an-attempt-without-step": lambda: attempt.pop("step"),
        "a-counter-that-is-text": lambda: attempt.update(imported="3"),
        "an-unknown-step": lambda: attempt.update(step="exploded"),
        "an-unknown-chunk": lambda: attempt.update(chunk="chunk-0099.csv"),
        "another-pool": lambda: data.update(user_pool_id="us-east-1_other"),
    }
    changes[case]()
    journal.path.write_text(json.dumps(data))
    return journal.path


# --- passwords -----------------------------------------------------------------------------


PASSWORD = "correct horse battery staple"


def make_hash(algorithm: str, password: str = PASSWORD) -> str:
    secret = password.encode()
    if algorithm == "BCRYPT":
        return bcrypt.hashpw(secret, bcrypt.gensalt(rounds=10)).decode()
    if algorithm == "SCRYPT":
        salt = b"0123456789abcdef"
        digest = hashlib.scrypt(secret, salt=salt, n=16384, r=8, p=1, dklen=32)
        return f"16384$8$1${salt.hex()}${digest.hex()}"
    if algorithm == "ARGON2ID":
        return argon2.PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash(password)
    # libpass (passlib) defines the $pbkdf2-sha256$ form: the reference, not csvimport's code
    return str(pbkdf2_sha256.using(rounds=310_000, salt=b"saltsaltsaltsalt").hash(password))


def sign_in(cognito: Any, pool: PoolInfo, username: str, password: str) -> dict[str, Any]:
    return dict(cognito.initiate_auth(
        ClientId=pool.user_pool_client_id, AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    ))  # fmt: skip


# --- a report full of hostile values --------------------------------------------------------


LONG = "long-" + "ü" * 9_995  # 10,000 characters, no space to break at
HOSTILE = {
    "script": "<script>alert(1)</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "url": "javascript:alert(1)",
    "long": LONG,
    "rtl-override": "\u202eevil",
    "arabic": "مستخدم عربي",
    "hebrew": "משתמש עברי",
}
# Values as the page shows them: long ones cut, and saying so.
SHOWN = {
    name: value
    if len(value) <= CLIP_CHARS
    else f"{value[:CLIP_CHARS]}… ({len(value) - CLIP_CHARS:,} more characters)"
    for name, value in HOSTILE.items()
}
PLAIN = "alice.smith"  # a plain personal value: masked unless show_pii
PLAIN_EMAIL = "alice.smith@example.com"
PLAIN_PHONE = "+14155551212"


def _user(
    row: int,
    outcome: Outcome,
    *,
    hostile: str = "",
    line: int | None = None,
    chunk: str | None = None,
    collided_with_row: int | None = None,
) -> UserResult:
    """A source user; a hostile value, when given, goes into every text field."""
    value = hostile or f"user{row:04d}"
    in_job = outcome in {Outcome.SKIPPED, Outcome.FAILED, Outcome.NOT_PROCESSED}
    return UserResult(
        source_row=row,
        legacy_id=hostile or f"L-{row:05d}",
        username=value,
        outcome=outcome,
        reason=hostile or f"{outcome.value} for a reason",
        rule=hostile or f"rule-{outcome.name.lower()}",
        email=hostile or f"{value}@example.org",
        phone=hostile or f"+4420794{row:05d}",
        job_id=(hostile or "import-job2") if in_job else None,
        chunk=(hostile or "chunk-0002.csv") if in_job else chunk,
        line=line,
        collided_with_row=collided_with_row,
    )


def _job(
    chunk: str,
    job_id: str,
    counters: tuple[int, int, int],
    logged: tuple[int, int, int],
    not_processed: int,
    seconds: float,
) -> JobSummary:
    """A finished job; ``counters`` and ``logged`` are (imported, skipped, failed)."""
    return JobSummary(
        chunk,
        sum(counters) + not_processed,
        job_id,
        f"csvimport-run-{chunk}-1",
        "Succeeded",
        *counters,
        *logged,
        not_processed=not_processed,
        started="2026-11-28T10:00:00Z",
        completed="2026-11-28T10:02:05Z",
        duration_seconds=seconds,
        message="Import Job Completed Successfully.",
    )


def hostile_report(*, attention_extra: int = 0) -> RunReport:
    """A small realistic run: 1,000 source users, 2 jobs (the second's log incomplete),
    reasons, rejects, duplicates, and a hostile value in every text field."""
    values = list(HOSTILE.values())
    hostile = iter(values * 10)
    rejected = [_user(10 + i, Outcome.REJECTED, hostile=next(hostile)) for i in range(12)]
    duplicates = [
        _user(40 + i, Outcome.DUPLICATE, hostile=next(hostile), collided_with_row=7 + i)
        for i in range(3)
    ]
    in_jobs = [Outcome.SKIPPED] * 10 + [Outcome.FAILED] * 13 + [Outcome.NOT_PROCESSED] * 2
    job_users = [
        _user(100 + i, outcome, hostile=next(hostile) if i % 3 == 0 else "", line=i + 1)
        for i, outcome in enumerate(in_jobs)
    ]
    plain = UserResult(
        source_row=99,
        legacy_id="L-00099",
        username=PLAIN,
        outcome=Outcome.FAILED,
        reason=f"Cognito refused {PLAIN_EMAIL}",
        rule="InvalidParameter",
        email=PLAIN_EMAIL,
        phone=PLAIN_PHONE,
        job_id="import-job1",
        chunk="chunk-0001.csv",
        line=42,
        password=Password.NONE,
    )
    job_users[10] = plain  # the first failed user has plain personal values
    attention = rejected + duplicates + job_users
    attention += [_user(2_000 + i, Outcome.FAILED, line=i) for i in range(attention_extra)]
    jobs = [
        _job("chunk-0001.csv", "import-job1", (490, 5, 5), (490, 5, 5), 0, 125.0),
        _job(values[0], values[1], (470, 5, 8), (470, 5, 7), 2, 3_725.0),
    ]
    jobs[1] = replace(
        jobs[1],
        job_name=values[2],
        status=values[4],
        started=values[5],
        completed=values[6],
        message=LONG,
        log_complete=False,
        missing_log_lines=1,
    )

    def group(outcome: Outcome, count: int, value: str, examples: list[UserResult]) -> ReasonGroup:
        return ReasonGroup(outcome, value, count, value, value, value, examples)

    return RunReport(
        run_dir=values[0],
        run_id=values[1],
        user_pool_id=values[4],
        user_pool_name=values[5],
        generated=values[6],
        tool_version=values[2],
        # source rows, rejected, duplicates, written; imported, skipped, failed, not processed
        reconciliation=Reconciliation(1_000, 12, 3, 985, 960, 10, 13, 2, problems=list(values)),
        jobs=jobs,
        job_reasons=[
            group(Outcome.FAILED, 13, values[0], job_users[10:13]),
            group(Outcome.SKIPPED, 10, values[3], job_users[:2]),
            ReasonGroup(
                Outcome.NOT_PROCESSED, "job-stopped", 2, "stopped", "The job stopped.", "", []
            ),
        ],
        reject_reasons=[group(Outcome.REJECTED, 12, v, rejected[:2]) for v in values],
        duplicates=duplicates,
        passwords=PasswordState(imported_hash=900, must_reset=55, cannot_reset=5),
        attention=attention,
        warnings=list(values),
    )


def large_report(source_rows: int = 2_000_000, *, jobs: int = 4) -> RunReport:
    """A run of ``source_rows`` users as ``csvimport report`` hands it to the renderer: the
    totals for all of them, but only the first TABLE_ROWS users needing attention and
    duplicates (RunReport's contract), and five examples a reason.

    15% of the users need attention: 1% rejected, 1.5% duplicates, 5% skipped, 6% failed,
    1.5% not processed; the lists are the same whatever ``source_rows`` says.
    """
    rejected, duplicates = source_rows // 100, source_rows * 15 // 1_000
    skipped, failed, not_processed = (
        source_rows // 20,
        source_rows * 6 // 100,
        source_rows * 15 // 1_000,
    )
    written = source_rows - rejected - duplicates
    imported = written - skipped - failed - not_processed
    cycle = [
        Outcome.REJECTED,
        Outcome.SKIPPED,
        Outcome.FAILED,
        Outcome.FAILED,
        Outcome.NOT_PROCESSED,
    ]
    attention = [
        _user(i * 3 + 1, cycle[i % len(cycle)], line=i + 1, chunk="chunk-0001.csv")
        for i in range(TABLE_ROWS)
    ]  # fmt: skip
    dups = [_user(i * 3 + 2, Outcome.DUPLICATE, collided_with_row=i * 3) for i in range(TABLE_ROWS)]
    per_job = [(imported, skipped, failed, not_processed)[k] // jobs for k in range(4)]
    job_list = [
        _job(f"chunk-{n:04d}.csv", f"import-job{n}", (per_job[0], per_job[1], per_job[2]),
             (per_job[0], per_job[1], per_job[2]), per_job[3], 1_800.0)
        for n in range(1, jobs + 1)
    ]  # fmt: skip

    def group(outcome: Outcome, count: int, rule: str) -> ReasonGroup:
        examples = [u for u in attention if u.outcome is outcome][:5]
        return ReasonGroup(outcome, rule, count, f"{rule} happened", "What it means.",
                           "What to do.", examples)  # fmt: skip

    return RunReport(
        run_dir="/runs/2026-11-28",
        run_id="r-large",
        user_pool_id="eu-west-1_large",
        user_pool_name="customers",
        generated="2026-11-28T12:00:00Z",
        tool_version="0.0-test",
        reconciliation=Reconciliation(
            source_rows, rejected, duplicates, written, imported, skipped, failed, not_processed
        ),  # fmt: skip
        jobs=job_list,
        job_reasons=[
            group(Outcome.FAILED, failed, "InvalidParameterException"),
            group(Outcome.SKIPPED, skipped, "UsernameExistsException"),
            group(Outcome.NOT_PROCESSED, not_processed, "job-stopped"),
        ],
        reject_reasons=[group(Outcome.REJECTED, rejected, "email-format")],
        duplicates=dups,
        passwords=PasswordState(
            imported_hash=imported // 2, must_reset=imported - imported // 2, cannot_reset=0
        ),  # fmt: skip
        attention=attention,
    )


def assert_manifest_holds_every_files_sha256(out: Path) -> None:
    """Every file the build wrote but the manifest has its sha256 there, and it matches."""
    manifest = json.loads((out / "manifest.json").read_text())
    recorded = dict(manifest["files"])
    for chunk in manifest["chunks"]:
        recorded[chunk["file"]] = chunk["sha256"]
        recorded[chunk["map_file"]] = chunk["map_sha256"]
    written = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()
               if p.name != "manifest.json"}  # fmt: skip
    assert written == recorded


# Runs the command line and kills it at a chosen step (see its docstring).
CRASH_AT = Path(__file__).with_name("crash_at.py")


def killed_at(env: dict[str, str], *crash_args: str) -> None:
    """Run ``tests/crash_at.py CRASH_ARGS`` (a command SIGKILLed at a step) and check that
    it really died of the signal."""
    crashed = subprocess.run([sys.executable, str(CRASH_AT), *crash_args], capture_output=True,
                             text=True, env=env, timeout=120)  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr


def offline_snapshot() -> PoolSnapshot:
    """A pool snapshot with the legacy mapping's attributes, to build without the sandbox."""
    return PoolSnapshot(
        user_pool_id="us-east-1_offline", name="offline",
        header=[*STANDARD_HEADER, "custom:legacy_id", *TRAILING_HEADER],
        attributes=[Attribute("email", required=True),
                    Attribute("custom:legacy_id", min_length=1, max_length=64)],
        auto_verified=["email"], case_sensitive=False, mfa="OFF",
    )  # fmt: skip


# Values a sign-in may bring: quotes, LIKE wildcards, SQL and parameter syntax, non-ASCII,
# a line break; each beside a near miss that a LIKE, a case- or accent-insensitive or a
# space-padding comparison would also find.
LOOKUP_HOSTILE = [
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
    emails = [*LOOKUP_HOSTILE, *NEAR_MISSES, "twice@x.com", "twice@x.com"]
    return [{"email": email, "name": f"User {n}"} for n, email in enumerate(emails, 1)]


# Generated legacy users (hypothesis), for the build's properties.
messy_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)
logins = st.one_of(st.sampled_from(["ann", "ANN", "bob", "b ob", "", "zoë", "x" * 130]), messy_text)
emails = st.one_of(
    st.sampled_from(["a@example.com", "A@Example.COM", "bad", "", "c@x"]), messy_text
)
flags = st.sampled_from(["Y", "n", "1", "0", "yes", "TRUE", "maybe", ""])
phones = st.one_of(
    st.sampled_from(["", "(415) 555-2671", "+44 20 7946 0958", "12", "+1"]), messy_text
)
names = st.one_of(st.sampled_from(["Ann", "O'Neil, Jr.", "", "Zoë\u200f"]), messy_text)
dates = st.sampled_from(["", "2020-01-01", "2024-05-01T10:00:00", "soon", "1700000000"])


# Values at every edge of Cognito's CSV dialect and limits, for users the build writes:
# commas (written `\,`), quotes, backslashes inside a value, any script, emoji, combining
# marks, and names that join to exactly the 2,048-character limit (or one past it).
edgy_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(",\\\"' .-é中ü\u0301😀ß")),
        st.characters(categories=["L", "M", "N", "P", "S", "Zs"], exclude_characters="\x85"),
    ),
    max_size=14,
)
good_names = st.one_of(
    edgy_text, st.sampled_from(["O'Neil, Jr.", 'say "hi"', "C:\\dir\\x", "a\\ ,b"])
)
good_logins = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "S"]), min_size=1, max_size=10
)
good_rows = st.tuples(
    st.sampled_from(
        ["", "", "", "", "", "long", "toolong", "dup", "wide", "wider", "endslash"]
    ),  # legacy_line
    good_logins,
    st.sampled_from(["a", "first.last", "x+tag", "o'neil", "UPPER"]),
    st.sampled_from(["Y", "y", "1", "yes", "TRUE"]),
    st.sampled_from(["", "(415) 555-2671", "+44 20 7946 0958", "+1 415 555 0100"]),
    good_names,
    good_names,
    st.sampled_from(["", "2020-01-01", "2024-05-01T10:00:00", "1700000000"]),
)
# A messy legacy user's login, email, verified, mobile, first, last and modified columns.
messy_fields = (logins, emails, flags, phones, names, names, dates)
messy_rows = st.tuples(
    st.sampled_from(["", "long", "id", "space", "nologin", "newline"]), *messy_fields
)
# Mostly users the build writes, then messy ones to be refused.
legacy_rows = st.tuples(
    st.lists(good_rows, min_size=2, max_size=7), st.lists(messy_rows, min_size=1, max_size=6)
).map(lambda parts: parts[0] + parts[1])


def legacy_line(n: int, row: tuple[str, ...]) -> list[object]:
    """The legacy CSV line of generated ``row`` as the ``n``-th user. A login is made unique
    by its number; "long" pads it to the 128-character limit, "toolong" one past it; "wide" makes the joined name exactly 2,048 characters, "wider"
    one more; "endslash" ends the last name with a backslash; "id" gives a legacy id one
    past custom:legacy_id's 16 characters; "space" puts a space in the login, "nologin"
    leaves it empty, "newline" puts a line break in the first name. A good email local
    part gets its own address."""
    shape, login, email, flag, phone, first, last, modified = row
    legacy_id: object = "1" * 17 if shape == "id" else n
    if shape in ("long", "toolong") and login:
        login = (login + "x" * 129)[: 128 + (shape == "toolong") - len(str(n))]
    if shape in ("wide", "wider"):
        first, last = "x" * (1023 + (shape == "wider")), "y" * 1024
    if shape == "space":
        login = f"b {login}"
    if shape == "nologin":
        login = ""
    if shape == "newline":
        first = f"{first}\nx"
    if shape == "endslash":
        last += "\\"
    if "@" not in email and email in {"a", "first.last", "x+tag", "o'neil", "UPPER"}:
        email = f"{email}{n}@example.com"
    return [legacy_id, f"{login}{n}" if login else login, email, flag, phone, first, last, modified]


def legacy_lines(legacy: list[tuple[str, ...]]) -> list[list[object]]:
    """The legacy CSV lines of generated rows; a row of shape "dup" takes the first row's
    login in upper case (the pool is case-insensitive: a duplicate)."""
    lines: list[list[object]] = []
    for n, row in enumerate(legacy, 1):
        line = legacy_line(n, row)
        if row[0] == "dup" and lines:
            line[1] = str(lines[0][1]).upper()
        lines.append(line)
    return lines


def django_hash(password: str) -> str:
    """A Django pbkdf2_sha256 hash of ``password`` (100,000 iterations, salt "djsalt")."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), b"djsalt", 100_000)
    return f"pbkdf2_sha256$100000$djsalt${base64.b64encode(digest).decode()}"


def read_csv(path: Path) -> list[dict[str, str]]:
    """The records of a CSV file with a header."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# A pool and a run for the migration trigger's tests (migration-check, verify).
TRIGGER = "arn:aws:lambda:us-east-1:123456789012:function:csvimport-migration"
PASSWORD_FLOW = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
MD5_CRYPT_HASH = md5_crypt.hash(PASSWORD)  # Cognito cannot import it; csvimport can verify it


def migration_pool(make_pool: Callable[..., PoolInfo], *, trigger: bool = True,
                   flows: list[str] | None = PASSWORD_FLOW, **spec: Any) -> PoolInfo:  # fmt: skip
    """A pool (and the sandbox's one app client, with ``flows``) for a migration."""
    client: dict[str, Any] = {"ClientName": "web"}
    if flows is not None:
        client["ExplicitAuthFlows"] = flows
    extra = {"password_hash_import": True, "client": client}
    lambdas = {"LambdaConfig": {"UserMigration": TRIGGER}} if trigger else {}
    return make_pool(**lambdas, **spec, **{"x-csvimport": extra})


def deferred_run(cognito: Any, pool: PoolInfo, tmp_path: Path, users: int = 3) -> Path:
    """A run built with --password-fallback migrate: two users imported to reset (no hash)
    and ``users`` md5-crypt users legacy0, legacy1, ... deferred (source rows 3, 4, ...)."""
    lines = [f"{n},user{n},user{n}@example.com,y,,First,Last,2024-01-01," for n in (1, 2)]
    lines += [f"{100 + n},legacy{n},legacy{n}@example.com,y,,First,Last,2024-01-01,{MD5_CRYPT_HASH}"
              for n in range(users)]  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    source, mapping = tmp_path / "legacy.csv", tmp_path / "mapping.toml"
    source.write_text("\n".join([",".join([*LEGACY_COLUMNS, "pw"]), *lines]) + "\n")
    mapping.write_text(LEGACY_MAPPING + '\n[attributes.password_hash]\ncolumn = "pw"\n')
    run_dir = tmp_path / "run"
    build(BuildOptions(SourceSpec(str(source)), mapping, run_dir,
                       password_fallback=PasswordFallback.MIGRATE),
          read_pool(cognito, pool.user_pool_id))  # fmt: skip
    return run_dir


def verify_summaries(folder: Path, completed: list[int], *, must_reset: int = 1_000,
                     deferred: int = 200) -> list[AdoptionPoint]:  # fmt: skip
    """Write one verify summary per entry of ``completed`` (completed resets, a day apart),
    as `csvimport verify` writes them, into ``folder``/verify, and read them back as the
    report does."""
    from datetime import UTC, datetime, timedelta

    from csvimport.files import open_private
    from csvimport.report.adoption import SUMMARY_SUFFIX, VERIFY_DIR, read_adoption
    from csvimport.report.verify import VerifyResult

    (folder / VERIFY_DIR).mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    for day, done in enumerate(completed):
        migrated = min(deferred, 10 * day)
        result = VerifyResult(
            written=must_reset, deferred=deferred, at=start + timedelta(days=day),
            states={"present": must_reset, "migrated": migrated, "waiting": deferred - migrated},
            must_reset=must_reset, completed_reset=done, disabled=day,
        )  # fmt: skip
        name = (start + timedelta(days=day)).strftime("%Y%m%dT%H%M%S.%fZ") + SUMMARY_SUFFIX
        with open_private(folder / VERIFY_DIR / name) as f:
            f.write(json.dumps(result.summary_json()))
    points, warnings = read_adoption(folder)
    assert warnings == []
    return points


# --- csvimport assess ------------------------------------------------------------------------


def assess_legacy(path: Path, users: int = 60) -> list[str]:
    """Write legacy users for ``csvimport assess`` (usernames differing only in case, shared
    emails, phones, several hash schemes); return the personal values and hashes no page may
    show as they are."""
    schemes = [bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode(), md5_crypt.hash("pw"),
               pbkdf2_sha256.hash("pw"), "5f4dcc3b5aa765d61d8327deb882cf99", ""]  # fmt: skip
    secret: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "username", "email", "email_verified", "phone", "password_hash"])
        for n in range(users):
            username = f"Customer{n // 2:04d}" if n % 2 else f"customer{n // 2:04d}"
            email = f"{username.lower()}@example.org" if n % 5 else ""
            phone = f"+4420794{n:05d}" if n % 3 else ""
            stored = schemes[n % len(schemes)]
            writer.writerow([n + 1, username, email, "true" if n % 4 else "false", phone, stored])
            secret += [value for value in (username, email, phone, stored) if value]
    return secret
