"""``wharf catalogue [DATASET] [--json]``: every dataset, how sensitive it is, who can read
it, its last run; or one dataset's catalogue entry and its change log (README, "wharf
catalogue", documents the JSON's keys)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from wharf import environment

if TYPE_CHECKING:
    from wharf.connections import Connection
    from wharf.contract.dataset import DatasetSpec

_HEADER = ("dataset", "kind", "sensitivity", "readers", "grants", "last run", "rows")


def cmd_catalogue(dataset_id: str | None = None, as_json: bool = False) -> int:
    """Without ``dataset_id``: one line per dataset YAML (its kind and sensitivity, the
    reader roles that sensitivity implies, whether the database's grants are exactly those
    (``exact``, what differs, or ``not loaded``), its last run's status and its row count);
    ``as_json``: the same as a JSON list of objects. With ``dataset_id``: its catalogue entry
    (metadata, readers, last updated, rows, hashes, source modified time) and its last
    ``changes.CHANGE_LOG_LENGTH`` loads, newest first. Exit 0; 2 for a dataset no valid YAML
    defines, or when the datasets database is not at Wharf's version."""
    from wharf import connections
    from wharf.ledger import migrations
    from wharf.publish import access
    from wharf.specfiles import load_specs

    environment.apply()
    specs, failures = load_specs()
    spec = None
    if dataset_id is not None:
        spec = next((s for s in specs if s.dataset_id == dataset_id), None)
        if spec is None:
            print(f"unknown dataset {dataset_id!r} (no valid YAML defines it)", file=sys.stderr)
            return 2
    roles = access.deployment_roles()
    with connections.connect() as conn, conn.cursor() as cur:
        try:
            migrations.require_head(conn)
        except migrations.SchemaVersionError as err:
            print(err, file=sys.stderr)
            return 2
        if spec is not None:
            entry = catalogue_entry(conn, spec, roles.readers(spec.metadata))
            print(json.dumps(entry, indent=2) if as_json else _entry_text(entry))
            return 0
        cur.execute("SELECT dataset_id, last_status, row_count FROM wharf.catalogue")
        runs = {row[0]: row[1:] for row in cur.fetchall()}
        listed = []
        for each in sorted(specs, key=lambda s: s.dataset_id):
            meta = each.metadata
            status, rows = runs.get(each.dataset_id, ("never", None))
            listed.append(
                {
                    "dataset": each.dataset_id,
                    "kind": meta.kind,
                    "sensitivity": meta.sensitivity,
                    "readers": list(roles.readers(meta)),
                    "grants": access.grants_state(cur, each, roles),
                    "last_status": str(status),
                    "rows": rows,
                }
            )
    if as_json:
        print(json.dumps(listed, indent=2))
    else:
        _print_table(listed)
    if failures:
        print(
            f"({len(failures)} YAML file(s) fail `wharf check` and are not listed)",
            file=sys.stderr if as_json else sys.stdout,
        )
    return 0


def catalogue_entry(conn: Connection, spec: DatasetSpec, readers: Iterable[str]) -> dict[str, Any]:
    """The dataset's entry as ``--json`` prints it (keys in README, "wharf catalogue"):
    its YAML's metadata, its last run (``wharf.catalogue``), and from one query of
    ``wharf.catalogue_changes`` its last updated, the newest load's rows, hashes and source
    modified time, and ``changes``: the last loads, newest first. Times are ISO 8601 in UTC,
    None where unknown (a dataset never loaded, a data cut: cuts have no loads)."""
    from wharf.ledger import changes

    meta = spec.metadata
    with conn.cursor() as cur:
        cur.execute(
            "SELECT last_run_id, last_status, last_success_at, row_count, schema_version"
            " FROM wharf.catalogue WHERE dataset_id = %s",
            (spec.dataset_id,),
        )
        run = cur.fetchone() or (None, "never", None, None, None)
    log = changes.change_log(conn, spec.dataset_id)
    newest = log[0] if log else {}
    return {
        "dataset": spec.dataset_id,
        "kind": meta.kind,
        "description": meta.description,
        "sensitivity": meta.sensitivity,
        "owners": [o.model_dump(mode="json") for o in meta.owners],
        "key_value_tags": dict(meta.key_value_tags),
        "key_only_tags": list(meta.key_only_tags),
        "update_behaviour": meta.update_behaviour if meta.kind != "data_cut" else None,
        "readers": list(readers),
        "last_run_id": run[0],
        "last_status": run[1],
        "last_success_at": _iso(run[2]),
        "last_updated": _iso(newest.get("last_updated")),
        "last_loaded_at": _iso(newest.get("loaded_at")),
        "rows": newest.get("row_count", run[3]),
        "schema_version": newest.get("schema_version") or run[4],
        "structure_hash": newest.get("structure_hash"),
        "data_hash": newest.get("data_hash"),
        "source_modified_at": _iso(newest.get("source_modified_at")),
        "changes": [
            {
                "run_id": c["run_id"],
                "loaded_at": _iso(c["loaded_at"]),
                "rows": c["row_count"],
                "schema_version": c["schema_version"],
                "structure_changed": c["structure_changed"],
                "data_changed": c["data_changed"],
                "source_modified_at": _iso(c["source_modified_at"]),
            }
            for c in log
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _shown(moment: str | None) -> str:
    """An ISO time as the text output shows it: ``2026-12-01 19:00:00 UTC``; '-' for none."""
    if moment is None:
        return "-"
    return f"{datetime.fromisoformat(moment):%Y-%m-%d %H:%M:%S} UTC"


def _entry_text(entry: dict[str, Any]) -> str:
    tags = [f"{k}={v}" for k, v in entry["key_value_tags"].items()] + entry["key_only_tags"]
    rows = entry["rows"]
    fields = [
        ("dataset", entry["dataset"]),
        ("kind", entry["kind"]),
        ("description", entry["description"] or "-"),
        ("sensitivity", entry["sensitivity"]),
        ("owners", ", ".join(f"{o['name']} <{o['email']}>" for o in entry["owners"]) or "-"),
        ("tags", ", ".join(tags) or "-"),
        ("update behaviour", entry["update_behaviour"] or "-"),
        ("readers", ", ".join(entry["readers"])),
        ("last run", f"{entry['last_run_id'] or '-'} ({entry['last_status']})"),
        ("last updated", _shown(entry["last_updated"])),
        ("last loaded", _shown(entry["last_loaded_at"])),
        ("rows", "-" if rows is None else f"{rows:,}"),
        ("schema version", entry["schema_version"] or "-"),
        ("structure hash", entry["structure_hash"] or "-"),
        ("data hash", entry["data_hash"] or "-"),
        ("source modified", _shown(entry["source_modified_at"])),
    ]
    width = max(len(name) for name, _ in fields)
    lines = [f"{name.ljust(width)}  {value}" for name, value in fields]
    lines += ["", f"change log (newest first, at most {_log_length()} loads)"]
    if not entry["changes"]:
        lines.append("no loads recorded")
        return "\n".join(lines)
    table = [("loaded at", "run id", "rows", "schema", "structure", "data")]
    for change in entry["changes"]:
        table.append(
            (
                _shown(change["loaded_at"]),
                change["run_id"],
                f"{change['rows']:,}",
                change["schema_version"] or "-",
                "changed" if change["structure_changed"] else "same",
                "changed" if change["data_changed"] else "same",
            )
        )
    lines += _columns(table)
    return "\n".join(lines)


def _log_length() -> int:
    from wharf.ledger.changes import CHANGE_LOG_LENGTH

    return CHANGE_LOG_LENGTH


def _columns(table: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]


def _print_table(listed: list[dict[str, Any]]) -> None:
    lines = [_HEADER]
    for item in listed:
        rows = item["rows"]
        lines.append(
            (
                item["dataset"],
                item["kind"],
                item["sensitivity"],
                ", ".join(item["readers"]),
                item["grants"],
                item["last_status"],
                "" if rows is None else f"{rows:,}",
            )
        )
    for line in _columns(lines):
        print(line)
