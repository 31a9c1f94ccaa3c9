"""A local lake is its owner's alone (issue #13, item 6): after a real run, every folder of
its five zones is 0700 and every file 0600, although the run's umask would allow anyone to
read and write."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import run_dag

TICKETS = """\
metadata:
  domain: parking
  dataset: private_tickets
  owners: [{name: Parking team, email: parking@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
on_invalid: quarantine
max_rejected_fraction: 0.5
load: {min_row_fraction: 0}
source: {type: file, path: %s}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: street, data_type: string, allow_null: false, partition_index: 0}
  - {name: fine, data_type: decimal}
"""
CSV = "id,street,fine\n1,High St,70.00\n2,Mare St,\n3,Mare St,not a number\n"


@pytest.fixture
def lake_root(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new local lake root and ``parking.private_tickets`` (a CSV file source, partitioned
    by street, one bad row), run under umask 000."""
    root = tmp_path / "lake"
    monkeypatch.setenv("WHARF_LAKE_ROOT", root.as_uri())
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))
    (tmp_path / "tickets.csv").write_text(CSV)
    (schemas / "parking").mkdir()
    (schemas / "parking" / "private_tickets.yaml").write_text(TICKETS % (tmp_path / "tickets.csv"))
    old = os.umask(0)
    try:
        yield root
    finally:
        os.umask(old)


def test_every_zone_of_a_run_is_readable_by_its_owner_only(lake_root: Path) -> None:
    assert run_dag("parking.private_tickets", logical_date=datetime(2026, 3, 2, tzinfo=UTC)) == (
        "success"
    )
    files = [p for p in lake_root.rglob("*") if p.is_file()]
    folders = [lake_root, *(p for p in lake_root.rglob("*") if p.is_dir())]
    assert sorted({p.relative_to(lake_root).parts[0] for p in files}) == [
        "curated",
        "landing",
        "quarantine",
        "raw",
        "reports",
    ]
    assert any("street=Mare%20St" in str(p) for p in files)  # the partitioned writer too
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        str(p): "0o600" for p in files
    }
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {
        str(p): "0o700" for p in folders
    }
