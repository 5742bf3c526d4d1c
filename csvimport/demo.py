"""``make demo``: a whole migration against the local sandbox.

1. starts ``csvimport sandbox`` in a child process (as a user would) and reads its JSON line;
2. writes a legacy SQLite database of a few hundred members with realistic problems
   (unverified emails, bad phones, usernames differing only in case, a member who is
   already in the pool);
3. ``csvimport map`` suggests a mapping; ``csvimport build`` turns the members into
   validated Cognito import files in a run directory;
4. ``csvimport start --no-wait`` starts the import job, ``csvimport status --wait``
   follows it to the end;
5. ``csvimport report`` reads the job's CloudWatch log, accounts for every member, and
   writes results.jsonl, failed-users.csv, retry-source.csv and report.html;
6. ``csvimport resets`` plans and sends a pilot wave of password-reset codes, and
   ``csvimport notice`` writes the users' message and the app team's checklist.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

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
        # Someone signed up in the new app before the migration: Cognito will skip them.
        cognito.admin_create_user(
            UserPoolId=info["user_pool_id"], Username="ada.lovelace1", MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": "ada@example.com"}],
        )  # fmt: skip

        legacy = out_dir / "legacy.db"
        make_legacy_db(legacy)
        say(f"Wrote a legacy database of 300 members: {legacy}")
        starter = out_dir / f"mapping-{time.strftime('%Y%m%d-%H%M%S')}.toml"
        csvimport("map", f"sqlite:///{legacy}", "--table", "members", "--out", str(starter),
                  env=env)  # fmt: skip
        say(f"A person reviews the starter mapping {starter}; the demo uses the reviewed one.")
        run_dir = out_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        status = csvimport(
            "build", f"sqlite:///{legacy}", "--table", "members",
            "--mapping", str(schema_path("mappings/demo-legacy.toml")),
            "--out", str(run_dir), "--check-existing", env=env,
        )  # fmt: skip
        if status not in (0, 1):
            raise SystemExit(f"csvimport build failed (exit {status})")
        env["CSVIMPORT_LOGS_ROLE_ARN"] = info["logs_role_arn"]
        status = csvimport("start", str(run_dir), "--no-wait", env=env)
        if status != 0:
            raise SystemExit(f"csvimport start failed (exit {status})")
        csvimport("status", str(run_dir), "--wait", env=env)
        status = csvimport("report", str(run_dir), env=env)
        if status not in (0, 1):
            raise SystemExit(f"csvimport report failed (exit {status})")
        # Imported users must reset their password: a pilot wave, then what to tell them.
        csvimport("resets", str(run_dir), "--dry-run", env=env)
        csvimport("resets", str(run_dir), "--limit", "20", env=env)
        csvimport("notice", str(run_dir), "--product", "Legacy Club", "--support",
                  "help@club.example", "--code-sent", env=env)  # fmt: skip
        say()
        say(f"Demo finished. The report: {run_dir / 'report.html'} (open it in a browser); "
            f"every user's outcome: {run_dir / 'results.jsonl'}; the users to fix: "
            f"{run_dir / 'failed-users.csv'} and, in the legacy shape, "
            f"{run_dir / 'retry-source.csv'}.")  # fmt: skip
    finally:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=15)


def main() -> None:
    run(Path(os.environ.get("CSVIMPORT_DEMO_DIR", "runs/demo")))


if __name__ == "__main__":
    main()
