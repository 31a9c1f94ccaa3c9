"""Data cuts: views (or materialized views) over datasets, refreshed in dependency order.

A data cut's inputs are its ``depends_on`` list, or else the tables its SQL reads, found by
OpenLineage's SQL parser.
"""

from __future__ import annotations

import logging
from graphlib import TopologicalSorter
from typing import Any

from psycopg import sql

from wharf.datasets_db import lock_ddl, qualified, relation_exists
from wharf.load import comment
from wharf.spec import DatasetSpec

log = logging.getLogger(__name__)


def inputs(cut: DatasetSpec) -> list[str]:
    """Dataset ids (``schema.table``) the data cut reads."""
    if cut.depends_on:
        return list(cut.depends_on)
    import openlineage_sql

    parsed = openlineage_sql.parse([cut.sql_text], dialect="postgres")
    return sorted({f"{t.schema}.{t.name}" for t in parsed.in_tables if t.schema})


def dependents(dataset_id: str, specs: list[DatasetSpec]) -> list[DatasetSpec]:
    """Data cuts that read ``dataset_id`` directly or through other cuts, inputs first.

    Raises ``graphlib.CycleError`` if data cuts depend on each other in a cycle.
    """
    cuts = {s.dataset_id: s for s in specs if s.metadata.kind == "data_cut"}
    graph = {cut_id: set(inputs(cut)) for cut_id, cut in cuts.items()}
    reached = {dataset_id}
    changed = True
    while changed:
        changed = False
        for cut_id, needs in graph.items():
            if cut_id not in reached and needs & reached:
                reached.add(cut_id)
                changed = True
    order = TopologicalSorter(graph).static_order()
    return [cuts[c] for c in order if c in cuts and c in reached and c != dataset_id]


def refresh(conn: Any, cut: DatasetSpec) -> str:
    """Create or refresh one data cut. Returns ``"refreshed"``, or ``"waiting"`` when an
    input table does not exist yet (it is created once its inputs have loaded)."""
    missing = []
    with conn.cursor() as cur:
        for dataset_id in inputs(cut):
            schema, _, name = dataset_id.partition(".")
            if not relation_exists(cur, schema, name):
                missing.append(dataset_id)
    if missing:
        log.info("%s: waiting for %s", cut.dataset_id, ", ".join(missing))
        return "waiting"
    meta = cut.metadata
    view = qualified(meta.domain, meta.dataset)
    body = sql.SQL(cut.sql_text.strip().rstrip(";"))  # trusted: a reviewed file in include/sql
    with conn.cursor() as cur:
        lock_ddl(cur)
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(meta.domain)))
        if cut.materialized:
            cur.execute(
                sql.SQL("CREATE MATERIALIZED VIEW IF NOT EXISTS {} AS {} WITH NO DATA").format(
                    view, body
                )
            )
            cur.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(view))
            comment(cur, cut, "MATERIALIZED VIEW")
        else:
            cur.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(view, body))
            comment(cur, cut, "VIEW")
    conn.commit()
    return "refreshed"
