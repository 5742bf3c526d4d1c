"""`csvimport assess`'s proposal: each rule on crafted assessments, the pool spec through the
sandbox, the CloudFormation template through cfn-lint, the starter mapping through the
mapping reader."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from csvimport.assess.model import (
    Assessment,
    ColumnProfile,
    DuplicateCounts,
    PasswordCensus,
    Roles,
)
from csvimport.assess.propose import (
    FILES,
    LENGTH_HEADROOM,
    MAPPING_FILE,
    MAX_CUSTOM_ATTRIBUTES,
    MAX_CUSTOM_NAME,
    MAX_VALUE_LENGTH,
    MIGRATION_MIN_SHARE,
    POOL_SPEC_FILE,
    PROPOSAL_FILE,
    RESET_ALL_BELOW_SHARE,
    TEMPLATE_FILE,
    Proposal,
    Strategy,
    custom_name,
    mapping_text,
    propose,
    template,
    write_proposal,
)
from csvimport.build.mapping.spec import PASSWORD_HASH, Mapping
from csvimport.pool import read_pool
from csvimport.sandbox import Sandbox, load_pool_spec

from .helpers import build_rows

ROWS = 1000
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def column(
    name: str, filled: int = ROWS, kinds: dict[str, int] | None = None, max_length: int = 10,
    **extra: Any,
) -> ColumnProfile:  # fmt: skip
    return ColumnProfile(name=name, rows=ROWS, filled=filled, distinct=filled,
                         distinct_folded=filled, max_length=max_length, p99_length=max_length,
                         kinds={"text": filled} if kinds is None else kinds, **extra)  # fmt: skip


def legacy_users(
    *,
    columns: list[ColumnProfile] | None = None,
    roles: Roles | None = None,
    duplicates: list[DuplicateCounts] | None = None,
    passwords: PasswordCensus | None = None,
) -> Assessment:
    """A member table: id, login, mail (unique, complete), its verified flag, names, a plan,
    and bcrypt hashes Cognito imports."""
    base = [
        column("member_id", kinds={"integer": ROWS}),
        column("login"),
        column("mail", kinds={"email": ROWS}, max_length=40),
        column("mail_ok", kinds={"boolean": ROWS}, boolean_spellings={"Y": 900, "n": 100}),
        column("first_name"),
        column("last_name", filled=970),
        column("plan", filled=800, max_length=8),
        column("password", kinds={"password hash": ROWS}, max_length=60),
    ]
    return Assessment(
        source="members.csv",
        rows=ROWS,
        columns=base + (columns or []),
        roles=roles
        or Roles(
            username="login",
            email="mail",
            email_verified="mail_ok",
            password="password",
            legacy_id="member_id",
            attributes={"first_name": "given_name", "last_name": "family_name"},
        ),  # fmt: skip
        duplicates=duplicates
        if duplicates is not None
        else [
            DuplicateCounts(column="login", role="username", exact=0, folded=0),
            DuplicateCounts(column="mail", role="email", exact=0, folded=0),
        ],  # fmt: skip
        passwords=passwords
        or PasswordCensus(column="password", importable=ROWS, by_scheme={"bcrypt": ROWS}),
    )


# --- sign-in ---------------------------------------------------------------------------------


def test_unique_complete_emails_beside_usernames_become_an_alias() -> None:
    proposal = propose(legacy_users())
    assert (proposal.username_attributes, proposal.alias_attributes) == ([], ["email"])
    assert "unique after case folding" in proposal.choice("sign_in").reason


def test_emails_shared_after_case_folding_keep_sign_in_by_username_and_say_how_many() -> None:
    dups = [DuplicateCounts(column="login", role="username", exact=0, folded=0),
            DuplicateCounts(column="mail", role="email", exact=1, folded=4)]  # fmt: skip
    proposal = propose(legacy_users(duplicates=dups))
    assert (proposal.username_attributes, proposal.alias_attributes) == ([], [])
    reason = proposal.choice("sign_in").reason
    assert reason.startswith("Sign in with a username") and "4 rows share an email" in reason


def test_too_few_emails_keep_sign_in_by_username_with_the_numbers() -> None:
    mail = column("mail", filled=950, kinds={"email": 940})
    users = legacy_users()
    users.columns[2] = mail
    proposal = propose(users)
    assert proposal.alias_attributes == [] == proposal.username_attributes
    assert "60 of 1,000 rows (6.0%) have no valid email address" in (
        proposal.choice("sign_in").reason
    )


def test_without_a_username_column_users_sign_in_with_their_email_which_is_the_username() -> None:
    users = legacy_users(roles=Roles(email="mail", email_verified="mail_ok"))
    proposal = propose(users)
    assert (proposal.username_attributes, proposal.alias_attributes) == (["email"], [])
    assert proposal.known["cognito:username"] == {"column": "mail", "transform": "email"}


def test_usernames_that_look_like_emails_rule_out_the_alias() -> None:
    users = legacy_users()
    users.columns[1] = column("login", kinds={"text": 990, "email": 10})
    proposal = propose(users)
    assert proposal.username_attributes == ["email"]
    assert "10 usernames look like email addresses" in proposal.choice("sign_in").reason


# --- case sensitivity ------------------------------------------------------------------------


def test_usernames_are_case_insensitive_when_no_two_differ_only_in_case() -> None:
    proposal = propose(legacy_users())
    assert proposal.case_sensitive is False
    assert "no two usernames differ only in case" in proposal.choice("case_sensitive").reason


def test_case_only_collisions_keep_usernames_case_sensitive_naming_the_masked_examples() -> None:
    dups = [DuplicateCounts(column="login", role="username", exact=2, folded=5,
                            case_only_examples=["ad…1", "gr…7", "AD…1"]),
            DuplicateCounts(column="mail", role="email", exact=0, folded=0)]  # fmt: skip
    proposal = propose(legacy_users(duplicates=dups))
    assert proposal.case_sensitive is True
    reason = proposal.choice("case_sensitive").reason
    assert "3 username values of login differ from another only in case" in reason
    assert "ad…1, gr…7, AD…1" in reason


def test_without_duplicate_counts_the_profiles_distinct_values_tell_collisions() -> None:
    users = legacy_users(duplicates=[])
    users.columns[1] = column("login")
    users.columns[1].distinct_folded = ROWS - 3  # 3 logins equal to another but for case
    users.columns[2] = column("mail", kinds={"email": ROWS})
    users.columns[2].distinct_folded = ROWS - 2
    proposal = propose(users)
    assert proposal.alias_attributes == [] and proposal.case_sensitive is True
    assert "2 rows share an email address" in proposal.choice("sign_in").reason
    reason = proposal.choice("case_sensitive").reason
    assert "3 username values of login differ from another only in case." in reason


# --- auto-verified and required --------------------------------------------------------------


def test_auto_verified_attributes_come_from_the_verified_flags_with_their_rates() -> None:
    users = legacy_users(columns=[
        column("mobile", filled=500, kinds={"phone": 500}),
        column("mobile_ok", filled=400, kinds={"boolean": 400},
               boolean_spellings={"true": 300, "false": 100}),
    ])  # fmt: skip
    users.roles.phone_number, users.roles.phone_number_verified = "mobile", "mobile_ok"
    proposal = propose(users)
    assert proposal.auto_verified == ["email", "phone_number"]
    reason = proposal.choice("auto_verified").reason
    assert "email from mail_ok (filled in 100.0% of rows, true in 90.0%: 900 of 1,000)" in reason
    assert "phone_number from mobile_ok (filled in 40.0% of rows, true in 30.0%" in reason
    assert "SmsConfiguration" in reason
    spec = proposal.choice("account_recovery").value
    assert spec == ["verified_email", "verified_phone_number"]


def test_one_verified_flag_says_how_many_users_cannot_be_imported() -> None:
    proposal = propose(legacy_users())
    assert proposal.auto_verified == ["email"]
    assert "100 users whose email is not verified cannot be imported" in (
        proposal.choice("auto_verified").reason
    )


def test_without_a_verified_flag_email_is_auto_verified_and_the_reason_warns() -> None:
    users = legacy_users()
    users.roles.email_verified = None
    proposal = propose(users)
    assert proposal.auto_verified == ["email"]
    assert "no verified flag" in proposal.choice("auto_verified").reason
    assert "email_verified" not in proposal.known


def test_only_complete_contact_columns_are_required_with_the_caution_that_it_is_forever() -> None:
    users = legacy_users(columns=[column("mobile", filled=500, kinds={"phone": 500})])
    users.roles.phone_number = "mobile"
    proposal = propose(users)
    assert proposal.required == ["email"]
    reason = proposal.choice("required").reason
    assert "Required: email (mail: all 1,000 rows)" in reason
    assert "Required can never be changed" in reason
    # complete but no contact channel: named, not required; incomplete: not required
    assert "Filled in every row but not required" in reason and ": given_name." in reason
    assert "phone_number (mobile: 500 rows empty, 50.0% filled)" in reason
    assert "family_name (last_name: 30 rows empty, 97.0% filled)" in reason


def test_an_incomplete_email_column_is_not_required() -> None:
    users = legacy_users()
    users.columns[2] = column("mail", filled=999, kinds={"email": 999})
    proposal = propose(users)
    assert proposal.required == []
    assert "email (mail: 1 rows empty, 99.9% filled)" in proposal.choice("required").reason


# --- custom attributes -----------------------------------------------------------------------


def test_columns_without_a_standard_attribute_become_custom_attributes_typed_by_their_kinds() -> (
    None
):
    users = legacy_users(columns=[
        column("credits", kinds={"integer": ROWS}),
        column("newsletter", kinds={"boolean": ROWS}),
        column("joined", kinds={"date": ROWS}, date_formats={"%Y-%m-%d": ROWS}),
        column("born_on", kinds={"date": ROWS}, date_formats={"%d/%m/%Y": 900, "%Y-%m-%d": 100}),
        column("last_seen", kinds={"timestamp": ROWS}, date_formats={"%Y-%m-%dT%H:%M:%S": ROWS}),
        column("logged_out", kinds={"timestamp": ROWS}, date_formats={"%d/%m/%Y %H:%M": ROWS}),
        column("score", kinds={"number": 990, "text": 10}),
        column("empty_notes", filled=0, kinds={}),
        column("teams"),
    ])  # fmt: skip
    users.roles.groups = "teams"
    proposal = propose(users)
    by_name = {a.name: a for a in proposal.custom}
    assert {n: (a.data_type, a.transform) for n, a in by_name.items()} == {
        "legacy_id": ("String", None),
        "plan": ("String", None),
        "credits": ("Number", None),
        "newsletter": ("Boolean", "boolean"),
        "joined": ("DateTime", None),
        "born_on": ("String", None),
        "last_seen": ("DateTime", None),
        "logged_out": ("String", None),
        "score": ("String", None),
    }
    assert by_name["legacy_id"].mutable is False and by_name["plan"].mutable is True
    assert "10 of its 1,000 values are not number values" in by_name["score"].reason
    assert "its timestamps are not ISO 8601 (%d/%m/%Y %H:%M)" in by_name["logged_out"].reason
    assert "its dates are not ISO 8601 (%Y-%m-%d, %d/%m/%Y)" in by_name["born_on"].reason
    assert proposal.left_out == {
        "password": "the password hash: the import file's password_hash, not an attribute",
        "empty_notes": "empty in every row",
        "teams": "group memberships: AdminAddUserToGroup after the import, not an attribute",
    }


def test_string_lengths_get_headroom_capped_at_cognitos_limit() -> None:
    users = legacy_users(columns=[column("bio", max_length=1500), column("tag", max_length=0,
                                                                        filled=3)])  # fmt: skip
    by_name = {a.name: a for a in propose(users).custom}
    assert by_name["plan"].max_length == LENGTH_HEADROOM * 8 == 16
    assert by_name["bio"].max_length == MAX_VALUE_LENGTH == 2048
    assert by_name["tag"].max_length == 1
    assert "2x the longest value, 8, at most 2,048" in by_name["plan"].reason


def test_long_names_are_shortened_to_whole_words_and_clashes_numbered() -> None:
    assert custom_name("Subscription Plan Level Name") == (
        "subscription_plan",
        "shortened to its first whole words (28 characters are over the 20 allowed)",
    )
    assert custom_name("Mitgliedschaftsverwaltungsnummer")[0] == "mitgliedschaftsverwa"
    users = legacy_users(columns=[column("subscription_plan_level_a"),
                                  column("subscription_plan_level_b"),
                                  column("Subscription-Plan")])  # fmt: skip
    custom = propose(users).custom
    names = {a.column: a.name for a in custom}
    assert names == {"member_id": "legacy_id", "plan": "plan",
                     "subscription_plan_level_a": "subscription_plan",
                     "subscription_plan_level_b": "subscription_plan_2",
                     "Subscription-Plan": "subscription_plan_3"}  # fmt: skip
    assert all(len(name) <= MAX_CUSTOM_NAME for name in names.values())
    reason = next(a.reason for a in custom if a.name == "subscription_plan_2")
    assert "'subscription_plan' was taken, so 'subscription_plan_2'" in reason


def test_at_most_50_custom_attributes_leaving_out_the_emptiest_and_saying_which() -> None:
    extra = [column(f"field_{n:02d}", filled=ROWS - n) for n in range(60)]
    proposal = propose(legacy_users(columns=extra))
    assert len(proposal.custom) == MAX_CUSTOM_ATTRIBUTES
    assert proposal.custom[0].name == "legacy_id"
    # legacy_id, then the 49 fullest of plan (800 filled) and field_00..59 (1000..941)
    left = {c for c, why in proposal.left_out.items() if "over the pool's 50" in why}
    assert left == {f"field_{n:02d}" for n in range(49, 60)} | {"plan"}
    assert "12 columns left out for the limit" in proposal.choice("custom_attributes").reason


# --- the strategy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("census", "strategy", "phrase"),
    [
        (PasswordCensus("pw", importable=900, convertible=80, empty=20), Strategy.BULK_ONLY,
         "980 of 1,000 users (98.0%) have a hash Cognito imports"),
        # at the threshold (1%), the migration is worth it; under it, those users reset
        (PasswordCensus("pw", importable=980, at_first_sign_in=10, unknown=10),
         Strategy.BULK_AND_MIGRATION, "10 (1.0%) have one only the migration function"),
        (PasswordCensus("pw", importable=990, at_first_sign_in=9, unknown=1), Strategy.BULK_ONLY,
         "the 9 whose hash only the migration function can verify are under 1% of users"),
        (PasswordCensus("pw", at_first_sign_in=700, empty=300), Strategy.BULK_AND_MIGRATION,
         "300 (30.0%) reset their password"),
        (PasswordCensus("pw", importable=49, unknown=600, empty=351), Strategy.RESET_ALL,
         "only 49 of 1,000 users (4.9%)"),
        (PasswordCensus("pw", importable=50, unknown=600, empty=350), Strategy.BULK_ONLY,
         "50 of 1,000 users (5.0%)"),
        (PasswordCensus(None), Strategy.RESET_ALL, "no password column"),
    ],
)  # fmt: skip
def test_the_strategy_follows_the_census_with_the_numbers(
    census: PasswordCensus, strategy: Strategy, phrase: str
) -> None:
    assert (MIGRATION_MIN_SHARE, RESET_ALL_BELOW_SHARE) == (0.01, 0.05)
    proposal = propose(legacy_users(passwords=census))
    assert proposal.strategy is strategy
    assert phrase in proposal.choice("strategy").reason
    assert proposal.to_json()["strategy"]["numbers"]["at_first_sign_in"] == census.at_first_sign_in
    assert (PASSWORD_HASH in proposal.known) == (
        strategy is not Strategy.RESET_ALL and census.importable + census.convertible > 0
    )
    fallback = "migrate" if strategy is Strategy.BULK_AND_MIGRATION else "reset"
    assert proposal.to_json()["strategy"]["password_fallback"] == fallback


def test_resetting_more_users_than_cognitos_daily_emails_names_ses() -> None:
    few = propose(legacy_users(passwords=PasswordCensus("pw", importable=950, empty=50)))
    many = propose(legacy_users(passwords=PasswordCensus("pw", importable=949, empty=51)))
    assert "Amazon SES" not in few.choice("strategy").reason
    assert "resetting more than 50 users a day needs Amazon SES" in many.choice("strategy").reason


# --- the files -------------------------------------------------------------------------------

MIGRATING = PasswordCensus("password", importable=800, at_first_sign_in=150, empty=50,
                           by_scheme={"bcrypt": 800, "md5_crypt": 150})  # fmt: skip


def test_write_proposal_writes_the_four_files_private_and_proposal_json_for_the_page(
    tmp_path: Path,
) -> None:
    proposal = propose(legacy_users(passwords=MIGRATING))
    paths = write_proposal(proposal, tmp_path / "assessment")
    assert [p.name for p in paths] == list(FILES)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    page = json.loads((tmp_path / "assessment" / PROPOSAL_FILE).read_text())
    assert [c["name"] for c in page["choices"]] == [
        "sign_in", "case_sensitive", "auto_verified", "required", "custom_attributes",
        "account_recovery", "mfa", "strategy", "app_client_flows",
    ]  # fmt: skip
    assert all(c["reason"] for c in page["choices"])
    assert page["strategy"]["name"] == "bulk plus migration at first sign-in"
    assert page["strategy"]["numbers"]["importable"] == 800
    assert page == proposal.to_json()


def test_the_templates_pass_cfn_lint_with_zero_findings(tmp_path: Path) -> None:
    paths = []
    reset = PasswordCensus("password", empty=ROWS)
    for name, census in (("bulk", None), ("migration", MIGRATING), ("reset", reset)):
        path = tmp_path / f"{name}.{TEMPLATE_FILE}"
        path.write_text(json.dumps(template(propose(legacy_users(passwords=census))), indent=2))
        paths.append(str(path))
    done = subprocess.run([str(CFN_LINT), *paths], capture_output=True, text=True, timeout=180)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_template_has_the_import_logs_role_and_the_migration_app_client() -> None:
    bulk = template(propose(legacy_users()))
    reset = template(propose(legacy_users(passwords=PasswordCensus("password", empty=ROWS))))
    migration = template(propose(legacy_users(passwords=MIGRATING)))
    pool = migration["Resources"]["UserPool"]
    assert pool["DeletionPolicy"] == pool["UpdateReplacePolicy"] == "Retain"
    properties = pool["Properties"]
    assert properties["AliasAttributes"] == ["email"] and "UsernameAttributes" not in properties
    assert properties["UsernameConfiguration"] == {"CaseSensitive": False}
    assert properties["AutoVerifiedAttributes"] == ["email"]
    assert properties["AccountRecoverySetting"] == {
        "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]}  # fmt: skip
    role = migration["Resources"]["ImportLogsRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "cognito-idp.amazonaws.com"},
                      "Action": "sts:AssumeRole"}]  # fmt: skip
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["logs:CreateLogGroup", "logs:CreateLogStream",
                                           "logs:DescribeLogStreams", "logs:PutLogEvents"]  # fmt: skip
    assert statement["Resource"]["Fn::Sub"].endswith(":log-group:/aws/cognito/*")
    client = migration["Resources"]["AppClient"]["Properties"]
    assert "ALLOW_USER_PASSWORD_AUTH" in client["ExplicitAuthFlows"]
    assert "UserMigration" in json.dumps(properties["LambdaConfig"])
    assert "LambdaConfig" not in json.dumps(bulk)
    # imported hashes need USER_PASSWORD_AUTH too (no SRP before the first sign-in)
    flows = bulk["Resources"]["AppClient"]["Properties"]["ExplicitAuthFlows"]
    assert "ALLOW_USER_PASSWORD_AUTH" in flows
    assert "AppClient" not in reset["Resources"] and "LambdaConfig" not in json.dumps(reset)


def test_the_sandbox_creates_the_proposed_pool_and_describe_user_pool_shows_the_choices(
    sandbox: Sandbox, cognito: Any, tmp_path: Path
) -> None:
    dups = [DuplicateCounts(column="login", role="username", exact=0, folded=2,
                            case_only_examples=["ad…1"]),
            DuplicateCounts(column="mail", role="email", exact=0, folded=0)]  # fmt: skip
    users = legacy_users(duplicates=dups, passwords=MIGRATING,
                         columns=[column("credits", kinds={"integer": ROWS})])  # fmt: skip
    proposal = propose(users)
    write_proposal(proposal, tmp_path)
    info = sandbox.create_pool(load_pool_spec(tmp_path / POOL_SPEC_FILE))
    pool = cognito.describe_user_pool(UserPoolId=info.user_pool_id)["UserPool"]
    assert pool.get("AliasAttributes") == ["email"] and not pool.get("UsernameAttributes")
    assert pool["UsernameConfiguration"] == {"CaseSensitive": True}
    assert pool["AutoVerifiedAttributes"] == ["email"]
    schema = {a["Name"]: a for a in pool["SchemaAttributes"]}
    assert {n for n, a in schema.items() if a.get("Required") and n != "sub"} == {"email"}
    assert schema["custom:legacy_id"]["Mutable"] is False
    assert schema["custom:plan"]["StringAttributeConstraints"]["MaxLength"] == "16"
    assert schema["custom:credits"]["AttributeDataType"] == "Number"
    app = cognito.describe_user_pool_client(
        UserPoolId=info.user_pool_id, ClientId=info.user_pool_client_id
    )["UserPoolClient"]
    assert "ALLOW_USER_PASSWORD_AUTH" in app["ExplicitAuthFlows"]
    # every attribute the starter mapping names is a column of the pool's import files
    mapping = Mapping.load(tmp_path / MAPPING_FILE)
    header = cognito.get_csv_header(UserPoolId=info.user_pool_id)["CSVHeader"]
    assert set(mapping.attributes()) - {PASSWORD_HASH} <= set(header)
    assert set(proposal.header()) - {PASSWORD_HASH} == set(header)
    # and the starter mapping builds legacy rows for this pool without a rejection
    hashed = bcrypt.hashpw(b"legacy-secret", bcrypt.gensalt(4)).decode()
    rows = [[str(n), f"user{n}", f"user{n}@example.com", "Y", "Ada", "Lovelace", "pro",
             hashed, str(n * 10)] for n in range(1, 4)]  # fmt: skip
    (tmp_path / "build").mkdir()
    snapshot = read_pool(cognito, info.user_pool_id)
    starter = (tmp_path / MAPPING_FILE).read_text()
    _, result = build_rows(tmp_path / "build", proposal.columns, rows, starter, snapshot)
    assert (result.written, result.rejected, dict(result.reasons)) == (3, 0, {})
    assert result.passwords is not None and sum(result.passwords.values()) == 3


def proposed_mapping(proposal: Proposal) -> Mapping:
    return Mapping.from_dict(tomllib.loads(mapping_text(proposal)), origin=MAPPING_FILE)


def test_the_starter_mapping_loads_and_maps_each_role_to_the_proposed_attributes() -> None:
    users = legacy_users(passwords=MIGRATING, columns=[
        column("subscription_plan_level", kinds={"integer": ROWS}),
        column("newsletter", kinds={"boolean": ROWS}),
    ])  # fmt: skip
    proposal = propose(users)
    mapping = proposed_mapping(proposal)
    mapping.check_columns(proposal.columns)
    rules = {r.attribute: r for r in mapping.rules}
    assert set(rules) == {
        "cognito:username", "email", "email_verified", "given_name", "family_name",
        "name",  # suggest_mapping's join of the two names
        "custom:legacy_id", "custom:plan", "custom:subscription_plan", "custom:newsletter",
        PASSWORD_HASH,
    }  # fmt: skip
    assert set(rules) - {PASSWORD_HASH} <= set(proposal.header())
    assert mapping.legacy_id == "member_id"
    assert rules["cognito:username"].columns() == ["login"]
    assert rules["custom:subscription_plan"].columns() == ["subscription_plan_level"]
    assert (rules["email"].transform, rules["email_verified"].transform) == ("email", "boolean")
    assert rules["custom:newsletter"].transform == "boolean"


def test_a_reset_for_everyone_mapping_leaves_the_hash_out_and_an_email_pool_maps_the_username(
) -> None:  # fmt: skip
    users = legacy_users(roles=Roles(email="mail", email_verified="mail_ok", password="password"),
                         passwords=PasswordCensus("password", empty=ROWS))  # fmt: skip
    proposal = propose(users)
    assert proposal.strategy is Strategy.RESET_ALL and not proposal.password_hash_import
    rules = {r.attribute: r for r in proposed_mapping(proposal).rules}
    assert PASSWORD_HASH not in rules
    assert (rules["cognito:username"].columns(), rules["cognito:username"].transform) == (
        ["mail"], "email")  # fmt: skip


def test_an_email_sign_in_pool_for_everyone_to_reset_builds_with_its_starter_mapping(
    sandbox: Sandbox, cognito: Any, tmp_path: Path
) -> None:
    users = legacy_users(roles=Roles(email="mail", email_verified="mail_ok", password="password"),
                         passwords=PasswordCensus("password", empty=ROWS))  # fmt: skip
    proposal = propose(users)
    write_proposal(proposal, tmp_path)
    info = sandbox.create_pool(load_pool_spec(tmp_path / POOL_SPEC_FILE))
    pool = cognito.describe_user_pool(UserPoolId=info.user_pool_id)["UserPool"]
    assert pool["UsernameAttributes"] == ["email"] and not pool.get("AliasAttributes")
    assert pool["UsernameConfiguration"] == {"CaseSensitive": False}
    app = cognito.describe_user_pool_client(
        UserPoolId=info.user_pool_id, ClientId=info.user_pool_client_id
    )["UserPoolClient"]
    assert "ALLOW_USER_PASSWORD_AUTH" not in app["ExplicitAuthFlows"]
    rows = [[str(n), f"user{n}", f"User{n}@Example.com", "yes", "Ada", "", "", ""]
            for n in range(1, 4)]  # fmt: skip
    (tmp_path / "build").mkdir()
    _, result = build_rows(tmp_path / "build", proposal.columns, rows,
                           (tmp_path / MAPPING_FILE).read_text(),
                           read_pool(cognito, info.user_pool_id))  # fmt: skip
    assert (result.written, result.rejected, dict(result.reasons)) == (3, 0, {})
