"""Fault test: SIGKILL the loader process at random points of COPY and of publish.

For each behaviour the loader runs in its own process and is killed with SIGKILL at a random
moment inside the targeted phase, at least 20 times per phase in all. Each time the published
table's checksum (every column, ``_wharf_loaded_at`` included) must be unchanged, and a
re-run must succeed and give the same rows as an unkilled reference table fed the same loads.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loading import checksum, data_checksum, make_spec, sample, table_name
from support import DATASETS_URL, libpq

from wharf.contract.columns import RUN_ID_COLUMN
from wharf.publish import load
from wharf.validate.contract_checks import curated_schema

CHILD = Path(__file__).with_name("load_child.py")
ROWS = 50_000
# 7 kills per phase and behaviour: 21 kills during COPY and 21 during publish in all
KILLS_PER_PHASE_AND_BEHAVIOUR = 7
MAX_ATTEMPTS = 90
DAY = datetime(2026, 1, 1, tzinfo=UTC)


def _write_batch(spec: Any, folder: Path, name: str, offset: int, run_id: str) -> Path:
    """ROWS rows whose ids start at ``offset`` (so two batches overlap by half)."""
    base = pa.Table.from_pylist(sample(range(24)), schema=curated_schema(spec).remove(4))
    repeats = ROWS // 24 + 1
    table = pa.concat_tables([base] * repeats).slice(0, ROWS)
    table = table.set_column(0, "id", pa.array(range(offset, offset + ROWS), pa.int32()))
    table = table.append_column(RUN_ID_COLUMN, pa.array([run_id] * ROWS, pa.string()))
    path = folder / f"{name}.parquet"
    pq.write_table(table, path, row_group_size=20_000)
    return path


def _batches(path: Path) -> load.Batches:
    source = pq.ParquetFile(path)
    return load.Batches(source.schema_arrow, source.metadata.num_rows, source.iter_batches())


def _kill_during(
    args: list[str], phase: str, within: float, rng: random.Random
) -> tuple[str, list[str]]:
    """Start the loader, SIGKILL it ``uniform(0, within)`` s after ``phase`` begins.

    Returns the last phase it announced before dying (``done`` if it finished) and all lines.
    """
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if line.strip() == f"phase {phase}":
            time.sleep(rng.uniform(0, within))
            break
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    lines += [line.strip() for line in rest.splitlines() if line.strip()]
    return (lines[-1].removeprefix("phase ") if lines else "start"), lines


def _phase_lengths(args: list[str]) -> dict[str, float]:
    """Seconds each phase took in one unkilled run (from when its line arrived)."""
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    seen: list[tuple[str, float]] = []
    for line in child.stdout:
        seen.append((line.strip().removeprefix("phase "), time.monotonic()))
    assert child.wait(60) == 0
    lengths: dict[str, float] = {}
    for (name, began), (_, ended) in itertools.pairwise(seen):
        lengths[name] = max(lengths.get(name, 0.0), ended - began)
    return lengths


def _add_dependents(conninfo: str, spec: Any) -> tuple[Any, ...]:
    """A view made by hand, a grant and a hand-made column comment on the table."""
    name, table = spec.metadata.dataset, table_name(spec)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE VIEW loadtest.v_{name} AS SELECT id, amount FROM {table}")
        conn.execute(f"CREATE ROLE r_{name}")
        _CREATED_ROLES.append(f"r_{name}")
        conn.execute(f"GRANT SELECT ON {table} TO r_{name}")
        conn.execute(f"COMMENT ON COLUMN {table}.amount IS 'By hand.'")
        return _dependents(conn, spec)


def _dependents(conn: Any, spec: Any) -> tuple[Any, ...]:
    name, table = spec.metadata.dataset, table_name(spec)
    return conn.execute(
        f"SELECT (SELECT count(*) > 0 FROM loadtest.v_{name}), "
        f"has_table_privilege('r_{name}', '{table}', 'SELECT'), "
        f"col_description('{table}'::regclass, 3)"
    ).fetchone()


# The roles this module made: roles are server-wide, and another test session's may exist.
_CREATED_ROLES: list[str] = []


@pytest.fixture(autouse=True)
def _drop_roles() -> Any:
    yield
    with psycopg.connect(libpq(DATASETS_URL), autocommit=True) as conn:
        while _CREATED_ROLES:
            role = _CREATED_ROLES.pop()
            conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.parametrize("behaviour", ["OVERWRITE", "APPEND", "MERGE"])
def test_sigkill_during_copy_and_publish_leaves_the_table_unchanged(
    behaviour: str, tmp_path: Path
) -> None:
    rng = random.Random(f"wharf-{behaviour}")
    spec = make_spec(behaviour)
    reference = make_spec(behaviour)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    batches = [
        _write_batch(spec, tmp_path, "a", 0, "run_a"),
        _write_batch(spec, tmp_path, "b", ROWS // 2, "run_b"),
    ]
    conninfo = libpq(DATASETS_URL)

    def args(index: int) -> list[str]:
        run_id = ("run_a", "run_b")[index % 2]
        return [
            sys.executable,
            str(CHILD),
            str(spec_file),
            str(batches[index % 2]),
            run_id,
            DAY.isoformat(),
            conninfo,
        ]

    with psycopg.connect(conninfo) as conn:
        # what the table holds after loading each batch, once both have been loaded
        expected = {}
        for index in (0, 1, 0, 1):
            load.load(conn, reference, ("run_a", "run_b")[index], DAY, _batches(batches[index]))
            expected[index] = data_checksum(conn, reference)
        load.load(conn, spec, "run_a", DAY, _batches(batches[0]))
    dependents = _add_dependents(conninfo, spec)
    assert dependents == (True, True, "By hand.")
    lengths = _phase_lengths(args(1))
    wanted = {"copy": KILLS_PER_PHASE_AND_BEHAVIOUR, "publish": KILLS_PER_PHASE_AND_BEHAVIOUR}
    landed: Counter[str] = Counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        before = checksum(conn, spec)
    for attempt in range(2, MAX_ATTEMPTS):
        missing = [p for p in wanted if landed[p] < wanted[p]]
        if not missing:
            break
        phase = missing[attempt % len(missing)]
        last, lines = _kill_during(args(attempt), phase, lengths[phase], rng)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            after_kill = checksum(conn, spec)
            assert _dependents(conn, spec) == dependents  # view, grant and comment intact
        if last in ("migrate", "copy", "publish"):
            assert after_kill == before, f"killed in {last} ({lines}): the table changed"
            landed[last] += 1
        # a re-run of the killed load succeeds and gives the rows an unkilled load gives
        with psycopg.connect(conninfo) as conn:
            load.load(
                conn, spec, ("run_a", "run_b")[attempt % 2], DAY, _batches(batches[attempt % 2])
            )
            assert data_checksum(conn, spec) == expected[attempt % 2]
            before = checksum(conn, spec)
    assert landed["copy"] >= wanted["copy"] and landed["publish"] >= wanted["publish"], landed
