"""The documentation keeps up with the code: every command and exit code is described."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from csvimport.cli import app
from csvimport.errors import ExitStatus

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
GROUP: Any = typer.main.get_command(app)
COMMANDS: dict[str, Any] = GROUP.commands


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_text(name: str) -> None:
    assert (COMMANDS[name].help or "").strip()


@pytest.mark.parametrize(
    ("name", "param"),
    [(None, p) for p in GROUP.params]
    + [(name, p) for name, command in sorted(COMMANDS.items()) for p in command.params],
    ids=lambda value: value if isinstance(value, str) or value is None else value.name,
)
def test_every_option_has_help_text(name: str | None, param: Any) -> None:
    assert (getattr(param, "help", None) or "").strip(), f"{name or 'csvimport'} {param.name}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"csvimport {name}" in README


@pytest.mark.parametrize("status", list(ExitStatus), ids=lambda s: s.name)
def test_every_exit_status_is_in_the_readme_table(status: ExitStatus) -> None:
    assert f"| {status.value}" in README
    assert f"`{status.name}`" in README
