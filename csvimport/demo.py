"""``make demo``: a migration against the local sandbox, as far as csvimport goes today.

1. starts ``csvimport sandbox`` in a child process (as a user would) and reads its JSON line;
2. writes a legacy SQLite database of a few hundred members with realistic problems
   (unverified emails, bad phones, usernames differing only in case, a member who is
   already in the pool);
3. ``csvimport build`` turns it into validated Cognito import files in a run directory;
4. imports each file through a Cognito import job (create, upload, start, wait) and reads
   the job's CloudWatch log back to the legacy member ids through the chunk's line map.
Steps 4's hand-driven job cycle is what ``csvimport start`` / ``status`` / ``report`` take
over as they land.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import requests

from csvimport.resources import schema_path

TERMINAL = {"Succeeded", "Failed", "Stopped", "Expired"}
FIRST = ["Ada", "Grace", "Alan", "Linus", "Barbara", "Edsger", "Margaret", "Ken", "Radia",
         "Donald", "Frances", "Niklaus", "Sophie", "Tim", "Hedy", "Dennis"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Dijkstra", "Hamilton",
        "Thompson", "Perlman", "Knuth", "Allen", "Wirth", "Wilson", "Berners-Lee"]  # fmt: skip


def say(text: str = "") -> None:
    print(text, flush=True)


def make_legacy_db(path: Path, members: int = 300, seed: int = 7) -> None:
    """A legacy member table with the mess real exports have."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "create table members (member_id integer primary key, login text, email_address "
            "text, email_ok text, mobile text, first_name text, last_name text, born text, "
            "plan text, last_modified text)"
        )
        previous = ""
        for n in range(1, members + 1):
            first, last = ("Ada", "Lovelace") if n == 1 else (rng.choice(FIRST), rng.choice(LAST))
            login = f"{first.lower()}.{last.lower()}{n}"
            email = f"{login}@example.com"
            email_ok = rng.choice(["Y", "y", "1", "yes", "TRUE"])
            mobile = rng.choice(["", "", f"(415) 555-{n:04d}", f"+44 20 7946 {n:04d}"])
            born = f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            if n % 25 == 0:
                email_ok = "N"  # never confirmed: Cognito refuses users with no verified channel
            if n % 40 == 0:
                mobile = "ask at reception"  # not a phone number
            if n % 60 == 0:
                login = previous.upper()  # the member before, exported twice in another case
            previous = login
            db.execute(
                "insert into members values (?,?,?,?,?,?,?,?,?,?)",
                (n, login, email, email_ok, mobile, first, last, born,
                 rng.choice(["free", "pro", "team"]), f"2024-{1 + n % 12:02d}-01 09:00:00"),
            )  # fmt: skip


def start_sandbox(job_seconds: float) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run `csvimport sandbox` in a child process and read its first (JSON) line."""
    command = [sys.executable, "-m", "csvimport", "sandbox", "--job-seconds", str(job_seconds)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline()
    if not first:
        child.wait(timeout=10)
        raise SystemExit(f"the sandbox did not start (exit {child.returncode})")
    return child, json.loads(first)


def csvimport(*args: str, env: dict[str, str]) -> int:
    say(f"$ csvimport {' '.join(args)}")
    return subprocess.run([sys.executable, "-m", "csvimport", *args], env=env).returncode


def import_chunk(
    cognito: Any, logs: Any, info: dict[str, str], run: Path, chunk: dict[str, Any]
) -> Counter[str]:
    """One import job for one chunk, by hand; returns outcomes counted by legacy id."""
    pool_id = info["user_pool_id"]
    job = cognito.create_user_import_job(
        JobName=chunk["file"].removesuffix(".csv"), UserPoolId=pool_id,
        CloudWatchLogsRoleArn=info["logs_role_arn"],
    )["UserImportJob"]  # fmt: skip
    say(f"Import job {job['JobId']} for {chunk['file']} ({chunk['rows']} users); "
        "the presigned upload URL is a secret and is not shown")  # fmt: skip
    with (run / chunk["file"]).open("rb") as body:
        sse = {"x-amz-server-side-encryption": "aws:kms"}
        requests.put(job["PreSignedUrl"], data=body, headers=sse, timeout=60).raise_for_status()
    cognito.start_user_import_job(UserPoolId=pool_id, JobId=job["JobId"])
    last = None
    while True:
        job = cognito.describe_user_import_job(UserPoolId=pool_id, JobId=job["JobId"])[
            "UserImportJob"
        ]
        state = (job["Status"], job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"])
        if state != last:
            say(f"  {state[0]:<10} imported {state[1]}, skipped {state[2]}, failed {state[3]}")
            last = state
        if job["Status"] in TERMINAL:
            break
        time.sleep(0.3)
    expected = job["ImportedUsers"] + job["SkippedUsers"] + job["FailedUsers"]
    group = f"/aws/cognito/userpools/{pool_id}/{info['user_pool_name']}"
    messages: list[str] = []
    deadline = time.monotonic() + 30
    while len(messages) < expected and time.monotonic() < deadline:
        messages, kwargs = [], {"logGroupName": group, "logStreamNamePrefix": job["JobId"]}
        while True:
            page = logs.filter_log_events(**kwargs)
            messages += [e["message"] for e in page["events"]]
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    with (run / chunk["map_file"]).open(encoding="utf-8") as f:
        legacy_of_line = {int(r["line"]): r["legacy_id"] for r in csv.DictReader(f)}
    outcomes: Counter[str] = Counter()
    for message in messages:
        head, _, reason = message.partition(" - ")
        outcome = head[1 : head.index("]")]
        line = int(head.rsplit(" ", 1)[-1])  # line 1 = first data row (sandbox choice)
        outcomes[outcome] += 1
        if outcome != "SUCCEEDED":
            say(f"  legacy member {legacy_of_line.get(line, '?')}: {outcome} - {reason}")
    return outcomes


def run(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    child, info = start_sandbox(job_seconds=2.0)
    try:
        say(f"Sandbox up at {info['endpoint_url']}, pool {info['user_pool_id']} "
            f"({info['user_pool_name']})")  # fmt: skip
        env = {**os.environ, "AWS_ENDPOINT_URL": info["endpoint_url"],
               "AWS_REGION": info["region"], "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing",
               "CSVIMPORT_POOL_ID": info["user_pool_id"]}  # fmt: skip
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=info["region"])  # fmt: skip
        cognito: Any = session.client("cognito-idp", endpoint_url=info["endpoint_url"])
        logs: Any = session.client("logs", endpoint_url=info["endpoint_url"])
        # Someone signed up in the new app before the migration: Cognito will skip them.
        cognito.admin_create_user(
            UserPoolId=info["user_pool_id"], Username="ada.lovelace1", MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": "ada@example.com"}],
        )  # fmt: skip

        legacy = out_dir / "legacy.db"
        make_legacy_db(legacy)
        say(f"Wrote a legacy database of 300 members: {legacy}")
        run_dir = out_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        status = csvimport(
            "build", f"sqlite:///{legacy}", "--table", "members",
            "--mapping", str(schema_path("mappings/demo-legacy.toml")),
            "--out", str(run_dir), "--check-existing", env=env,
        )  # fmt: skip
        if status not in (0, 1):
            raise SystemExit(f"csvimport build failed (exit {status})")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        totals: Counter[str] = Counter()
        for chunk in manifest["chunks"]:
            totals += import_chunk(cognito, logs, info, run_dir, chunk)
        counts = manifest["counts"]
        say()
        say(f"Demo finished. Of {counts['source_rows']} legacy members: "
            f"{counts['rejected']} refused before import and {counts['duplicates']} duplicates "
            f"(see {run_dir / 'rejects.csv'}); {totals['SUCCEEDED']} imported, "
            f"{totals['SKIPPED']} skipped by Cognito (already in the pool), "
            f"{totals['FAILED']} failed in Cognito.")  # fmt: skip
    finally:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=15)


def main() -> None:
    run(Path(os.environ.get("CSVIMPORT_DEMO_DIR", "runs/demo")))


if __name__ == "__main__":
    main()
