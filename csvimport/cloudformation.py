"""Small builders for the AWS CloudFormation templates csvimport writes.

The migration function's template (:mod:`csvimport.migrate.package`) and the proposed
pool's (:mod:`csvimport.assess.propose`) are JSON documents built from dicts; these keep
the intrinsic functions and inline policies spelled one way.
"""

from __future__ import annotations

from typing import Any, Final

TEMPLATE_FORMAT_VERSION: Final = "2010-09-09"
POLICY_VERSION: Final = "2012-10-17"


def ref(name: str) -> dict[str, str]:
    """``{"Ref": name}``: a parameter's value, a resource's id or a pseudo parameter."""
    return {"Ref": name}


def fn_if(condition: str, then: Any) -> dict[str, Any]:
    """``then`` when ``condition`` holds, else no value at all (AWS::NoValue)."""
    return {"Fn::If": [condition, then, ref("AWS::NoValue")]}


def policy(name: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    """An inline policy of an AWS::IAM::Role's Policies."""
    return {"PolicyName": name,
            "PolicyDocument": {"Version": POLICY_VERSION, "Statement": statements}}  # fmt: skip


def service_trust(service: str) -> dict[str, Any]:
    """An AssumeRolePolicyDocument letting one AWS service (e.g. lambda.amazonaws.com) assume
    the role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
