"""Data files are found in a source checkout (and, via make test-dist, in the wheel)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

from csvimport.errors import ConfigError
from csvimport.resources import schema_path, schemas_dir, templates_dir


def test_schemas_and_templates_folders_exist() -> None:
    assert schemas_dir().is_dir()
    assert templates_dir().is_dir()


def test_schema_path_finds_the_demo_pool_spec() -> None:
    path = schema_path("sandbox-pool.json")
    assert path.is_file()
    assert path.parent == schemas_dir()


@pytest.mark.parametrize("name", ["no-such.json", "../pyproject.toml", ""])
def test_schema_path_of_a_missing_schema_lists_the_available_ones(name: str) -> None:
    with pytest.raises(ConfigError, match="No schema named") as caught:
        schema_path(name)
    assert caught.value.hint is not None and "sandbox-pool.json" in caught.value.hint


ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[^A-Za-z0-9._-]", r, maxsplit=1)[0]) for r in requirements}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports at run time (not only for typing); relative ones with
    their leading dots."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If)
                   and ast.unparse(guard.test) == "TYPE_CHECKING"
                   for node in ast.walk(guard)}  # fmt: skip
    modules = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add("." * node.level + (node.module or ""))
    return modules


def _imported_distributions(path: Path) -> set[str]:
    """The distributions whose modules ``path`` imports at run time."""
    modules = {m.split(".")[0] for m in _imports(path) if not m.startswith(".")}
    owners = importlib.metadata.packages_distributions()
    return {_normal(d) for m in modules - sys.stdlib_module_names - {"csvimport"}
            for d in owners.get(m, [m])}  # fmt: skip


@pytest.mark.parametrize(
    "path", sorted((ROOT / "csvimport").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_package_the_library_imports_is_declared(path: Path) -> None:
    declared = _requirement_names(PROJECT["dependencies"])
    # The sandbox (and the benchmarks and demo, which run it) may use the sandbox extra.
    if path.parent.name == "sandbox" or path.stem in ("bench", "demo"):
        declared |= _requirement_names(PROJECT["optional-dependencies"]["sandbox"])
    assert _imported_distributions(path) <= declared


@pytest.mark.parametrize("path", sorted((ROOT / "tests").glob("*.py")), ids=lambda p: p.name)
def test_no_test_module_imports_another_or_the_shipped_benchmarks(path: Path) -> None:
    # Shared test code lives in tests/helpers.py (and conftest.py fixtures).
    imported = _imports(path)
    assert not {m for m in imported if m.lstrip(".").startswith("test_")}
    assert not {m for m in imported if m.startswith("csvimport.bench")}
