"""`csvimport migration-package`: the Lambda zip runs the handler alone, the same bytes each
time; the CloudFormation template passes cfn-lint; the trigger script keeps the pool's settings.

The dependencies are installed by pip for the Lambda platform once into pytest's cache
folder, keyed by the requirement set (csvimport.migrate.package.dependency_folder), so only
the first run on a machine (and every CI run, on a fresh clone) pays for pip; the
``pip_index`` test runs the whole pip path into an empty cache every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from passlib.hash import md5_crypt

from csvimport.build.builder import BuildOptions, build
from csvimport.build.sources.base import SourceSpec
from csvimport.migrate.package import (
    AMAZON_LINUX_2_GLIBC,
    FUNCTION_TIMEOUT_SECONDS,
    HANDLER,
    LAMBDA_RUNTIME,
    TEMPLATE_NAME,
    TRIGGER_SCRIPT_NAME,
    UNZIPPED_LIMIT,
    ZIP_NAME,
    ZIP_TIMESTAMP,
    Arch,
    dependency_folder,
    function_requirements,
    runtime_sdk,
    template,
    trigger_filter,
)
from csvimport.pool import read_pool
from csvimport.sandbox import Sandbox

from .helpers import LEGACY_COLUMNS, LEGACY_MAPPING, build_run, cli_env, csvimport, pool_spec

PASSWORD = "correct horse battery"
MAPPING = LEGACY_MAPPING + '\n[attributes.password_hash]\ncolumn = "pw"\n'
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# Runs the packaged handler as Lambda does: the task root, then the runtime's own packages
# (the AWS SDK), then the standard library; `python -I -S` adds no site-packages, no
# PYTHONPATH and no current folder. Prints the answer, or the exception's type on failure.
RUNNER = """
import json, sys
task, runtime, event_file = sys.argv[1:4]
sys.path[:0] = [task, runtime]
class Context:
    function_name = "csvimport-user-migration"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:csvimport-user-migration"
    memory_limit_in_mb = 1024
    aws_request_id = "6f1d2c1e-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/csvimport-user-migration"
    log_stream_name = "2026/12/02/[$LATEST]0123456789abcdef"
    def get_remaining_time_in_millis(self):
        return 5000
from csvimport.migrate.handler import handler
outside = sorted({m.__file__ for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and "-packages/" in m.__file__
                  and not m.__file__.startswith((task + "/", runtime + "/"))})
event = json.load(open(event_file))
try:
    answer = handler(event, Context())
except Exception as exc:
    print(json.dumps({"raised": type(exc).__name__, "outside": outside}))
else:
    print(json.dumps({"answer": answer, "outside": outside}))
"""


@dataclass(frozen=True)
class Packaged:
    run_dir: Path
    out: Path
    result: dict[str, Any]
    user_pool_id: str
    cache: Path

    @property
    def zip_path(self) -> Path:
        return self.out / ZIP_NAME


@pytest.fixture(scope="session")
def dependency_cache(request: pytest.FixtureRequest) -> Path:
    """Installed dependency folders, kept between test runs (pytest's cache folder)."""
    return Path(request.config.cache.mkdir("lambda-dependencies"))


def legacy_database(path: Path) -> None:
    """A legacy SQLite database: user1 with an md5-crypt hash made by libpass (the
    reference implementation), user2 with a wrong-format hash."""
    columns = [*LEGACY_COLUMNS, "pw"]
    with sqlite3.connect(path) as conn:
        conn.execute(f"create table users ({', '.join(c + ' text' for c in columns)})")
        conn.execute("create unique index users_login on users (login)")
        conn.executemany(
            f"insert into users values ({', '.join('?' * len(columns))})",
            [
                ("1", "user1", "user1@example.com", "y", "", "Ada", "Lovelace", "2024-01-01",
                 md5_crypt.hash(PASSWORD)),
                ("2", "user2", "user2@example.com", "y", "", "Alan", "Turing", "2024-01-02",
                 md5_crypt.hash("another one")),
            ],
        )  # fmt: skip


def package(run_dir: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return csvimport(cli_env(), "migration-package", str(run_dir), "--out", str(out),
                     "--dependency-cache", str(cache), "--compress-level", "1", "--json",
                     *extra)  # fmt: skip


@pytest.fixture(scope="module")
def packaged(
    sandbox: Sandbox, dependency_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Packaged:
    """One run built from a SQLite legacy database, packaged by the command line."""
    base = tmp_path_factory.mktemp("package")
    info = sandbox.create_pool(pool_spec())
    db = base / "legacy.db"
    legacy_database(db)
    mapping = base / "mapping.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    run_dir = base / "run"
    build(BuildOptions(SourceSpec(f"sqlite:///{db}", table="users"), mapping, run_dir),
          read_pool(sandbox.client("cognito-idp"), info.user_pool_id))  # fmt: skip
    out = base / "out"
    done = package(run_dir, out, dependency_cache)
    assert done.returncode == 0, done.stderr
    return Packaged(run_dir, out, json.loads(done.stdout), info.user_pool_id, dependency_cache)


@pytest.fixture(scope="module")
def unpacked(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The zip unpacked into an empty folder, beside a folder standing for the runtime's
    own packages (the AWS SDK, which the zip leaves to the runtime)."""
    base = tmp_path_factory.mktemp("lambda")
    task = base / "task"
    task.mkdir()
    assert not any(task.iterdir())
    with zipfile.ZipFile(packaged.zip_path) as archive:
        archive.extractall(task)
    runtime_sdk(Path(packaged.result["dependencies"]), base / "runtime")
    yield base


def invoke(base: Path, event: dict[str, Any]) -> dict[str, Any]:
    event_file = base / "event.json"
    event_file.write_text(json.dumps(event), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUNNER, str(base / "task"), str(base / "runtime"),
         str(event_file)],
        capture_output=True, text=True, timeout=120, cwd=base, env={"PATH": os.defpath},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def sign_in_event(pool_id: str, username: str, password: str) -> dict[str, Any]:
    """A UserMigration_Authentication event as Cognito sends it (developer guide's shape)."""
    return {
        "version": "1",
        "triggerSource": "UserMigration_Authentication",
        "region": "us-east-1",
        "userPoolId": pool_id,
        "userName": username,
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client1"},
        "request": {"password": password, "validationData": None, "clientMetadata": None},
        "response": {
            "userAttributes": None,
            "finalUserStatus": None,
            "messageAction": None,
            "desiredDeliveryMediums": None,
            "forceAliasCreation": None,
            "enableSMSMFA": None,
        },
    }


def test_the_packaged_handler_migrates_a_user_with_the_right_password_from_the_zip_alone(
    packaged: Packaged, unpacked: Path
) -> None:
    result = invoke(unpacked, sign_in_event(packaged.user_pool_id, "user1", PASSWORD))
    assert result["outside"] == []  # nothing came from this machine's site-packages
    response = result["answer"]["response"]
    assert response["finalUserStatus"] == "CONFIRMED"
    assert response["messageAction"] == "SUPPRESS"
    attributes = response["userAttributes"]
    assert attributes["email"] == "user1@example.com"
    assert attributes["name"] == "Ada Lovelace"
    assert attributes["custom:legacy_id"] == "1"


def test_the_packaged_handler_raises_for_a_wrong_password_or_an_unknown_user(
    packaged: Packaged, unpacked: Path
) -> None:
    wrong = invoke(unpacked, sign_in_event(packaged.user_pool_id, "user1", "not it"))
    assert wrong == {"raised": "MigrationRefused", "outside": []}
    unknown = invoke(unpacked, sign_in_event(packaged.user_pool_id, "nobody", PASSWORD))
    assert unknown == {"raised": "MigrationRefused", "outside": []}


def test_the_zip_holds_the_package_its_config_and_dependencies_but_not_the_runtime_sdk(
    packaged: Packaged,
) -> None:
    with zipfile.ZipFile(packaged.zip_path) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {"csvimport", "migration", "pandas", "pyarrow", "numpy", "sqlalchemy"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer"}  # the runtime provides the SDK
    assert {"migration/mapping.toml", "migration/pool.json", "migration/settings.json"} <= set(
        names
    )
    assert "csvimport/migrate/handler.py" in names
    assert not [n for n in names if n.startswith("csvimport/sandbox/")]
    assert not [n for n in names if "/tests/" in n or n.endswith(".pyi")]
    # the modules a cold start imports come compiled, for a read-only task root
    assert "pandas/__pycache__/__init__.cpython-311.pyc" in names
    assert packaged.result["compiled_modules"] > 100
    # the database driver of another backend stays out (the source is SQLite)
    assert not tops & {"psycopg", "psycopg_binary", "pymysql"}
    assert sum(info.file_size for info in infos) == packaged.result["unzipped_bytes"]
    assert packaged.result["unzipped_bytes"] < UNZIPPED_LIMIT


def test_the_zip_is_deterministic_sorted_dated_1980_and_readable(packaged: Packaged) -> None:
    with zipfile.ZipFile(packaged.zip_path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {ZIP_TIMESTAMP}
    assert {stat.S_IMODE(i.external_attr >> 16) for i in infos} == {0o644}
    # no lookup file in a database run: the zip is not private
    assert stat.S_IMODE(packaged.zip_path.stat().st_mode) == 0o644
    assert not packaged.result["holds_lookup_file"]


def test_a_second_package_of_the_same_run_is_the_same_bytes(
    packaged: Packaged, tmp_path: Path
) -> None:
    again = package(packaged.run_dir, tmp_path / "again", packaged.cache)
    assert again.returncode == 0, again.stderr
    first = hashlib.sha256(packaged.zip_path.read_bytes()).hexdigest()
    second = hashlib.sha256((tmp_path / "again" / ZIP_NAME).read_bytes()).hexdigest()
    assert first == second == packaged.result["sha256"]
    assert (tmp_path / "again" / TEMPLATE_NAME).read_bytes() == (
        packaged.out / TEMPLATE_NAME
    ).read_bytes()


def test_the_command_writes_the_template_the_script_and_the_requirements(
    packaged: Packaged,
) -> None:
    written = json.loads((packaged.out / TEMPLATE_NAME).read_text())
    assert written == template(packaged.user_pool_id, Arch.X86_64)
    assert written["Parameters"]["UserPoolId"]["Default"] == packaged.user_pool_id
    script = packaged.out / TRIGGER_SCRIPT_NAME
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert packaged.user_pool_id in script.read_text()
    pins = (packaged.out / "migration-requirements.txt").read_text().splitlines()
    assert any(pin.startswith("pandas==") for pin in pins)
    assert packaged.result["s3_key"] == f"migration-function-{packaged.result['sha256'][:16]}.zip"


@pytest.mark.parametrize("arch", list(Arch))
def test_the_template_passes_cfn_lint_with_zero_findings(arch: Arch, tmp_path: Path) -> None:
    path = tmp_path / TEMPLATE_NAME
    path.write_text(json.dumps(template("us-east-1_AbCdEf123", arch), indent=2))
    done = subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_template_gives_the_function_5_seconds_and_its_role_only_its_own_log_group() -> None:
    t = template("us-east-1_AbCdEf123", Arch.ARM64)
    function = t["Resources"]["Function"]["Properties"]
    assert function["Runtime"] == LAMBDA_RUNTIME == "python3.11"
    assert function["Handler"] == HANDLER == "csvimport.migrate.handler.handler"
    assert function["Timeout"] == FUNCTION_TIMEOUT_SECONDS <= 5
    assert function["Architectures"] == ["arm64"]
    assert function["Code"] == {"S3Bucket": {"Ref": "CodeS3Bucket"},
                                "S3Key": {"Ref": "CodeS3Key"}}  # fmt: skip
    policies = t["Resources"]["ExecutionRole"]["Properties"]["Policies"]
    logs = policies[0]["PolicyDocument"]["Statement"]
    assert logs == [{"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                     "Resource": {"Fn::GetAtt": ["LogGroup", "Arn"]}}]  # fmt: skip
    # the secret, its key and the VPC only under their conditions
    assert [p["Fn::If"][0] for p in policies[1:]] == ["HasSecret", "HasSecretKey", "InVpc"]
    secret = policies[1]["Fn::If"][1]["PolicyDocument"]["Statement"][0]
    assert (secret["Action"], secret["Resource"]) == (
        "secretsmanager:GetSecretValue", {"Ref": "LegacyDbSecretArn"})  # fmt: skip
    assert function["VpcConfig"]["Fn::If"][0] == "InVpc"
    permission = t["Resources"]["CognitoInvokePermission"]["Properties"]
    assert permission["Principal"] == "cognito-idp.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert "userpool/${UserPoolId}" in permission["SourceArn"]["Fn::Sub"]


def test_the_trigger_request_sets_user_migration_and_keeps_every_other_setting(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cognito = sandbox.client("cognito-idp")
    pre_sign_up = "arn:aws:lambda:us-east-1:123456789012:function:pre-sign-up"
    info = sandbox.create_pool(pool_spec(
        LambdaConfig={"PreSignUp": pre_sign_up},
        EmailVerificationSubject="Your code",
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
    ))  # fmt: skip
    before = cognito.describe_user_pool(UserPoolId=info.user_pool_id)["UserPool"]
    described = tmp_path / "pool.json"
    described.write_text(json.dumps({"UserPool": before}, default=str))
    function_arn = "arn:aws:lambda:us-east-1:123456789012:function:csvimport-user-migration"
    done = subprocess.run(["jq", "--arg", "arn", function_arn, trigger_filter(), str(described)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    request = json.loads(done.stdout)
    assert request["UserPoolId"] == info.user_pool_id
    cognito.update_user_pool(**request)
    after = cognito.describe_user_pool(UserPoolId=info.user_pool_id)["UserPool"]
    assert after["LambdaConfig"] == {"PreSignUp": pre_sign_up, "UserMigration": function_arn}
    for kept in ("EmailVerificationSubject", "AdminCreateUserConfig", "AutoVerifiedAttributes",
                 "MfaConfiguration", "Policies"):  # fmt: skip
        assert after.get(kept) == before.get(kept), kept


def test_a_file_runs_zip_holds_the_deferred_users_lookup_file_and_is_private(
    sandbox: Sandbox, dependency_cache: Path, tmp_path: Path
) -> None:
    """A CSV run: the function looks deferred users up in the lookup file inside the zip
    (password hashes), so the zip is 0600; the user signs in from the zip alone."""
    info = sandbox.create_pool(pool_spec())
    rows = (f"1,user1,user1@example.com,y,,Ada,Lovelace,2024-01-01,{md5_crypt.hash(PASSWORD)}",
            f"2,user2,user2@example.com,y,,Alan,Turing,2024-01-02,{md5_crypt.hash('other')}")  # fmt: skip
    run_dir = build_run(sandbox.client("cognito-idp"), info, tmp_path / "csv", users=0,
                        columns=[*LEGACY_COLUMNS, "pw"], mapping_text=MAPPING, extra=rows)  # fmt: skip
    # the build's list of users left to the function (h14-plan writes it with
    # --password-fallback migrate): user1 only
    (run_dir / "deferred.csv").write_text(
        "source_row,legacy_id,username,scheme,reason\n1,1,user1,md5_crypt,not importable\n"
    )
    done = package(run_dir, tmp_path / "out", dependency_cache)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    zip_path = tmp_path / "out" / ZIP_NAME
    assert result["holds_lookup_file"] is True
    assert stat.S_IMODE(zip_path.stat().st_mode) == 0o600
    assert "password hashes" in done.stderr
    base = tmp_path / "lambda"
    (base / "task").mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        lookup = archive.read("migration/lookup.csv").decode()
        archive.extractall(base / "task")
    assert "user1" in lookup and "user2" not in lookup  # only the deferred users
    runtime_sdk(Path(result["dependencies"]), base / "runtime")
    answer = invoke(base, sign_in_event(info.user_pool_id, "user1", PASSWORD))
    assert answer["answer"]["response"]["finalUserStatus"] == "CONFIRMED"
    assert invoke(base, sign_in_event(info.user_pool_id, "user2", "other"))["raised"]


def test_the_command_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    done = csvimport(cli_env(), "migration-package", str(tmp_path / "nothing"),
                     "--out", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "csvimport build" in done.stderr


@pytest.mark.pip_index
def test_pip_installs_only_wheels_that_load_on_amazon_linux_2(tmp_path: Path) -> None:
    """The whole pip path, into an empty cache: every compiled wheel is for glibc 2.26 or
    older (Amazon Linux 2, the python3.11 runtime's OS) and x86_64."""
    folder = dependency_folder(function_requirements("postgresql"), Arch.X86_64,
                               cache=tmp_path / "cache")  # fmt: skip
    wheels = {wheel.parent.name: [line.split(":", 1)[1].strip().rsplit("-", 1)[1]
                                  for line in wheel.read_text().splitlines()
                                  if line.startswith("Tag:")]
              for wheel in folder.glob("*.dist-info/WHEEL")}  # fmt: skip
    assert len(wheels) > 20
    for wheel, platforms in wheels.items():
        assert platforms and any(loads_on_amazon_linux_2(p) for p in platforms), (wheel, platforms)
    assert (folder / "psycopg_binary").is_dir() and (folder / "pandas").is_dir()


def loads_on_amazon_linux_2(platform: str) -> bool:
    """Whether a wheel's platform tag loads on Amazon Linux 2 x86_64 (glibc 2.26)."""
    if platform == "any":
        return True
    match = re.fullmatch(r"manylinux(1|2010|2014|_2_(\d+))_x86_64", platform)
    return match is not None and int(match.group(2) or 17) <= AMAZON_LINUX_2_GLIBC[1]
