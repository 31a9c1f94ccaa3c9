"""A local lake is its owner's alone: every folder it creates is 0700 and every file 0600,
whatever the process umask, through every way the lake writes (parts, partitions, a zone
written batch by batch, a copied zone, a report)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from wharf import lake

KEY = lake.RunKey("parking.tickets", date(2026, 3, 2), "manual__2026-03-02T00:00:00+00:00")
SCHEMA = pa.schema([("id", pa.int64()), ("zone", pa.string())])


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new local lake root, written under the most permissive umask."""
    folder = tmp_path / "lake"
    monkeypatch.setenv("WHARF_LAKE_ROOT", folder.as_uri())
    old = os.umask(0)
    try:
        yield folder
    finally:
        os.umask(old)


def batches() -> list[pa.RecordBatch]:
    return [pa.record_batch([[1, 2, 3], ["a", "b", None]], schema=SCHEMA)]


def modes(root: Path) -> dict[str, str]:
    """``path below root -> octal mode`` of the root and everything below it."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def test_every_folder_is_0700_and_every_file_0600(root: Path) -> None:
    lake.write_batches(KEY, "landing", SCHEMA, batches())
    lake.copy_zone(KEY, "landing", "raw")
    lake.write_batches(KEY, "curated", SCHEMA, batches(), partition_by=["zone"])
    writer = lake.ZoneWriter(KEY, "quarantine", SCHEMA)
    writer.write(batches()[0])
    writer.close()
    lake.write_text(KEY, "reports", "contract_checks.html", "<p>ok</p>")

    found = modes(root)
    files = {p for p in found if p.endswith((".parquet", ".html"))}
    assert len(files) == 7  # landing, raw, quarantine, report, 3 partitions of curated
    assert {p for p in files if p.startswith("curated/")} == {
        f"{KEY.folder('curated')}/zone={z}/part-0.parquet"
        for z in ("a", "b", "__HIVE_DEFAULT_PARTITION__")
    }
    assert {p: m for p, m in found.items() if p in files} == dict.fromkeys(files, "0o600")
    assert {p: m for p, m in found.items() if p not in files} == {
        p: "0o700" for p in found if p not in files
    }
    assert [b.num_rows for b in lake.read_batches(KEY, "curated", SCHEMA)] != []


def test_a_rewrite_keeps_the_files_private(root: Path) -> None:
    lake.write_batches(KEY, "landing", SCHEMA, batches())
    lake.write_batches(KEY, "landing", SCHEMA, batches())  # a retry replaces the run's files
    lake.write_text(KEY, "reports", "contract_checks.html", "<p>one</p>")
    lake.write_text(KEY, "reports", "contract_checks.html", "<p>two</p>")
    assert set(modes(root).values()) == {"0o600", "0o700"}
    assert lake.count_rows(KEY, "landing") == 3


def test_an_existing_root_is_left_as_the_operator_made_it(root: Path) -> None:
    root.mkdir(mode=0o750)
    os.chmod(root, 0o750)
    lake.write_batches(KEY, "landing", SCHEMA, batches())
    found = modes(root)
    assert found.pop(".") == "0o750"
    assert set(found.values()) == {"0o600", "0o700"}
