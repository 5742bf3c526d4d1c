"""Before ``start`` makes a job: is the run still importable into its pool?

The pool must still exist, be the one the run was built for, not have changed since the
build in anything that decides what Cognito accepts, and be able to import at all; the
run's files must be as built; and a CloudWatch Logs role must be given. Each refusal
names what differs and the fix.
"""

from __future__ import annotations

import re
from typing import Any

from csvimport.errors import ConfigError, RefusedError
from csvimport.pool import PoolSnapshot, read_pool
from csvimport.retry import paced
from csvimport.rundir import RunDir

ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+")
LOGS_ROLE_HINT = (
    "Pass --logs-role-arn or set CSVIMPORT_LOGS_ROLE_ARN to an IAM role that trusts "
    "cognito-idp.amazonaws.com and may write to the log groups /aws/cognito/*."
)
# Snapshot fields that decide whether Cognito accepts the rows as built.
IMPORT_FIELDS = ("name", "attributes", "auto_verified", "username_attributes",
                 "alias_attributes", "case_sensitive", "mfa")  # fmt: skip


def pool_differences(built: PoolSnapshot, live: PoolSnapshot) -> list[str]:
    """What changed in the pool since the build that could change what Cognito accepts."""
    differences: list[str] = []
    missing = [c for c in built.header if c not in live.header]
    extra = [c for c in live.header if c not in built.header]
    if missing:
        differences.append(f"columns no longer in the pool's CSV header: {', '.join(missing)}")
    if extra:
        differences.append(f"new columns in the pool's CSV header: {', '.join(extra)}")
    built_json, live_json = built.to_json(), live.to_json()
    for name in IMPORT_FIELDS:
        if name == "attributes":
            before = {a["name"]: a for a in built_json[name]}
            after = {a["name"]: a for a in live_json[name]}
            for attr in sorted(set(before) | set(after)):
                if before.get(attr) != after.get(attr):
                    differences.append(
                        f"attribute {attr}: {_short(before.get(attr))} -> {_short(after.get(attr))}"
                    )
        elif built_json[name] != live_json[name]:
            differences.append(f"{name}: {built_json[name]!r} -> {live_json[name]!r}")
    return differences


def _short(attribute: dict[str, Any] | None) -> str:
    if attribute is None:
        return "absent"
    return ", ".join(f"{k}={v}" for k, v in attribute.items() if k != "name" and v is not None)


def check_role_arn(role_arn: str | None) -> str:
    if not role_arn:
        raise RefusedError("no CloudWatch Logs role given", hint=LOGS_ROLE_HINT)
    if not ROLE_ARN.fullmatch(role_arn):
        raise RefusedError(
            f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
            hint=LOGS_ROLE_HINT,
        )
    return role_arn


def pool_gone(pool_id: str, region: str | None) -> RefusedError:
    """The refusal when the pool a run was built for is not there (wrong region or account)."""
    return RefusedError(
        f"the user pool {pool_id} this run was built for does not exist (region {region})",
        hint="Check --region and --profile: a run can only be imported into the pool "
        "it was built for. For another pool, build again with its --pool-id.",
    )


def check_before_start(run: RunDir, client: Any) -> PoolSnapshot:
    """Refuse to start when the pool is gone, changed since the build, or cannot
    import at all, or when a file of the run is missing or changed since the build;
    return the live pool."""
    run.verify_files()
    pool_id = run.user_pool_id
    try:
        live = read_pool(paced(client), pool_id)
    except ConfigError:  # read_pool's "no such pool"; AWS failures stay what they are
        raise pool_gone(pool_id, client.meta.region_name) from None
    differences = pool_differences(run.snapshot, live)
    header = set(run.header(run.chunks[0])) if run.chunks else set()
    file_missing = [c for c in live.header if c not in header]
    if run.chunks and file_missing and not differences:
        differences.append(f"the import files lack columns: {', '.join(file_missing)}")
    if differences:
        raise RefusedError(
            f"the user pool {pool_id} changed since this run was built:\n  - "
            + "\n  - ".join(differences),
            hint="The run was validated against the pool as it was; build again "
            "(`csvimport build ... --pool-id " + pool_id + "`) and start the new run "
            "directory.",
        )
    if not live.auto_verified:
        raise RefusedError(
            f"the user pool {pool_id} has no auto-verified attributes, so Cognito will not "
            "start an import job",
            hint="Turn on automatic verification of email or phone number in the pool "
            "(AutoVerifiedAttributes), then build again.",
        )
    return live
