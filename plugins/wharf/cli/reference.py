"""``wharf reference diff DATASET``: what the working copy of a reference dataset's file and
YAML would change against its published current version."""

from __future__ import annotations

import sys
from typing import Any

from wharf import environment

# A key's value is cut to this many characters in the output (the output stays bounded).
_VALUE_CHARS = 40


def cmd_reference_diff(dataset_id: str) -> int:
    """Read the working copy (``include/reference/<file>`` as its YAML types it, through the
    same reader and contract checks as a run) and compare it, in PostgreSQL, with the current
    version's rows: print the columns added, removed or retyped, the rows added, changed and
    removed (counts, and up to 10 primary keys of each), and the version a load would make.
    Exit 0: no change; 1: changes; 2: an error (an unknown or not a reference dataset, a file
    breaking its contract, a database not at Wharf's version or unreachable). Prints keys and
    column names, never a connection's secrets."""
    import psycopg

    from wharf import connections, errors, extract
    from wharf.ledger import migrations
    from wharf.publish import reference
    from wharf.specfiles import SpecError, get_spec
    from wharf.validate import contract_checks

    environment.apply()
    try:
        spec = get_spec(dataset_id)
    except (SpecError, FileNotFoundError, ValueError) as err:
        print(f"unknown dataset {dataset_id!r}: {errors.one_line(err)}", file=sys.stderr)
        return 2
    if spec.metadata.kind != "reference":
        print(
            f"{dataset_id} is a {spec.metadata.kind} dataset, not a reference one", file=sys.stderr
        )
        return 2
    report = contract_checks.Report(spec.dataset_id)
    try:
        opened = extract.read(spec, extract.Window())
        rows = contract_checks.curate(
            spec, opened.schema, opened.batches, "wharf-reference-diff", report
        )
        with connections.connect() as conn:
            migrations.require_head(conn)
            found = reference.diff(conn, spec, rows)
    except (errors.WharfError, OSError, ValueError, psycopg.Error) as err:
        print(f"{dataset_id}: {errors.one_line(err)}", file=sys.stderr)
        return 2
    if report.violation_count:
        print(errors.one_line(Exception(report.summary())), file=sys.stderr)
        return 2
    for line in describe(spec.dataset_id, spec.metadata.primary_key, found):
        print(line)
    return 1 if found.changes else 0


def describe(dataset_id: str, key: tuple[str, ...], found: Any) -> list[str]:
    """The lines ``cmd_reference_diff`` prints for a ``reference.Diff``."""
    published = found.published
    if published is None:
        head = f"{dataset_id}: never loaded"
    else:
        head = (
            f"{dataset_id}: the working copy against version {published.version} (loaded "
            f"{published.loaded_at:%Y-%m-%d %H:%M:%S %Z}, {published.row_count} rows)"
        )
    lines = [head]
    if published is not None and found.file_changed:
        lines.append(f"file: changed (sha256 {found.checksum[:12]}, was {published.checksum[:12]})")
    lines += [str(change) for change in found.columns]
    rows = found.rows
    for kind, count in (
        ("added", rows.added),
        ("changed", rows.changed),
        ("removed", rows.removed),
    ):
        if count:
            keys = [_key(key, values) for values in rows.samples.get(kind, [])]
            more = count - len(keys)
            listed = ", ".join(keys + ([f"... ({more} more)"] if keys and more > 0 else []))
            lines.append(f"{count} row(s) {kind}" + (f": {listed}" if listed else ""))
    if not found.changes:
        also = (
            " (the file differs from the one loaded, but no row or column does: a load keeps "
            "the version)"
            if found.file_changed
            else ""
        )
        lines.append(f"no change: version {found.would_be}{also}")
    else:
        lines.append(f"would become version {found.would_be}")
    return lines


def _key(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    parts = [f"{n}={str(v)[:_VALUE_CHARS]}" for n, v in zip(names, values, strict=True)]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"
