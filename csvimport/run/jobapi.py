"""Cognito's import-job API for one pool: create, start, stop, describe and list jobs.

Every call goes through a :class:`~csvimport.retry.PacedClient` (paced under Cognito's
quotas, retried by botocore). Besides the pool's own jobs, :meth:`JobApi.active_job_in_account`
finds the account's active job that blocks a start (Cognito runs one per account).
"""

from __future__ import annotations

import re
from typing import Any

from csvimport.retry import PacedClient
from csvimport.run.journal import ACTIVE

# --- Cognito's documented limits (facts §3, §4; the rate quotas are csvimport.retry's) --
POOLS_PAGE = 60  # ListUserPools' MaxResults maximum
LIST_JOBS_PAGE = 60  # ListUserImportJobs' MaxResults maximum

# --- GUESSES: undocumented behaviour; correct here when real Cognito disagrees --------
# GUESS: the error StartUserImportJob answers while another job of the account is active
# (facts §3: "The error for a second start is UNVERIFIED").
OTHER_JOB_ACTIVE_CODES = frozenset({"PreconditionNotMetException", "LimitExceededException"})
# Seen publicly (facts §3): starting a job whose file never arrived.
NOT_UPLOADED = re.compile(r"no csv file was uploaded", re.IGNORECASE)


class JobApi:
    """Cognito's import-job calls for one pool, through a :class:`PacedClient`."""

    def __init__(self, client: Any, pool_id: str) -> None:
        self.paced = PacedClient(client)
        self.pool_id = pool_id

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return self.paced.call(operation, **kwargs)

    def create(self, name: str, role_arn: str, algorithm: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "JobName": name,
            "UserPoolId": self.pool_id,
            "CloudWatchLogsRoleArn": role_arn,
        }
        if algorithm:
            kwargs["PasswordHashingAlgorithm"] = algorithm
        return dict(self.call("create_user_import_job", **kwargs)["UserImportJob"])

    def start(self, job_id: str) -> dict[str, Any]:
        answer = self.call("start_user_import_job", UserPoolId=self.pool_id, JobId=job_id)
        return dict(answer["UserImportJob"])

    def stop(self, job_id: str) -> dict[str, Any]:
        answer = self.call("stop_user_import_job", UserPoolId=self.pool_id, JobId=job_id)
        return dict(answer["UserImportJob"])

    def describe(self, job_id: str) -> dict[str, Any]:
        answer = self.call("describe_user_import_job", UserPoolId=self.pool_id, JobId=job_id)
        return dict(answer["UserImportJob"])

    def list_jobs(self, pool_id: str | None = None, *, pages: int | None = None) -> list[Any]:
        """The pool's import jobs, newest first (all pages, or the first ``pages``)."""
        kwargs: dict[str, Any] = {"UserPoolId": pool_id or self.pool_id,
                                  "MaxResults": LIST_JOBS_PAGE}  # fmt: skip
        jobs: list[Any] = []
        seen = 0
        while True:
            page = self.call("list_user_import_jobs", **kwargs)
            jobs.extend(page.get("UserImportJobs", []))
            seen += 1
            token = page.get("PaginationToken")
            if not token or (pages is not None and seen >= pages):
                return jobs
            kwargs["PaginationToken"] = token

    def active_job_in_account(self) -> dict[str, Any] | None:
        """The account's active import job (Cognito allows one), to name what blocks a
        start; None when no pool shows one.

        Pools are searched most recently changed first (a migration target is likely to be
        a new or recently configured pool), and the search stops at the first active job.
        """
        pools: list[Any] = []
        kwargs: dict[str, Any] = {"MaxResults": POOLS_PAGE}
        while True:
            page = self.call("list_user_pools", **kwargs)
            pools.extend(page.get("UserPools", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        pools.sort(key=lambda p: str(p.get("LastModifiedDate") or p.get("CreationDate") or ""),
                   reverse=True)  # fmt: skip
        for pool in pools:
            # Active jobs are recent: the newest page of each pool is enough.
            for job in self.list_jobs(pool["Id"], pages=1):
                if job.get("Status") in ACTIVE:
                    return dict(job)
        return None
