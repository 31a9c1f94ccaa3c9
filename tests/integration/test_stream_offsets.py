"""A stream dataset's load on real PostgreSQL (no broker needed): rows keyed on
``_wharf_message_id``, the offset in ``wharf.stream_offsets`` advanced in the same transaction,
never backwards, and never over events no load has published."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from support import LOADER_URL, libpq

from wharf.contract.columns import MESSAGE_ID_COLUMN, RUN_ID_COLUMN
from wharf.contract.dataset import DatasetSpec
from wharf.ledger.stream_offsets import OffsetGapError, OffsetStreamError, StreamRange
from wharf.publish import load
from wharf.validate.contract_checks import curated_schema

STREAM = "stream_offsets_test"


def spec_of(behaviour: str) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "streamtest",
                "dataset": f"o_{uuid.uuid4().hex[:8]}",
                "description": "Offsets.",
                "owners": [{"name": "Tests", "email": "tests@example.org"}],
                "update_behaviour": behaviour,
            },
            "source": {"type": "stream", "broker": "nats", "conn_id": "x", "stream": STREAM},
            "columns": [
                {"name": "id", "data_type": "string", "allow_null": False},
                {"name": "temperature_c", "data_type": "decimal"},
            ],
        }
    )


def events(spec: DatasetSpec, first: int, last: int, temperature: int = 20) -> load.Batches:
    schema = curated_schema(spec)
    rows = [
        {
            "id": f"r{n}",
            "temperature_c": Decimal(temperature),
            MESSAGE_ID_COLUMN: f"{STREAM}:{n}",
            RUN_ID_COLUMN: "run",
        }
        for n in range(first, last + 1)
    ]
    table = pa.Table.from_pylist(rows, schema=schema)
    return load.Batches(schema, table.num_rows, iter(table.to_batches(max_chunksize=2)))


def published(pg: Any, spec: DatasetSpec) -> dict[str, Decimal]:
    rows = pg.execute(
        f'SELECT _wharf_message_id, temperature_c FROM "streamtest"."{spec.metadata.dataset}"'
    ).fetchall()
    return dict(rows)


def offset(pg: Any, spec: DatasetSpec) -> str | None:
    row = pg.execute(
        "SELECT last_id FROM wharf.stream_offsets WHERE dataset_id = %s", (spec.dataset_id,)
    ).fetchone()
    return row and row[0]


def run(spec: DatasetSpec, rows: load.Batches, after: str | None, upto: str | None) -> Any:
    read = StreamRange("nats", STREAM, after, upto, rows.num_rows)
    with psycopg.connect(libpq(LOADER_URL)) as conn:
        return load.load(conn, spec, f"run_{after}_{upto}", None, rows, stream_read=read)


@pytest.mark.parametrize("behaviour", ["APPEND", "MERGE"])
def test_the_offset_moves_with_the_rows_forward_only_and_over_no_gap(
    behaviour: str, pg: Any
) -> None:
    spec = spec_of(behaviour)
    run(spec, events(spec, 1, 3), None, "3")
    assert offset(pg, spec) == "3" and len(published(pg, spec)) == 3
    run(spec, events(spec, 4, 5), "3", "5")
    assert offset(pg, spec) == "5" and len(published(pg, spec)) == 5

    # an empty run: nothing new, nothing published, the offset where it was
    assert run(spec, events(spec, 1, 0), "5", None).published_rows == 5
    assert offset(pg, spec) == "5"

    # a run that read past the committed offset would skip events 6 and 7: refused, retried
    with pytest.raises(OffsetGapError, match="the committed offset is 5"):
        run(spec, events(spec, 8, 9), "7", "9")
    assert offset(pg, spec) == "5" and len(published(pg, spec)) == 5

    # the same events again (a redelivery, a second run that read from the same offset), one
    # of them changed: never twice; MERGE updates it, APPEND keeps the first; no step back
    result = run(spec, events(spec, 1, 3, temperature=30), None, "3")
    assert offset(pg, spec) == "5"
    rows = published(pg, spec)
    assert len(rows) == 5 and result.inserted == 0
    assert rows[f"{STREAM}:1"] == Decimal(30 if behaviour == "MERGE" else 20)


def test_an_offset_of_another_stream_is_refused(pg: Any) -> None:
    spec = spec_of("APPEND")
    run(spec, events(spec, 1, 2), None, "2")
    other = StreamRange("nats", "another_stream", "2", "4", 2)
    with (
        psycopg.connect(libpq(LOADER_URL)) as conn,
        pytest.raises(OffsetStreamError, match="now reads nats stream 'stream_offsets_test'"),
    ):
        load.load(conn, spec, "run_x", None, events(spec, 3, 4), stream_read=other)
    assert offset(pg, spec) == "2" and len(published(pg, spec)) == 2
