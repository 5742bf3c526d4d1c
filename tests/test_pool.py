"""Pool snapshots: what build validates against, read from the sandbox over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from csvimport.errors import ConfigError
from csvimport.pool import PoolSnapshot, read_pool
from csvimport.sandbox import PoolInfo


def test_snapshot_of_the_demo_pool_has_its_rules(cognito: Any, make_pool: Any) -> None:
    info: PoolInfo = make_pool(
        AliasAttributes=["email"], MfaConfiguration="OFF",
        AccountRecoverySetting={"RecoveryMechanisms": [
            {"Name": "verified_phone_number", "Priority": 2},
            {"Name": "verified_email", "Priority": 1}]},
    )  # fmt: skip
    snap = read_pool(cognito, info.user_pool_id)
    assert snap.user_pool_id == info.user_pool_id
    assert snap.name == info.user_pool_name
    assert snap.header[-2:] == ["cognito:mfa_enabled", "cognito:username"]
    assert snap.auto_verified == ["email"]
    assert snap.case_sensitive is False
    assert snap.alias_attributes == ["email"]
    assert snap.unique_attributes() == ["email"]
    assert snap.recovery_mechanisms == ["verified_email", "verified_phone_number"]
    credits = snap.attribute("custom:credits")
    assert credits is not None and credits.data_type == "Number"
    assert (credits.min_value, credits.max_value) == (0, 1000)
    legacy = snap.attribute("custom:legacy_id")
    assert legacy is not None and legacy.max_length == 16


def test_required_attributes_include_username_attributes(cognito: Any, make_pool: Any) -> None:
    info = make_pool(UsernameAttributes=["email"], Schema=[
        {"Name": "family_name", "AttributeDataType": "String", "Required": True}])  # fmt: skip
    assert read_pool(cognito, info.user_pool_id).required() == ["family_name", "email"]


def test_a_saved_snapshot_loads_back_equal_with_the_same_fingerprint(
    cognito: Any, pool: PoolInfo, tmp_path: Path
) -> None:
    snap = read_pool(cognito, pool.user_pool_id)
    snap.save(tmp_path / "pool.json")
    again = PoolSnapshot.load(tmp_path / "pool.json")
    assert again == snap
    assert again.fingerprint() == snap.fingerprint()


@pytest.mark.parametrize("content", [None, "{", '{"user_pool_id": 1}'])
def test_a_missing_or_broken_snapshot_is_a_config_error_with_a_hint(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "pool.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        PoolSnapshot.load(path)
    assert str(path) in str(exc.value)
    assert exc.value.hint
