"""``wharf catalogue``: every dataset, how sensitive it is, who can read it, its last run."""

from __future__ import annotations

import sys

from wharf import environment

_HEADER = ("dataset", "kind", "sensitivity", "readers", "grants", "last run", "rows")


def cmd_catalogue() -> int:
    """Print one line per dataset YAML: its kind and sensitivity, the reader roles that
    sensitivity implies, whether the database's grants are exactly those (``exact``, what
    differs, or ``not loaded``), its last run's status and its row count. Exit 0; 2 when the
    datasets database is not at Wharf's version."""
    from wharf import connections
    from wharf.ledger import migrations
    from wharf.publish import access
    from wharf.specfiles import load_specs

    environment.apply()
    specs, failures = load_specs()
    roles = access.deployment_roles()
    lines = [_HEADER]
    with connections.connect() as conn, conn.cursor() as cur:
        try:
            migrations.require_head(conn)
        except migrations.SchemaVersionError as err:
            print(err, file=sys.stderr)
            return 2
        cur.execute("SELECT dataset_id, last_status, row_count FROM wharf.catalogue")
        runs = {row[0]: row[1:] for row in cur.fetchall()}
        for spec in sorted(specs, key=lambda s: s.dataset_id):
            meta = spec.metadata
            status, rows = runs.get(spec.dataset_id, ("never", None))
            lines.append(
                (
                    spec.dataset_id,
                    meta.kind,
                    meta.sensitivity,
                    ", ".join(roles.readers(meta)),
                    access.grants_state(cur, spec, roles),
                    str(status),
                    "" if rows is None else f"{rows:,}",
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    if failures:
        print(f"({len(failures)} YAML file(s) fail `wharf check` and are not listed)")
    return 0
