"""Wharf's own DDL ships with its code: a project's WHARF_HOME holds its YAML and data-cut SQL,
not the migrations this code needs (``wharf db upgrade`` and every task's version check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf import settings
from wharf.ledger import migrations


def test_migrations_are_found_beside_the_code_whatever_wharf_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHARF_HOME", str(tmp_path))  # a project with only its own files
    assert [m.name for m in migrations.migrations()][:2] == ["initial", "catalogue_readers"]
    assert migrations.migrations_dir() == settings.migrations_dir()
    assert not migrations.migrations_dir().is_relative_to(tmp_path)
