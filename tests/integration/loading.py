"""Helpers for loader tests: specs, curated batches and table checksums on real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from wharf.contract.columns import RUN_ID_COLUMN
from wharf.contract.dataset import DatasetSpec
from wharf.publish import load
from wharf.validate.contract_checks import curated_schema

COLUMNS = [
    {"name": "id", "data_type": "integer", "allow_null": False, "description": "Row id."},
    {"name": "name", "data_type": "string", "description": "A name."},
    {"name": "amount", "data_type": "decimal"},
    {"name": "seen_at", "data_type": "timestamp"},
]


def make_spec(
    behaviour: str = "OVERWRITE",
    columns: list[dict[str, Any]] | None = None,
    dataset: str | None = None,
    **extra: Any,
) -> DatasetSpec:
    """A spec in domain ``loadtest``; a fresh dataset name unless one is given."""
    primary_key = extra.pop("primary_key", ["id"] if behaviour == "MERGE" else [])
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "loadtest",
                "dataset": dataset or f"t_{uuid.uuid4().hex[:8]}",
                "description": "A table for loader tests.",
                "owners": [{"name": "Tests", "email": "tests@example.org"}],
                "update_behaviour": behaviour,
                "primary_key": primary_key,
            },
            "source": {"type": "file", "path": "unused.csv"},
            "columns": columns or COLUMNS,
            **extra,
        }
    )


def rows_of(spec: DatasetSpec, rows: list[dict[str, Any]], run_id: str) -> load.Batches:
    """Curated batches (the YAML's types plus the run id) holding ``rows``, 2 rows a batch."""
    schema = curated_schema(spec)
    table = pa.Table.from_pylist([{**r, RUN_ID_COLUMN: run_id} for r in rows], schema=schema)
    return load.Batches(schema, table.num_rows, iter(table.to_batches(max_chunksize=2)))


def sample(ids: Iterable[int], name: str = "n", day: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"{name}{i}",
            "amount": Decimal(f"{i}.50"),
            "seen_at": datetime(2026, 1, day, i % 24, tzinfo=UTC),
        }
        for i in ids
    ]


def table_name(spec: DatasetSpec) -> str:
    return f'"{spec.metadata.domain}"."{spec.metadata.dataset}"'


def checksum(conn: Any, spec: DatasetSpec, columns: list[str] | None = None) -> str | None:
    """md5 of every row (or of ``columns``), order-independent; None if no table."""
    select = ", ".join(f'"{c}"' for c in columns) if columns else "t.*"
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table_name(spec),))
        if cur.fetchone()[0] is None:
            return None
        cur.execute(
            f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) "
            f"FROM (SELECT ROW({select}) AS r FROM {table_name(spec)} t) s"
        )
        return str(cur.fetchone()[0])


def data_checksum(conn: Any, spec: DatasetSpec) -> str | None:
    """Checksum of the YAML's columns and the logical date: what a re-run must reproduce."""
    return checksum(conn, spec, [*spec.column_names, "_wharf_logical_date"])


def fetch(conn: Any, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return list(cur.fetchall())
