"""``make demo``: a whole import against the local sandbox, as far as csvimport goes today.

Starts ``csvimport sandbox`` as a separate process (as a user would), then drives one
Cognito import job over HTTP with boto3 and requests: header -> file -> create job ->
upload to the presigned URL -> start -> poll -> read the CloudWatch log -> list users.
Later stages (build, start, status, report) replace the hand-driven parts as they land.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import requests

DEMO_USERS = [
    {"cognito:username": "ada", "email": "ada@example.com", "email_verified": "true",
     "name": "Ada Lovelace", "custom:legacy_id": "1001", "custom:plan": "pro"},
    {"cognito:username": "grace", "email": "grace@example.com", "email_verified": "true",
     "name": "Grace Hopper, RADM", "custom:legacy_id": "1002", "custom:credits": "250"},
    {"cognito:username": "alan", "email": "alan@example.com", "email_verified": "false",
     "name": "Alan Turing", "custom:legacy_id": "1003"},
    {"cognito:username": "ADA", "email": "ada.second@example.com", "email_verified": "true",
     "name": "Ada again (differs only in case)", "custom:legacy_id": "1004"},
    {"cognito:username": "linus", "email": "linus@example.com", "email_verified": "true",
     "phone_number": "555-0100", "custom:legacy_id": "1005"},
]  # fmt: skip
TERMINAL = {"Succeeded", "Failed", "Stopped", "Expired"}


def say(text: str = "") -> None:
    print(text, flush=True)


def cognito_line(header: list[str], user: dict[str, str]) -> str:
    return ",".join(user.get(column, "").replace(",", "\\,") for column in header)


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


def run(out_dir: Path) -> int:
    """Run the demo; return the number of users that did not import."""
    child, info = start_sandbox(job_seconds=2.0)
    try:
        say(
            f"Sandbox up at {info['endpoint_url']}, "
            f"pool {info['user_pool_id']} ({info['user_pool_name']})"
        )
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=info["region"]
        )
        cognito: Any = session.client("cognito-idp", endpoint_url=info["endpoint_url"])
        logs: Any = session.client("logs", endpoint_url=info["endpoint_url"])
        pool_id = info["user_pool_id"]

        header = cognito.get_csv_header(UserPoolId=pool_id)["CSVHeader"]
        out_dir.mkdir(parents=True, exist_ok=True)
        csv_path = out_dir / "users.csv"
        lines = [",".join(header)] + [cognito_line(header, u) for u in DEMO_USERS]
        csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        say(f"Wrote {len(DEMO_USERS)} users in Cognito's CSV dialect to {csv_path}")

        job = cognito.create_user_import_job(
            JobName="csvimport-demo",
            UserPoolId=pool_id,
            CloudWatchLogsRoleArn=info["logs_role_arn"],
        )["UserImportJob"]
        job_id = job["JobId"]
        say(f"Created import job {job_id} (the presigned upload URL is a secret: not shown)")
        with csv_path.open("rb") as body:
            response = requests.put(
                job["PreSignedUrl"], data=body,
                headers={"x-amz-server-side-encryption": "aws:kms"}, timeout=60,
            )  # fmt: skip
        response.raise_for_status()
        say(f"Uploaded {csv_path.stat().st_size} bytes")
        cognito.start_user_import_job(UserPoolId=pool_id, JobId=job_id)
        last = None
        while True:
            job = cognito.describe_user_import_job(UserPoolId=pool_id, JobId=job_id)[
                "UserImportJob"
            ]
            state = (job["Status"], job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"])
            if state != last:
                say(
                    f"  {job['Status']:<10} imported {state[1]}, "
                    f"skipped {state[2]}, failed {state[3]}"
                )
                last = state
            if job["Status"] in TERMINAL:
                break
            time.sleep(0.25)
        say(f"Job ended: {job['Status']} - {job.get('CompletionMessage', '')}")

        group = f"/aws/cognito/userpools/{pool_id}/{info['user_pool_name']}"
        expected = job["ImportedUsers"] + job["SkippedUsers"] + job["FailedUsers"]
        events: list[str] = []
        deadline = time.monotonic() + 30
        while len(events) < expected and time.monotonic() < deadline:
            events, kwargs = [], {"logGroupName": group, "logStreamNamePrefix": job_id}
            while True:
                page = logs.filter_log_events(**kwargs)
                events += [e["message"] for e in page["events"]]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        say(f"CloudWatch log of the job ({len(events)} of {expected} lines):")
        for message in events:
            head, _, reason = message.partition(" - ")
            number = int(head.rsplit(" ", 1)[-1])
            legacy = DEMO_USERS[number - 1]["custom:legacy_id"]  # line 1 = first data row
            say(f"  legacy user {legacy}: {head.split(']')[0].strip('[')} - {reason}")
        users = cognito.list_users(UserPoolId=pool_id, Limit=60)["Users"]
        listed = ", ".join(f"{u['Username']} ({u['UserStatus']})" for u in users)
        say(f"Users now in the pool: {listed}")
        return int(job["SkippedUsers"] + job["FailedUsers"])
    finally:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=15)


def main() -> None:
    out_dir = Path(os.environ.get("CSVIMPORT_DEMO_DIR", "runs/demo"))
    not_imported = run(out_dir)
    say()
    say(f"Demo finished: {len(DEMO_USERS) - not_imported} of {len(DEMO_USERS)} users imported; "
        f"the others were refused by Cognito with the reasons above.")  # fmt: skip


if __name__ == "__main__":
    main()
