"""Package the migration function for AWS Lambda: a deployment zip and a CloudFormation template.

:func:`write_package` turns a run directory into two files in an output folder (what
``csvimport migration-package RUN_DIR --out FOLDER`` does):

- ``migration-function.zip``, the deployment package for the Lambda ``python3.11`` runtime:
  the ``csvimport`` package (without its sandbox), the ``migration/`` folder
  (:func:`csvimport.migrate.settings.prepare_folder`: mapping.toml, pool.json, settings.json
  and, for a file source, the lookup file of the deferred users), and csvimport's runtime
  dependencies installed by pip for the Lambda platform. The same inputs give the same bytes
  (sorted entries, fixed timestamps and modes). Mode 0600 when it holds the lookup file
  (password hashes), else 0644.
- ``migration-function.template.json``, an AWS CloudFormation template that creates the
  function, its least-privilege role and log group, and the permission letting Cognito
  invoke it for this one pool. CloudFormation cannot set the trigger on a pool it does not
  own, so the third file, ``set-user-migration-trigger.sh``, does that step (see
  :func:`trigger_script`).
- ``migration-requirements.txt``: the exact dependency versions in the zip.

Dependencies: the Lambda ``python3.11`` runtime runs on Amazon Linux 2, whose glibc is 2.26:
a wheel built for a later glibc (numpy >= 2.3 and pyarrow >= 21 ship only manylinux_2_28
ones) installs but fails at import, so pip is told the platforms up to glibc 2.26 only
(:func:`platform_tags`). The installed folder is kept in a cache keyed by the requirement set
and platform (:func:`dependency_folder`), so a second package costs no pip run. boto3,
botocore and s3transfer are left out: the runtime provides the AWS SDK for Python, and the
function only calls Secrets Manager's GetSecretValue, which every SDK version has; with them
and the compiled files the package would not fit Lambda's 250 MB (unzipped) limit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import csvimport
from csvimport.cloudformation import TEMPLATE_FORMAT_VERSION, service_trust
from csvimport.cloudformation import fn_if as _if
from csvimport.cloudformation import policy as _policy
from csvimport.cloudformation import ref as _ref
from csvimport.errors import ConfigError, RefusedError
from csvimport.files import PRIVATE_FILE_MODE, fsync_folder, private_work_folder
from csvimport.migrate.settings import POOL_FILE, Timeouts, prepare_folder
from csvimport.pool import PoolSnapshot
from csvimport.rundir import file_sha256

LAMBDA_RUNTIME: Final = "python3.11"
RUNTIME_PYTHON: Final = (3, 11)
HANDLER: Final = "csvimport.migrate.handler.handler"
ZIP_NAME: Final = "migration-function.zip"
TEMPLATE_NAME: Final = "migration-function.template.json"
REQUIREMENTS_NAME: Final = "migration-requirements.txt"
TRIGGER_SCRIPT_NAME: Final = "set-user-migration-trigger.sh"
# The config folder's name in the zip: the task root's migration/ is the function's default
# (csvimport.migrate.settings.DEFAULT_DIR).
MIGRATION_FOLDER: Final = "migration"

# Lambda's quotas: 250 MB for the unzipped function (its error names 262144000 bytes), and
# 50 MB for a zip uploaded directly rather than through S3.
UNZIPPED_LIMIT: Final = 262_144_000
DIRECT_UPLOAD_LIMIT: Final = 50 * 1024 * 1024
# Cognito waits 5 seconds for the function (facts §7): a longer timeout buys nothing.
FUNCTION_TIMEOUT_SECONDS: Final = 5
DEFAULT_MEMORY_MB: Final = 1024  # CPU grows with memory: pandas' import and the hash need it

# The Lambda python3.11 runtime runs on Amazon Linux 2 (Lambda's runtimes page), whose glibc
# is 2.26: wheels up to that glibc level load there, later ones do not.
AMAZON_LINUX_2_GLIBC: Final = (2, 26)
MANYLINUX2014_GLIBC: Final = (2, 17)
# What the Lambda runtime provides and the zip leaves out (see the module docstring).
RUNTIME_PROVIDED: Final = frozenset({"boto3", "botocore", "s3transfer"})
# csvimport's dependencies the function never imports: the command line, the report, uploads.
NOT_USED_BY_THE_FUNCTION: Final = frozenset(
    {"typer", "rich", "jinja2", "markupsafe", "pygal", "requests"}
)
# Dependency files the function never loads, left out to stay well inside the size limit:
# test suites and test helpers, type stubs, C/Cython sources and headers, console scripts,
# pip's bytecode, build tools (numpy's f2py and distutils), pyarrow's Flight RPC (20 MB;
# nothing links it) and the copies of its libarrow_python libraries under names the loader
# never asks for (it asks for libarrow_python*.so.2000), and phonenumbers' geocoder and
# carrier data (20 MB; csvimport parses and formats numbers, it never geocodes them).
LEFT_OUT: Final = re.compile(
    r"(^|/)(tests|__pycache__)/"
    r"|\.(pyi|pyx|pxd|pxi|h|hpp|cc|c)$"
    r"|^bin/"
    r"|^sqlalchemy/testing/|^numpy/(f2py|distutils)/"
    r"|^pyarrow/(include|src)/"
    r"|^pyarrow/(libarrow_flight|libarrow_python_flight|_flight)[^/]*$"
    r"|^pyarrow/libarrow_python\w*\.so(\.\d+\.\d+\.\d+)?$"
    r"|^phonenumbers/(geodata|carrierdata)/"
)
# The database drivers among csvimport's dependencies, by SQLAlchemy backend: the zip holds
# the one the function's source needs (none for a lookup file or SQLite).
DRIVERS: Final = {"postgresql": "psycopg", "mysql": "pymysql"}
# What the first sign-in imports beyond the handler's own imports, by backend: the dialect
# and its driver (importing them when packaging also proves a binary driver loads).
FIRST_CALL_IMPORTS: Final = {
    "postgresql": ("sqlalchemy.dialects.postgresql", "psycopg"),
    "mysql": ("sqlalchemy.dialects.mysql", "pymysql"),
    "sqlite": ("sqlalchemy.dialects.sqlite",),
}
# csvimport's own files the function never needs: the sandbox (a test double) and bytecode.
PACKAGE_LEFT_OUT: Final = re.compile(r"^csvimport/sandbox/|(^|/)__pycache__/|\.pyc$")
# Every entry's timestamp: the earliest a zip can hold, so a re-run gives the same bytes.
ZIP_TIMESTAMP: Final = (1980, 1, 1, 0, 0, 0)
FILE_MODE: Final = 0o644  # Lambda needs every file readable by its runtime user
ZIP_COMPRESSLEVEL: Final = 6
# Bumped when the way the dependency folder is made changes, so old cache entries go unused.
LAYER_FORMAT: Final = 1
PIP_TIMEOUT_SECONDS: Final = 1800

PIP_HINT = (
    "pip must reach PyPI (or the index pip is configured with) for wheels of these "
    "platforms; or pass --wheelhouse DIR, a folder of such wheels (`pip download "
    "--platform manylinux2014_x86_64 --implementation cp --python-version 3.11 "
    "--only-binary=:all: -d DIR ...`)."
)
SIZE_HINT = (
    "Leave more of the dependencies out (csvimport.migrate.package.LEFT_OUT), or deploy the "
    "function as a container image (10 GB limit) instead of a zip."
)


class Arch(StrEnum):
    """The function's instruction set (the template's Architectures)."""

    X86_64 = "x86_64"
    ARM64 = "arm64"

    @property
    def machine(self) -> str:
        """The name wheels' platform tags use."""
        return "aarch64" if self is Arch.ARM64 else "x86_64"


def platform_tags(arch: Arch) -> list[str]:
    """pip's ``--platform`` values for the Lambda python3.11 runtime: manylinux2014 and every
    manylinux_2_N up to Amazon Linux 2's glibc, never beyond."""
    major, newest = AMAZON_LINUX_2_GLIBC
    oldest = MANYLINUX2014_GLIBC[1]
    return [f"manylinux2014_{arch.machine}"] + [
        f"manylinux_{major}_{minor}_{arch.machine}" for minor in range(oldest, newest + 1)
    ]


@dataclass(frozen=True)
class PackageOptions:
    """How to package: the platform, where dependencies come from, the function's settings."""

    arch: Arch = Arch.X86_64
    # Where installed dependency folders are kept between runs (keyed by requirements).
    cache: Path | None = None
    # A folder of wheels: pip installs from it alone (--no-index), never from an index.
    wheelhouse: Path | None = None
    # The function's database URL (no password) when it differs from the build's.
    url: str | None = None
    timeouts: Timeouts | None = None
    # zlib's level for the zip: 1 is about four times faster, the zip about 12% bigger.
    compresslevel: int = ZIP_COMPRESSLEVEL


@dataclass(frozen=True)
class PackageResult:
    """What :func:`write_package` wrote, with the figures the CLI prints."""

    zip_path: Path
    template_path: Path
    dependencies: Path  # the installed dependency folder the zip took its files from
    requirements_path: Path
    trigger_script_path: Path
    user_pool_id: str
    arch: Arch
    zip_bytes: int
    unzipped_bytes: int
    entries: int
    holds_lookup_file: bool
    compiled: int  # modules shipped with bytecode (what a cold start imports)
    sha256: str
    requirements: list[str] = field(default_factory=list)

    @property
    def s3_key(self) -> str:
        """The S3 key to upload the zip as: named by its content, so CloudFormation sees a
        new key (and updates the function's code) exactly when the zip changed."""
        return f"{Path(ZIP_NAME).stem}-{self.sha256[:16]}.zip"

    @property
    def needs_s3(self) -> bool:
        """Whether the zip is too big to upload to Lambda directly (it must go through S3)."""
        return self.zip_bytes > DIRECT_UPLOAD_LIMIT

    def to_json(self) -> dict[str, Any]:
        return {
            "zip": str(self.zip_path),
            "dependencies": str(self.dependencies),
            "template": str(self.template_path),
            "requirements": str(self.requirements_path),
            "trigger_script": str(self.trigger_script_path),
            "user_pool_id": self.user_pool_id,
            "arch": self.arch.value,
            "zip_bytes": self.zip_bytes,
            "unzipped_bytes": self.unzipped_bytes,
            "entries": self.entries,
            "holds_lookup_file": self.holds_lookup_file,
            "compiled_modules": self.compiled,
            "sha256": self.sha256,
            "s3_key": self.s3_key,
            "needs_s3": self.needs_s3,
        }


Progress = Callable[[str], None]


def write_package(
    run_dir: Path, out: Path, options: PackageOptions, *, on_progress: Progress | None = None
) -> PackageResult:
    """Write the function's zip, template, requirements and trigger script into ``out``.

    ConfigError for a run the function cannot serve (see
    :func:`~csvimport.migrate.settings.prepare_folder`) or dependencies pip cannot install;
    RefusedError when the zip would exceed Lambda's unzipped limit.
    """
    say = on_progress or (lambda _message: None)
    out.mkdir(parents=True, exist_ok=True)
    work = private_work_folder(out, "migration-package")
    try:
        staged = work / "task"
        config = staged / MIGRATION_FOLDER
        say("Writing the migration folder")
        settings = prepare_folder(run_dir, config, url=options.url, timeouts=options.timeouts)
        user_pool_id = PoolSnapshot.load(config / POOL_FILE).user_pool_id
        import sqlalchemy as sa  # loaded when a package is made, not with the command line

        url = None if settings.source.url is None else sa.make_url(settings.source.url)
        backend = None if url is None else url.get_backend_name()
        requirements = function_requirements(backend)
        say(f"Installing {len(requirements)} dependencies for Lambda {LAMBDA_RUNTIME} "
            f"{options.arch.value}")  # fmt: skip
        deps = dependency_folder(
            requirements, options.arch, cache=options.cache or default_cache(),
            wheelhouse=options.wheelhouse, on_progress=say,
        )  # fmt: skip
        files = dict(_dependency_files(deps))
        files.update(_package_files())
        files.update(
            (f"{MIGRATION_FOLDER}/{p.relative_to(config).as_posix()}", p)
            for p in sorted(config.rglob("*"))
            if p.is_file()
        )
        say("Compiling what a cold start imports")
        first_call = FIRST_CALL_IMPORTS.get(backend or "", ())
        compiled = _compile_cold_start(files, work / "pyc", options.arch, deps, first_call)
        files.update(compiled)
        unzipped = sum(path.stat().st_size for path in files.values())
        if unzipped >= UNZIPPED_LIMIT:
            raise RefusedError(
                f"the function would be {unzipped:,} bytes unzipped, over Lambda's limit of "
                f"{UNZIPPED_LIMIT:,} bytes",
                hint=SIZE_HINT,
            )
        lookup = settings.source.file
        holds_lookup = lookup is not None and f"{MIGRATION_FOLDER}/{lookup}" in files
        say(f"Writing {ZIP_NAME} ({len(files)} files)")
        zip_path = out / ZIP_NAME
        write_zip(zip_path, files, private=holds_lookup, compresslevel=options.compresslevel)
        template_path = out / TEMPLATE_NAME
        _write_text(template_path, json.dumps(template(user_pool_id, options.arch), indent=2)
                    + "\n")  # fmt: skip
        pins = installed_versions(deps)
        requirements_path = out / REQUIREMENTS_NAME
        _write_text(requirements_path, "".join(f"{pin}\n" for pin in pins))
        script_path = out / TRIGGER_SCRIPT_NAME
        _write_text(script_path, trigger_script(user_pool_id), mode=0o755)
        fsync_folder(out)
        return PackageResult(
            zip_path=zip_path,
            template_path=template_path,
            dependencies=deps,
            requirements_path=requirements_path,
            trigger_script_path=script_path,
            user_pool_id=user_pool_id,
            arch=options.arch,
            zip_bytes=zip_path.stat().st_size,
            unzipped_bytes=unzipped,
            entries=len(files),
            holds_lookup_file=holds_lookup,
            compiled=len(compiled),
            sha256=file_sha256(zip_path),
            requirements=pins,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the requirements ---------------------------------------------------------------------


def function_requirements(backend: str | None = None) -> list[str]:
    """csvimport's own dependencies that the function needs, as requirement strings.

    Read from the pyproject.toml beside the package in a source checkout (the code being
    packaged), else from the installed distribution's metadata; without extras, without
    :data:`NOT_USED_BY_THE_FUNCTION`. The AWS SDK stays in the set, so pip picks versions of
    the rest (python-dateutil, urllib3) that the runtime's SDK accepts; the zip leaves the
    SDK itself out. Of the database drivers (:data:`DRIVERS`), only ``backend``'s (an
    SQLAlchemy backend name, e.g. "postgresql"; None for a lookup file).
    """
    pyproject = Path(csvimport.__file__).resolve().parents[1] / "pyproject.toml"
    declared: list[str]
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        declared = (
            list(project.get("dependencies", [])) if project.get("name") == "csvimport" else []
        )
    else:
        declared = []
    if not declared:
        declared = [r for r in metadata.requires("csvimport") or [] if "extra ==" not in r]
    unused = NOT_USED_BY_THE_FUNCTION | {
        driver for name, driver in DRIVERS.items() if name != backend
    }
    return sorted((r for r in declared if _project_name(r) not in unused), key=_project_name)


def _project_name(requirement: str) -> str:
    """The normalised project name a requirement string starts with."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    name = match.group(1) if match else requirement
    return re.sub(r"[-_.]+", "-", name).lower()


def default_cache() -> Path:
    """Where dependency folders are kept: ``$XDG_CACHE_HOME/csvimport/lambda-dependencies``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "csvimport" / "lambda-dependencies"


def layer_key(requirements: Iterable[str], arch: Arch, wheelhouse: Path | None) -> str:
    """The cache key of a dependency folder: everything that decides what pip installs."""
    identity = {
        "format": LAYER_FORMAT,
        "requirements": sorted(requirements),
        "platforms": platform_tags(arch),
        "python": ".".join(map(str, RUNTIME_PYTHON)),
        "implementation": "cp",
        "wheelhouse": str(wheelhouse.resolve()) if wheelhouse else None,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def pip_command(
    requirements: Iterable[str], arch: Arch, target: Path, wheelhouse: Path | None = None
) -> list[str]:
    """The pip command that installs ``requirements`` for the Lambda runtime into ``target``."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--no-input", "--target", str(target),
        "--implementation", "cp", "--python-version", ".".join(map(str, RUNTIME_PYTHON)),
        "--only-binary=:all:",
    ]  # fmt: skip
    for tag in platform_tags(arch):
        command += ["--platform", tag]
    if wheelhouse is not None:
        command += ["--no-index", "--find-links", str(wheelhouse)]
    return [*command, *requirements]


def dependency_folder(
    requirements: list[str],
    arch: Arch,
    *,
    cache: Path,
    wheelhouse: Path | None = None,
    on_progress: Progress | None = None,
) -> Path:
    """The folder holding ``requirements`` installed for the Lambda runtime on ``arch``.

    Taken from ``cache`` when an earlier call installed the same set; otherwise pip installs
    it into a private folder there, which is renamed into place once complete (a killed
    install leaves nothing that a later call would take for complete).
    """
    say = on_progress or (lambda _message: None)
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise ConfigError(f"wheelhouse {wheelhouse} is not a folder", hint=PIP_HINT)
    folder = cache / f"{LAMBDA_RUNTIME}-{arch.value}-{layer_key(requirements, arch, wheelhouse)}"
    if folder.is_dir():
        say(f"Dependencies from the cache: {folder}")
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    # One install of a set at a time: a second process waits, then takes the first's folder.
    with (cache / f".{folder.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if folder.is_dir():
            return folder
        return _install(requirements, arch, folder, cache, wheelhouse, say)


def _install(
    requirements: list[str], arch: Arch, folder: Path, cache: Path,
    wheelhouse: Path | None, say: Progress,
) -> Path:  # fmt: skip
    """pip-install ``requirements`` into ``folder`` (through a private folder in ``cache``)."""
    work = private_work_folder(cache, "install")
    try:
        target = work / "site"
        command = pip_command(requirements, arch, target, wheelhouse)
        say("pip " + " ".join(command[3:8]) + " ...")
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=PIP_TIMEOUT_SECONDS, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"pip did not finish installing the function's dependencies within "
                f"{PIP_TIMEOUT_SECONDS} seconds",
                hint=PIP_HINT,
            ) from None
        if done.returncode != 0:
            lines = done.stderr.splitlines()
            problems = [line for line in lines if line.startswith("ERROR")]
            detail = "; ".join(problems[-3:]) or done.stderr.strip()[-500:]
            raise ConfigError(
                f"pip could not install the function's dependencies for Lambda "
                f"{LAMBDA_RUNTIME} {arch.value}: {detail}",
                hint=PIP_HINT,
            )
        target.chmod(0o755)
        try:
            target.rename(folder)
        except OSError:
            if not folder.is_dir():  # another process installed the same set meanwhile
                raise
        return folder
    finally:
        shutil.rmtree(work, ignore_errors=True)


def installed_versions(folder: Path) -> list[str]:
    """``name==version`` of every distribution in a dependency folder, sorted by name."""
    pins = []
    for dist in metadata.distributions(path=[str(folder)]):
        name = dist.metadata["Name"]
        if name:
            pins.append(f"{_project_name(name)}=={dist.version}")
    return sorted(set(pins))


# --- the files of the zip -----------------------------------------------------------------


def _dependency_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for the dependency folder's files the function needs."""
    provided = _provided_files(folder)
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(folder).as_posix()
        top = name.split("/", 1)[0]
        if LEFT_OUT.search(name) or top in provided:
            continue
        yield name, path


def _provided_files(folder: Path) -> set[str]:
    """The top-level names (packages, modules, dist-info) of :data:`RUNTIME_PROVIDED`."""
    tops: set[str] = set()
    for dist in metadata.distributions(path=[str(folder)]):
        if _project_name(dist.metadata["Name"] or "") not in RUNTIME_PROVIDED:
            continue
        for file in dist.files or []:
            tops.add(file.parts[0])
    return tops


def _package_files() -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for the csvimport package, and its data folders where the
    wheel puts them (``csvimport/_data``)."""
    from csvimport.resources import schemas_dir, templates_dir

    package = Path(csvimport.__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        name = "csvimport/" + path.relative_to(package).as_posix()
        if path.is_file() and not PACKAGE_LEFT_OUT.search(name):
            yield name, path
    for kind, folder in (("schemas", schemas_dir()), ("templates", templates_dir())):
        prefix = f"csvimport/_data/{kind}/"
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                yield prefix + path.relative_to(folder).as_posix(), path


# What the probe prints: the files of the zip's modules that importing the handler loaded.
# It runs as Lambda would: the task root first, then the runtime's SDK, and nothing else.
_PROBE = """
import json, sys
import importlib
root, sdk = sys.argv[1], sys.argv[2]
sys.path[:0] = [root, sdk]
import csvimport.migrate.handler
for name in sys.argv[3:]:
    importlib.import_module(name)
print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values())
      if getattr(m, "__file__", None) and m.__file__.startswith(root + "/")
      and m.__file__.endswith(".py"))))
"""


def runtime_sdk(dependencies: Path, folder: Path) -> Path:
    """Make ``folder`` stand for the Lambda runtime's own packages: links to the SDK's
    packages (:data:`RUNTIME_PROVIDED`) in a dependency folder. For running the packaged
    function here as Lambda runs it (``sys.path``: the task root, then this)."""
    folder.mkdir(parents=True, exist_ok=True)
    for top in sorted(_provided_files(dependencies)):
        link = folder / top
        if not link.exists():
            link.symlink_to((dependencies / top).resolve())
    return folder


def _compile_cold_start(
    files: dict[str, Path],
    work: Path,
    arch: Arch,
    dependencies: Path,
    first_call: Iterable[str] = (),
) -> dict[str, Path]:
    """Bytecode for the modules a cold start imports: {name in the zip: .pyc file}.

    The function's folder is read-only, so Python would compile every imported module at
    each cold start (pandas, pyarrow and pandera: about 2.3 s here, 0.9 s with bytecode) out
    of the 5 seconds Cognito waits. Compiling everything would not fit the size limit, so
    this imports the handler from the staged files in a separate, isolated Python (the
    staged files and the runtime's SDK only: a dependency missing from the zip fails here,
    not at the first sign-in) and compiles what it loaded, as unchecked-hash .pyc files
    (valid whatever the files' timestamps, and the same bytes each time). The import needs a
    Python 3.11 on the same machine type: elsewhere nothing is compiled or checked, and the
    function compiles at its cold starts.
    """
    if sys.version_info[:2] != RUNTIME_PYTHON or platform.machine() != arch.machine:
        return {}
    staged = (work / "staged").resolve()
    for name, path in files.items():
        target = staged / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:  # another file system
            shutil.copyfile(path, target)
    sdk = runtime_sdk(dependencies, work / "runtime")
    command = [sys.executable, "-I", "-S", "-B", "-c", _PROBE, str(staged), str(sdk), *first_call]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(
            "the packaged migration function does not import: "
            + (done.stderr.strip().splitlines() or ["no error output"])[-1],
            hint="A module the function imports is missing from the zip: add its project to "
            "csvimport's dependencies in pyproject.toml (the zip holds those, see "
            f"{REQUIREMENTS_NAME}), or keep its files out of LEFT_OUT.",
        )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    compiled: dict[str, Path] = {}
    for file in loaded:
        name = Path(file).relative_to(staged).as_posix()
        cached = work / "pyc" / _pyc_name(name)
        py_compile.compile(
            file, cfile=str(cached), dfile=name, doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )  # fmt: skip
        compiled[_pyc_name(name)] = cached
    return compiled


def _pyc_name(name: str) -> str:
    """Where Python 3.11 looks for the bytecode of the module file ``name``."""
    folder, _, file = name.rpartition("/")
    stem = file[: -len(".py")]
    tag = f"cpython-{RUNTIME_PYTHON[0]}{RUNTIME_PYTHON[1]}"
    return f"{folder}/__pycache__/{stem}.{tag}.pyc" if folder else f"__pycache__/{stem}.{tag}.pyc"


def write_zip(
    path: Path, files: dict[str, Path], *, private: bool, compresslevel: int = ZIP_COMPRESSLEVEL
) -> None:
    """Write ``files`` ({name in the zip: file}) as a zip at ``path``, the same bytes for the
    same files: entries sorted by name, each with the same timestamp and mode 0644.

    The zip replaces ``path`` whole; mode 0600 when ``private`` (it holds password hashes).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = PRIVATE_FILE_MODE if private else FILE_MODE
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            zipfile.ZipFile(
                raw, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
            ) as archive,
        ):
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
                info.create_system = 3  # Unix: the mode below is what unzip and Lambda use
                info.external_attr = (0o100000 | FILE_MODE) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                info._compresslevel = compresslevel  # type: ignore[attr-defined]
                with files[name].open("rb") as source, archive.open(info, "w") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str, *, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``text`` whole (written beside it, then renamed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- the CloudFormation template ----------------------------------------------------------

MIGRATION_DIR_IN_LAMBDA: Final = f"/var/task/{MIGRATION_FOLDER}"
SECRET_ENV: Final = "CSVIMPORT_LEGACY_DB_SECRET_ARN"
DIR_ENV: Final = "CSVIMPORT_MIGRATION_DIR"
# What Lambda needs to attach the function to a VPC (the ec2 part of the AWS managed policy
# AWSLambdaVPCAccessExecutionRole, whose logs part would allow every log group). Network
# interfaces cannot be named in advance, hence "*".
VPC_ACTIONS: Final = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
LOG_RETENTION_DAYS: Final = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                             1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip


def template(user_pool_id: str, arch: Arch) -> dict[str, Any]:
    """The CloudFormation template that deploys the packaged function for ``user_pool_id``.

    It creates the function (code from an S3 object), its log group, an execution role that
    may write to that log group only (plus, when the parameters are given, read the one
    secret and attach to the VPC's subnets), and the permission letting
    ``cognito-idp.amazonaws.com`` invoke it for this pool alone. It does not set the pool's
    trigger: CloudFormation changes the LambdaConfig of a pool only when the stack owns the
    pool, and an existing pool is not the stack's (see :func:`trigger_script`).
    """
    pool_arn = {"Fn::Sub": "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:"
                           "${AWS::AccountId}:userpool/${UserPoolId}"}  # fmt: skip
    parameters: dict[str, Any] = {
        "CodeS3Bucket": {
            "Type": "String",
            "MinLength": 3,
            "Description": f"The S3 bucket (in the stack's region) holding {ZIP_NAME}.",
        },
        "CodeS3Key": {
            "Type": "String",
            "Default": ZIP_NAME,
            "MinLength": 1,
            "Description": f"The key of {ZIP_NAME} in CodeS3Bucket.",
        },  # fmt: skip
        "UserPoolId": {
            "Type": "String",
            "Default": user_pool_id,
            "AllowedPattern": r"[\w-]+_[0-9a-zA-Z]+",
            "Description": "The user pool whose UserMigration trigger the function is "
            "(the run's pool by default).",
        },
        "FunctionName": {
            "Type": "String",
            "Default": "csvimport-user-migration",
            "AllowedPattern": "[a-zA-Z0-9_-]{1,64}",
            "Description": "The function's name (its log group is /aws/lambda/NAME).",
        },
        "MemorySize": {
            "Type": "Number",
            "Default": DEFAULT_MEMORY_MB,
            "MinValue": 128,
            "MaxValue": 10240,
            "Description": "The function's memory in MB; its CPU share grows with it, and "
            "a cold start must import pandas within Cognito's 5 seconds.",
        },
        "LogRetentionDays": {
            "Type": "Number",
            "Default": 30,
            "AllowedValues": list(LOG_RETENTION_DAYS),
            "Description": "How long the function's log lines are kept.",
        },  # fmt: skip
        "LegacyDbSecretArn": {
            "Type": "String",
            "Default": "",
            "Description": "The Secrets Manager secret holding the legacy database's "
            "password (plain text, or JSON with a password key); empty for none.",
        },
        "LegacyDbSecretKmsKeyArn": {
            "Type": "String",
            "Default": "",
            "Description": "The customer-managed KMS key encrypting that secret; empty "
            "when it uses the AWS managed key aws/secretsmanager.",
        },
        "SubnetIds": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "Subnets to run the function in, to reach a database in a VPC; "
            "empty for none.",
        },
        "SecurityGroupIds": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "The function's security groups in the VPC (with SubnetIds).",
        },
    }
    conditions = {
        "HasSecret": {"Fn::Not": [{"Fn::Equals": [_ref("LegacyDbSecretArn"), ""]}]},
        "HasSecretKey": {"Fn::Not": [{"Fn::Equals": [_ref("LegacyDbSecretKmsKeyArn"), ""]}]},
        "InVpc": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", _ref("SubnetIds")]}, ""]}]},
    }
    role_policies = [
        _policy("write-own-log-group", [{
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": ["LogGroup", "Arn"]},
        }]),
        _if("HasSecret", _policy("read-legacy-db-secret", [{
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": _ref("LegacyDbSecretArn"),
        }])),
        _if("HasSecretKey", _policy("decrypt-legacy-db-secret", [{
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": _ref("LegacyDbSecretKmsKeyArn"),
            "Condition": {"StringEquals": {
                "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}},
        }])),
        _if("InVpc", _policy("attach-to-vpc", [{
            "Effect": "Allow", "Action": list(VPC_ACTIONS), "Resource": "*",
        }])),
    ]  # fmt: skip
    resources = {
        "LogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": "/aws/lambda/${FunctionName}"},
                "RetentionInDays": _ref("LogRetentionDays"),
            },
        },
        "ExecutionRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "csvimport's user-migration function: its own log group, "
                "and the legacy database's secret and VPC when given.",
                "AssumeRolePolicyDocument": service_trust("lambda.amazonaws.com"),
                "Policies": role_policies,
            },
        },
        "Function": {
            "Type": "AWS::Lambda::Function",
            "DependsOn": "LogGroup",  # created first, so Lambda never creates it unmanaged
            "Properties": {
                "FunctionName": _ref("FunctionName"),
                "Description": f"csvimport user migration for {user_pool_id}: moves a "
                "deferred legacy user into Cognito at their first sign-in.",
                "Runtime": LAMBDA_RUNTIME,
                "Handler": HANDLER,
                "Architectures": [arch.value],
                "Timeout": FUNCTION_TIMEOUT_SECONDS,
                "MemorySize": _ref("MemorySize"),
                "Code": {"S3Bucket": _ref("CodeS3Bucket"), "S3Key": _ref("CodeS3Key")},
                "Role": {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
                "Environment": {
                    "Variables": {
                        DIR_ENV: MIGRATION_DIR_IN_LAMBDA,
                        SECRET_ENV: _if("HasSecret", _ref("LegacyDbSecretArn")),
                    }
                },
                "VpcConfig": _if(
                    "InVpc",
                    {"SubnetIds": _ref("SubnetIds"), "SecurityGroupIds": _ref("SecurityGroupIds")},
                ),
            },  # fmt: skip
        },
        "CognitoInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": ["Function", "Arn"]},
                "Principal": "cognito-idp.amazonaws.com",
                "SourceArn": pool_arn,
                "SourceAccount": _ref("AWS::AccountId"),
            },
        },
    }
    outputs = {
        "FunctionArn": {
            "Description": f"Set it as the pool's UserMigration trigger: {TRIGGER_SCRIPT_NAME} "
            "FUNCTION_ARN.",
            "Value": {"Fn::GetAtt": ["Function", "Arn"]},
        },
        "UserPoolArn": {
            "Description": "The pool allowed to invoke the function.",
            "Value": pool_arn,
        },  # fmt: skip
        "LogGroupName": {
            "Description": "Where the function's log lines go.",
            "Value": _ref("LogGroup"),
        },  # fmt: skip
    }
    return {
        "AWSTemplateFormatVersion": TEMPLATE_FORMAT_VERSION,
        "Description": f"csvimport user-migration Lambda function for Cognito user pool "
        f"{user_pool_id} (the pool's trigger is set by {TRIGGER_SCRIPT_NAME}).",
        "Parameters": parameters,
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": outputs,
    }


# --- setting the trigger ------------------------------------------------------------------

# DescribeUserPool answers with settings UpdateUserPool refuses when sent back: the
# deprecated AdminCreateUserConfig.UnusedAccountValidityDays beside the password policy's
# TemporaryPasswordValidityDays. That no other describe value is refused: UNVERIFIED (the
# sandbox's UpdateUserPool takes them all).
DESCRIBE_ONLY_SETTINGS: Final = ("AdminCreateUserConfig.UnusedAccountValidityDays",)


def update_user_pool_keys() -> list[str]:
    """The settings UpdateUserPool takes that DescribeUserPool answers under the same name
    (botocore's service model), without the pool's id."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("cognito-idp")
    shape = model.operation_model("UpdateUserPool").input_shape
    members = shape.members if shape is not None else {}
    return sorted(name for name in members if name != "UserPoolId")


def trigger_filter() -> str:
    """The jq program turning DescribeUserPool's answer into UpdateUserPool's input: every
    setting the pool has, sent back as it is, and LambdaConfig.UserMigration = ``$arn``."""
    keys = json.dumps(update_user_pool_keys())
    dropped = " | ".join(f"del(.{path})" for path in DESCRIBE_ONLY_SETTINGS)
    return (
        f".UserPool | {{UserPoolId: .Id}} + with_entries(select(.key | IN({keys}[]))) "
        f"| .LambdaConfig = ((.LambdaConfig // {{}}) + {{UserMigration: $arn}}) | {dropped}"
    )


def trigger_script(user_pool_id: str) -> str:
    """A shell script (aws CLI and jq) that sets FUNCTION_ARN as the pool's UserMigration
    trigger, keeping every other setting of the pool.

    UpdateUserPool resets each setting the request leaves out to its default (the Cognito
    API reference's warning; the developer guide lists the attribute schema, the Lambda
    triggers and the email and SMS configuration), so ``aws cognito-idp update-user-pool
    --lambda-config UserMigration=ARN`` alone would wipe the pool's other triggers, MFA and
    message settings. The script reads the pool first and sends all of it back.
    """
    return f"""#!/bin/sh
# Set the csvimport migration function as the UserMigration trigger of user pool
# {user_pool_id}, keeping every other setting of the pool.
#
#   sh {TRIGGER_SCRIPT_NAME} FUNCTION_ARN    (the stack's FunctionArn output)
#
# UpdateUserPool resets every setting a request leaves out to its default (other Lambda
# triggers, MFA, email and SMS settings...), so this reads the pool's settings with
# DescribeUserPool and sends them all back with LambdaConfig.UserMigration set. It needs
# the aws CLI and jq, and cognito-idp:DescribeUserPool and cognito-idp:UpdateUserPool.
# USER_POOL_ID, AWS_PROFILE and AWS_REGION in the environment are honoured.
set -eu
FUNCTION_ARN="${{1:?usage: sh {TRIGGER_SCRIPT_NAME} FUNCTION_ARN}}"
USER_POOL_ID="${{USER_POOL_ID:-{user_pool_id}}}"
request="$(mktemp)"
trap 'rm -f "$request"' EXIT
aws cognito-idp describe-user-pool --user-pool-id "$USER_POOL_ID" --output json \\
  | jq --arg arn "$FUNCTION_ARN" '{trigger_filter()}' > "$request"
aws cognito-idp update-user-pool --cli-input-json "file://$request"
aws cognito-idp describe-user-pool --user-pool-id "$USER_POOL_ID" \\
  --query 'UserPool.LambdaConfig.UserMigration' --output text
"""


STACK_NAME: Final = "csvimport-user-migration"


def deploy_steps(result: PackageResult) -> list[str]:
    """What to tell the person who deploys: the figures, then the commands, in order."""
    zip_path, template_path = result.zip_path, result.template_path
    lines = [
        f"{zip_path.name}: {result.zip_bytes:,} bytes, {result.unzipped_bytes:,} unzipped "
        f"(Lambda's limit: {UNZIPPED_LIMIT:,}), {result.entries:,} files, "
        f"{result.compiled:,} modules precompiled for the cold start; Lambda {LAMBDA_RUNTIME} "
        f"{result.arch.value}.",
    ]
    if result.holds_lookup_file:
        lines.append(
            "It holds the lookup file: the deferred users' password hashes. It is mode 0600; "
            "keep it so (upload it with --sse aws:kms, never commit it)."
        )
    if result.needs_s3:
        lines.append(
            f"Over the {DIRECT_UPLOAD_LIMIT // (1024 * 1024)} MB Lambda takes by direct "
            "upload: it goes through S3, as the template expects."
        )
    function_arn = (
        f"$(aws cloudformation describe-stacks --stack-name {STACK_NAME} --query "
        "\"Stacks[0].Outputs[?OutputKey=='FunctionArn'].OutputValue\" --output text)"
    )
    lines += [
        "Deploy (BUCKET: an S3 bucket in the pool's region):",
        f"  aws s3 cp {zip_path} s3://BUCKET/{result.s3_key} --sse aws:kms",
        f"  aws cloudformation deploy --stack-name {STACK_NAME} --template-file "
        f"{template_path} --capabilities CAPABILITY_IAM --parameter-overrides "
        f"CodeS3Bucket=BUCKET CodeS3Key={result.s3_key}"
        " [LegacyDbSecretArn=ARN] [SubnetIds=subnet-1,subnet-2 SecurityGroupIds=sg-1]",
        f'  sh {result.trigger_script_path} "{function_arn}"',
        "CloudFormation cannot set the trigger of a pool it did not create: the script does, "
        "sending back every other setting of the pool (UpdateUserPool resets the settings a "
        "request leaves out).",
    ]
    return lines
