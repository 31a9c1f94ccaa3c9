"""``wharf.catalogue_loads`` on real PostgreSQL: a row per successful load (every
update_behaviour) with the table's structure and data hashes, written in the load's
transaction; the source's modified time carried from extract to load; ``wharf catalogue
DATASET [--json]``."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from loading import COLUMNS, make_spec, rows_of, sample
from support import LOADER_URL, libpq, run_dag, s3_client

from wharf.publish import load

DAY1 = datetime(2026, 1, 1, tzinfo=UTC)
DAY2 = datetime(2026, 1, 2, tzinfo=UTC)
BUCKET = "cat-test"


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    """A loader connection (transactions, as the datasets hook gives)."""
    with psycopg.connect(libpq(LOADER_URL)) as connection:
        yield connection


def loads(pg: Any, dataset_id: str) -> list[tuple[Any, ...]]:
    """(run_id, row_count, structure_changed, data_changed, data_hash, structure_hash),
    oldest first."""
    return pg.execute(
        "SELECT run_id, row_count, structure_changed, data_changed, data_hash, structure_hash"
        " FROM wharf.catalogue_loads WHERE dataset_id = %s ORDER BY id",
        (dataset_id,),
    ).fetchall()


def run(conn: Any, spec: Any, rows: list[dict[str, Any]], run_id: str, day: Any = DAY1) -> Any:
    return load.load(conn, spec, run_id, day, rows_of(spec, rows, run_id))


def test_the_same_rows_in_another_order_are_no_change_and_a_changed_value_is(
    conn: Any, pg: Any
) -> None:
    spec = make_spec("OVERWRITE", dataset=f"cat_{uuid.uuid4().hex[:8]}")
    run(conn, spec, sample(range(10)), "r1")
    run(conn, spec, list(reversed(sample(range(10)))), "r2")  # new run id and loaded_at
    changed = sample(range(10))
    changed[3]["name"] = "renamed"
    run(conn, spec, changed, "r3")
    found = loads(pg, spec.dataset_id)
    assert [f[:4] for f in found] == [
        ("r1", 10, True, True),  # the first load: everything is new
        ("r2", 10, False, False),
        ("r3", 10, False, True),
    ]
    assert found[0][4] == found[1][4] != found[2][4]
    assert len(found[0][4]) == 16 and len(found[0][5]) == 64
    assert found[0][5] == found[1][5] == found[2][5]


def test_a_new_column_changes_the_structure_and_every_behaviour_records_its_loads(
    conn: Any, pg: Any
) -> None:
    name = f"cat_{uuid.uuid4().hex[:8]}"
    spec = make_spec("APPEND", dataset=name)
    run(conn, spec, sample(range(5), day=1), "scheduled__d1", DAY1)
    run(conn, spec, sample(range(5), day=1), "scheduled__d1", DAY1)  # a retry: same table
    run(conn, spec, sample(range(5, 10), day=2), "scheduled__d2", DAY2)
    wider = make_spec("APPEND", [*COLUMNS, {"name": "note", "data_type": "string"}], dataset=name)
    run(conn, wider, sample(range(10, 15), day=3), "scheduled__d3", DAY2)
    assert [f[:4] for f in loads(pg, spec.dataset_id)] == [
        ("scheduled__d1", 5, True, True),
        ("scheduled__d1", 5, False, False),
        ("scheduled__d2", 10, False, True),
        ("scheduled__d3", 10, True, True),
    ]
    merged = make_spec("MERGE", dataset=f"cat_{uuid.uuid4().hex[:8]}")
    run(conn, merged, sample(range(6)), "m1")
    run(conn, merged, sample(range(6)), "m2")  # nothing new or changed
    run(conn, merged, sample(range(3, 8)), "m3")  # two new rows
    assert [f[:4] for f in loads(pg, merged.dataset_id)] == [
        ("m1", 6, True, True),
        ("m2", 6, False, False),
        ("m3", 8, False, True),
    ]


def test_a_failed_load_writes_no_row(conn: Any, pg: Any) -> None:
    spec = make_spec("OVERWRITE", dataset=f"cat_{uuid.uuid4().hex[:8]}")
    run(conn, spec, sample(range(10)), "r1")
    with pytest.raises(load.GuardError):  # refused before the hook
        run(conn, spec, sample(range(2)), "r2")

    def kill_at_commit(phase: str) -> None:  # after the hook, before the COMMIT
        if phase == "commit":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        load.load(conn, spec, "r3", DAY1, rows_of(spec, sample(range(20)), "r3"), kill_at_commit)
    assert [f[0] for f in loads(pg, spec.dataset_id)] == ["r1"]


def test_the_loader_may_add_rows_and_never_change_or_delete_one(conn: Any) -> None:
    spec = make_spec("OVERWRITE", dataset=f"cat_{uuid.uuid4().hex[:8]}")
    run(conn, spec, sample(range(3)), "r1")
    for statement in (
        "UPDATE wharf.catalogue_loads SET data_changed = false",
        "DELETE FROM wharf.catalogue_loads",
        "TRUNCATE wharf.catalogue_loads",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        conn.rollback()
    assert conn.execute(
        "SELECT count(*) FROM wharf.catalogue_changes WHERE dataset_id = %s", (spec.dataset_id,)
    ).fetchone() == (1,)


# --- whole runs: the source's modified time, and the CLI ------------------------------------
YAML = """\
metadata:
  domain: catrun
  dataset: {dataset}
  description: Orders for the catalogue tests.
  owners: [{{name: Shop team, email: shop@example.org}}]
  key_only_tags: [orders]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: file
  {source}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: customer, data_type: string}}
"""
MTIME = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture(autouse=True)
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))
    monkeypatch.setenv("WHARF_S3_BUCKETS", BUCKET)


def write_yaml(schemas: Path, dataset: str, source: str) -> None:
    (schemas / "catrun").mkdir(exist_ok=True)
    (schemas / "catrun" / f"{dataset}.yaml").write_text(YAML.format(dataset=dataset, source=source))


def test_a_files_mtime_goes_from_extract_to_the_catalogue_and_the_cli_prints_it(
    schemas: Path, tmp_path: Path, pg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from wharf.cli.main import main

    csv = tmp_path / "orders.csv"
    csv.write_text("id,customer\n1,ada\n2,bob\n")
    os.utime(csv, (MTIME.timestamp(), MTIME.timestamp()))
    write_yaml(schemas, "orders", f"path: {csv}")
    assert run_dag("catrun.orders") == "success"
    csv.write_text("id,customer\n2,bob\n1,ada\n")  # the same rows, another order, a new mtime
    assert run_dag("catrun.orders") == "success"
    found = pg.execute(
        "SELECT source_modified_at, data_changed, last_updated, loaded_at"
        " FROM wharf.catalogue_changes WHERE dataset_id = 'catrun.orders' ORDER BY id"
    ).fetchall()
    assert found[0][0] == MTIME
    assert found[1][0] > MTIME and found[1][1] is False
    assert found[0][2] == found[1][2] == found[0][3]  # last updated: the first load
    extracted = pg.execute(
        "SELECT detail->>'source_modified_at' FROM wharf.audit WHERE dataset_id ="
        " 'catrun.orders' AND step = 'extract' AND event = 'end' ORDER BY id LIMIT 1"
    ).fetchone()
    assert extracted == (MTIME.isoformat(),)

    capsys.readouterr()  # the runs' logs
    assert main(["catalogue", "catrun.orders", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert list(entry) == [
        "dataset",
        "kind",
        "description",
        "sensitivity",
        "owners",
        "key_value_tags",
        "key_only_tags",
        "update_behaviour",
        "readers",
        "last_run_id",
        "last_status",
        "last_success_at",
        "last_updated",
        "last_loaded_at",
        "rows",
        "schema_version",
        "structure_hash",
        "data_hash",
        "source_modified_at",
        "changes",
    ]
    assert entry["dataset"] == "catrun.orders" and entry["rows"] == 2
    assert entry["last_status"] == "success" and entry["key_only_tags"] == ["orders"]
    assert entry["last_updated"] == found[0][3].isoformat()
    assert entry["source_modified_at"] == found[1][0].isoformat()
    assert [(c["structure_changed"], c["data_changed"]) for c in entry["changes"]] == [
        (False, False),  # newest first
        (True, True),
    ]
    assert entry["changes"][1]["source_modified_at"] == MTIME.isoformat()
    assert set(entry["changes"][0]) == {
        "run_id",
        "loaded_at",
        "rows",
        "schema_version",
        "structure_changed",
        "data_changed",
        "source_modified_at",
    }

    assert main(["catalogue", "catrun.orders"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == ["dataset", "catrun.orders"]
    assert f"last updated      {found[0][3]:%Y-%m-%d %H:%M:%S} UTC" in lines
    assert f"source modified   {found[1][0]:%Y-%m-%d %H:%M:%S} UTC" in lines  # the newest load's
    assert f"data hash         {entry['data_hash']}" in lines
    log = lines[lines.index("change log (newest first, at most 20 loads)") + 1 :]
    assert log[0].split() == ["loaded", "at", "run", "id", "rows", "schema", "structure", "data"]
    assert log[1].split()[-2:] == ["same", "same"] and log[2].split()[-2:] == ["changed"] * 2
    assert len(log) == 3

    assert main(["catalogue", "--json"]) == 0  # every dataset, as the table lists them
    listed = {item["dataset"]: item for item in json.loads(capsys.readouterr().out)}
    assert listed["catrun.orders"]["rows"] == 2
    assert listed["catrun.orders"]["last_status"] == "success"

    assert main(["catalogue", "catrun.nope"]) == 2
    assert "unknown dataset 'catrun.nope'" in capsys.readouterr().err


def test_an_s3_objects_last_modified_is_the_sources_modified_time(
    schemas: Path, pg: Any, moto_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAT_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_s3, "region_name": "us-east-1"},
            }
        ),
    )
    s3 = s3_client(moto_s3)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="orders.csv", Body=b"id,customer\n1,ada\n")
    modified = s3.head_object(Bucket=BUCKET, Key="orders.csv")["LastModified"]
    write_yaml(schemas, "s3_orders", f"conn_id: cat_s3\n  path: s3://{BUCKET}/orders.csv")
    assert run_dag("catrun.s3_orders") == "success"
    assert pg.execute(
        "SELECT source_modified_at FROM wharf.catalogue_loads WHERE dataset_id = %s",
        ("catrun.s3_orders",),
    ).fetchall() == [(modified,)]


def test_a_cli_entry_of_a_dataset_never_loaded(
    schemas: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wharf.cli.main import main

    write_yaml(schemas, "later", f"path: {tmp_path / 'later.csv'}")
    assert main(["catalogue", "catrun.later", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert (entry["last_status"], entry["last_updated"], entry["changes"]) == ("never", None, [])
    assert main(["catalogue", "catrun.later"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no loads recorded"


def test_an_http_sources_last_modified_is_the_newest_of_its_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    from wharf import extract
    from wharf.contract.dataset import DatasetSpec

    stamps = {"1": "Tue, 04 Mar 2025 05:06:07 GMT", "2": "Wed, 05 Mar 2025 06:07:08 GMT"}

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = parse_qs(urlsplit(self.path).query)["page"][0]
            body = json.dumps({"data": [{"id": int(page)}] if page in stamps else []})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if page in stamps:
                self.send_header("Last-Modified", stamps[page])
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_CAT_API", f"http://127.0.0.1:{server.server_port}")
        spec = DatasetSpec.model_validate(
            {
                "metadata": {
                    "domain": "catrun",
                    "dataset": "pages",
                    "owners": [{"name": "A", "email": "a@b.org"}],
                },
                "source": {
                    "type": "http",
                    "conn_id": "cat_api",
                    "path": "/items",
                    "records_path": "$.data[*]",
                    "pagination": {"style": "page", "size": 1},
                },
                "columns": [{"name": "id", "data_type": "integer"}],
            }
        )
        opened = extract.read(spec)
        assert opened.modified.at is None  # nothing asked yet
        assert sum(b.num_rows for b in opened.batches) == 2
        assert opened.modified.at == datetime(2025, 3, 5, 6, 7, 8, tzinfo=UTC)
    finally:
        server.shutdown()
        server.server_close()


def test_the_readme_query_gives_last_updated_and_the_change_log(conn: Any, pg: Any) -> None:
    spec = make_spec("OVERWRITE", dataset=f"cat_{uuid.uuid4().hex[:8]}")
    run(conn, spec, sample(range(4)), "r1")
    run(conn, spec, sample(range(5)), "r2")
    run(conn, spec, sample(range(5)), "r3")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    query = readme.split("```sql\nSELECT run_id, loaded_at, row_count", 1)[1].split("```", 1)[0]
    query = "SELECT run_id, loaded_at, row_count" + query.replace("'shop.orders'", "%s")
    found = pg.execute(query, (spec.dataset_id,)).fetchall()
    assert [(r[0], r[2], r[4]) for r in found] == [
        ("r3", 5, False),
        ("r2", 5, True),
        ("r1", 4, True),
    ]
    assert {r[-1] for r in found} == {found[1][1]}  # last updated: r2's load, on every row


def test_a_globs_modified_time_is_its_newest_files(tmp_path: Path) -> None:
    from wharf import extract
    from wharf.contract.dataset import DatasetSpec

    times = {"a.csv": MTIME, "b.csv": datetime(2025, 6, 1, tzinfo=UTC), "c.csv": DAY1}
    for name, moment in times.items():
        (tmp_path / name).write_text("id,customer\n1,ada\n")
        os.utime(tmp_path / name, (moment.timestamp(), moment.timestamp()))
    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "catrun",
                "dataset": "globbed",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", "path": str(tmp_path / "*.csv")},
            "columns": [
                {"name": "id", "data_type": "integer"},
                {"name": "customer", "data_type": "string"},
            ],
        }
    )
    opened = extract.read(spec)
    assert sum(b.num_rows for b in opened.batches) == 3
    assert opened.modified.at == DAY1  # c.csv, the newest, though read last
