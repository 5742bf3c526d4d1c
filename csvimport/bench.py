"""``make bench``: benchmarks, each beside a floor measured in the same run.

Today: how fast the sandbox imports a large file (later issues bench build and report on
top of it, so it must carry 500,000-user jobs). The floor is the least any importer must
do with the same bytes: decode them and split them into lines and values.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import requests

from csvimport.sandbox import Sandbox, SandboxSettings
from csvimport.sandbox.csvfile import split_values

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
    start = time.perf_counter()
    count = 0
    for line in data.decode("utf-8").split("\n"):
        if line:
            count += len(split_values(line))
    return time.perf_counter() - start


def sandbox_import(users: int) -> dict[str, Any]:
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
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    result = sandbox_import(args.users)
    print(json.dumps({"benchmark": "sandbox-import", **result}, indent=2))


if __name__ == "__main__":
    main()
