"""`build --password-fallback migrate`: users whose hash Cognito cannot import but csvimport
can verify are left out of the import (deferred.csv) to migrate at first sign-in; the
others are imported as before, and every source row is still counted once."""

from __future__ import annotations

import csv
import hashlib
import json
import stat
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import argon2
import bcrypt
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from passlib.hash import md5_crypt, phpass

from csvimport.build.builder import BuildOptions, build
from csvimport.build.choices import PasswordFallback
from csvimport.build.mapping.spec import Mapping, MappingError
from csvimport.build.sources.base import SourceSpec
from csvimport.errors import ConfigError
from csvimport.outcomes import Outcome, Password, RunReport, UserResult
from csvimport.passwords.resets import ResetJournal, plan_resets
from csvimport.pool import read_pool
from csvimport.report.render import render_report
from csvimport.report.results import write_results
from csvimport.rundir import RunDir, iter_deferred
from csvimport.sandbox import PoolInfo

from .helpers import (
    LEGACY_COLUMNS,
    LEGACY_MAPPING,
    PASSWORD,
    assert_manifest_holds_every_files_sha256,
    cli_env,
    csvimport,
    django_hash,
    legacy_lines,
    legacy_rows,
    make_hash,
    offline_snapshot,
    read_csv,
    reconcile,
    run_all,
    sign_in,
)

HASH_MAPPING = LEGACY_MAPPING + '\n[attributes.password_hash]\ncolumn = "pw"\n'
DECLARED = '\n[legacy_hash]\ndigest = "sha256(salt + password)"\nsalt = "salt"\n'
SALTED = "sha256(salt + password)"


def salted_sha256(salt: str, password: str = PASSWORD) -> str:
    return hashlib.sha256((salt + password).encode()).hexdigest()


# A bcrypt hash of cost 13 made by the reference library costs a second: this one has the
# form (identify reads the form; nothing here verifies it).
COSTLY_BCRYPT = "$2b$13$" + bcrypt.gensalt(4).decode()[7:] + "a" * 31

# id -> (login, hash, salt, where the user goes: a chunk algorithm, "reset" or a scheme
# deferred). The same login twice is a duplicate (the pool is case-insensitive).
USERS: dict[int, tuple[str, str, str, str]] = {
    1: ("bcrypt", make_hash("BCRYPT"), "", "BCRYPT"),
    2: ("django", django_hash(PASSWORD), "", "PBKDF2_SHA256"),
    3: ("md5crypt", md5_crypt.hash(PASSWORD), "", "md5_crypt"),
    4: ("phpass", phpass.hash(PASSWORD), "", "phpass"),
    5: ("costly", COSTLY_BCRYPT, "", "bcrypt"),
    6: ("argon", argon2.PasswordHasher().hash(PASSWORD), "", "argon2id"),  # m=65536
    7: ("salted", salted_sha256("s4lt"), "s4lt", SALTED),
    8: ("nosalt", salted_sha256(""), "", "reset"),  # a salted digest without its salt
    9: ("shorthex", hashlib.md5(PASSWORD.encode()).hexdigest(), "x", "reset"),  # not sha256
    10: ("unknown", "not-a-hash-anyone-knows", "", "reset"),
    11: ("empty", "", "", "reset"),
    12: ("Twin", md5_crypt.hash(PASSWORD), "", "md5_crypt"),  # kept: the first of two
    13: ("twin", make_hash("BCRYPT"), "", "duplicate"),  # same user: dropped
    14: ("pair", make_hash("BCRYPT"), "", "BCRYPT"),  # kept: the first of two
    15: ("PAIR", phpass.hash(PASSWORD), "", "duplicate"),  # same user, deferrable: dropped
}
DEFERRED_IDS = [n for n, u in USERS.items() if u[3] not in ("BCRYPT", "PBKDF2_SHA256", "reset",
                                                             "duplicate")]  # fmt: skip


def write_source(directory: Path, *, declared: bool = True) -> tuple[Path, Path]:
    source, mapping = directory / "legacy.csv", directory / "mapping.toml"
    with source.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([*LEGACY_COLUMNS, "pw", "salt"])
        for n, (login, value, salt, _) in USERS.items():
            out.writerow([n, login, f"{login.lower()}@example.com", "y", "", "A", "B",
                          "2024-01-01", value, salt])  # fmt: skip
    mapping.write_text(HASH_MAPPING + (DECLARED if declared else ""), encoding="utf-8")
    return source, mapping


def build_in(
    cognito: Any, pool: PoolInfo, directory: Path, name: str = "run", *, declared: bool = True,
    **options: Any,
) -> Path:  # fmt: skip
    source, mapping = write_source(directory, declared=declared)
    out = directory / name
    build(BuildOptions(SourceSpec(str(source)), mapping, out, **options),
          read_pool(cognito, pool.user_pool_id))  # fmt: skip
    return out


def written_ids(run: Path) -> list[str]:
    return sorted((r["legacy_id"] for m in sorted(run.glob("chunk-*.map.csv"))
                   for r in read_csv(m)), key=int)  # fmt: skip


def test_migrate_leaves_out_the_users_csvimport_can_verify_and_imports_the_rest(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_in(cognito, pool, tmp_path, password_fallback=PasswordFallback.MIGRATE)
    deferred = read_csv(run / "deferred.csv")
    assert [(int(r["legacy_id"]), r["scheme"]) for r in deferred] == [
        (n, USERS[n][3]) for n in DEFERRED_IDS
    ]
    assert [r["source_row"] for r in deferred] == [r["legacy_id"] for r in deferred]
    by_id = {int(r["legacy_id"]): r for r in deferred}
    assert by_id[12]["username"] == "Twin"  # as mapped, not as the pool folds it
    assert by_id[3]["reason"] == "md5_crypt: Cognito cannot import it; migrates at first sign-in"
    assert "cost 13" in by_id[5]["reason"] and "m=65536" in by_id[6]["reason"]
    assert by_id[7]["reason"].startswith(f"{SALTED}: ")
    assert stat.S_IMODE((run / "deferred.csv").stat().st_mode) == 0o600
    # Nobody deferred is in an import file; everyone else kept is, as before.
    assert written_ids(run) == ["1", "2", "8", "9", "10", "11", "14"]
    passwords = {r["legacy_id"]: r for r in read_csv(run / "passwords.csv")}
    assert set(passwords) == {"1", "2", "8", "9", "10", "11", "14"}
    assert passwords["10"]["reason"].endswith("cannot migrate at first sign-in: unknown scheme")
    assert passwords["8"]["reason"].endswith(f"{SALTED} without a salt")
    assert "not of sha256(salt + password)'s length" in passwords["9"]["reason"]
    assert passwords["11"]["reason"] == "no password hash"
    rejects = read_csv(run / "rejects.csv")
    assert [(r["legacy_id"], r["rule"], r["collided_with_row"]) for r in rejects] == [
        ("13", "duplicate", "12"), ("15", "duplicate", "14"),
    ]  # fmt: skip
    manifest = json.loads((run / "manifest.json").read_text())
    counts = manifest["counts"]
    assert (
        counts["source_rows"]
        == 15
        == counts["written"] + counts["rejected"] + (counts["duplicates"] + counts["deferred"])
    )
    assert (counts["written"], counts["duplicates"], counts["deferred"]) == (7, 2, 6)
    assert manifest["password_fallback"]["mode"] == "migrate"
    assert manifest["password_fallback"]["sign_in"] == {
        "imported_hash": 3,
        "migrate_at_first_sign_in": {"users": 6, "by_scheme": {
            "md5_crypt": 2, "phpass": 1, "bcrypt": 1, "argon2id": 1, SALTED: 1}},
        "must_reset": {"users": 4, "why": {
            "a hex digest not of sha256(salt + password)'s length": 1,
            f"{SALTED} without a salt": 1, "unknown scheme": 1, "no hash": 1}},
    }  # fmt: skip
    assert_manifest_holds_every_files_sha256(run)  # deferred.csv too
    assert "deferred.csv" in manifest["files"]
    # One check of each deferred cost label timed on this machine, slowest first: labels
    # and seconds only (the hashes stay in the source).
    timed = manifest["password_fallback"]["verify_seconds"]
    assert set(timed) == {"md5_crypt", "phpass cost=19", "bcrypt cost=13",
                          "argon2id m=65536 t=3 p=4", SALTED}  # fmt: skip
    # Which of the two costly schemes is slower depends on the machine (phpass's loop runs in
    # Python, bcrypt's in C), so the order is checked against the seconds, not a name.
    assert list(timed.values()) == sorted(timed.values(), reverse=True)
    assert list(timed)[0] in {"bcrypt cost=13", "phpass cost=19"}
    assert timed["bcrypt cost=13"] > 0.05 and timed["md5_crypt"] < timed["bcrypt cost=13"]
    assert all(isinstance(seconds, float) for seconds in timed.values())
    assert "$2b$" not in json.dumps(manifest)


def test_a_deferred_user_and_an_imported_one_never_share_a_username(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    """Deferral changes where a kept user goes, never who is kept: duplicates are the same
    rows with either fallback, whichever of the pair is deferrable."""
    reset = build_in(cognito, pool, tmp_path, "reset")
    migrate = build_in(cognito, pool, tmp_path, "migrate",
                       password_fallback=PasswordFallback.MIGRATE)  # fmt: skip
    assert (reset / "rejects.csv").read_bytes() == (migrate / "rejects.csv").read_bytes()
    kept = {row["username"].lower() for row in read_csv(migrate / "deferred.csv")}
    for chunk in migrate.glob("chunk-*[0-9].csv"):
        names = {line.split(",")[0].lower() for line in chunk.read_text().splitlines()[1:]}
        assert not names & kept, chunk


@pytest.mark.parametrize("declared", [True, False])
def test_a_reset_build_is_the_build_of_before(
    cognito: Any, pool: PoolInfo, tmp_path: Path, declared: bool
) -> None:
    """The default (reset) writes no deferred.csv, no new manifest key, and every user to
    the import files, whatever the mapping declares; an explicit reset is the default."""
    default = build_in(cognito, pool, tmp_path, "default", declared=declared)
    explicit = build_in(cognito, pool, tmp_path, "explicit", declared=declared,
                        password_fallback=PasswordFallback.RESET)  # fmt: skip
    files = sorted(p.name for p in default.iterdir())
    assert files == sorted(p.name for p in explicit.iterdir())
    assert "deferred.csv" not in files
    for name in files:
        if name != "manifest.json":
            assert (default / name).read_bytes() == (explicit / name).read_bytes(), name
    manifest = json.loads((default / "manifest.json").read_text())
    assert "password_fallback" not in manifest and "deferred" not in manifest["counts"]
    assert set(manifest["counts"]) == {"source_rows", "written", "rejected", "duplicates",
                                       "already_in_pool"}  # fmt: skip
    assert written_ids(default) == [str(n) for n, u in USERS.items() if u[3] != "duplicate"]
    reasons = [r["reason"] for r in read_csv(default / "passwords.csv")]
    assert not any("migrate" in reason for reason in reasons)


def test_a_hex_digest_the_mapping_does_not_declare_must_reset(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_in(cognito, pool, tmp_path, declared=False,
                   password_fallback=PasswordFallback.MIGRATE)  # fmt: skip
    assert "7" not in {r["legacy_id"] for r in read_csv(run / "deferred.csv")}
    reason = {r["legacy_id"]: r["reason"] for r in read_csv(run / "passwords.csv")}["7"]
    assert reason.endswith("a hex digest the mapping does not declare")


def test_with_hashes_off_migrate_defers_every_verifiable_hash(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    """A pool that cannot take hashes (--password-hashes off) imports none: then even a
    hash Cognito could import migrates at first sign-in, rather than resetting."""
    run = build_in(cognito, pool, tmp_path, password_hashes=False,
                   password_fallback=PasswordFallback.MIGRATE)  # fmt: skip
    deferred = {r["legacy_id"]: r for r in read_csv(run / "deferred.csv")}
    assert deferred["1"]["reason"] == (
        "bcrypt: built with --password-hashes off; migrates at first sign-in"
    )
    assert deferred["2"]["scheme"] == "django_pbkdf2_sha256"
    assert sorted(deferred, key=int) == [str(n) for n in sorted([1, 2, 14, *DEFERRED_IDS])]
    assert written_ids(run) == ["8", "9", "10", "11"]
    passwords = read_csv(run / "passwords.csv")
    assert {r["password"] for r in passwords} == {"hashes off"}


def test_migrate_needs_a_mapped_password_hash(cognito: Any, pool: PoolInfo, tmp_path: Path) -> None:
    source, mapping = write_source(tmp_path, declared=False)
    mapping.write_text(LEGACY_MAPPING, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        build(BuildOptions(SourceSpec(str(source)), mapping, tmp_path / "run",
                           password_fallback=PasswordFallback.MIGRATE),
              read_pool(cognito, pool.user_pool_id))  # fmt: skip
    assert "maps no password_hash" in exc.value.message
    assert "--password-fallback reset" in (exc.value.hint or "")
    assert not (tmp_path / "run").exists()


def test_a_build_in_worker_processes_defers_the_same_users(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    snapshot = read_pool(cognito, pool.user_pool_id)
    source, mapping = write_source(tmp_path)
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"run-{workers}"
        build(BuildOptions(SourceSpec(str(source), chunk_rows=4), mapping, out, workers=workers,
                           parallel_after_rows=0, password_fallback=PasswordFallback.MIGRATE),
              snapshot)  # fmt: skip
        manifest = json.loads((out / "manifest.json").read_text())
        del manifest["created"]
        timed = manifest["password_fallback"]["verify_seconds"]  # measured: labels only
        manifest["password_fallback"]["verify_seconds"] = sorted(timed)
        runs[workers] = (manifest, {p.name: p.read_bytes() for p in out.iterdir()
                                    if p.name != "manifest.json"})  # fmt: skip
    assert runs[0] == runs[2]
    assert runs[0][1]["deferred.csv"].count(b"\n") == 1 + len(DEFERRED_IDS)


# --- the mapping's [legacy_hash] ---------------------------------------------------------

BASE = {"attributes": {"cognito:username": {"column": "u"}, "password_hash": {"column": "pw"}}}


def test_legacy_hash_declares_a_digest_and_its_salt_column() -> None:
    mapping = Mapping.from_dict({**BASE, "legacy_hash": {"digest": "sha256(salt + password)",
                                                         "salt": "s"}})  # fmt: skip
    assert mapping.legacy_hash is not None
    assert (mapping.legacy_hash.digest, mapping.legacy_hash.salt) == (SALTED, "s")
    assert mapping.source_columns() == ["u", "pw", "s"]  # read from the source like the rest
    assert mapping.fingerprint() != Mapping.from_dict(BASE).fingerprint()
    with pytest.raises(MappingError) as exc:
        mapping.check_columns(["u", "pw"])
    assert "'s' (read by [legacy_hash].salt)" in exc.value.message


@pytest.mark.parametrize(
    ("table", "message", "hint"),
    [
        ({"digest": "sha256(salt + password)"}, "uses a salt, but no salt column", "salt = "),
        ({"digest": "md5(password)", "salt": "s"}, "uses no salt", "Remove salt"),
        ({"salt": "s"}, "has no digest", 'digest = "sha256(salt + password)"'),
        ({"digest": "rot13(password)"}, "is not a digest csvimport can verify", "digest = "),
        ({"digest": "md5(password)", "sault": "s"}, "unknown key 'sault'", "Did you mean 'salt'"),
        ({"digest": 5}, "digest must be a non-empty string", 'digest = "..."'),
    ],
)
def test_a_wrong_legacy_hash_table_names_the_fix(
    table: dict[str, Any], message: str, hint: str
) -> None:
    with pytest.raises(MappingError) as exc:
        Mapping.from_dict({**BASE, "legacy_hash": table}, origin="m.toml")
    assert exc.value.message.startswith("m.toml: [legacy_hash] ")
    assert message in exc.value.message
    assert hint in (exc.value.hint or "")


def test_the_example_mappings_legacy_hash_block_reads_once_uncommented(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "schemas/mappings/example-legacy.toml"
    text = example.read_text(encoding="utf-8")
    for line in ("[attributes.password_hash]", 'column = "password_hash"', "[legacy_hash]",
                 'digest = "sha256(salt + password)"', 'salt = "password_salt"'):  # fmt: skip
        assert f"# {line}\n" in text, line
        text = text.replace(f"# {line}\n", f"{line}\n", 1)
    (tmp_path / "m.toml").write_text(text, encoding="utf-8")
    legacy_hash = Mapping.load(tmp_path / "m.toml").legacy_hash
    assert legacy_hash is not None and legacy_hash.salt == "password_salt"


def test_legacy_hash_without_a_mapped_password_hash_is_refused() -> None:
    data = {"attributes": {"cognito:username": {"column": "u"}},
            "legacy_hash": {"digest": "md5(password)"}}  # fmt: skip
    with pytest.raises(MappingError) as exc:
        Mapping.from_dict(data)
    assert "maps no password_hash" in exc.value.message
    assert "[attributes.password_hash]" in (exc.value.hint or "")


# --- the command line ----------------------------------------------------------------------


def cli_build(pool: PoolInfo, tmp_path: Path, *flags: str) -> Any:
    source, mapping = write_source(tmp_path)
    return csvimport(cli_env(), "build", str(source), "--mapping", str(mapping), "--out",
                     str(tmp_path / "run"), "--pool-id", pool.user_pool_id, "--endpoint-url",
                     pool.endpoint_url, "--region", pool.region, "--json", *flags)  # fmt: skip


def test_cli_build_migrate_says_how_users_will_sign_in(pool: PoolInfo, tmp_path: Path) -> None:
    result = cli_build(pool, tmp_path, "--password-fallback", "migrate",
                       "--duplicates", "keep-first")  # fmt: skip
    assert result.returncode == 1, result.stderr  # the duplicates, as before
    summary = json.loads(result.stdout)
    assert summary["deferred"] == 6
    assert summary["sign_in"]["migrate_at_first_sign_in"]["by_scheme"]["md5_crypt"] == 2
    assert summary["sign_in"]["must_reset"]["why"]["unknown scheme"] == 1
    assert summary["sign_in"]["imported_hash"] == 3
    err = result.stderr
    assert "15 source rows = 7 written + 0 rejected + 2 duplicates + 6 deferred" in err
    assert "How users will sign in:" in err
    assert "3  with their imported password hash" in err
    assert "6  migrate at first sign-in, with their old password (md5_crypt: 2," in err
    assert "4  must reset their password (" in err and "unknown scheme: 1" in err
    assert "deferred.csv" in err


def test_cli_build_reset_prints_what_it_printed_before(pool: PoolInfo, tmp_path: Path) -> None:
    result = cli_build(pool, tmp_path)
    assert "15 source rows = 13 written + 0 rejected + 2 duplicates\n" in result.stderr
    assert "deferred" not in result.stderr and "sign in" not in result.stderr
    summary = json.loads(result.stdout)
    assert "deferred" not in summary and "sign_in" not in summary


def test_cli_build_refuses_an_unknown_fallback(pool: PoolInfo, tmp_path: Path) -> None:
    result = cli_build(pool, tmp_path, "--password-fallback", "ignore")
    assert result.returncode == 2
    assert "reset" in result.stderr and "migrate" in result.stderr


# --- report and resets -----------------------------------------------------------------------


def imported_and_reported(
    cognito: Any, logs: Any, pool: PoolInfo, directory: Path
) -> tuple[Path, RunReport, list[UserResult]]:
    """A migrate run whose import files were imported, and its report and results."""
    run = build_in(cognito, pool, directory, password_fallback=PasswordFallback.MIGRATE)
    # the test pool has no migration trigger: start's migration preflight would refuse
    run_all(run, cognito, pool, migration_check=False)
    report, results, _ = reconcile(run, cognito, logs)
    return run, report, results


def test_the_report_counts_deferred_users_as_migrating_at_first_sign_in(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    _, report, results = imported_and_reported(cognito, logs, pool, tmp_path)
    rec = report.reconciliation
    assert rec.problems == []
    assert (rec.source_rows, rec.written, rec.duplicates, rec.deferred) == (15, 7, 2, 6)
    assert rec.source_rows == rec.rejected + rec.duplicates + rec.written + rec.deferred
    assert rec.need_attention == 2  # the duplicates; deferred users are planned
    deferred = [r for r in results if r.outcome is Outcome.DEFERRED]
    assert [int(r.legacy_id) for r in deferred] == DEFERRED_IDS  # one result line each
    assert all(r.password is Password.MIGRATE and r.job_id is None for r in deferred)
    assert {r.rule for r in deferred} == {"md5_crypt", "phpass", "bcrypt", "argon2id", SALTED}
    assert report.passwords.migrate == 6
    assert report.passwords.migrate_schemes["md5_crypt"] == 2
    assert report.passwords.imported_hash == 3
    assert "unknown scheme" in " ".join(report.passwords.reset_reasons)
    assert not any(u.outcome is Outcome.DEFERRED for u in report.attention)
    # Deferred users are not in the pool: the migration trigger creates them.
    for r in deferred:
        with pytest.raises(ClientError) as exc:
            cognito.admin_get_user(UserPoolId=pool.user_pool_id, Username=r.username)
        assert exc.value.response["Error"]["Code"] == "UserNotFoundException"
    assert sign_in(cognito, pool, "bcrypt", PASSWORD)["AuthenticationResult"]
    html = render_report(report)
    assert "6 migrate at first sign-in" in html  # the headline
    assert "Source rows = rejected + duplicates + written + deferred" in html
    assert 'id="migrate"' in html and "migrate: md5_crypt" in html
    assert "MD5-crypt ($1$)" in html  # the scheme in words (legacyhash.describe)
    assert "6 left out of the import to migrate at their first sign-in" in html


def test_cli_report_says_how_many_migrate_at_first_sign_in(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_in(cognito, pool, tmp_path, password_fallback=PasswordFallback.MIGRATE)
    # the test pool has no migration trigger: start's migration preflight would refuse
    run_all(run, cognito, pool, migration_check=False)
    env = cli_env(AWS_ENDPOINT_URL=pool.endpoint_url, AWS_REGION=pool.region)
    result = csvimport(env, "report", str(run))
    # the duplicates need attention; deferred users do not
    assert result.returncode == 1, result.stderr
    assert "7 of 15 users are in Cognito; 6 migrate at first sign-in; 2 need attention" in (
        result.stderr
    )
    assert "MISMATCH" not in result.stderr
    lines = (run / "results.jsonl").read_text(encoding="utf-8").splitlines()
    deferred = [json.loads(line) for line in lines if '"outcome": "deferred"' in line]
    assert len(lines) == 15 and len(deferred) == 6
    assert {d["password"] for d in deferred} == {"migrates at first sign-in"}
    failed = read_csv(run / "failed-users.csv")
    assert {r["outcome"] for r in failed} == {"duplicate"}


def test_report_refuses_a_deferred_csv_edited_since_the_build(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run = build_in(cognito, pool, tmp_path, password_fallback=PasswordFallback.MIGRATE)
    path = run / "deferred.csv"
    path.write_text(path.read_text().replace("phpass", "bcrypt"))
    from csvimport.errors import RefusedError

    with pytest.raises(RefusedError) as exc:
        list(iter_deferred(RunDir.open(run)))
    assert "deferred.csv changed since the build" in exc.value.message
    assert "migrate at first sign-in" in exc.value.message


def test_resets_never_plans_a_code_for_a_deferred_user(
    cognito: Any, logs: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    run_dir, _, results = imported_and_reported(cognito, logs, pool, tmp_path)
    write_results(run_dir, results)
    run = RunDir.open(run_dir)
    describe = cognito.describe_user_pool(UserPoolId=pool.user_pool_id)["UserPool"]
    plan = plan_resets(run, describe, ResetJournal(run), max_per_day=100)
    planned = {c.username for c in plan.to_send + plan.cannot_reset}
    assert planned == {"nosalt", "shorthex", "unknown", "empty"}  # imported, must reset
    assert plan.deferred == 6
    only = plan_resets(run, describe, ResetJournal(run), max_per_day=100,
                       only=["md5crypt", "Twin", "unknown", "ghost"])  # fmt: skip
    assert [c.username for c in only.to_send] == ["unknown"]
    assert only.deferred_only == ["Twin", "md5crypt"]
    assert only.unknown_only == ["ghost"]
    assert plan.to_json()["deferred"] == 6


# --- property: whatever the rows and hashes, every row is counted once -------------------

HASH_KINDS = [make_hash("BCRYPT"), md5_crypt.hash(PASSWORD), phpass.hash(PASSWORD),
              COSTLY_BCRYPT, salted_sha256("s"), "", "garbage$", "$1$short"]  # fmt: skip


def test_messy_rows_with_any_hashes_are_each_counted_once_and_never_both_deferred_and_written(
    tmp_path: Path,
) -> None:
    """Over messy generated users (tests/test_build_property.py) with hashes of every kind,
    a migrate build counts every row once (written + rejected + duplicates + deferred), no
    row is in two places, and no deferred user shares a (case-folded) username with a
    written one; deferral leaves rejects.csv as a reset build writes it."""
    snapshot = offline_snapshot()
    seen = Counter[str]()

    @settings(max_examples=25, derandomize=True, database=None, deadline=None)
    @given(legacy=legacy_rows, kinds=st.lists(st.integers(0, len(HASH_KINDS) - 1), min_size=13,
                                              max_size=13))  # fmt: skip
    def example(legacy: list[tuple[str, ...]], kinds: list[int]) -> None:
        with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
            work = Path(tmp)
            source = work / "legacy.csv"
            with source.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow([*LEGACY_COLUMNS, "pw", "salt"])
                for n, line in enumerate(legacy_lines(legacy)):
                    writer.writerow([*line, HASH_KINDS[kinds[n]], "s" if n % 2 else ""])
            mapping = work / "mapping.toml"
            mapping.write_text(HASH_MAPPING + DECLARED, encoding="utf-8")
            runs = {}
            for fallback in PasswordFallback:
                runs[fallback] = out = work / fallback.value
                result = build(BuildOptions(SourceSpec(str(source)), mapping, out,
                                            password_fallback=fallback), snapshot)  # fmt: skip
                assert result.conserved and result.source_rows == len(legacy)
            migrate = runs[PasswordFallback.MIGRATE]
            rejects = read_csv(migrate / "rejects.csv")
            deferred = read_csv(migrate / "deferred.csv")
            written = written_ids(migrate)
            rows = [r["source_row"] for r in deferred] + written
            rows += list({r["source_row"] for r in rejects})
            assert sorted(rows, key=int) == [str(n) for n in range(1, len(legacy) + 1)]
            reset_rejects = (runs[PasswordFallback.RESET] / "rejects.csv").read_bytes()
            assert (migrate / "rejects.csv").read_bytes() == reset_rejects
            names = {line.split(",")[0].lower() for chunk in migrate.glob("chunk-*[0-9].csv")
                     for line in chunk.read_text(encoding="utf-8").splitlines()[1:]}  # fmt: skip
            assert not names & {r["username"].lower() for r in deferred}
            seen.update(r["scheme"] for r in deferred)

    example()
    assert {"md5_crypt", "phpass", "bcrypt", SALTED} <= set(seen), seen
