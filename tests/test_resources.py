"""Data files are found in a source checkout (and, via make test-dist, in the wheel)."""

from __future__ import annotations

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
