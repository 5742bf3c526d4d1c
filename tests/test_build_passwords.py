"""Password hashes through build, start and sign-in: users with an importable hash keep
their password, one import job per algorithm; the others must reset, and say why."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from botocore.exceptions import ClientError
from werkzeug.security import generate_password_hash

from csvimport.build.builder import BuildOptions, build
from csvimport.build.sources.base import SourceSpec
from csvimport.errors import RefusedError
from csvimport.outcomes import Outcome, Password
from csvimport.pool import read_pool
from csvimport.report.render import render_report
from csvimport.sandbox import PoolInfo, Sandbox

from .helpers import (
    LEGACY_COLUMNS,
    LEGACY_MAPPING,
    PASSWORD,
    assert_manifest_holds_every_files_sha256,
    cli_env,
    csvimport,
    django_hash,
    make_hash,
    messages,
    read_csv,
    reconcile,
    run_all,
    sign_in,
)

HASH_MAPPING = LEGACY_MAPPING + '\n[attributes.password_hash]\ncolumn = "pw"\n'


# login -> (legacy hash, its chunk's algorithm or None, passwords.csv classification)
USERS = {
    "bcrypt": (make_hash("BCRYPT"), "BCRYPT", "importable"),
    "scrypt": (make_hash("SCRYPT"), "SCRYPT", "importable"),
    "argon": (make_hash("ARGON2ID"), "ARGON2ID", "importable"),
    "pbkdf2": (make_hash("PBKDF2_SHA256"), "PBKDF2_SHA256", "importable"),
    "django": (django_hash(PASSWORD), "PBKDF2_SHA256", "converted"),
    "flask": (generate_password_hash(PASSWORD, method="scrypt:16384:8:1"), "SCRYPT", "converted"),
    "empty": ("", None, "no hash"),
    "md5": (hashlib.md5(PASSWORD.encode()).hexdigest(), None, "unsupported algorithm"),
    "costly": ("$2b$13$" + bcrypt.gensalt(4).decode()[7:] + "a" * 31, None, "out of bounds"),
}


def write_source(directory: Path) -> tuple[Path, Path]:
    source, mapping = directory / "legacy.csv", directory / "mapping.toml"
    with source.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([*LEGACY_COLUMNS, "pw"])
        for n, (login, (value, _, _)) in enumerate(USERS.items(), start=1):
            out.writerow([n, login, f"{login}@example.com", "y", "", "A", "B", "2024-01-01", value])
    mapping.write_text(HASH_MAPPING, encoding="utf-8")
    return source, mapping


def build_hash_run(cognito: Any, pool: PoolInfo, tmp_path: Path, **options: Any) -> Path:
    source, mapping = write_source(tmp_path)
    out = tmp_path / "run"
    build(BuildOptions(SourceSpec(str(source)), mapping, out, **options),
          read_pool(cognito, pool.user_pool_id))  # fmt: skip
    return out


def test_build_puts_each_algorithm_in_its_own_chunks_and_the_rest_in_a_reset_chunk(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_hash_run(cognito, pool, tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    chunks = [(c["file"], c["password_algorithm"], c["rows"]) for c in manifest["chunks"]]
    assert chunks == [
        ("chunk-0001.csv", None, 3), ("chunk-0002.csv", "BCRYPT", 1),
        ("chunk-0003.csv", "SCRYPT", 2), ("chunk-0004.csv", "ARGON2ID", 1),
        ("chunk-0005.csv", "PBKDF2_SHA256", 2),
    ]  # fmt: skip
    assert "password_hash" not in (run / "chunk-0001.csv").read_text().splitlines()[0]
    assert (run / "chunk-0004.csv").read_text().splitlines()[0].endswith(",password_hash")
    assert "\\,t=2\\,p=1$" in (run / "chunk-0004.csv").read_text()  # commas escaped
    passwords = {r["legacy_id"]: r for r in read_csv(run / "passwords.csv")}
    for n, (login, (_, algorithm, status)) in enumerate(USERS.items(), start=1):
        assert passwords[str(n)]["password"] == status, login
        assert passwords[str(n)]["algorithm"] == (algorithm or "")
    assert "cost 13" in passwords["9"]["reason"] and "MD5" in passwords["8"]["reason"]
    assert manifest["passwords"]["counts"] == {
        "converted": 2, "importable": 4, "no hash": 1, "out of bounds": 1,
        "unsupported algorithm": 1,
    }  # fmt: skip
    assert_manifest_holds_every_files_sha256(run)  # passwords.csv and the hash chunks too


def test_hashed_users_sign_in_with_their_password_and_the_others_must_reset(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_hash_run(cognito, pool, tmp_path)
    run_all(run, cognito, pool)
    for login, (_, algorithm, _) in USERS.items():
        if algorithm is None:
            with pytest.raises(ClientError) as exc:
                sign_in(cognito, pool, login, PASSWORD)
            assert exc.value.response["Error"]["Code"] == "PasswordResetRequiredException"
        else:
            assert sign_in(cognito, pool, login, PASSWORD)["AuthenticationResult"], login
    report, results, _ = reconcile(run, cognito, logs)
    assert all(r.outcome is Outcome.IMPORTED for r in results)
    by_login = {r.username: r for r in results}
    for login, (_, algorithm, status) in USERS.items():
        expected = Password.RESET if algorithm is None else Password.HASH
        assert by_login[login].password is expected, login
        assert by_login[login].password_why.startswith(status), login
    assert "cost 13" in by_login["costly"].password_why
    # The report says why the others must reset, one line per reason.
    reasons = report.passwords.reset_reasons
    assert sum(reasons.values()) == report.passwords.must_reset + report.passwords.cannot_reset
    assert any("cost 13" in reason for reason in reasons)
    html = render_report(report)
    assert "Why they must reset" in html and "cost 13" in html


def test_password_hashes_off_sends_everyone_to_reset(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_hash_run(cognito, pool, tmp_path, password_hashes=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["password_algorithm"], c["rows"]) for c in manifest["chunks"]] == [(None, 9)]
    assert "password_hash" not in (run / "chunk-0001.csv").read_text()
    assert {r["password"] for r in read_csv(run / "passwords.csv")} == {"hashes off"}
    assert manifest["passwords"]["hashes"] == "off"


def test_a_build_without_a_hash_column_writes_no_passwords_file(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    source, mapping = write_source(tmp_path)
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    out = tmp_path / "run"
    build(
        BuildOptions(SourceSpec(str(source)), mapping, out), read_pool(cognito, pool.user_pool_id)
    )
    assert not (out / "passwords.csv").exists()
    assert "passwords" not in json.loads((out / "manifest.json").read_text())


def test_a_hash_build_in_worker_processes_writes_the_same_bytes(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    snapshot = read_pool(cognito, pool.user_pool_id)
    source, mapping = write_source(tmp_path)
    lines = source.read_text(encoding="utf-8").splitlines()
    source.write_text("\n".join([lines[0], *(lines[1:] * 30)]) + "\n", encoding="utf-8")
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"run-{workers}"
        options = BuildOptions(SourceSpec(str(source), chunk_rows=20), mapping, out, max_rows=50,
                               workers=workers, parallel_after_rows=0)  # fmt: skip
        build(options, snapshot)
        manifest = json.loads((out / "manifest.json").read_text())
        del manifest["created"]
        runs[workers] = (manifest, {p.name: p.read_bytes() for p in out.iterdir()
                                    if p.name != "manifest.json"})  # fmt: skip
    assert runs[0] == runs[2]


@pytest.mark.parametrize("flag", ["on", "off"])
def test_cli_build_password_hashes_flag_summarises_the_classification(
    cognito: Any, pool: PoolInfo, tmp_path: Path, flag: str
) -> None:
    source, mapping = write_source(tmp_path)
    result = csvimport(cli_env(), "build", str(source), "--mapping", str(mapping), "--out", str(tmp_path / "run"),
                 "--pool-id", pool.user_pool_id, "--endpoint-url", pool.endpoint_url,
                 "--region", pool.region, "--password-hashes", flag, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    if flag == "on":
        assert summary["passwords"]["importable"] == 4
        assert "chunk-0002.csv: 1 users" in result.stderr and "BCRYPT hashes" in result.stderr
    else:
        assert summary["passwords"] == {"hashes off": 9}
    assert "Password hashes of the written users:" in result.stderr


def test_a_user_who_must_reset_does_so_with_forgot_password_and_signs_in(
    sandbox: Sandbox, cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_hash_run(cognito, pool, tmp_path)
    run_all(run, cognito, pool)
    with pytest.raises(ClientError) as exc:
        sign_in(cognito, pool, "md5", PASSWORD)
    assert exc.value.response["Error"]["Code"] == "PasswordResetRequiredException"
    # What the app does on that exception: the forgot-password flow.
    cognito.forgot_password(ClientId=pool.user_pool_client_id, Username="md5")
    [message] = messages(sandbox, UserPoolId=pool.user_pool_id, Username="md5")
    cognito.confirm_forgot_password(ClientId=pool.user_pool_client_id, Username="md5",
                                    ConfirmationCode=message["Code"], Password="Fresh-Passw0rd!")  # fmt: skip
    assert sign_in(cognito, pool, "md5", "Fresh-Passw0rd!")["AuthenticationResult"]
    with pytest.raises(ClientError):
        sign_in(cognito, pool, "md5", PASSWORD)  # the legacy password is gone for good


def test_a_pool_not_eligible_for_hash_import_is_refused_with_the_way_out(
    cognito: Any, make_pool: Any, tmp_path: Path
) -> None:
    pool = make_pool(**{"x-csvimport": {"password_hash_import": False}})
    run = build_hash_run(cognito, pool, tmp_path)
    # The chunk without hashes imports; the first hash chunk is refused before any upload.
    with pytest.raises(RefusedError) as caught:
        run_all(run, cognito, pool)
    assert "cannot import password hashes" in caught.value.message
    assert "chunk-0002.csv carries BCRYPT hashes" in caught.value.message
    assert caught.value.hint and "--password-hashes off" in caught.value.hint
    # The way out works: rebuilt without hashes, everyone imports and must reset.
    (tmp_path / "again").mkdir()
    rebuilt = build_hash_run(cognito, pool, tmp_path / "again", password_hashes=False)
    run_all(rebuilt, cognito, pool)
    users = cognito.list_users(UserPoolId=pool.user_pool_id)["Users"]
    assert {u["UserStatus"] for u in users} == {"RESET_REQUIRED"} and len(users) == len(USERS)
