"""``make bench``: benchmarks, each beside a floor measured in the same run.

- sandbox-import: how fast the sandbox imports a large file (later benchmarks run
  500,000-user jobs through it); floor: decoding and splitting the same bytes.
- build: ``csvimport build`` of synthetic messy legacy users (1M and 2M by default), wall
  time and peak RSS, each in its own process (the build's RSS: its own peak, that of its
  largest worker process, their sum over all workers as a bound, and the sampled peak PSS
  of the whole process tree); floor: pandas reading the same CSV and writing one CSV.
  Goal (issue 3): build <= 2x the floor at 1M users, peak RSS <= 1 GiB and about the same
  at 2M as at 1M.
- assess: ``csvimport assess``'s work (profile, then assessment.json and the page) on the
  build's synthetic legacy users plus a password column (bcrypt, Django PBKDF2 and empty
  hashes, each salt its own), 1M and 2M by default, in its own process; floor: the build's
  (pandas reading the same CSV and writing one CSV). Goal (issue 16): within 2x of the
  floor at 1M, peak RSS under 1 GiB and about the same at 2M. Also each one's CPU time
  (``cpu_ratio_to_floor``) and sampled peak PSS.
- report: a 500,000-user job imported in the sandbox, then ``report``'s work (fetch the
  log, parse, join, reconcile, write results and HTML) in its own process; floor:
  fetching the same log events and splitting each message, in its own process.
- report-saved: ``report``'s work on logs already saved in the run (200,000 and 2,000,000
  users by default): the run is built by ``csvimport build`` from synthetic messy users,
  and its jobs and logs are then written directly (the journal says each import file's
  job succeeded; ``logs/<job id>.jsonl`` holds one event per user, some skipped), since
  importing millions through the sandbox would take too long; floor: reading the same
  saved events and splitting each message, in its own process. Floor and report run in
  turn ``--saved-report-repeat`` times (3 by default: a 200,000-user report takes about
  0.4 s, which one run on a shared machine cannot tell within a tenth); the ratio is of
  their medians, every run's seconds beside it. Those runs are not sampled for PSS (the
  sampling slows a large process); one more run of each is, for the memory. The run's
  files are put on disk (sync) before the first. Goal (issue 13): within 1.5x of the
  floor, peak memory under 512 MiB at 2M and about the same at 200k.
- verify: ``verify`` of a sandbox pool holding a run built from 200,000 synthetic legacy
  users (about 164,000 written; and from 50,000, about 41,000), paced at ``--verify-rate``
  (1,000/s by default, so that the sandbox's own speed, not the pacing, is what both sides
  wait for): the run is built by ``csvimport build``, and its users are written directly
  into the sandbox's backend as an import job would create them (same attributes and
  status, no job, no pacing), since importing them through the sandbox would take too
  long. Floor: paging ListUsers over the same pool through the same paced client at the
  same rate, comparing nothing, in its own process. Goal (issue 15): within 1.2x of the
  floor, peak memory that does not grow with the pool: verify holds the run's users, so
  the 50,000-user run is also verified in a pool with 150,000 more users it does not
  carry, which must take about the memory of its own pool.
- hash-verify: ``legacyhash.verify`` of each legacy scheme at its common parameters (the
  migration function's work at a sign-in); floor: one SHA-256 of the same password. Each
  time is also given as a share of the trigger's 5 seconds, and flagged where it exceeds
  ``legacyhash.RISK_FRACTION`` of it (what the preflight warns about).
- migration-lookup: the migration function's lookup plus mapping of one user
  (``Migrator.find``: the bound SELECT through its pooled connection, then UserMapper) in
  a table of 1,000,000 legacy users in MariaDB and in PostgreSQL (loaded with LOAD DATA
  LOCAL INFILE / COPY, indexed as the README asks: MariaDB an index on the login column,
  PostgreSQL one on lower(login), for the pool is case-insensitive), over 2,000 random
  users; floor: the bare indexed SELECT of the same user through the same connection.
  Goal (issue 14): p99 under 50 ms. Also the mapping alone of 200 of them by both of
  UserMapper's paths (map, and map_as_chunk: pandera on a one-row chunk).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

# The sandbox (moto: about 40 MiB of modules) is imported where a benchmark runs it, not
# here: every measured child imports this module, and must not carry it.
if TYPE_CHECKING:
    from csvimport.sandbox import Sandbox

POOL = {"PoolName": "bench", "AutoVerifiedAttributes": ["email"],
        "UsernameConfiguration": {"CaseSensitive": False}}  # fmt: skip


def synthetic_file(header: list[str], users: int) -> bytes:
    """Deterministic users: every 50th fails the auto-verified rule, every 100th is a repeat."""
    index = {name: i for i, name in enumerate(header)}
    lines = [",".join(header)]
    for n in range(users):
        row = [""] * len(header)
        username = f"user{n - 1 if n % 100 == 98 else n:07d}"
        row[index["cognito:username"]] = username
        row[index["email"]] = f"{username}@example.com"
        row[index["email_verified"]] = "false" if n % 50 == 49 else "true"
        row[index["name"]] = f"User {n}\\, Esq."
        row[index["cognito:mfa_enabled"]] = "false"
        lines.append(",".join(row))
    return ("\n".join(lines) + "\n").encode()


def floor(data: bytes) -> float:
    from csvimport.sandbox.csvfile import split_values

    start = time.perf_counter()
    count = 0
    for line in data.decode("utf-8").split("\n"):
        if line:
            count += len(split_values(line))
    return time.perf_counter() - start


def sandbox_import(users: int) -> dict[str, Any]:
    from csvimport.sandbox import Sandbox, SandboxSettings

    settings = SandboxSettings(job_seconds=0, pending_seconds=0, tick_seconds=0.01)
    with Sandbox(settings=settings) as sandbox:
        info = sandbox.create_pool(POOL)
        cognito = sandbox.client("cognito-idp")
        header = cognito.get_csv_header(UserPoolId=info.user_pool_id)["CSVHeader"]
        data = synthetic_file(header, users)
        floor_seconds = floor(data)
        job = cognito.create_user_import_job(
            JobName="bench", UserPoolId=info.user_pool_id, CloudWatchLogsRoleArn=info.logs_role_arn
        )["UserImportJob"]
        put = requests.put(job["PreSignedUrl"], data=data, timeout=300,
                           headers={"x-amz-server-side-encryption": "aws:kms"})  # fmt: skip
        put.raise_for_status()
        start = time.perf_counter()
        cognito.start_user_import_job(UserPoolId=info.user_pool_id, JobId=job["JobId"])
        while True:
            job = cognito.describe_user_import_job(
                UserPoolId=info.user_pool_id, JobId=job["JobId"]
            )["UserImportJob"]
            if job["Status"] not in ("Pending", "InProgress"):
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        return {
            "users": users,
            "bytes": len(data),
            "status": job["Status"],
            "imported": job["ImportedUsers"],
            "skipped": job["SkippedUsers"],
            "failed": job["FailedUsers"],
            "sandbox_import_seconds": round(seconds, 3),
            "floor_seconds": round(floor_seconds, 3),
            "ratio_to_floor": round(seconds / floor_seconds, 1),
            "users_per_second": round(users / seconds),
            "peak_rss_mib": peak_rss_mib(),
        }


# --- build: legacy rows -> validated import files ----------------------------------------
# The attributes every benchmark's legacy users map alike.
LEGACY_ATTRIBUTES = """
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

"""
BUILD_MAPPING = (
    """
[legacy]
id = "id"
updated = "modified"
"""
    + LEGACY_ATTRIBUTES
    + """
[attributes.birthdate]
column = "dob"
transform = "date"

[attributes.updated_at]
column = "modified"
transform = "timestamp"

[attributes."custom:legacy_id"]
column = "id"
"""
)
PHONES = ["(415) 555-{:04d}", "+1 415-555-{:04d}", "415.555.{:04d}", "+44 20 7946 {:04d}", "12"]


def write_legacy_csv(path: Path, users: int) -> None:
    """Deterministic legacy users with realistic mess: odd phone formats, unverified or
    invalid emails, usernames differing only in case, missing names."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "login", "email", "verified", "mobile", "first", "last", "dob",
                         "modified"])  # fmt: skip
        for n in range(users):
            login = f"User{n - 1:07d}" if n % 97 == 96 else f"user{n:07d}"  # case-variant dup
            email = f"{login.lower()}@example.com" if n % 101 else f"user{n} at example.com"
            writer.writerow([
                n + 1, login, email, "n" if n % 33 == 0 else "Y",
                PHONES[n % len(PHONES)].format(n % 10_000) if n % 3 else "",
                "" if n % 50 == 0 else f"First{n % 1000}", f"Last, {n % 777}",
                f"{1950 + n % 50}-{1 + n % 12:02d}-{1 + n % 28:02d}",
                f"2024-01-{1 + n % 28:02d}T10:00:00",
            ])  # fmt: skip


def bench_snapshot() -> Any:
    from csvimport.pool import Attribute, PoolSnapshot
    from csvimport.sandbox.settings import STANDARD_HEADER, TRAILING_HEADER

    return PoolSnapshot(
        user_pool_id="us-east-1_bench", name="bench",
        header=[*STANDARD_HEADER, "custom:legacy_id", *TRAILING_HEADER],
        attributes=[Attribute("email", required=True),
                    Attribute("custom:legacy_id", min_length=1, max_length=64)],
        auto_verified=["email"], case_sensitive=False, mfa="OFF",
    )  # fmt: skip


def child_floor(source: Path, work: Path) -> dict[str, Any]:
    import pandas as pd

    start, cpu = time.perf_counter(), cpu_seconds()
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.to_csv(work / "floor.csv", index=False)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu}


def child_build(source: Path, work: Path) -> dict[str, Any]:
    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.chunkbuild import usable_cpus
    from csvimport.build.sources.base import SourceSpec

    mapping = work / "mapping.toml"
    mapping.write_text(BUILD_MAPPING, encoding="utf-8")
    start = time.perf_counter()
    result = build(BuildOptions(SourceSpec(str(source)), mapping, work / "run"), bench_snapshot())
    spawned = usable_cpus() - 1 if peak_rss_mib(resource.RUSAGE_CHILDREN) else 0
    return {"seconds": time.perf_counter() - start, "written": result.written,
            "rejected": result.rejected, "duplicates": result.duplicates,
            "workers": spawned}  # fmt: skip


def in_child(
    kind: str, source: Path, work: Path, env: dict[str, str] | None = None,
    *, sample_pss: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Run one measurement in a fresh process, so its peak memory is its own.

    Also samples (every 0.1 s, where /proc exists) the total PSS of that process and its
    children, the build's workers: the memory the whole build holds at once, which
    neither RUSAGE figure gives (shared pages counted once, in shares). Reading a large
    process's smaps_rollup holds its memory map's lock and slows its page faults (a
    400 MiB report took up to a fifth longer so), so a run timed for a ratio under a
    second or two is best made with ``sample_pss=False`` and its PSS taken from another.
    """
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-m", "csvimport.bench", "--child", kind, str(source), str(work)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    peak_pss = 0
    while child.poll() is None:
        if sample_pss:
            peak_pss = max(peak_pss, tree_pss_kib(child.pid))
        time.sleep(0.1 if sample_pss else 0.01)
    out = child.stdout.read() if child.stdout else ""
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args, out)
    return {**json.loads(out), "tree_peak_pss_mib": round(peak_pss / 1024) or None}


def tree_pss_kib(pid: int) -> int:
    """Return the PSS of a process and its children in KiB (0 where /proc cannot tell)."""
    proc = Path("/proc")
    try:
        children = " ".join(f.read_text() for f in (proc / str(pid) / "task").glob("*/children"))
    except OSError:
        return 0
    total = 0
    for each in [pid, *map(int, children.split())]:
        try:
            rollup = (proc / str(each) / "smaps_rollup").read_text()
        except OSError:
            continue  # ended meanwhile, or no /proc
        total += sum(
            int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
        )
    return total


def build_bench(users: int, work: Path) -> dict[str, Any]:
    source = work / f"legacy-{users}.csv"
    write_legacy_csv(source, users)
    floor_result = in_child("floor", source, work)
    build_result = in_child("build", source, work)
    return {
        "users": users,
        "source_bytes": source.stat().st_size,
        "floor_seconds": round(floor_result["seconds"], 2),
        "build_seconds": round(build_result["seconds"], 2),
        "ratio_to_floor": round(build_result["seconds"] / floor_result["seconds"], 2),
        "floor_peak_rss_mib": floor_result["peak_rss_mib"],
        "build_peak_rss_mib": build_result["peak_rss_mib"],
        # the largest of the build's worker processes (csvimport.build.chunkbuild), 0 if none
        "build_worker_peak_rss_mib": build_result["children_peak_rss_mib"],
        "build_workers": build_result["workers"],
        "build_peak_rss_bound_mib": build_result["peak_rss_mib"]
        + build_result["workers"] * build_result["children_peak_rss_mib"],
        # sampled: the whole build (parent and workers) at its largest, shared pages shared
        "build_peak_pss_total_mib": build_result["tree_peak_pss_mib"],
        "written": build_result["written"],
        "rejected": build_result["rejected"],
        "duplicates": build_result["duplicates"],
    }


# --- assess: profile the legacy users --------------------------------------------------------
BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def write_assess_legacy(path: Path, users: int) -> None:
    """The build bench's legacy users plus a password column: 70% bcrypt (cost 10 and 13),
    20% Django PBKDF2, 10% empty, every hash with its own salt, as a real table has."""
    import random

    # Line by line through a side file: a bench process that held the whole CSV would hand
    # its peak RSS to the children it starts (ru_maxrss survives fork and exec), and the
    # child's own peak would read as that.
    plain = path.with_suffix(".plain.csv")
    write_legacy_csv(plain, users)
    rng = random.Random(16)
    with (
        plain.open(encoding="utf-8", newline="") as lines,
        path.open("w", encoding="utf-8", newline="") as f,
    ):
        f.write(next(lines).rstrip("\r\n") + ",password\n")
        for n, raw in enumerate(lines):
            line = raw.rstrip("\r\n")
            kind = n % 10
            if kind < 7:
                cost = "13" if kind == 6 else "10"
                tail = "".join(rng.choices(BCRYPT_ALPHABET, k=53))
                stored = f"$2b${cost}${tail}"
            elif kind < 9:
                salt = "".join(rng.choices(BCRYPT_ALPHABET[2:], k=12))
                digest = "".join(rng.choices(BCRYPT_ALPHABET[2:], k=43))
                stored = f"pbkdf2_sha256$600000${salt}${digest}="
            else:
                stored = ""
            f.write(f"{line},{stored}\n")
    plain.unlink()


def child_assess(source: Path, work: Path) -> dict[str, Any]:
    from csvimport.assess.page import write_assessment
    from csvimport.assess.profile import assess_source
    from csvimport.build.sources.base import SourceSpec

    start, cpu = time.perf_counter(), cpu_seconds()
    found = assess_source(SourceSpec(str(source)))
    write_assessment(found, work / "assessment")
    census = found.passwords
    return {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu,
            "rows": found.rows,
            "importable": census.importable, "convertible": census.convertible,
            "at_first_sign_in": census.at_first_sign_in, "empty": census.empty}  # fmt: skip


def assess_bench(users: int, work: Path) -> dict[str, Any]:
    source = work / f"assess-{users}.csv"
    write_assess_legacy(source, users)
    floor_result = in_child("floor", source, work)
    assess_result = in_child("assess", source, work)
    return {
        "users": users,
        "source_bytes": source.stat().st_size,
        "floor_seconds": round(floor_result["seconds"], 2),
        "assess_seconds": round(assess_result["seconds"], 2),
        "ratio_to_floor": round(assess_result["seconds"] / floor_result["seconds"], 2),
        # CPU time (user + system) of each: less sensitive to a loaded machine than the wall
        "floor_cpu_seconds": round(floor_result["cpu_seconds"], 2),
        "assess_cpu_seconds": round(assess_result["cpu_seconds"], 2),
        "cpu_ratio_to_floor": round(assess_result["cpu_seconds"] / floor_result["cpu_seconds"], 2),
        "floor_peak_rss_mib": floor_result["peak_rss_mib"],
        "assess_peak_rss_mib": assess_result["peak_rss_mib"],
        "floor_peak_pss_mib": floor_result["tree_peak_pss_mib"],
        "assess_peak_pss_mib": assess_result["tree_peak_pss_mib"],
        "census": {
            k: assess_result[k] for k in ("importable", "convertible", "at_first_sign_in", "empty")
        },  # fmt: skip
    }


# --- report: a job's log -> every user's outcome -> report.html ---------------------------
REPORT_MAPPING = """
[legacy]
id = "id"

[attributes."cognito:username"]
column = "login"

[attributes.email]
column = "email"

[attributes.email_verified]
column = "verified"
transform = "boolean"
"""


def write_report_legacy(path: Path, users: int) -> None:
    """Users for the report benchmark (the first few hundred are already in the pool, so
    Cognito skips them)."""
    with path.open("w", encoding="utf-8") as f:
        f.write("id,login,email,verified\n")
        for n in range(users):
            f.write(f"{n + 1},user{n:07d},user{n:07d}@example.com,y\n")


def report_bench(users: int, work: Path) -> dict[str, Any]:
    """Import ``users`` users in the sandbox, then time `report` against a floor, each in a
    child process talking to the sandbox over HTTP."""
    import os

    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec
    from csvimport.pool import read_pool
    from csvimport.run.jobs import Importer, Pacing, StartOptions
    from csvimport.run.journal import Journal
    from csvimport.rundir import RunDir
    from csvimport.sandbox import Sandbox, SandboxSettings

    settings = SandboxSettings(job_seconds=0, pending_seconds=0, tick_seconds=0.01)
    with Sandbox(settings=settings) as sandbox:
        info = sandbox.create_pool(POOL)
        cognito = sandbox.client("cognito-idp")
        for n in range(0, users, 50):
            if n < 2_000:  # a few already-existing users, enough to make groups
                cognito.admin_create_user(UserPoolId=info.user_pool_id, Username=f"user{n:07d}")
        source = work / "legacy.csv"
        write_report_legacy(source, users)
        mapping = work / "mapping.toml"
        mapping.write_text(REPORT_MAPPING, encoding="utf-8")
        snapshot = read_pool(cognito, info.user_pool_id)
        run_dir = work / "run"
        build(BuildOptions(SourceSpec(str(source)), mapping, run_dir), snapshot)
        run = RunDir.open(run_dir)
        status = Importer(run, Journal.load(run), cognito, pacing=Pacing(poll_first=0.2)).start(
            StartOptions(info.logs_role_arn)
        )
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": sandbox.endpoint_url,
            "AWS_REGION": sandbox.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        floor_result = in_child("report-floor", run_dir, work, env=env)
        report_result = in_child("report", run_dir, work, env=env)
    return {
        "users": users,
        "job": status.to_json()["chunks"][0]["status"],
        "floor_seconds": round(floor_result["seconds"], 2),
        "report_seconds": round(report_result["seconds"], 2),
        "ratio_to_floor": round(report_result["seconds"] / floor_result["seconds"], 2),
        # Sampled PSS: a child's ru_maxrss would count the pages it shared with this large
        # parent (the sandbox) between fork and exec.
        "floor_peak_pss_mib": floor_result["tree_peak_pss_mib"],
        "report_peak_pss_mib": report_result["tree_peak_pss_mib"],
        "outcomes": report_result["outcomes"],
    }


def _client(service: str) -> Any:
    import os

    from csvimport.aws import AwsOptions

    return AwsOptions(region=os.environ["AWS_REGION"],
                      endpoint_url=os.environ["AWS_ENDPOINT_URL"]).client(service)  # fmt: skip


def child_report_floor(run_dir: Path, work: Path) -> dict[str, Any]:
    """Fetch the job's log events and split each message, nothing more."""
    from csvimport.report.logs import fetch_messages, log_group, log_stream
    from csvimport.run.journal import Journal
    from csvimport.rundir import RunDir

    run = RunDir.open(run_dir)
    attempt = Journal.load(run).attempts[0]
    logs = _client("logs")
    start = time.perf_counter()
    parts = 0
    group = log_group(run.user_pool_id, run.snapshot.name)
    for event in fetch_messages(logs, group, log_stream(attempt.job_id or "", attempt.job_name)):
        parts += len(event["message"].split(" - ", 1))
    return {"seconds": time.perf_counter() - start, "parts": parts}


def child_report(run_dir: Path, work: Path) -> dict[str, Any]:
    """`csvimport report`'s work: fetch, parse, join, reconcile, write files and HTML."""
    import shutil

    from csvimport.passwords.recovery import RecoveryPolicy
    from csvimport.report.logs import LOGS_DIR
    from csvimport.rundir import RunDir

    shutil.rmtree(run_dir / LOGS_DIR, ignore_errors=True)  # fetch, don't reuse a stored log
    start = time.perf_counter()
    pool_id = RunDir.open(run_dir).user_pool_id
    recovery = RecoveryPolicy.read(_client("cognito-idp"), pool_id)
    result = report_work(run_dir, _client("logs"), recovery)
    return {**result, "seconds": time.perf_counter() - start}  # the pool's read included


def report_work(run_dir: Path, logs: Any, recovery: Any) -> dict[str, Any]:
    """What `csvimport report` does once it has its clients (csvimport.cli's
    `_write_report`, without the journal refresh and the retry source): reconcile into the
    result files, then the HTML. Returns its seconds, outcome counts and problems."""
    from csvimport.report.reconcile import Reconciler
    from csvimport.report.render import write_report
    from csvimport.report.results import ResultFiles
    from csvimport.run.journal import Journal
    from csvimport.rundir import RunDir

    start, cpu = time.perf_counter(), time.process_time()
    run = RunDir.open(run_dir)
    reconciler = Reconciler(run, Journal.load(run), logs, recovery=recovery)
    with ResultFiles(run_dir) as files:
        report = reconciler.reconcile(files)
        files.finish()
    write_report(report, run_dir / "report.html")
    rec = report.reconciliation
    outcomes = {"imported": rec.imported, "skipped": rec.skipped, "failed": rec.failed,
                "rejected": rec.rejected, "duplicates": rec.duplicates,
                "not processed": rec.not_processed}  # fmt: skip
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "outcomes": outcomes, "problems": rec.problems}  # fmt: skip


SKIPPED_EVERY = 1_000  # in report-saved, one user in this many "already exists"


def saved_report_run(users: int, work: Path) -> Path:
    """A built run whose jobs all succeeded, with their logs saved (see report-saved)."""
    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec
    from csvimport.run.journal import Journal, Step
    from csvimport.rundir import RunDir

    source = work / "legacy.csv"
    write_legacy_csv(source, users)
    mapping = work / "mapping.toml"
    mapping.write_text(BUILD_MAPPING, encoding="utf-8")
    run_dir = work / "run"
    build(BuildOptions(SourceSpec(str(source)), mapping, run_dir), bench_snapshot())
    run = RunDir.open(run_dir)
    journal = Journal.load(run)
    (run_dir / "logs").mkdir()
    for number, chunk in enumerate(run.chunks, start=1):
        job_id = f"import-bench{number:06d}"
        skipped = len(range(SKIPPED_EVERY - 1, chunk.rows, SKIPPED_EVERY))
        attempt = journal.add(chunk, f"csvimport-bench-{number}")
        journal.record(attempt, "status Succeeded", job_id=job_id, step=Step.STARTED,
                       status="Succeeded", imported=chunk.rows - skipped, skipped=skipped,
                       started="2026-01-01T00:00:00+00:00",
                       completed="2026-01-01T00:30:00+00:00")  # fmt: skip
        with (run_dir / "logs" / f"{job_id}.jsonl").open("w", encoding="utf-8") as f:
            for line in range(1, chunk.rows + 1):
                message = (f"[SKIPPED] Line Number {line} - The user already exists."
                           if line % SKIPPED_EVERY == 0 else
                           f"[SUCCEEDED] Line Number {line} - The import succeeded.")  # fmt: skip
                f.write(json.dumps({"timestamp": 1_767_225_600_000 + line,
                                    "message": message}) + "\n")  # fmt: skip
    return run_dir


def saved_report_bench(users: int, work: Path, repeat: int = 3) -> dict[str, Any]:
    import os
    import statistics

    run_dir = saved_report_run(users, work)
    # the run's files just written are still being put on disk: the report's own fsyncs
    # would queue behind that (up to a third longer at 200k), which is the setup's cost
    os.sync()
    floors, reports = [], []
    for _ in range(repeat):  # in turn, so that a change in the machine's load hits both
        floors.append(in_child("saved-floor", run_dir, work, sample_pss=False))
        reports.append(in_child("saved-report", run_dir, work, sample_pss=False))
    # the memory: one more run of each, its PSS sampled (which slows what it samples)
    floor_pss = in_child("saved-floor", run_dir, work)["tree_peak_pss_mib"]
    report_pss = in_child("saved-report", run_dir, work)["tree_peak_pss_mib"]

    def median(results: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in results))

    floor_s, report_s = median(floors, "seconds"), median(reports, "seconds")
    floor_cpu, report_cpu = median(floors, "cpu_seconds"), median(reports, "cpu_seconds")
    return {
        "users": users,
        "load_average": round(os.getloadavg()[0], 2),
        "runs": repeat,
        "floor_seconds": round(floor_s, 2),
        "report_seconds": round(report_s, 2),
        "ratio_to_floor": round(report_s / floor_s, 2),
        "floor_seconds_each": [round(r["seconds"], 3) for r in floors],
        "report_seconds_each": [round(r["seconds"], 3) for r in reports],
        # CPU time of every thread: the floor uses one, the report a few (it reads the
        # import files ahead and writes the result files in threads of their own, and
        # Arrow's kernels use the machine's cores), so this ratio shows the work beside
        # the wall clock's, and moves less with the machine's load.
        "floor_cpu_seconds": round(floor_cpu, 2),
        "report_cpu_seconds": round(report_cpu, 2),
        "cpu_ratio_to_floor": round(report_cpu / floor_cpu, 2),
        "floor_peak_pss_mib": floor_pss,
        "report_peak_pss_mib": report_pss,
        "report_peak_rss_mib": max(r["peak_rss_mib"] for r in reports),
        "outcomes": reports[-1]["outcomes"],
        "problems": reports[-1]["problems"],
    }


def child_saved_floor(run_dir: Path, work: Path) -> dict[str, Any]:
    """Read the saved events and split each message, nothing more (one thread)."""
    start, cpu = time.perf_counter(), time.process_time()
    parts = 0
    for path in sorted((run_dir / "logs").glob("*.jsonl")):
        with path.open("rb") as f:
            for raw in f:
                parts += len(json.loads(raw)["message"].split(" - ", 1))
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "parts": parts}  # fmt: skip


def child_saved_report(run_dir: Path, work: Path) -> dict[str, Any]:
    """`csvimport report`'s work on saved logs: parse, join, reconcile, write the result
    files and the HTML (no AWS call: every log is saved whole)."""
    from csvimport.passwords.recovery import DEFAULT_RECOVERY, RecoveryPolicy

    recovery = RecoveryPolicy(mechanisms=DEFAULT_RECOVERY, sms_configured=False)
    return report_work(run_dir, None, recovery)


# --- verify: the pool read back and compared with the run ------------------------------
VERIFY_RATE_ENV = "CSVIMPORT_BENCH_VERIFY_RATE"  # the child's ListUsers rate


def fill_pool_directly(sandbox: Sandbox, pool_id: str, run_dir: Path, others: int) -> int:
    """Write the users of the run's import files into the sandbox's backend as its import
    job would create them (facts §5: attributes as given, booleans lowercased, status
    RESET_REQUIRED without a hash), skipping the job, then ``others`` users the run does
    not carry; returns how many users the pool holds."""
    from moto.cognitoidp.models import CognitoIdpUser, UserStatus, cognitoidp_backends
    from moto.core.models import DEFAULT_ACCOUNT_ID

    from csvimport.rundir import RunDir
    from csvimport.sandbox.csvfile import split_values

    run = RunDir.open(run_dir)
    backend = cognitoidp_backends[DEFAULT_ACCOUNT_ID][sandbox.region]
    pool = backend.user_pools[pool_id]
    added = 0
    for chunk in run.chunks:
        lines = run.chunk_path(chunk).read_text(encoding="utf-8").split("\n")
        header = split_values(lines[0])
        for line in lines[1:]:
            if not line:
                continue
            row = dict(zip(header, split_values(line), strict=True))
            attributes = [
                {"Name": name, "Value": value.lower() if name.endswith("_verified") else value}
                for name, value in row.items()
                if value and not name.startswith("cognito:") and name != "password_hash"
            ]
            username = row["cognito:username"]
            pool.users[username] = CognitoIdpUser(
                pool_id, username, None, UserStatus.RESET_REQUIRED, attributes
            )
            added += 1
    for n in range(others):
        username = f"other{n:07d}"
        email = {"Name": "email", "Value": f"{username}@example.com"}
        pool.users[username] = CognitoIdpUser(
            pool_id, username, None, UserStatus.CONFIRMED, [email]
        )
    return added + others


def verify_bench(users: int, rate: float, work: Path, others: int = 0) -> dict[str, Any]:
    """Build a run, fill a sandbox pool with its users, then time `verify` against a floor,
    each in a child process talking to the sandbox over HTTP."""
    import dataclasses
    import os

    from csvimport.build.builder import BuildOptions, build
    from csvimport.build.sources.base import SourceSpec
    from csvimport.sandbox import Sandbox, SandboxSettings

    with Sandbox(settings=SandboxSettings()) as sandbox:
        info = sandbox.create_pool(POOL)
        source = work / "legacy.csv"
        write_legacy_csv(source, users)
        mapping = work / "mapping.toml"
        mapping.write_text(BUILD_MAPPING, encoding="utf-8")
        run_dir = work / "run"
        snapshot = dataclasses.replace(bench_snapshot(), user_pool_id=info.user_pool_id)
        built = build(BuildOptions(SourceSpec(str(source)), mapping, run_dir), snapshot)
        start = time.perf_counter()
        in_pool = fill_pool_directly(sandbox, info.user_pool_id, run_dir, others)
        fill_seconds = time.perf_counter() - start
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": sandbox.endpoint_url,
            "AWS_REGION": sandbox.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            VERIFY_RATE_ENV: str(rate),
        }
        # The floor before and after verify, the faster one counting: the machine's load
        # varies, and a slow floor would flatter verify.
        floors = [in_child("verify-floor", run_dir, work, env=env)]
        verify_result = in_child("verify", run_dir, work, env=env)
        floors.append(in_child("verify-floor", run_dir, work, env=env))
        floor_result = min(floors, key=lambda f: f["seconds"])
    return {
        "users": users,
        "written": built.written,
        "pool_users": in_pool,
        "others": others,
        "pool_filled": "directly into the sandbox's backend (no import job)",
        "fill_seconds": round(fill_seconds, 2),
        "rate": rate,
        "floor_seconds": round(floor_result["seconds"], 2),
        "floor_seconds_before_after": [round(f["seconds"], 2) for f in floors],
        "verify_seconds": round(verify_result["seconds"], 2),
        "ratio_to_floor": round(verify_result["seconds"] / floor_result["seconds"], 2),
        # The child's own CPU time, less sensitive to the machine's load than the wall
        # clock: what the comparison adds to reading the pages.
        "floor_cpu_seconds": round(floor_result["cpu_seconds"], 2),
        "verify_cpu_seconds": round(verify_result["cpu_seconds"], 2),
        "floor_pages": floor_result["pages"],
        "verify_pages": verify_result["pages"],
        "floor_peak_pss_mib": floor_result["tree_peak_pss_mib"],
        "verify_peak_pss_mib": verify_result["tree_peak_pss_mib"],
        "floor_peak_rss_mib": floor_result["peak_rss_mib"],
        "verify_peak_rss_mib": verify_result["peak_rss_mib"],
        "states": verify_result["states"],
        "differing": verify_result["differing"],
        "others_counted": verify_result["others"],
    }


def child_verify_floor(run_dir: Path, work: Path) -> dict[str, Any]:
    """Page ListUsers over the whole pool through verify's paced client, nothing more."""
    import os

    from csvimport.pool import LIST_USERS_PAGE
    from csvimport.retry import USER_LIST, PacedClient
    from csvimport.rundir import RunDir

    pool_id = RunDir.open(run_dir).user_pool_id
    calls = PacedClient(
        _client("cognito-idp"), rates={USER_LIST: float(os.environ[VERIFY_RATE_ENV])}
    )
    start = time.perf_counter()
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": LIST_USERS_PAGE}
    cpu = time.process_time()
    pages = users = 0
    while True:
        page: Any = calls.list_users(**kwargs)
        pages += 1
        users += len(page.get("Users", []))
        if not page.get("PaginationToken"):
            break
        kwargs["PaginationToken"] = page["PaginationToken"]
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "pages": pages, "users": users}  # fmt: skip


def child_verify(run_dir: Path, work: Path) -> dict[str, Any]:
    """`csvimport verify`'s work: read the run, page the pool, compare, write the snapshot."""
    import os

    from csvimport.report.verify import verify
    from csvimport.rundir import RunDir

    client = _client("cognito-idp")
    start, cpu = time.perf_counter(), time.process_time()
    result = verify(RunDir.open(run_dir), client, rate=float(os.environ[VERIFY_RATE_ENV]))
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "pages": result.pages,
            "states": result.states, "differing": result.differing,
            "others": result.others}  # fmt: skip


# --- hash-verify: the migration function's password check -------------------------------
HASH_PASSWORD = "correct horse battery staple"


def legacy_hashes(password: str) -> list[tuple[str, str]]:
    """(what, stored hash) for each scheme at the parameters its own software writes.

    Made with the reference libraries (bcrypt, argon2-cffi, libpass), or hashlib where the
    format is a hashlib call; the parameters are each software's defaults, old and new.
    """
    import base64
    import hashlib

    import argon2
    import bcrypt
    from passlib import hash as passlib_hash

    secret = password.encode()
    crypt = {"sha256": passlib_hash.sha256_crypt, "sha512": passlib_hash.sha512_crypt}

    def django_pbkdf2(iterations: int) -> str:
        digest = hashlib.pbkdf2_hmac("sha256", secret, b"benchsalt0123456", iterations)
        return f"pbkdf2_sha256${iterations}$benchsalt0123456${base64.b64encode(digest).decode()}"

    def werkzeug_pbkdf2(iterations: int) -> str:
        digest = hashlib.pbkdf2_hmac("sha256", secret, b"benchsalt", iterations).hex()
        return f"pbkdf2:sha256:{iterations}$benchsalt${digest}"

    def scrypt(n: int, r: int, p: int) -> bytes:
        return hashlib.scrypt(secret, salt=b"benchsalt", n=n, r=r, p=p, maxmem=2**30)

    cases = [
        (f"bcrypt cost {cost}", bcrypt.hashpw(secret, bcrypt.gensalt(cost)).decode())
        for cost in (10, 12, 13, 14)
    ]
    cases += [
        ("argon2id, argon2-cffi defaults", argon2.PasswordHasher().hash(password)),
        ("argon2i, argon2-cffi defaults", argon2.PasswordHasher(type=argon2.Type.I).hash(password)),
        ("argon2id, Django defaults (t=2, m=100 MiB, p=8)",
         "argon2" + argon2.PasswordHasher(2, 102_400, 8).hash(password)),
        ("md5-crypt", passlib_hash.md5_crypt.hash(password)),
        ("sha256-crypt 5000 rounds (glibc)", crypt["sha256"].using(rounds=5000).hash(password)),
        ("sha512-crypt 5000 rounds (glibc)", crypt["sha512"].using(rounds=5000).hash(password)),
        ("sha512-crypt 656000 rounds (passlib)", passlib_hash.sha512_crypt.hash(password)),
        ("phpass cost 8 (WordPress)", passlib_hash.phpass.using(rounds=8).hash(password)),
        *[(f"Django pbkdf2_sha256 {n:,}", django_pbkdf2(n)) for n in (720_000, 870_000, 1_000_000)],
        ("Django bcrypt_sha256 cost 12", passlib_hash.django_bcrypt_sha256.hash(password)),
        ("Django scrypt (N=2^14, r=8, p=1)",
         f"scrypt$16384$benchsalt$8$1${base64.b64encode(scrypt(2**14, 8, 1)).decode()}"),
        ("LDAP {SSHA}", passlib_hash.ldap_salted_sha1.hash(password)),
        ("LDAP {SSHA512}", passlib_hash.ldap_salted_sha512.hash(password)),
        ("passlib $pbkdf2-sha256$ 29000",
         passlib_hash.pbkdf2_sha256.using(rounds=29_000).hash(password)),
        ("Werkzeug pbkdf2:sha256 600,000 (3.0)", werkzeug_pbkdf2(600_000)),
        ("Werkzeug pbkdf2:sha256 1,000,000 (3.1)", werkzeug_pbkdf2(1_000_000)),
        ("Werkzeug scrypt (N=2^15, r=8, p=1)",
         f"scrypt:32768:8:1$benchsalt${scrypt(2**15, 8, 1).hex()}"),
        ("scrypt, Cognito form, N=2^17",
         f"131072$8$1${b'benchsalt'.hex()}${scrypt(2**17, 8, 1)[:32].hex()}"),
    ]  # fmt: skip
    return cases


def sha256_floor(password: str, calls: int = 100_000) -> float:
    """Seconds for one SHA-256 of ``password`` (encoded as verify encodes it)."""
    import hashlib

    start = time.perf_counter()
    for _ in range(calls):
        hashlib.sha256(password.encode("utf-8")).digest()
    return (time.perf_counter() - start) / calls


def hash_verify_bench(repeat: int) -> dict[str, Any]:
    """Time verify for each scheme against one SHA-256 of the same password."""
    from csvimport import legacyhash

    digest = legacyhash.parse_digest("sha256(salt + password)")
    cases: list[tuple[str, str, legacyhash.SaltedDigest | None]] = [
        (what, stored, None) for what, stored in legacy_hashes(HASH_PASSWORD)
    ]
    salted = digest.hexdigest(HASH_PASSWORD, "benchsalt")
    cases.append(("declared sha256(salt + password)", salted, digest))
    floor_seconds = sha256_floor(HASH_PASSWORD)
    rows = []
    for what, stored, declared in cases:
        assert legacyhash.verify(HASH_PASSWORD, stored, digest=declared, salt="benchsalt")
        seconds = legacyhash.time_verify(stored, digest=declared, repeat=repeat)
        rows.append({
            "scheme": what,
            "label": legacyhash.cost_label(stored, digest=declared),
            "verify_ms": round(seconds * 1000, 3),
            "ratio_to_floor": round(seconds / floor_seconds),
            "share_of_trigger": round(seconds / legacyhash.TRIGGER_SECONDS, 4),
            "at_risk": legacyhash.at_risk(seconds),
        })  # fmt: skip
    return {
        "floor": "one SHA-256 of the password",
        "floor_us": round(floor_seconds * 1e6, 3),
        "trigger_seconds": legacyhash.TRIGGER_SECONDS,
        "risk_fraction": legacyhash.RISK_FRACTION,
        "repeat": repeat,
        "schemes": rows,
    }


MIGRATION_MAPPING = (
    """
[legacy]
id = "id"
"""
    + LEGACY_ATTRIBUTES
    + """
[attributes.password_hash]
column = "pw"
"""
)
MIGRATION_COLUMNS = ["id", "login", "email", "verified", "mobile", "first", "last", "pw"]
MIGRATION_HASH = "$6$benchsalt$" + "x" * 86  # never verified here: lookup and mapping only


def write_migration_legacy(path: Path, users: int) -> None:
    """Legacy users as a tab-separated file both databases load: logins in mixed case."""
    with path.open("w", encoding="utf-8") as f:
        for n in range(users):
            f.write(f"{n + 1}\tUser{n:07d}\tuser{n:07d}@Example.com\ty\t(415) 555-{n % 10_000:04d}"
                    f"\tFirst{n}\tLast {n}\t{MIGRATION_HASH}\n")  # fmt: skip


def migration_snapshot() -> Any:
    from csvimport.pool import Attribute, PoolSnapshot

    return PoolSnapshot(
        user_pool_id="us-east-1_bench", name="bench",
        header=["cognito:username", "email", "email_verified", "phone_number",
                "phone_number_verified", "name", "cognito:mfa_enabled"],
        attributes=[Attribute("email"), Attribute("phone_number")],
        auto_verified=["email"], alias_attributes=["email"], case_sensitive=False,
    )  # fmt: skip


def load_mariadb(table: str, data: Path) -> str:
    import pymysql  # type: ignore[import-untyped]

    db = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test",
                         local_infile=True)  # fmt: skip
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, login VARCHAR(64), "
                    "email VARCHAR(255), verified VARCHAR(8), mobile VARCHAR(32), "
                    "first VARCHAR(64), last VARCHAR(64), pw VARCHAR(255))")  # fmt: skip
        cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} FIELDS TERMINATED BY '\\t'",
                    (str(data),))  # fmt: skip
        # the README's index: the looked-up column (its case-insensitive collation folds case)
        cur.execute(f"CREATE INDEX {table}_login ON {table} (login)")
    db.commit()
    db.close()
    return "mysql+pymysql://root@127.0.0.1:3306/test"


def load_postgres(table: str, data: Path) -> str:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test",
                         autocommit=True) as db:  # fmt: skip
        db.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, login TEXT, email TEXT, "
                   "verified TEXT, mobile TEXT, first TEXT, last TEXT, pw TEXT)")  # fmt: skip
        with db.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy, data.open("rb") as f:
            while block := f.read(1 << 20):
                copy.write(block)
        # the README's index for a case-insensitive pool: lower() of the looked-up column
        db.execute(f"CREATE INDEX {table}_login ON {table} (lower(login))")
        db.execute(f"ANALYZE {table}")
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def drop_table(kind: str, table: str) -> None:
    if kind == "mariadb":
        import pymysql

        db = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        db.close()
    else:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test",
                             autocommit=True) as db:  # fmt: skip
            db.execute(f"DROP TABLE IF EXISTS {table}")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"p50_ms": round(at(0.50) * 1000, 3), "p99_ms": round(at(0.99) * 1000, 3)}


def mapping_paths(mapper: Any, records: list[dict[str, str]]) -> dict[str, Any]:
    """UserMapper.map beside map_as_chunk (the build's one-row chunk through pandera, the
    reference it is tested against) on the same records."""
    timed: dict[str, list[float]] = {"map": [], "map_as_chunk": []}
    for record in records:
        for name in timed:
            begin = time.perf_counter()
            getattr(mapper, name)(record)
            timed[name].append(time.perf_counter() - begin)
    fast, chunk = percentiles(timed["map"]), percentiles(timed["map_as_chunk"])
    return {"users": len(records), "map_ms": fast, "map_as_chunk_ms": chunk,
            "speedup_p50": round(chunk["p50_ms"] / fast["p50_ms"], 1)}  # fmt: skip


def migration_lookup_bench(users: int, lookups: int, work: Path) -> dict[str, Any]:
    """Lookup plus mapping per user, beside the bare indexed SELECT, in both databases."""
    import random
    import uuid

    from csvimport.build.mapping.spec import Mapping
    from csvimport.migrate.handler import Migrator
    from csvimport.migrate.settings import (
        MAPPING_FILE,
        POOL_FILE,
        MigrationSettings,
        SourceSettings,
        load_folder,
        lookup_columns,
        write_settings,  # fmt: skip
    )

    data = work / "legacy.tsv"
    start = time.perf_counter()
    write_migration_legacy(data, users)
    written = time.perf_counter() - start
    snapshot = migration_snapshot()
    picked = random.Random(14).sample(range(users), lookups)
    results: dict[str, Any] = {"users": users, "lookups": lookups,
                               "write_seconds": round(written, 1)}  # fmt: skip
    for kind, load, floor_sql in (
        ("mariadb", load_mariadb, "SELECT * FROM {t} WHERE login = %s"),
        ("postgresql", load_postgres, "SELECT * FROM {t} WHERE lower(login) = lower(%s)"),
    ):
        table = f"bench_migration_{uuid.uuid4().hex[:8]}"
        try:
            start = time.perf_counter()
            url = load(table, data)
            loaded = time.perf_counter() - start
            folder = work / f"migration-{kind}"
            folder.mkdir()
            (folder / MAPPING_FILE).write_text(MIGRATION_MAPPING, encoding="utf-8")
            snapshot.save(folder / POOL_FILE)
            mapping = Mapping.load(folder / MAPPING_FILE)
            write_settings(folder, MigrationSettings(
                source=SourceSettings(url=url, table=table),
                lookup=lookup_columns(mapping, snapshot), password_column="pw"))  # fmt: skip
            migrator = Migrator(load_folder(folder))
            migrator.find("user0000000")  # connect, learn the table: once per container
            engine = migrator.users._database().engine
            found, floor_times = [], []
            with engine.connect() as conn:  # the same pooled connection, between lookups
                raw = conn.connection.dbapi_connection
                assert raw is not None
                sql = floor_sql.format(t=table)
                for n in picked:
                    typed = f"user{n:07d}"  # as the user types it: lower case
                    begin = time.perf_counter()
                    cursor = raw.cursor()
                    cursor.execute(sql, (typed,))
                    rows = cursor.fetchall()
                    cursor.close()
                    floor_times.append(time.perf_counter() - begin)
                    assert len(rows) == 1
            for n in picked:
                typed = f"user{n:07d}"
                begin = time.perf_counter()
                _, user = migrator.find(typed)
                found.append(time.perf_counter() - begin)
                assert user.ok and user.legacy_id == str(n + 1)
            if kind == "mariadb":  # the mapping alone, by both of UserMapper's paths
                records = [migrator.users.find("login", f"user{n:07d}", casefold=True)[0]
                           for n in picked[:200]]  # fmt: skip
                results["single_user_mapping"] = mapping_paths(migrator.mapper, records)
            migrator.users.close()
            floor_p, found_p = percentiles(floor_times), percentiles(found)
            results[kind] = {
                "load_seconds": round(loaded, 1),
                "index": "login" if kind == "mariadb" else "lower(login)",
                "floor": "the bare indexed SELECT through the same connection",
                "floor_ms": floor_p,
                "lookup_and_mapping_ms": found_p,
                "ratio_p50": round(found_p["p50_ms"] / floor_p["p50_ms"], 1),
                "ratio_p99": round(found_p["p99_ms"] / floor_p["p99_ms"], 1),
                "goal_p99_ms": 50,
                "meets_goal": found_p["p99_ms"] < 50,
            }
        finally:
            drop_table(kind, table)
    return results


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> int:
    """Peak RSS of this process, or with RUSAGE_CHILDREN of its largest ended child.

    This process's own is read from /proc where it can be (VmHWM): Linux carries
    ``ru_maxrss`` over an exec, so a child started by a parent holding 500 MiB (one that
    has just built a 2,000,000-user run) would report at least that, whatever it used.
    """
    if who == resource.RUSAGE_SELF:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            status = ""
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(who).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["sandbox", "build", "assess", "report", "report-saved",
                                           "hash-verify", "migration-lookup", "verify"],
                        help="run one benchmark")  # fmt: skip
    parser.add_argument("--migration-users", type=int, default=1_000_000)
    parser.add_argument("--migration-lookups", type=int, default=2_000)
    parser.add_argument("--report-users", type=int, default=500_000)
    parser.add_argument("--sandbox-users", type=int, default=100_000)
    parser.add_argument("--build-users", type=int, nargs="+", default=[1_000_000, 2_000_000])
    parser.add_argument("--assess-users", type=int, nargs="+", default=[1_000_000, 2_000_000])
    parser.add_argument("--saved-report-repeat", type=int, default=3,
                        help="report-saved: runs of floor and report each (median)")  # fmt: skip
    parser.add_argument("--saved-report-users", type=int, nargs="+",
                        default=[200_000, 2_000_000])  # fmt: skip
    parser.add_argument("--verify-users", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--verify-others", type=int, default=150_000,
                        help="verify: also the smallest run in a pool with this many more "
                             "users it does not carry (memory must not grow)")  # fmt: skip
    parser.add_argument("--verify-rate", type=float, default=1_000.0,
                        help="verify: ListUsers calls per second, both sides")  # fmt: skip
    parser.add_argument("--hash-repeat", type=int, default=3,
                        help="hash-verify: verifications timed per scheme (median)")  # fmt: skip
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "WORK"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        kind, source, work = args.child
        run = {"floor": child_floor, "build": child_build, "assess": child_assess,
               "report-floor": child_report_floor,
               "report": child_report, "saved-floor": child_saved_floor,
               "saved-report": child_saved_report, "verify-floor": child_verify_floor,
               "verify": child_verify}[kind]  # fmt: skip
        result = run(Path(source), Path(work))
        children = peak_rss_mib(resource.RUSAGE_CHILDREN)
        print(
            json.dumps(
                {**result, "peak_rss_mib": peak_rss_mib(), "children_peak_rss_mib": children}
            )
        )
        return
    if args.only in (None, "sandbox"):
        result = sandbox_import(args.sandbox_users)
        print(json.dumps({"benchmark": "sandbox-import", **result}, indent=2), flush=True)
    if args.only in (None, "build"):
        for users in args.build_users:
            with tempfile.TemporaryDirectory(prefix="csvimport-bench-") as work:
                result = build_bench(users, Path(work))
            print(json.dumps({"benchmark": "build", **result}, indent=2), flush=True)
    if args.only in (None, "assess"):
        for users in args.assess_users:
            with tempfile.TemporaryDirectory(prefix="csvimport-bench-") as work:
                result = assess_bench(users, Path(work))
            print(json.dumps({"benchmark": "assess", **result}, indent=2), flush=True)
    if args.only in (None, "report"):
        with tempfile.TemporaryDirectory(prefix="csvimport-bench-") as work:
            result = report_bench(args.report_users, Path(work))
        print(json.dumps({"benchmark": "report", **result}, indent=2), flush=True)
    if args.only in (None, "report-saved"):
        for users in args.saved_report_users:
            with tempfile.TemporaryDirectory(prefix="csvimport-bench-") as work:
                result = saved_report_bench(users, Path(work), args.saved_report_repeat)
            print(json.dumps({"benchmark": "report-saved", **result}, indent=2), flush=True)
    if args.only in (None, "verify"):
        sizes = [(users, 0) for users in args.verify_users]
        if args.verify_others:
            sizes.append((min(args.verify_users), args.verify_others))
        for users, others in sizes:
            with tempfile.TemporaryDirectory(prefix="csvimport-bench-") as work:
                result = verify_bench(users, args.verify_rate, Path(work), others)
            print(json.dumps({"benchmark": "verify", **result}, indent=2), flush=True)
    if args.only in (None, "hash-verify"):
        result = hash_verify_bench(args.hash_repeat)
        print(json.dumps({"benchmark": "hash-verify", **result}, indent=2), flush=True)
    if args.only in (None, "migration-lookup"):
        with tempfile.TemporaryDirectory(prefix="csvimport-bench-") as work:
            result = migration_lookup_bench(
                args.migration_users, args.migration_lookups, Path(work)
            )
        print(json.dumps({"benchmark": "migration-lookup", **result}, indent=2), flush=True)


if __name__ == "__main__":
    main()
