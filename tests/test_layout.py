"""The package's layout shows the pipeline, and its imports flow one way.

csvimport's top level holds the front doors (the CLI, `make demo`, `make bench`) and the
shared layer; each stage is a subpackage (assess, build, run, report, passwords, migrate, passes) and so is the
sandbox. Every import, including one inside a function, is read from the source with ast.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import csvimport

PACKAGE = Path(csvimport.__file__).parent
FRONT_DOORS = {"csvimport.__main__", "csvimport.cli", "csvimport.demo", "csvimport.bench"}
# The command line is a package of front-door modules (csvimport.cli.build, ...).
FRONT_DOOR_PACKAGES = ("csvimport.cli",)
STAGES = ("build", "run", "report", "passwords", "migrate", "passes", "assess")
SHARED = "shared"
# Which layers each layer may import besides itself (front doors may import anything).
ALLOWED: dict[str, set[str]] = {
    SHARED: set(),
    "build": {SHARED},
    "run": {SHARED},
    "passwords": {SHARED},
    "migrate": {SHARED, "build"},
    "passes": {SHARED},
    "assess": {SHARED, "build"},
    "report": {SHARED, "build", "run", "passwords", "passes"},
    # The sandbox is the oracle the build is checked against: it shares none of its code.
    "sandbox": set(),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> str | None:
    """The layer a csvimport module belongs to; None for the package root and front doors."""
    parts = name.split(".")
    if name == "csvimport" or name in FRONT_DOORS:
        return None
    if name.startswith(tuple(f"{package}." for package in FRONT_DOOR_PACKAGES)):
        return None
    if len(parts) > 2 or (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return SHARED


def imported(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for each csvimport module the file imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = modules()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from csvimport.run import jobs` imports the module csvimport.run.jobs
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target == "csvimport" or target.startswith("csvimport."):
                yield node.lineno, target


def test_the_top_level_holds_only_front_doors_and_the_shared_layer() -> None:
    top = {path.name for path in PACKAGE.iterdir() if not path.name.startswith(("_", "."))}
    packages = {
        name
        for name in top
        if (PACKAGE / name).is_dir() and (PACKAGE / name / "__init__.py").exists()
    }
    assert packages == {*STAGES, "sandbox", "cli"}
    stage_modules = {
        "build.py",
        "chunkbuild.py",
        "validate.py",
        "duplicates.py",
        "journal.py",
        "jobs.py",
        "reconcile.py",
        "report.py",
        "resets.py",
        "recovery.py",
        "notice.py",
    }
    assert not top & stage_modules, "these modules belong in a stage package"


def test_each_stage_package_says_what_it_does_and_nothing_else() -> None:
    for stage in [*STAGES, "sandbox"]:
        tree = ast.parse((PACKAGE / stage / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"csvimport/{stage}/__init__.py needs a docstring"
        if stage != "sandbox":
            assert len(tree.body) == 1, (
                f"csvimport/{stage}/__init__.py holds more than its docstring"
            )


def test_imports_never_run_back_up_the_pipeline() -> None:
    wrong = []
    for name, path in modules().items():
        source = layer(name)
        if source is None:
            continue
        for line, target in imported(name, path):
            target_layer = layer(target)
            if target_layer is None and target != "csvimport":
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} imports front door {target}"
                )
            elif target_layer not in (None, source) and target_layer not in ALLOWED[source]:
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} ({source}) imports {target} ({target_layer})"
                )
    assert not wrong, "\n".join(wrong)


def test_stage_packages_import_each_other_without_a_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for name, path in modules().items():
        source = layer(name)
        if source is None:
            continue
        for _, target in imported(name, path):
            target_layer = layer(target)
            if target_layer is not None and target_layer != source:
                edges.setdefault(source, set()).add(target_layer)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, set()) - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    cycles = [stage for stage in edges if reaches(stage, stage, set())]
    assert not cycles, f"layers in an import cycle: {cycles} ({edges})"


def test_only_the_command_line_imports_typer_or_rich_progress() -> None:
    """The library stays usable from Python: Typer and the progress bars are the CLI's."""
    wrong = []
    for name, path in modules().items():
        if name == "csvimport.cli" or name.startswith("csvimport.cli."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            wrong += [f"{name}:{node.lineno} imports {t}" for t in targets
                      if t.split(".")[0] == "typer" or t.startswith("rich.progress")]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_the_command_modules_import_each_other_without_a_cycle() -> None:
    """A cycle inside csvimport.cli would fail at import time, depending on which module a
    caller happens to import first."""
    names = {n for n in modules() if n.startswith("csvimport.cli.")}
    edges = {n: {t for _, t in imported(n, modules()[n]) if t in names and t != n} for n in names}

    def reaches(start: str, goal: str, seen: frozenset[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt})
                   for nxt in edges[start] - seen)  # fmt: skip

    assert not [n for n in names if reaches(n, n, frozenset())]


def test_help_lists_every_command_in_the_migrations_order() -> None:
    import typer

    from csvimport.cli import app
    from csvimport.cli.app import COMMAND_ORDER

    group = typer.main.get_command(app)
    assert sorted(group.commands) == sorted(COMMAND_ORDER)  # type: ignore[attr-defined]
    listed = group.list_commands(typer.Context(group))  # type: ignore[attr-defined]
    assert listed == list(COMMAND_ORDER)
    assert listed.index("assess") < listed.index("build") < listed.index("start")


def _loaded(modules: str, heavy: tuple[str, ...]) -> list[str]:
    """Which of ``heavy`` importing ``modules`` (comma-separated) loads, in a fresh process."""
    import subprocess
    import sys

    code = f"import sys, {modules}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    return found.split(",") if found else []


def test_the_report_does_not_load_the_validator_and_pandera() -> None:
    """The report names rejects' reasons (csvimport.build.reasons) but validates nothing:
    loading pandera with the validator put about 15 MiB on every report's memory."""
    modules = "csvimport.report.reconcile, csvimport.report.render, csvimport.report.results"
    assert _loaded(modules, ("pandera", "csvimport.build.validate")) == []


def test_the_command_line_starts_without_pandera_sqlalchemy_or_the_build() -> None:
    """What one command runs is loaded when it runs: `csvimport status` or `report` must
    not wait for the build's validator (pandera), the database sources (SQLAlchemy) or the
    builder, nor hold them (0.5 s and 30 MiB at every start)."""
    heavy = ("pandera", "sqlalchemy", "csvimport.build.builder", "csvimport.assess.profile")
    assert _loaded("csvimport.cli", heavy) == []
