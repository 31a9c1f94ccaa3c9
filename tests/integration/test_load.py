"""The loader on real PostgreSQL: update behaviours, idempotency, guards, schema changes, and
what a load keeps (views, grants, comments) or refuses (a bad value, a duplicate key)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from loading import (
    COLUMNS,
    checksum,
    data_checksum,
    fetch,
    make_spec,
    rows_of,
    sample,
    table_name,
)
from support import LOADER_URL, libpq, pg_connect

from wharf.publish import load
from wharf.publish.schema_changes import SchemaChangeError

DAY1 = datetime(2026, 1, 1, tzinfo=UTC)
DAY2 = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    """A loader connection (transactions, as the datasets hook gives)."""
    with psycopg.connect(libpq(LOADER_URL)) as connection:
        yield connection


def run(conn: Any, spec: Any, rows: list[dict[str, Any]], run_id: str = "r1", day: Any = DAY1):
    return load.load(conn, spec, run_id, day, rows_of(spec, rows, run_id))


def test_overwrite_replaces_every_row_and_a_rerun_changes_nothing(conn: Any) -> None:
    spec = make_spec("OVERWRITE")
    run(conn, spec, sample(range(10)))
    result = run(conn, spec, sample(range(5, 15)), "r2")
    assert (result.deleted, result.inserted, result.published_rows) == (10, 10, 10)
    assert fetch(conn, f"SELECT min(id), max(id) FROM {table_name(spec)}") == [(5, 14)]
    before = data_checksum(conn, spec)
    run(conn, spec, sample(range(5, 15)), "r2")  # a retry of the same run
    assert data_checksum(conn, spec) == before


def test_append_adds_each_logical_date_and_a_rerun_replaces_its_rows(conn: Any) -> None:
    spec = make_spec("APPEND")
    run(conn, spec, sample(range(10), day=1), "scheduled__d1", DAY1)
    run(conn, spec, sample(range(10, 20), day=2), "scheduled__d2", DAY2)
    nightly = data_checksum(conn, spec)
    assert fetch(conn, f"SELECT count(*) FROM {table_name(spec)}") == [(20,)]
    # a retry and a manual re-run of day 1 leave the same table: no duplicates
    run(conn, spec, sample(range(10), day=1), "scheduled__d1", DAY1)
    result = run(conn, spec, sample(range(10), day=1), "manual__rerun_d1", DAY1)
    assert (result.deleted, result.inserted, result.published_rows) == (10, 10, 20)
    assert data_checksum(conn, spec) == nightly
    # a re-run with corrected rows replaces only that date's rows
    run(conn, spec, sample(range(10), name="fixed", day=1), "manual__fix_d1", DAY1)
    assert fetch(
        conn,
        f"SELECT _wharf_logical_date::date, min(name), count(*) FROM {table_name(spec)} "
        "GROUP BY 1 ORDER BY 1",
    ) == [(DAY1.date(), "fixed0", 10), (DAY2.date(), "n10", 10)]


def test_append_without_logical_date_keys_on_run_id(conn: Any) -> None:
    spec = make_spec("APPEND")
    run(conn, spec, sample(range(3)), "manual__a", None)
    run(conn, spec, sample(range(3)), "manual__a", None)  # retry
    run(conn, spec, sample(range(3, 6)), "manual__b", None)
    assert fetch(
        conn, f"SELECT _wharf_run_id, count(*) FROM {table_name(spec)} GROUP BY 1 ORDER BY 1"
    ) == [("manual__a", 3), ("manual__b", 3)]


def test_merge_writes_only_changed_rows_and_keeps_the_rest(conn: Any) -> None:
    spec = make_spec("MERGE")
    run(conn, spec, sample(range(100)), "r1")
    batch = sample(range(90, 110))  # 10 known rows, 10 new
    batch[0]["name"] = "renamed"  # id 90 changes
    batch[1]["amount"] = None  # id 91 changes to NULL
    result = run(conn, spec, batch, "r2", DAY2)
    assert (result.inserted, result.updated, result.published_rows) == (10, 2, 110)
    assert fetch(
        conn, f"SELECT _wharf_run_id, count(*) FROM {table_name(spec)} GROUP BY 1 ORDER BY 1"
    ) == [("r1", 98), ("r2", 12)]
    assert fetch(
        conn, f"SELECT name, amount::float FROM {table_name(spec)} WHERE id IN (90, 91) ORDER BY id"
    ) == [("renamed", 90.5), ("n91", None)]
    again = run(conn, spec, batch, "r3", DAY2)  # re-running the same batch writes nothing
    assert (again.inserted, again.updated) == (0, 0)


def test_merge_refuses_a_batch_with_repeated_keys(conn: Any) -> None:
    spec = make_spec("MERGE")
    run(conn, spec, sample(range(5)))
    before = checksum(conn, spec)
    changing = sample([1, 2, 3]) + sample([2, 3], name="other")  # 2 and 3 twice, differently
    with pytest.raises(load.LoadError) as caught:
        run(conn, spec, changing, "r2")
    assert str(caught.value) == (
        f"{spec.dataset_id}: MERGE needs one row per primary key (id), but the batch repeats "
        "keys: id=2 (2 rows); id=3 (2 rows)"
    )
    with pytest.raises(load.LoadError, match=r"repeats keys: id=7 \(2 rows\)"):
        run(conn, spec, sample([7, 7]), "r3")  # a new key twice
    assert checksum(conn, spec) == before


def test_guards_refuse_an_empty_or_shrunken_extract(conn: Any) -> None:
    spec = make_spec("OVERWRITE")
    run(conn, spec, sample(range(100)))
    before = checksum(conn, spec)
    with pytest.raises(load.GuardError, match="the extract is empty; refusing to publish"):
        run(conn, spec, [], "r2")
    with pytest.raises(load.GuardError) as caught:
        run(conn, spec, sample(range(89)), "r3")
    assert str(caught.value) == (
        f"{spec.dataset_id}: refusing to replace 100 published rows with 89 (89.0%, below "
        "load.min_row_fraction 90%); lower load.min_row_fraction if the drop is expected"
    )
    wider = make_spec(
        "OVERWRITE",
        [*COLUMNS, {"name": "note", "data_type": "string"}],
        dataset=spec.metadata.dataset,
    )
    with pytest.raises(load.GuardError, match="refusing to replace 100 published rows with 50"):
        run(conn, wider, sample(range(50)), "r3")  # a schema change does not skip the guard
    assert checksum(conn, spec) == before
    assert run(conn, spec, sample(range(90)), "r4").published_rows == 90  # 90% passes
    allowing = make_spec(
        "OVERWRITE",
        dataset=spec.metadata.dataset,
        load={"allow_empty": True, "min_row_fraction": 0},
    )
    assert run(conn, allowing, [], "r5").published_rows == 0


def test_added_nullable_column_is_a_minor_version_migrated_in_place(conn: Any) -> None:
    spec = make_spec("APPEND")
    run(conn, spec, sample(range(3)), "r1", DAY1)
    wider = make_spec(
        "APPEND",
        [*COLUMNS, {"name": "note", "data_type": "string"}],
        dataset=spec.metadata.dataset,
    )
    result = run(conn, wider, [{**r, "note": "hi"} for r in sample(range(3, 5))], "r2", DAY2)
    assert (result.schema_version, result.schema_changes) == ("1.1", ["added column 'note' (text)"])
    assert fetch(conn, f"SELECT count(*), count(note) FROM {table_name(spec)}") == [(5, 2)]
    assert fetch(
        conn,
        "SELECT version, changes->0->>'change' FROM wharf.schema_history "
        "WHERE dataset_id = %s ORDER BY id",
        spec.dataset_id,
    ) == [("1.0", None), ("1.1", "added column 'note' (text)")]


def test_destructive_changes_fail_with_their_class_unless_allowed(conn: Any) -> None:
    spec = make_spec("APPEND")
    run(conn, spec, sample(range(3)))
    before = checksum(conn, spec)
    columns = [c for c in COLUMNS if c["name"] != "seen_at"]
    columns[1] = {"name": "name", "data_type": "integer"}
    narrower = make_spec("APPEND", columns, dataset=spec.metadata.dataset)
    rows = [{"id": i, "name": i, "amount": Decimal(1)} for i in range(3)]
    with pytest.raises(SchemaChangeError) as caught:
        run(conn, narrower, rows, "r2", DAY2)
    assert str(caught.value) == (
        f"{spec.dataset_id}: the YAML makes a major (breaking) schema change to the published "
        "table: removed column 'seen_at' (timestamp with time zone); changed type of 'name' "
        "from text to integer. Readers and views may depend on it: set "
        "load.allow_destructive_changes: true to apply it, or change the YAML back"
    )
    assert checksum(conn, spec) == before
    allowed = make_spec(
        "APPEND", columns, dataset=spec.metadata.dataset, load={"allow_destructive_changes": True}
    )
    with pytest.raises(SchemaChangeError, match=r"cannot apply schema change \(changed type"):
        run(conn, allowed, rows, "r2", DAY2)  # 'n0' does not convert to integer
    assert checksum(conn, spec) == before
    overwrite = make_spec(
        "OVERWRITE",
        columns,
        dataset=spec.metadata.dataset,
        load={"allow_destructive_changes": True},
    )
    result = run(conn, overwrite, rows, "r3", DAY2)  # OVERWRITE migrates an emptied table
    assert result.schema_version == "2.0"
    assert fetch(conn, f"SELECT sum(name) FROM {table_name(spec)}") == [(3,)]


def test_not_null_on_kept_rows_with_nulls_fails_clearly(conn: Any) -> None:
    spec = make_spec("APPEND")
    run(conn, spec, [{**r, "name": None} for r in sample(range(3))], "r1", DAY1)
    columns = [dict(c) for c in COLUMNS]
    columns[1]["allow_null"] = False
    stricter = make_spec("APPEND", columns, dataset=spec.metadata.dataset)
    with pytest.raises(SchemaChangeError) as caught:
        run(conn, stricter, sample(range(3, 6)), "r2", DAY2)
    assert str(caught.value) == (
        f"{spec.dataset_id}: column 'name' has allow_null: false, but rows kept from earlier "
        "loads hold NULL in it; allow NULL, or reload the whole table with update_behaviour: "
        "OVERWRITE"
    )


def test_views_grants_and_comments_survive_loads(conn: Any, pg: Any, request: Any) -> None:
    spec = make_spec("OVERWRITE")
    run(conn, spec, sample(range(10)))
    table = table_name(spec)
    reader = f"wharf_reader_{spec.metadata.dataset}"
    pg.execute(f"CREATE ROLE {reader}")
    request.addfinalizer(lambda: pg.execute(f"DROP OWNED BY {reader}; DROP ROLE {reader}"))
    pg.execute(f"GRANT USAGE ON SCHEMA loadtest TO {reader}")
    pg.execute(f"GRANT SELECT ON {table} TO {reader}")
    pg.execute(f"CREATE VIEW loadtest.by_hand_{spec.metadata.dataset} AS SELECT id FROM {table}")
    pg.execute(
        f"CREATE MATERIALIZED VIEW loadtest.mat_{spec.metadata.dataset} AS SELECT count(*) AS n "
        f"FROM {table}"
    )
    pg.execute(f"COMMENT ON COLUMN {table}.amount IS 'Set by hand.'")
    run(conn, spec, sample(range(100, 120)), "r2")
    view = f"loadtest.by_hand_{spec.metadata.dataset}"
    assert fetch(pg, f"SELECT min(id), count(*) FROM {view}") == [(100, 20)]
    assert fetch(pg, "SELECT has_table_privilege(%s, %s, 'SELECT')", reader, table) == [(True,)]
    assert fetch(
        pg,
        "SELECT col_description(%s::regclass, 2), col_description(%s::regclass, 3)",
        table,
        table,
    ) == [("A name.", "Set by hand.")]  # the YAML's comment, and a hand-made one kept
    pg.execute(f"REFRESH MATERIALIZED VIEW loadtest.mat_{spec.metadata.dataset}")
    assert fetch(pg, f"SELECT n FROM loadtest.mat_{spec.metadata.dataset}") == [(20,)]
    # a view on a column blocks its removal: a clear error, and the table is untouched
    removing = make_spec(
        "OVERWRITE",
        [c for c in COLUMNS if c["name"] != "id"] + [{"name": "key", "data_type": "integer"}],
        dataset=spec.metadata.dataset,
        load={"allow_destructive_changes": True},
    )
    before = checksum(conn, spec)
    with pytest.raises(SchemaChangeError, match="because other objects depend on it"):
        run(conn, removing, [{**r, "key": r.pop("id")} for r in sample(range(20))], "r3")
    assert checksum(conn, spec) == before


def test_a_value_postgresql_refuses_names_row_and_column(conn: Any) -> None:
    spec = make_spec("OVERWRITE")
    run(conn, spec, sample(range(5)))
    before = checksum(conn, spec)
    rows = sample(range(5))
    rows[3]["name"] = "nul\x00byte"
    with pytest.raises(load.LoadError) as caught:
        run(conn, spec, rows, "r2")
    assert str(caught.value) == (
        f"{spec.dataset_id}: PostgreSQL refused row 4, column 'name': invalid byte sequence "
        'for encoding "UTF8": 0x00'
    )
    assert checksum(conn, spec) == before


class PauseAtCommit:
    """An ``on_phase`` callback that holds a load just before its COMMIT until released."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, phase: str) -> None:
        if phase == "commit":
            self.reached.set()
            self.release.wait(30)


def test_readers_see_the_old_rows_without_waiting_during_a_load(conn: Any) -> None:
    spec = make_spec("OVERWRITE")
    run(conn, spec, sample(range(10)))
    pause = PauseAtCommit()
    rows = rows_of(spec, sample(range(50, 80)), "r2")
    worker = threading.Thread(target=load.load, args=(conn, spec, "r2", DAY1, rows, pause))
    worker.start()
    try:
        assert pause.reached.wait(30)
        with pg_connect() as reader:
            reader.execute("SET statement_timeout = '500ms'")
            assert fetch(reader, f"SELECT min(id), count(*) FROM {table_name(spec)}") == [(0, 10)]
    finally:
        pause.release.set()
        worker.join(30)
    assert fetch(conn, f"SELECT min(id), count(*) FROM {table_name(spec)}") == [(50, 30)]


def test_a_dropped_connection_publishes_nothing_and_a_rerun_succeeds(conn: Any) -> None:
    spec = make_spec("APPEND")
    run(conn, spec, sample(range(10)), "r1", DAY1)
    before = checksum(conn, spec)
    pid = conn.info.backend_pid

    def drop(phase: str) -> None:
        if phase == "publish":
            with pg_connect() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with pytest.raises(psycopg.OperationalError):
        load.load(conn, spec, "r2", DAY2, rows_of(spec, sample(range(10, 30)), "r2"), drop)
    with pg_connect() as fresh:
        assert checksum(fresh, spec) == before
    with psycopg.connect(libpq(LOADER_URL)) as again:
        result = load.load(again, spec, "r2", DAY2, rows_of(spec, sample(range(10, 30)), "r2"))
    assert result.published_rows == 30


def test_two_loads_of_one_dataset_never_interleave(conn: Any) -> None:
    spec = make_spec("OVERWRITE")
    run(conn, spec, sample(range(10)))
    pause = PauseAtCommit()
    first = threading.Thread(
        target=load.load,
        args=(conn, spec, "r2", DAY1, rows_of(spec, sample(range(20)), "r2"), pause),
    )
    first.start()
    assert pause.reached.wait(30)
    phases: list[str] = []
    with psycopg.connect(libpq(LOADER_URL)) as other:
        second = threading.Thread(
            target=load.load,
            args=(other, spec, "r3", DAY1, rows_of(spec, sample(range(30)), "r3"), phases.append),
        )
        second.start()
        second.join(1.5)
        assert second.is_alive() and phases == ["migrate"]  # waiting for the dataset's lock
        pause.release.set()
        first.join(30)
        second.join(30)
    assert phases == ["migrate", "publish", "copy", "publish", "catalogue", "publish", "commit"]
    assert fetch(conn, f"SELECT count(*), min(_wharf_run_id) FROM {table_name(spec)}") == [
        (30, "r3")
    ]


def test_identifiers_from_yaml_are_always_quoted(conn: Any) -> None:
    """DESIGN invariant 6: SQL keywords as dataset and column names load and merge."""
    keywords = [
        {"name": "select", "data_type": "integer", "allow_null": False},
        {"name": "order", "data_type": "string", "partition_index": 0, "allow_null": False},
        {"name": "group", "data_type": "decimal"},
    ]
    spec = make_spec("MERGE", keywords, dataset="table", primary_key=["select"])
    rows = [{"select": i, "order": f"o{i}", "group": Decimal(i)} for i in range(3)]
    run(conn, spec, rows)
    result = run(conn, spec, [{**rows[0], "order": "changed"}], "r2")
    assert (result.updated, result.published_rows) == (1, 3)
    assert fetch(conn, 'SELECT "order" FROM loadtest."table" WHERE "select" = 0') == [("changed",)]


def test_a_connection_lost_during_copy_is_transient(conn: Any) -> None:
    from wharf import errors

    spec = make_spec("OVERWRITE")
    run(conn, spec, sample(range(10)))
    pid = conn.info.backend_pid

    def drop(phase: str) -> None:
        if phase == "copy":
            with pg_connect() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with pytest.raises(Exception) as caught:
        load.load(conn, spec, "r2", DAY2, rows_of(spec, sample(range(10, 30)), "r2"), drop)
    assert not errors.is_terminal(caught.value), repr(caught.value)  # the task is retried
