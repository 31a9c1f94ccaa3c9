"""The catalogue ``wharf.catalogue``: one row per dataset, what it is and how its last run went."""

from __future__ import annotations

import hashlib
import json

from psycopg.types.json import Jsonb

from wharf import settings
from wharf.connections import Connection
from wharf.contract.dataset import DatasetSpec
from wharf.contract.roles import Roles


def spec_hash(spec: DatasetSpec) -> str:
    """SHA-256 of the spec's canonical JSON: changes whenever the contract changes."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def upsert_catalogue(
    conn: Connection, spec: DatasetSpec, run_id: str, status: str, row_count: int | None
) -> None:
    """The dataset's catalogue row: metadata from the YAML (with the reader roles its
    sensitivity implies) and the outcome of this run."""
    meta = spec.metadata
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO wharf.catalogue AS c (dataset_id, domain, dataset, kind, description,
                   sensitivity, readers, owners, key_value_tags, key_only_tags,
                   update_behaviour, spec_hash, schema_version, last_run_id, last_status, last_success_at, row_count,
                   updated_at)
               VALUES (%(id)s, %(domain)s, %(dataset)s, %(kind)s, %(description)s,
                   %(sensitivity)s, %(readers)s, %(owners)s, %(kv)s, %(tags)s, %(ub)s, %(hash)s,
                   (SELECT version FROM wharf.schema_history WHERE dataset_id = %(id)s
                    ORDER BY id DESC LIMIT 1), %(run)s,
                   %(status)s, CASE WHEN %(status)s = 'success' THEN now() END, %(rows)s, now())
               ON CONFLICT (dataset_id) DO UPDATE SET
                   domain = EXCLUDED.domain, dataset = EXCLUDED.dataset, kind = EXCLUDED.kind,
                   description = EXCLUDED.description, sensitivity = EXCLUDED.sensitivity,
                   readers = EXCLUDED.readers,
                   owners = EXCLUDED.owners, key_value_tags = EXCLUDED.key_value_tags,
                   key_only_tags = EXCLUDED.key_only_tags,
                   update_behaviour = EXCLUDED.update_behaviour, spec_hash = EXCLUDED.spec_hash,
                   schema_version = EXCLUDED.schema_version,
                   last_run_id = EXCLUDED.last_run_id, last_status = EXCLUDED.last_status,
                   last_success_at = COALESCE(EXCLUDED.last_success_at, c.last_success_at),
                   row_count = COALESCE(EXCLUDED.row_count, c.row_count),
                   updated_at = now()""",
            {
                "id": spec.dataset_id,
                "domain": meta.domain,
                "dataset": meta.dataset,
                "kind": meta.kind,
                "description": meta.description,
                "sensitivity": meta.sensitivity,
                "readers": list(Roles(settings.role_prefix()).readers(meta)),
                "owners": Jsonb([o.model_dump() for o in meta.owners]),
                "kv": Jsonb(meta.key_value_tags),
                "tags": Jsonb(list(meta.key_only_tags)),
                "ub": meta.update_behaviour if meta.kind != "data_cut" else None,
                "hash": spec_hash(spec),
                "run": run_id,
                "status": status,
                "rows": row_count,
            },
        )
    conn.commit()
