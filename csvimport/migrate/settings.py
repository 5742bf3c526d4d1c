"""The migration function's configuration: the ``migration/`` folder and its settings.json.

The function reads everything from one folder, named by the environment variable
``CSVIMPORT_MIGRATION_DIR`` (default: ``migration/`` beside the ``csvimport`` package, i.e.
``/var/task/migration`` in a Lambda zip). The folder holds:

- ``mapping.toml``: the run's mapping (the run directory's copy), unchanged;
- ``pool.json``: the run's pool snapshot (:class:`csvimport.pool.PoolSnapshot`), unchanged;
- ``settings.json``: described below;
- for a file source, the lookup file ``settings.json`` names (``lookup.csv`` by default),
  written by ``csvimport migration-lookup`` (:mod:`csvimport.migrate.lookupfile`). It holds
  password hashes: never commit it, and keep it encrypted at rest.

settings.json (``"version": 1``; every key present, ``null`` where it does not apply)::

    {
      "version": 1,
      "source": {
        "url": "postgresql+psycopg://app_ro@db.internal:5432/legacy" | null,
        "table": "users" | null,        # a database: exactly one of table or query
        "query": null | "SELECT ...",
        "file": null | "lookup.csv",    # a file source: the lookup file, in this folder
        "encoding": "utf-8",            # the lookup file's (always UTF-8 as written)
        "delimiter": null | ","         # the lookup file's; null: sniffed
      },
      "lookup": {                       # Cognito sign-in attribute -> the source column
        "cognito:username": "login",    # that is looked up for what the user typed
        "email": "email",               # (only those the mapping maps from one column
        "phone_number": "mobile"        # and the pool signs in with)
      },
      "password_column": "password_hash",   # the source column of the legacy hash
      "legacy_hash": {"digest": null | "sha256(salt + password)", "salt_column": null | "salt"},
      "timeouts": {"connect_seconds": 2.0, "statement_ms": 1000}
    }

``url`` never carries a password: it comes at run time from ``CSVIMPORT_LEGACY_DB_PASSWORD``
or the AWS Secrets Manager secret whose ARN ``CSVIMPORT_LEGACY_DB_SECRET_ARN`` names (a
plain-text secret, or a JSON one with a ``password`` key, as RDS writes them).

:func:`prepare_folder` writes the whole folder from a run directory (what ``csvimport
migration-package`` does); :func:`write_settings` writes settings.json alone;
:func:`load_folder` reads it back (what the function does once per container).
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from csvimport.build.mapping.spec import USERNAME, Mapping
from csvimport.errors import ConfigError
from csvimport.files import replaced_private
from csvimport.pool import PoolSnapshot
from csvimport.redact import MASK, mask_credentials

SETTINGS_VERSION: Final = 1
DIR_ENV: Final = "CSVIMPORT_MIGRATION_DIR"
PASSWORD_ENV: Final = "CSVIMPORT_LEGACY_DB_PASSWORD"
SECRET_ENV: Final = "CSVIMPORT_LEGACY_DB_SECRET_ARN"
MAPPING_FILE: Final = "mapping.toml"
POOL_FILE: Final = "pool.json"
SETTINGS_FILE: Final = "settings.json"
LOOKUP_FILE: Final = "lookup.csv"
HASH_ATTRIBUTE: Final = "password_hash"
# The attributes a user may sign in with that the function can look up, in the order tried.
SIGN_IN_ATTRIBUTES: Final = (USERNAME, "email", "phone_number")
# Cognito gives the function 5 seconds in all (facts §7), retried up to 3 times: a connect
# and a query must each fail well inside it, leaving the hash's own time (bcrypt-13 takes
# about half a second) to spare.
CONNECT_TIMEOUT_SECONDS: Final = 2.0
STATEMENT_TIMEOUT_MS: Final = 1_000
FUNCTION_BUDGET_SECONDS: Final = 5.0
# Where the folder is in a Lambda zip: beside the csvimport package (the task root).
DEFAULT_DIR: Final = Path(__file__).resolve().parents[2] / "migration"

FOLDER_HINT = (
    "Build the folder with `csvimport migration-package RUN_DIR` (or "
    "csvimport.migrate.settings.prepare_folder), and point CSVIMPORT_MIGRATION_DIR at it."
)


@dataclass(frozen=True)
class SourceSettings:
    """Where the function looks users up: a database (url + table or query) or a file."""

    url: str | None = None
    table: str | None = None
    query: str | None = None
    file: str | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None


@dataclass(frozen=True)
class Timeouts:
    connect_seconds: float = CONNECT_TIMEOUT_SECONDS
    statement_ms: int = STATEMENT_TIMEOUT_MS


@dataclass(frozen=True)
class MigrationSettings:
    """settings.json, parsed (see the module docstring for each key)."""

    source: SourceSettings
    lookup: dict[str, str]
    password_column: str
    digest: str | None = None
    salt_column: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SETTINGS_VERSION,
            "source": asdict(self.source),
            "lookup": dict(self.lookup),
            "password_column": self.password_column,
            "legacy_hash": {"digest": self.digest, "salt_column": self.salt_column},
            "timeouts": asdict(self.timeouts),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MigrationSettings:
        if data.get("version") != SETTINGS_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {SETTINGS_VERSION}")
        source = SourceSettings(**data["source"])
        if (source.url is None) == (source.file is None):
            raise ValueError("source needs exactly one of url or file")
        if source.url is not None and (source.table is None) == (source.query is None):
            raise ValueError("a database source needs exactly one of table or query")
        lookup = {str(k): str(v) for k, v in dict(data["lookup"]).items()}
        unknown = set(lookup) - set(SIGN_IN_ATTRIBUTES)
        if unknown or not lookup:
            raise ValueError(f"lookup must map some of {', '.join(SIGN_IN_ATTRIBUTES)}")
        legacy_hash = data.get("legacy_hash") or {}
        timeouts = Timeouts(**data.get("timeouts") or {})
        if not 0 < timeouts.connect_seconds < FUNCTION_BUDGET_SECONDS:
            raise ValueError("timeouts.connect_seconds must be above 0 and below 5")
        if not 0 < timeouts.statement_ms < FUNCTION_BUDGET_SECONDS * 1000:
            raise ValueError("timeouts.statement_ms must be above 0 and below 5000")
        return cls(
            source=source,
            lookup=lookup,
            password_column=str(data["password_column"]),
            digest=legacy_hash.get("digest"),
            salt_column=legacy_hash.get("salt_column"),
            timeouts=timeouts,
        )


@dataclass(frozen=True)
class MigrationFolder:
    """What the function needs, read from the folder once per container."""

    path: Path
    settings: MigrationSettings
    mapping: Mapping
    snapshot: PoolSnapshot

    @property
    def lookup_path(self) -> Path | None:
        file = self.settings.source.file
        return None if file is None else self.path / file


def folder_from_env(environ: dict[str, str] | None = None) -> Path:
    """The migration folder: ``CSVIMPORT_MIGRATION_DIR``, else :data:`DEFAULT_DIR`."""
    env = os.environ if environ is None else environ
    given = env.get(DIR_ENV, "").strip()
    return Path(given) if given else DEFAULT_DIR


def write_settings(folder: Path, settings: MigrationSettings) -> Path:
    """Write ``settings.json`` into ``folder`` (created if need be); return its path.

    Refuses a database URL that carries a credential: the password comes at run time from
    the environment or Secrets Manager, never from the package.
    """
    url = settings.source.url
    if url is not None and (mask_credentials(url, url=True) != url or MASK in url):
        raise ConfigError(
            f"the migration settings' database URL {mask_credentials(url, url=True)} carries "
            "a credential",
            hint=f"Give the URL without its password; the function reads it from {PASSWORD_ENV} "
            f"or the Secrets Manager secret named by {SECRET_ENV}.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS_FILE
    with replaced_private(path) as f:
        f.write(json.dumps(settings.to_json(), indent=2) + "\n")
    return path


def load_folder(folder: Path) -> MigrationFolder:
    """Read the migration folder; ConfigError naming the file and the fix when it is wrong."""
    path = folder / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings = MigrationSettings.from_json(data)
    except FileNotFoundError:
        raise ConfigError(f"no migration settings at {path}", hint=FOLDER_HINT) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"{path} is not csvimport migration settings ({exc})", hint=FOLDER_HINT
        ) from None
    mapping = Mapping.load(folder / MAPPING_FILE)
    snapshot = PoolSnapshot.load(folder / POOL_FILE)
    result = MigrationFolder(folder, settings, mapping, snapshot)
    lookup = result.lookup_path
    if lookup is not None and not lookup.is_file():
        raise ConfigError(
            f"the lookup file {lookup} named by {path} does not exist",
            hint="Write it with `csvimport migration-lookup RUN_DIR` and put it in the "
            "migration folder.",
        )
    return result


def column_of(mapping: Mapping, attribute: str) -> str | None:
    """The one source column ``attribute`` is mapped from; None for a join, a constant or
    an attribute the mapping does not set."""
    rule = next((r for r in mapping.rules if r.attribute == attribute), None)
    return None if rule is None else rule.column


def sign_in_attributes(snapshot: PoolSnapshot) -> list[str]:
    """What a user may type to sign in to the pool, in :data:`SIGN_IN_ATTRIBUTES` order:
    the username attributes when the pool has them (email and/or phone replace the
    username), else the username and the pool's email/phone aliases."""
    if snapshot.username_attributes:
        return [a for a in SIGN_IN_ATTRIBUTES if a in snapshot.username_attributes]
    return [a for a in SIGN_IN_ATTRIBUTES if a == USERNAME or a in snapshot.alias_attributes]


def lookup_columns(mapping: Mapping, snapshot: PoolSnapshot) -> dict[str, str]:
    """Sign-in attribute -> the source column looked up for it (see :func:`sign_in_attributes`).

    Raises ConfigError when the pool signs in with an attribute the mapping does not take
    from one column: the function could not find the user by it.
    """
    found: dict[str, str] = {}
    for attribute in sign_in_attributes(snapshot):
        column = column_of(mapping, attribute)
        if column is None:
            raise ConfigError(
                f"the pool signs users in with {attribute}, which {mapping.origin} does not "
                "map from one source column, so the migration function cannot look users up "
                "by it",
                hint=f"Map {attribute} with `column = ...` in the mapping (not join or value).",
            )
        found[attribute] = column
    return found


def legacy_hash_table(mapping_file: Path) -> tuple[str | None, str | None]:
    """The mapping file's ``[legacy_hash]`` (digest, salt column), or (None, None)."""
    data = tomllib.loads(mapping_file.read_text(encoding="utf-8"))
    table = data.get("legacy_hash") or {}
    digest, salt = table.get("digest"), table.get("salt")
    return (str(digest) if digest else None, str(salt) if salt else None)


def database_url(shown: str) -> str:
    """A run manifest's database URL (credentials shown as ***) without its password.

    Refuses a URL whose options carry a masked credential: only the password can come from
    elsewhere.
    """
    import sqlalchemy as sa  # here, not with the module: the command line loads it
    from sqlalchemy import exc as sa_exc

    try:
        url = sa.make_url(shown)
    except (sa_exc.ArgumentError, ValueError):
        raise ConfigError(f"cannot parse the run's database URL {shown}") from None
    secret_options = [name for name, value in url.query.items() if MASK in str(value)]
    if secret_options:
        raise ConfigError(
            f"the run's database URL {shown} carries credentials in its options "
            f"({', '.join(secret_options)})",
            hint="Pass the function's database URL yourself, without credentials.",
        )
    # URL.set() cannot unset a part: build it again without the password
    bare = sa.URL.create(url.drivername, username=url.username, host=url.host, port=url.port,
                         database=url.database, query=url.query)  # fmt: skip
    return bare.render_as_string(hide_password=False)


def settings_for_run(
    manifest: dict[str, Any],
    mapping_file: Path,
    snapshot: PoolSnapshot,
    *,
    url: str | None = None,
    lookup_file: str = LOOKUP_FILE,
    timeouts: Timeouts | None = None,
) -> MigrationSettings:
    """The settings for a run: its source (``url`` overrides the manifest's database URL),
    the columns its mapping looks users up by, its hash column and ``[legacy_hash]``."""
    mapping = Mapping.load(mapping_file)
    hash_column = column_of(mapping, HASH_ATTRIBUTE)
    if hash_column is None:
        raise ConfigError(
            f"{mapping_file} maps no password_hash column: the migration function has no "
            "legacy hash to check passwords against",
            hint="Map password_hash from the source's hash column (`column = ...`).",
        )
    source = manifest["source"]
    if source.get("kind") in ("sqlite", "mysql", "postgresql"):
        given = url if url is not None else database_url(str(source["url"]))
        where = SourceSettings(url=given, table=source.get("table"), query=source.get("query"))
    else:
        where = SourceSettings(file=lookup_file, delimiter=",")
    digest, salt = legacy_hash_table(mapping_file)
    return MigrationSettings(
        source=where,
        lookup=lookup_columns(mapping, snapshot),
        password_column=hash_column,
        digest=digest,
        salt_column=salt,
        timeouts=timeouts or Timeouts(),
    )


def prepare_folder(
    run_dir: Path,
    folder: Path,
    *,
    url: str | None = None,
    timeouts: Timeouts | None = None,
) -> MigrationSettings:
    """Write the whole migration folder for a run: mapping.toml, pool.json, settings.json,
    and for a file source the lookup file of the run's deferred users (mode 0600)."""
    from csvimport.migrate.lookupfile import write_lookup_file
    from csvimport.rundir import MAPPING_COPY, POOL_SNAPSHOT, RunDir

    run = RunDir.open(run_dir)
    mapping_file = run.verify_file(MAPPING_COPY)
    settings = settings_for_run(
        run.manifest, mapping_file, run.snapshot, url=url, timeouts=timeouts
    )
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mapping_file, folder / MAPPING_FILE)
    shutil.copyfile(run.verify_file(POOL_SNAPSHOT), folder / POOL_FILE)
    if settings.source.file is not None:
        write_lookup_file(run_dir, folder / settings.source.file)
    write_settings(folder, settings)
    return settings
