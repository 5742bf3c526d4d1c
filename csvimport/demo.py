"""``make demo``: a whole migration against the local sandbox.

1. writes a legacy SQLite database of a few hundred members with realistic problems
   (unverified emails, bad phones, usernames differing only in case, a member who is
   already in the pool), named the legacy system's way (``member_id``, ``email_ok``,
   ``born``, ``active``, ``roles``);
2. ``csvimport assess`` profiles the members and proposes a pool, a starter mapping and a
   password strategy (``assessment/assessment.html``);
3. starts ``csvimport sandbox`` in a child process (as a user would) with the proposed pool
   (``assessment/pool-spec.json``) and the migration function as its UserMigration trigger,
   and reads its JSON line; ``csvimport build`` turns the members into validated Cognito
   import files in a run directory with the proposed mapping (``assessment/mapping.toml``)
   and the strategy's ``--password-fallback`` (``assessment/proposal.json``), as they are:
   the demo stands for a person who reviewed them and changed nothing;
4. ``csvimport start --no-wait`` starts the first import job, ``csvimport status --wait``
   follows it to the end, and ``csvimport start`` runs the next (the users with importable
   hashes have a chunk of their own);
5. ``csvimport report`` reads the job's CloudWatch log, accounts for every member, and
   writes results.jsonl, failed-users.csv, retry-source.csv and report.html;
6. ``csvimport followups`` carries what the CSV cannot: group memberships (creating the
   groups) and the members the legacy system had disabled; ``csvimport resets`` plans and
   sends a pilot wave of password-reset codes (never to a disabled member), and
   ``csvimport notice`` writes the users' message and the app team's checklist;
7. the members whose hashes Cognito cannot import (md5-crypt, phpass, bcrypt cost 13) were
   left out of the import (``build --password-fallback migrate``): the sandbox runs the
   migration function as the pool's UserMigration trigger, one of them signs in with the
   old password and lands in the pool CONFIRMED, and a wrong password creates nobody;
8. ``csvimport verify --source`` reads the pool back and accounts for every legacy member,
   and ``csvimport report`` again shows adoption so far.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bcrypt
import boto3
from passlib.hash import md5_crypt, phpass

TERMINAL = {"Succeeded", "Failed", "Stopped", "Expired"}
POOL_NAME = "csvimport-demo"  # the proposed pool's name
FIRST = ["Ada", "Grace", "Alan", "Linus", "Barbara", "Edsger", "Margaret", "Ken", "Radia",
         "Donald", "Frances", "Niklaus", "Sophie", "Tim", "Hedy", "Dennis"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Dijkstra", "Hamilton",
        "Thompson", "Perlman", "Knuth", "Allen", "Wirth", "Wilson", "Berners-Lee"]  # fmt: skip


# The migration function as the demo pool's UserMigration trigger, run by the sandbox.
MIGRATION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:csvimport-demo-migration"
# Which members have which legacy hash: Cognito imports bcrypt up to cost 12 (here cost 4,
# to keep the demo quick); md5-crypt, phpass and bcrypt cost 13 migrate at first sign-in.
MD5_CRYPT_EVERY, PHPASS_EVERY = 7, 11
BCRYPT_13_MEMBERS = (3, 33, 93)  # cost 13 takes about 0.5 s a hash: a few members only
# phpass's usual 2^19 rounds take about 0.3 s each in pure Python: the demo's 2^13 are enough
# to show the migration function at work without making the demo wait.
PHPASS_ROUNDS = 13
NO_HASH_EVERY = 17  # never set a password: they reset
SIGNS_IN = 7  # the member the demo signs in with their old password (md5-crypt)
# The legacy system had disabled them: followups disables them too, and resets (they have
# no hash: multiples of NO_HASH_EVERY) never sends them a code.
DISABLED_EVERY = 3 * NO_HASH_EVERY


def legacy_password(member: int) -> str:
    """The password member ``member`` used on the legacy system (the demo's secret)."""
    return f"legacy-secret-{member}"


def legacy_hash(member: int) -> str:
    """The member's stored hash, as the legacy system made it."""
    password = legacy_password(member)
    if member % NO_HASH_EVERY == 0:
        return ""
    if member in BCRYPT_13_MEMBERS:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(13)).decode()
    if member % MD5_CRYPT_EVERY == 0:
        return str(md5_crypt.hash(password))
    if member % PHPASS_EVERY == 0:
        return str(phpass.using(rounds=PHPASS_ROUNDS).hash(password))
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def say(text: str = "") -> None:
    print(text, flush=True)


def make_legacy_db(path: Path, members: int = 300, seed: int = 7) -> None:
    """A legacy member table with the mess real exports have."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "create table members (member_id integer primary key, login text, email_address "
            "text, email_ok text, mobile text, first_name text, last_name text, born text, "
            "plan text, last_modified text, password text, roles text, active text)"
        )
        previous = ""
        for n in range(1, members + 1):
            first, last = ("Ada", "Lovelace") if n == 1 else (rng.choice(FIRST), rng.choice(LAST))
            login = f"{first.lower()}.{last.lower()}{n}"
            email = f"{login}@example.com"
            email_ok = rng.choice(["Y", "y", "1", "yes", "TRUE"])
            mobile = rng.choice(["", "", f"(415) 555-{n:04d}", f"+44 20 7946 {n:04d}"])
            born = f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            if n % 25 == 0:
                email_ok = "N"  # never confirmed: Cognito refuses users with no verified channel
            if n % 40 == 0:
                mobile = "ask at reception"  # not a phone number
            if n % 60 == 0:
                login = previous.upper()  # the member before, exported twice in another case
            previous = login
            roles = "member" + (",moderator" if n % 10 == 0 else "") + (",admin" if n == 2 else "")
            active = "0" if n % DISABLED_EVERY == 0 else "1"
            db.execute(
                "insert into members values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (n, login, email, email_ok, mobile, first, last, born,
                 rng.choice(["free", "pro", "team"]), f"2024-{1 + n % 12:02d}-01 09:00:00",
                 legacy_hash(n), roles, active),
            )  # fmt: skip
        # the member who signs in must be deferred (md5-crypt) and importable otherwise
        assert SIGNS_IN % MD5_CRYPT_EVERY == 0 and SIGNS_IN % 60 and SIGNS_IN % 25
        assert SIGNS_IN % DISABLED_EVERY


def demo_pool_spec(out_dir: Path, proposed: Path) -> Path:
    """The proposed pool (``proposed``: assess's pool-spec.json) with the migration function
    as its UserMigration trigger, which the sandbox runs from ``out_dir/migration``."""
    spec = json.loads(proposed.read_text(encoding="utf-8"))
    spec["LambdaConfig"] = {"UserMigration": MIGRATION_ARN}
    spec["x-csvimport"]["lambda_functions"] = {MIGRATION_ARN: {
        "handler": "csvimport.migrate.handler:handler",
        "environment": {"CSVIMPORT_MIGRATION_DIR": str((out_dir / "migration").resolve())},
    }}  # fmt: skip
    path = out_dir / "demo-pool.json"
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return path


def start_sandbox(
    job_seconds: float, pool_spec: Path
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run `csvimport sandbox` in a child process and read its first (JSON) line."""
    command = [sys.executable, "-m", "csvimport", "sandbox", "--job-seconds", str(job_seconds),
               "--pool-spec", str(pool_spec)]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline()
    if not first:
        child.wait(timeout=10)
        raise SystemExit(f"the sandbox did not start (exit {child.returncode})")
    return child, json.loads(first)


def csvimport(*args: str, env: dict[str, str]) -> int:
    say(f"$ csvimport {' '.join(args)}")
    return subprocess.run([sys.executable, "-m", "csvimport", *args], env=env).returncode


def assess(legacy: Path, folder: Path) -> tuple[Path, Path, str]:
    """``csvimport assess`` the legacy members: the proposed pool spec, the starter mapping
    and the strategy's ``--password-fallback``."""
    status = csvimport("assess", f"sqlite:///{legacy}", "--table", "members", "--out",
                       str(folder), "--pool-name", POOL_NAME, env=dict(os.environ))  # fmt: skip
    if status != 0:
        raise SystemExit(f"csvimport assess failed (exit {status})")
    proposal = json.loads((folder / "proposal.json").read_text(encoding="utf-8"))
    fallback = proposal["strategy"]["password_fallback"]
    if fallback != "migrate":  # the demo's members are made for bulk plus migration
        raise SystemExit(f"assess proposed {proposal['strategy']['name']!r}, not migration at "
                         "first sign-in: the demo's legacy members changed?")  # fmt: skip
    say(f"A person reviews {folder / 'assessment.html'} and the proposal beside it; the demo "
        "takes them as they are.")  # fmt: skip
    return folder / "pool-spec.json", folder / "mapping.toml", fallback


def run(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    legacy = out_dir / "legacy.db"
    make_legacy_db(legacy)
    say(f"Wrote a legacy database of 300 members: {legacy}")
    # Before the import: profile the members and propose a pool, a mapping, a strategy.
    proposed, mapping, fallback = assess(legacy, out_dir / "assessment")
    child, info = start_sandbox(job_seconds=2.0, pool_spec=demo_pool_spec(out_dir, proposed))
    try:
        say(f"Sandbox up at {info['endpoint_url']}, pool {info['user_pool_id']} "
            f"({info['user_pool_name']})")  # fmt: skip
        env = {**os.environ, "AWS_ENDPOINT_URL": info["endpoint_url"],
               "AWS_REGION": info["region"], "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing",
               "CSVIMPORT_POOL_ID": info["user_pool_id"]}  # fmt: skip
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=info["region"])  # fmt: skip
        cognito: Any = session.client("cognito-idp", endpoint_url=info["endpoint_url"])
        # Someone signed up in the new app before the migration: Cognito will skip them.
        cognito.admin_create_user(
            UserPoolId=info["user_pool_id"], Username="ada.lovelace1", MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": "ada@example.com"}],
        )  # fmt: skip

        run_dir = out_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        status = csvimport(
            "build", f"sqlite:///{legacy}", "--table", "members",
            "--mapping", str(mapping), "--out", str(run_dir), "--check-existing",
            "--password-fallback", fallback, env=env,
        )  # fmt: skip
        if status not in (0, 1):
            raise SystemExit(f"csvimport build failed (exit {status})")
        env["CSVIMPORT_LOGS_ROLE_ARN"] = info["logs_role_arn"]
        status = csvimport("start", str(run_dir), "--no-wait", env=env)
        if status != 0:
            raise SystemExit(f"csvimport start failed (exit {status})")
        csvimport("status", str(run_dir), "--wait", env=env)
        # One job per chunk, one at a time: the users with importable hashes have their own.
        status = csvimport("start", str(run_dir), env=env)
        if status not in (0, 1):  # 1: a user was skipped (Ada already signed up)
            raise SystemExit(f"csvimport start failed (exit {status})")
        status = csvimport("report", str(run_dir), env=env)
        if status not in (0, 1):
            raise SystemExit(f"csvimport report failed (exit {status})")
        # What the CSV cannot carry: group memberships and the legacy disabled flag.
        csvimport("followups", str(run_dir), "--dry-run", env=env)
        status = csvimport("followups", str(run_dir), "--create-groups", env=env)
        if status != 0:
            raise SystemExit(f"csvimport followups failed (exit {status})")
        # Imported users must reset their password (never the disabled ones): a pilot wave,
        # then what to tell them.
        csvimport("resets", str(run_dir), "--dry-run", env=env)
        csvimport("resets", str(run_dir), "--limit", "20", env=env)
        csvimport("notice", str(run_dir), "--product", "Legacy Club", "--support",
                  "help@club.example", "--code-sent", env=env)  # fmt: skip
        sign_in_deferred(cognito, info, run_dir, out_dir / "migration")
        # After the import: is every user in the pool as written? Then the report again,
        # with its Adoption section (run verify weekly and the chart grows).
        status = csvimport("verify", str(run_dir), "--source", f"sqlite:///{legacy}",
                           "--table", "members", env=env)  # fmt: skip
        if status != 0:
            raise SystemExit(f"csvimport verify found users missing or changed (exit {status})")
        csvimport("report", str(run_dir), env=env)
        say()
        say(f"Demo finished. The report: {run_dir / 'report.html'} (open it in a browser); "
            f"every user's outcome: {run_dir / 'results.jsonl'}; the users to fix: "
            f"{run_dir / 'failed-users.csv'} and, in the legacy shape, "
            f"{run_dir / 'retry-source.csv'}.")  # fmt: skip
    finally:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=15)


def sign_in_deferred(cognito: Any, info: dict[str, str], run_dir: Path, folder: Path) -> None:
    """The migration function at work: a deferred member signs in with the old password."""
    from csvimport.migrate.settings import prepare_folder

    say()
    say("Members whose hashes Cognito cannot import were left out of the import "
        f"({run_dir / 'deferred.csv'}); they migrate at their first sign-in.")  # fmt: skip
    # What `csvimport migration-package` puts in the function's zip, here for the sandbox.
    prepare_folder(run_dir, folder)
    pool, client = info["user_pool_id"], info["user_pool_client_id"]
    with sqlite3.connect(run_dir.parent / "legacy.db") as db:
        (member,) = db.execute("select login from members where member_id = ?",
                               (SIGNS_IN,)).fetchone()  # fmt: skip
    wrong = cognito.exceptions.UserNotFoundException, cognito.exceptions.NotAuthorizedException
    try:
        cognito.initiate_auth(
            ClientId=client,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": member, "PASSWORD": "not-the-one"},
        )
        raise SystemExit(f"{member} signed in with a wrong password")
    except wrong as exc:
        say(f"{member} with a wrong password: refused ({exc.response['Error']['Code']}).")
    if cognito.list_users(UserPoolId=pool, Filter=f'username = "{member}"')["Users"]:
        raise SystemExit(f"a wrong password created {member} in the pool")
    say(f"  ...and {member} is still not in the pool.")
    answer = cognito.initiate_auth(
        ClientId=client, AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": member, "PASSWORD": legacy_password(SIGNS_IN)},
    )  # fmt: skip
    if "AuthenticationResult" not in answer:
        raise SystemExit(f"{member} did not sign in with the legacy password: {answer}")
    user = cognito.admin_get_user(UserPoolId=pool, Username=member)
    attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    say(f"{member} signed in with the legacy password and is now in the pool: "
        f"{user['UserStatus']}, email {attributes.get('email')}, "
        f"legacy id {attributes.get('custom:legacy_id')}.")  # fmt: skip
    if user["UserStatus"] != "CONFIRMED":
        raise SystemExit(f"{member} is {user['UserStatus']}, not CONFIRMED")


def main() -> None:
    run(Path(os.environ.get("CSVIMPORT_DEMO_DIR", "runs/demo")))


if __name__ == "__main__":
    main()
