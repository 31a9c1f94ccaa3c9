"""Lineage edges ``wharf.lineage``: a source or dataset feeding a dataset, per run."""

from __future__ import annotations

from wharf.connections import Connection


def write_lineage(conn: Connection, run_id: str, edges: list[tuple[str, str]]) -> None:
    """Lineage edges (source, target) of one run; writing the same run twice is a no-op."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO wharf.lineage (run_id, source, target) VALUES (%s, %s, %s)
               ON CONFLICT DO NOTHING""",
            [(run_id, s, t) for s, t in edges],
        )
    conn.commit()
