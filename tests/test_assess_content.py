"""`csvimport assess` reads parts from the values where the names do not say them: the
legacy id, verified flags, the birthdate, the disabled flag's sense, the groups' roles and
the phone numbers' region; the starter mapping carries them and builds; the demo's legacy
members get the pool, mapping and strategy `make demo` rehearses with."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from csvimport.assess.content import (
    PHONE_REGION_MIN_SHARE,
    GroupRoles,
    NationalPhones,
    phone_region,
    refine_roles,
)
from csvimport.assess.model import ColumnProfile, Roles
from csvimport.assess.profile import assess_source
from csvimport.assess.propose import POOL_SPEC_FILE, Strategy, mapping_text, propose, write_proposal
from csvimport.build.mapping.spec import Disabled, Mapping
from csvimport.build.sources.base import SourceSpec
from csvimport.pool import read_pool
from csvimport.sandbox import Sandbox, load_pool_spec

from .helpers import build_rows

# member_id: complete and unique, named as an id; ref_no: named as one but shared by two
# rows; email_ok and newsletter: yes/no flags, only one named after the email; born: dates
# named after a birth, joined: dates that are not; active: who is active; roles: ";"-lists.
HEADER = ["ref_no", "member_id", "login", "email_address", "email_ok", "newsletter", "mobile",
          "born", "joined", "active", "roles"]  # fmt: skip
ROWS = [
    ["7", "101", "ada", "ada@example.com", "Y", "yes", "(415) 555-0101", "1990-01-02",
     "2020-01-01", "1", "member;admin"],
    ["7", "102", "bob", "bob@example.com", "1", "no", "415.555.0102", "1991-02-03",
     "2020-02-01", "0", "member"],
    ["8", "103", "cyd", "cyd@example.com", "N", "no", "+44 20 7946 0103", "1992-03-04",
     "2020-03-01", "1", ""],
    ["9", "104", "dee", "dee@example.com", "yes", "yes", "", "1993-04-05", "2020-04-01", "1",
     "member; moderator"],
]  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


@pytest.fixture
def members(tmp_path: Path) -> Any:
    return assess_source(SourceSpec(str(write_csv(tmp_path / "members.csv", HEADER, ROWS))))


def test_parts_the_names_do_not_say_are_found_by_the_values_each_with_its_reason(
    members: Any,
) -> None:
    roles = members.roles
    # found by name, as before
    assert (roles.username, roles.email, roles.phone_number) == ("login", "email_address", "mobile")
    assert (roles.disabled, roles.groups) == ("active", "roles")
    # found by the values: ref_no is no id (7 twice), newsletter no verified flag
    assert roles.legacy_id == "member_id"
    assert roles.email_verified == "email_ok" and roles.phone_number_verified is None
    assert roles.attributes.get("born") == "birthdate" and "joined" not in roles.attributes
    assert roles.disabled_when is False  # "active": a false value disables
    assert set(roles.by_values) == {"legacy_id", "email_verified", "birthdate"}
    assert "unique in all 4 rows" in roles.by_values["legacy_id"]
    assert members.groups.separator == ";"
    assert members.groups.roles == {"member": 3, "admin": 1, "moderator": 1}
    mobile = members.column("mobile")
    assert mobile.national_sample == 2 and mobile.national_regions["US"] == 2


def flag(name: str, rows: int = 10, **extra: Any) -> ColumnProfile:
    return ColumnProfile(name=name, rows=rows, filled=rows, distinct=2, distinct_folded=2,
                         max_length=1, p99_length=1, kinds={"boolean": rows},
                         boolean_spellings={"y": rows // 2, "n": rows - rows // 2},
                         **extra)  # fmt: skip


@pytest.mark.parametrize(("column", "when"), [
    ("is_disabled", True), ("locked", True), ("enabled", False), ("IsActive", False),
])  # fmt: skip
def test_the_disabled_flag_disables_on_true_unless_it_says_who_is_active(
    column: str, when: bool
) -> None:
    assert refine_roles(Roles(disabled=column), [flag(column)]).disabled_when is when
    assert refine_roles(Roles(), [flag("other")]).disabled_when is None


def test_names_already_taken_and_flags_of_other_things_are_left_alone() -> None:
    roles = Roles(email="mail", email_verified="verified", legacy_id="uid")
    found = refine_roles(roles, [flag("mail_confirmed"), flag("sms_ok"), flag("paid")])
    # the email flag is taken by name already; sms_ok is the phone's; paid is nobody's
    assert (found.email_verified, found.phone_number_verified) == ("verified", "sms_ok")
    assert found.legacy_id == "uid" and roles.phone_number_verified is None  # not changed


def test_group_roles_take_the_separator_they_find_and_count_the_rest_past_the_limit() -> None:
    groups = GroupRoles("roles", limit=2)
    groups.add(pd.Series(["a|b", "a", "", "  ", "c|a"], dtype="str"))
    groups.add(pd.Series(["b|c, d"], dtype="str"))  # the separator stays "|"
    found = groups.profile()
    assert found.separator == "|"
    assert found.roles == {"a": 3, "b": 2}
    assert found.more == 2  # c, then "c, d": beyond the first two roles


@pytest.mark.parametrize(("numbers", "region"), [
    (["(415) 555-0101", "212-555-0199", "+44 20 7946 0000"], "US"),  # +numbers not sampled
    (["020 7946 0018", "0161 496 0000", "0131 496 0000"], "GB"),  # valid in IN too: a tie
    (["030 901820", "089 1234567"], "DE"),
])  # fmt: skip
def test_numbers_without_country_code_are_read_as_the_country_most_are_valid_in(
    numbers: list[str], region: str
) -> None:
    sample = NationalPhones()
    sample.add(numbers)
    profile = ColumnProfile(name="mobile", rows=3, filled=3, distinct=3, distinct_folded=3,
                            max_length=16, p99_length=16, national_sample=len(sample.sample),
                            national_regions=sample.regions())  # fmt: skip
    found, why = phone_region(profile)
    assert found == region, why
    assert f"valid {region} numbers" in why


def test_no_region_is_proposed_from_numbers_valid_nowhere_or_too_seldom() -> None:
    def region_of(national_sample: int, regions: dict[str, int]) -> tuple[str | None, str]:
        return phone_region(ColumnProfile(
            name="m", rows=9, filled=9, distinct=9, distinct_folded=9, max_length=9,
            p99_length=9, national_sample=national_sample, national_regions=regions))  # fmt: skip

    assert region_of(0, {}) == (None, "")
    none, why = region_of(4, {})
    assert none is None and "set phone_region yourself" in why
    few = int(10 * PHONE_REGION_MIN_SHARE) - 1
    none, why = region_of(10, {"US": few})
    assert none is None and "too few" in why


def test_the_starter_mapping_carries_the_follow_ups_and_region_and_builds(
    members: Any, sandbox: Sandbox, cognito: Any, tmp_path: Path
) -> None:
    proposal = propose(members)
    text = mapping_text(proposal)
    assert "Written by `csvimport assess`" in text
    assert "Found by its values: email_ok" in text
    mapping = Mapping.from_dict(tomllib.loads(text))
    assert mapping.legacy_id == "member_id" and mapping.phone_region == "US"
    assert mapping.disabled == Disabled("active", when=False)
    assert mapping.groups is not None and mapping.groups.separator == ";"
    assert dict(mapping.groups.names) == {"member": "member", "admin": "admin",
                                          "moderator": "moderator"}  # fmt: skip
    rules = {r.attribute: r for r in mapping.rules}
    assert rules["email_verified"].columns() == ["email_ok"]
    assert (rules["birthdate"].columns(), rules["birthdate"].transform) == (["born"], "date")
    assert rules["custom:legacy_id"].columns() == ["member_id"]
    write_proposal(proposal, tmp_path)
    info = sandbox.create_pool(load_pool_spec(tmp_path / POOL_SPEC_FILE))
    (tmp_path / "build").mkdir()
    run, result = build_rows(tmp_path / "build", HEADER, ROWS, text,
                             read_pool(cognito, info.user_pool_id))  # fmt: skip
    # cyd's email is not verified (N): Cognito needs a verified channel
    assert (result.written, result.rejected) == (3, 1), dict(result.reasons)
    chunk = pd.read_csv(next(run.glob("chunk-*.csv")), dtype=str, keep_default_na=False)
    phones = dict(zip(chunk["cognito:username"], chunk["phone_number"], strict=True))
    assert phones == {"ada": "+14155550101", "bob": "+14155550102", "dee": ""}
    assert set(chunk["birthdate"]) == {"01/02/1990", "02/03/1991", "04/05/1993"}
    followups = (run / "followups.csv").read_text(encoding="utf-8")
    assert "moderator" in followups and "admin" in followups


def test_the_demo_members_get_the_pool_mapping_and_strategy_make_demo_rehearses(
    tmp_path: Path,
) -> None:
    from csvimport.demo import make_legacy_db

    make_legacy_db(tmp_path / "legacy.db", members=120)
    found = assess_source(SourceSpec(f"sqlite:///{tmp_path / 'legacy.db'}", table="members"))
    proposal = propose(found)
    assert proposal.strategy is Strategy.BULK_AND_MIGRATION
    assert proposal.password_fallback.value == "migrate"
    mapping = Mapping.from_dict(tomllib.loads(mapping_text(proposal)))
    assert (mapping.legacy_id, mapping.phone_region) == ("member_id", "US")
    assert mapping.disabled == Disabled("active", when=False)
    assert mapping.groups is not None and {r for r, _ in mapping.groups.names} == {
        "member", "moderator", "admin"}  # fmt: skip
    rules = {r.attribute: r for r in mapping.rules}
    assert rules["email_verified"].columns() == ["email_ok"]
    assert rules["birthdate"].columns() == ["born"]
