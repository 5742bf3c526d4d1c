"""Find the data files csvimport ships: JSON schemas and report templates.

In an installed wheel they live at ``csvimport/_data/<kind>`` (hatch's force-include,
see pyproject.toml); in a source checkout or an editable install, at ``<repo>/<kind>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from csvimport.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent
_INSTALLED_DATA = _PACKAGE_DIR / "_data"
_SOURCE_ROOT = _PACKAGE_DIR.parent

REINSTALL_HINT = (
    "Reinstall csvimport (pip install --force-reinstall csvimport) "
    "or run it from a source checkout."
)


def schemas_dir() -> Path:
    """Return the folder of csvimport's JSON schemas and specs."""
    return _data_dir("schemas")


def templates_dir() -> Path:
    """Return the folder of csvimport's Jinja2 report templates."""
    return _data_dir("templates")


def schema_path(name: str) -> Path:
    """Return the path of the schema file ``name`` (e.g. ``"sandbox-pool.json"``,
    ``"mappings/example-legacy.toml"``).

    Raises ConfigError, listing the schemas there are, when no such file exists.
    """
    folder = schemas_dir()
    path = folder / name
    inside = ".." not in Path(name).parts and not Path(name).is_absolute()
    if not inside or not path.is_file():
        available = ", ".join(
            sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        )
        raise ConfigError(
            f"No schema named {name!r} in {folder}.",
            hint=f"Available: {available}." if available else REINSTALL_HINT,
        )
    return path


def _data_dir(kind: Literal["schemas", "templates"]) -> Path:
    """Return the first existing data folder of this kind: wheel first, then source tree."""
    candidates = (_INSTALLED_DATA / kind, _SOURCE_ROOT / kind)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = " and ".join(str(c) for c in candidates)
    raise ConfigError(
        f"csvimport's {kind} folder is missing: looked in {looked}.", hint=REINSTALL_HINT
    )
