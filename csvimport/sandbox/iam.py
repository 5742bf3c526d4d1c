"""Whether Cognito may write a job's logs with its CloudWatch Logs role, from moto's IAM.

The role must trust cognito-idp.amazonaws.com and its permissions must allow the logs
actions on the pool's log group (facts §5). Permissions come from every policy of the
role, as IAM evaluates them: the inline policies and the default version of each attached
managed policy (the account's own and AWS's), an explicit Deny anywhere winning over
any Allow, and a permissions boundary, when the role has one, limiting them all.
Conditions are not evaluated: a statement with one applies as if it held.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from moto.iam.models import iam_backends

from . import settings as S

Statement = dict[str, Any]


def role_lets_cognito_log(
    account: str, role_arn: str, *, region: str, group: str, stream: str
) -> bool:
    """True when Cognito may assume ``role_arn`` and write ``stream`` of ``group`` with it."""
    backend = iam_backends[account]["global"]
    try:
        role = backend.get_role_by_arn(role_arn)
    except Exception:  # moto raises its own IAMNotFoundException
        return False
    if not _allows(_statements([role.assume_role_policy_document]), S.ASSUME_ROLE_ACTION, "*",
                   principal=S.COGNITO_PRINCIPAL):  # fmt: skip
        return False
    documents = list(role.policies.values())
    documents += [_default_document(policy) for policy in role.managed_policies.values()]
    permissions = _statements(documents)
    boundary = None
    if role.permissions_boundary_arn:
        policy = backend.managed_policies.get(role.permissions_boundary_arn)
        boundary = _statements([_default_document(policy)] if policy is not None else [])
    group_arn = f"arn:aws:logs:{region}:{account}:log-group:{group}"
    resources = [group_arn, f"{group_arn}:*", f"{group_arn}:log-stream:{stream}"]
    return all(
        any(_allows(permissions, action, resource) for resource in resources)
        and (boundary is None or any(_allows(boundary, action, r) for r in resources))
        for action in S.LOGS_ROLE_ACTIONS
    )


def _default_document(policy: Any) -> str:
    """The document of a managed policy's default version (moto keeps every version)."""
    for version in policy.versions:
        if version.version_id == policy.default_version_id:
            return str(version.document)
    return ""


def _statements(documents: Iterable[Any]) -> list[Statement]:
    statements: list[Statement] = []
    for document in documents:
        if isinstance(document, str):
            document = _parse(document)
        found = document.get("Statement", []) if isinstance(document, dict) else []
        statements += [s for s in ([found] if isinstance(found, dict) else found)
                       if isinstance(s, dict)]  # fmt: skip
    return statements


def _parse(text: str) -> Any:
    for candidate in (text, unquote(text)):  # IAM hands documents out URL-encoded
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None  # grants nothing


def _allows(
    statements: list[Statement], action: str, resource: str, *, principal: str | None = None
) -> bool:
    """Some statement allows ``action`` on ``resource`` (for ``principal``) and none denies it."""
    applying = [s for s in statements if _applies(s, action, resource, principal)]
    return any(s.get("Effect") == "Allow" for s in applying) and not any(
        s.get("Effect") == "Deny" for s in applying
    )


def _applies(statement: Statement, action: str, resource: str, principal: str | None) -> bool:
    if "NotAction" in statement:
        acts = not _matches(statement["NotAction"], action, case=False)
    else:
        acts = _matches(statement.get("Action"), action, case=False)
    if "NotResource" in statement:
        on = not _matches(statement["NotResource"], resource, case=True)
    else:
        on = "Resource" not in statement or _matches(statement["Resource"], resource, case=True)
    if principal is not None:
        given = statement.get("Principal")
        services = given.get("Service") if isinstance(given, dict) else None
        if not (given == "*" or _matches(services, principal, case=False)):
            return False
    return acts and on


def _matches(patterns: Any, value: str, *, case: bool) -> bool:
    return any(_pattern(p, case).fullmatch(value) for p in _listed(patterns))


def _listed(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, str))


@lru_cache(maxsize=512)
def _pattern(pattern: str, case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters, ``?`` any one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, 0 if case else re.IGNORECASE)
