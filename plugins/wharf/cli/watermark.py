"""``wharf watermark reset``: forget an incremental dataset's watermark."""

from __future__ import annotations

import sys

from wharf import environment
from wharf.specfiles import load_specs


def cmd_watermark_reset(dataset_id: str) -> int:
    """Delete the dataset's row of ``wharf.watermarks`` and print what it held; exit 2 for a
    dataset no YAML defines or one that is not incremental, or a datasets database not at
    Wharf's version (``wharf db upgrade``); 1 when it has no watermark."""
    from wharf import connections
    from wharf.ledger import migrations, watermarks

    environment.apply()
    specs, _ = load_specs()
    spec = next((s for s in specs if s.dataset_id == dataset_id), None)
    if spec is None:
        print(f"unknown dataset {dataset_id!r} (no valid YAML defines it)", file=sys.stderr)
        return 2
    if spec.incremental is None:
        print(f"{dataset_id} is not incremental: it has no watermark", file=sys.stderr)
        return 2
    with connections.connect() as conn:
        try:
            migrations.require_head(conn)
        except migrations.SchemaVersionError as err:
            print(err, file=sys.stderr)
            return 2
        removed = watermarks.reset_watermark(conn, dataset_id)
    if removed is None:
        print(f"{dataset_id} has no watermark: its next run reads everything", file=sys.stderr)
        return 1
    print(
        f"{dataset_id}: removed the watermark {removed.cursor} = {removed.value} (set by run "
        f"{removed.run_id} at {removed.updated_at:%Y-%m-%d %H:%M:%S %Z}); the next run reads "
        "the source from scratch"
    )
    return 0
