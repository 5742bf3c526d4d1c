"""Read what a Cognito user pool expects of an import file."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient


def get_csv_header(client: CognitoIdentityProviderClient, pool_id: str) -> list[str]:
    """Return the columns, in order, that Cognito wants in an import file (GetCSVHeader)."""
    return list(client.get_csv_header(UserPoolId=pool_id)["CSVHeader"])
