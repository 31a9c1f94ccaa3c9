"""Issue #15 item 1 on real PostgreSQL: what a data cut's own ``refresh`` step does to its view.

A plain view is created once and re-created only when its definition (SQL, ``materialized``,
key) changes: in place when its columns only grow, else dropped and created again in one
transaction, keeping the grants and comments made by hand, with the Wharf cuts built on it
re-created after it; a view made by hand on it stops the change and nothing moves. A
materialized cut is refreshed on every run, ``CONCURRENTLY`` (readers keep their locks) when
it has a ``primary_key``. Refreshes run as tasks run them: on the loader's login."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from loading import rows_of
from support import ROLE_PREFIX, access_apply, pg_connect

from wharf import connections
from wharf.publish import data_cuts, load
from wharf.specfiles import get_spec, load_specs

DAY = datetime(2026, 1, 1, tzinfo=UTC)
ORDERS = """\
metadata:
  domain: rcut
  dataset: orders
  description: Orders.
  sensitivity: PUBLIC
  owners: [{name: Tests, email: tests@example.org}]
  update_behaviour: OVERWRITE
source: {type: file, path: x.csv}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: v, data_type: string}
"""
CUT = """\
metadata:
  domain: rcut
  dataset: {name}
  kind: data_cut
  description: The cut {name}.
  sensitivity: PUBLIC
  owners: [{{name: Tests, email: tests@example.org}}]
{key}sql: {name}.sql
materialized: {materialized}
columns:
  - {{name: id, data_type: integer, description: The order id.}}
"""
READER = f"{ROLE_PREFIX}_t_rcut_reader"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "schemas" / "rcut").mkdir(parents=True)
    (home / "include" / "schemas" / "rcut" / "orders.yaml").write_text(ORDERS)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS rcut CASCADE")
        pg.execute("DELETE FROM wharf.data_cut_definitions WHERE dataset_id LIKE 'rcut.%'")
        pg.execute("DELETE FROM wharf.catalogue_loads WHERE dataset_id LIKE 'rcut.%'")
        pg.execute(f'DROP ROLE IF EXISTS "{READER}"')
        pg.execute(f'CREATE ROLE "{READER}"')
    access_apply()
    spec = get_spec("rcut.orders")
    rows = [{"id": i, "v": f"v{i}"} for i in (1, 2, 3)]
    with connections.connect() as conn:
        load.load(conn, spec, "manual__orders", DAY, rows_of(spec, rows, "manual__orders"))
    yield home
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS rcut CASCADE")
        pg.execute(f'DROP OWNED BY "{READER}"')
        pg.execute(f'DROP ROLE "{READER}"')


def write_cut(
    home: Path, name: str, sql: str, materialized: bool = False, key: str | None = None
) -> None:
    (home / "include" / "sql" / f"{name}.sql").write_text(sql)
    text = CUT.format(
        name=name,
        materialized=str(materialized).lower(),
        key=f"  primary_key: [{key}]\n" if key else "",
    )
    if key:  # the key goes under metadata
        text = text.replace(f"  primary_key: [{key}]\nsql:", "sql:").replace(
            "  owners:", f"  primary_key: [{key}]\n  owners:"
        )
    (home / "include" / "schemas" / "rcut" / f"{name}.yaml").write_text(text)


def refresh(name: str, **kw: Any) -> data_cuts.Refreshed:
    """The cut's refresh step as its task runs it, after ``wharf access apply``."""
    specs = load_specs()[0]
    access_apply()
    with connections.connect() as conn:
        for setting, value in kw.items():
            conn.execute(f"SET {setting} = '{value}'")
        conn.commit()
        return data_cuts.refresh(
            conn, get_spec(f"rcut.{name}"), f"run_{uuid.uuid4().hex[:6]}", specs
        )


def oid(pg: Any, relation: str) -> int:
    return int(pg.execute("SELECT %s::regclass::oid", (relation,)).fetchone()[0])


def rows(pg: Any, relation: str) -> list[tuple[Any, ...]]:
    return pg.execute(f"SELECT * FROM {relation} ORDER BY 1").fetchall()


def test_a_plain_view_is_created_once_and_left_alone_while_its_sql_is_the_same(
    home: Path, pg: Any
) -> None:
    write_cut(home, "big", "SELECT id FROM rcut.orders WHERE id > 1")
    assert refresh("big") == data_cuts.Refreshed("created")
    before = oid(pg, "rcut.big")

    assert refresh("big") == data_cuts.Refreshed("unchanged")

    assert oid(pg, "rcut.big") == before
    assert rows(pg, "rcut.big") == [(2,), (3,)]
    recorded = pg.execute(
        "SELECT sha256, materialized FROM wharf.data_cut_definitions WHERE dataset_id = 'rcut.big'"
    ).fetchone()
    assert recorded[1] is False and len(recorded[0]) == 64


def test_a_view_whose_columns_grow_is_replaced_in_place_keeping_grants_and_comments(
    home: Path, pg: Any
) -> None:
    write_cut(home, "big", "SELECT id FROM rcut.orders WHERE id > 1")
    refresh("big")
    before = oid(pg, "rcut.big")
    pg.execute(f'GRANT SELECT ON rcut.big TO "{READER}"')
    write_cut(home, "big", "SELECT id, v FROM rcut.orders WHERE id > 1")

    assert refresh("big") == data_cuts.Refreshed("replaced")

    assert oid(pg, "rcut.big") == before
    assert rows(pg, "rcut.big") == [(2, "v2"), (3, "v3")]
    assert pg.execute("SELECT has_table_privilege(%s, 'rcut.big', 'SELECT')", (READER,)).fetchone()[
        0
    ]
    assert pg.execute("SELECT obj_description('rcut.big'::regclass)").fetchone() == (
        "The cut big.",
    )


def test_a_view_whose_columns_change_is_recreated_with_the_cuts_built_on_it(
    home: Path, pg: Any
) -> None:
    write_cut(home, "big", "SELECT id, v FROM rcut.orders WHERE id > 1")
    write_cut(home, "big_ids", "SELECT id FROM rcut.big")
    refresh("big")
    refresh("big_ids")
    pg.execute(f'GRANT SELECT ON rcut.big, rcut.big_ids TO "{READER}"')
    pg.execute("COMMENT ON COLUMN rcut.big.v IS 'by hand'")
    pg.execute("COMMENT ON COLUMN rcut.big.id IS 'by hand too'")
    before = oid(pg, "rcut.big")
    write_cut(home, "big", "SELECT id FROM rcut.orders WHERE id > 2")  # v dropped

    assert refresh("big") == data_cuts.Refreshed("replaced", ("rcut.big_ids",))

    assert oid(pg, "rcut.big") != before
    assert rows(pg, "rcut.big") == [(3,)] and rows(pg, "rcut.big_ids") == [(3,)]
    for view in ("rcut.big", "rcut.big_ids"):
        assert pg.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT')", (READER, view)
        ).fetchone()[0]
        assert pg.execute(  # the readers of its sensitivity, as the YAML says
            "SELECT has_table_privilege(%s, %s, 'SELECT')", (f"{ROLE_PREFIX}_public", view)
        ).fetchone()[0]
    # The YAML's own comment wins; one made by hand on a column that is gone goes with it.
    assert pg.execute("SELECT col_description('rcut.big'::regclass, 1)").fetchone() == (
        "The order id.",
    )
    assert pg.execute("SELECT obj_description('rcut.big_ids'::regclass)").fetchone() == (
        "The cut big_ids.",
    )


def test_a_view_made_by_hand_on_a_cut_stops_its_recreation_and_nothing_changes(
    home: Path, pg: Any
) -> None:
    write_cut(home, "big", "SELECT id, v FROM rcut.orders WHERE id > 1")
    refresh("big")
    pg.execute("CREATE VIEW rcut.mine AS SELECT v FROM rcut.big")
    write_cut(home, "big", "SELECT id FROM rcut.orders")

    with pytest.raises(data_cuts.DependentViewError, match=r"built on it: rcut\.mine; drop or"):
        refresh("big")

    assert rows(pg, "rcut.mine") == [("v2",), ("v3",)]  # the old view, untouched
    assert rows(pg, "rcut.big") == [(2, "v2"), (3, "v3")]


def test_a_keyed_materialized_cut_refreshes_concurrently_while_a_reader_holds_it(
    home: Path, pg: Any
) -> None:
    write_cut(home, "counts", "SELECT id, count(*) AS n FROM rcut.orders GROUP BY id", True, "id")
    assert refresh("counts") == data_cuts.Refreshed("created")
    index = pg.execute(
        "SELECT indisunique FROM pg_index WHERE indrelid = 'rcut.counts'::regclass"
    ).fetchall()
    assert index == [(True,)]
    with psycopg.connect(pg.info.dsn, autocommit=False) as reader:
        reader.execute("SELECT count(*) FROM rcut.counts")  # holds ACCESS SHARE until rollback

        # A plain REFRESH would wait for ACCESS EXCLUSIVE: with lock_timeout it would fail.
        assert refresh("counts", lock_timeout="2s") == data_cuts.Refreshed("refreshed")
        reader.rollback()


def test_a_materialized_cuts_refreshes_go_into_its_change_log(home: Path, pg: Any) -> None:
    """Its rows are its own (a plain view's are its inputs'): each refresh appends a row to
    wharf.catalogue_loads, data_changed only when its rows did."""
    write_cut(home, "ids_log", "SELECT id FROM rcut.orders", True)
    refresh("ids_log")
    refresh("ids_log")
    pg.execute("DELETE FROM rcut.orders WHERE id = 3")
    refresh("ids_log")
    log = pg.execute(
        "SELECT update_behaviour, row_count, data_changed, structure_changed"
        " FROM wharf.catalogue_loads WHERE dataset_id = 'rcut.ids_log' ORDER BY id"
    ).fetchall()
    assert log == [
        ("OVERWRITE", 3, True, True),
        ("OVERWRITE", 3, False, False),
        ("OVERWRITE", 2, True, False),
    ]
    write_cut(home, "plain_log", "SELECT id FROM rcut.orders")
    refresh("plain_log")
    assert pg.execute(
        "SELECT count(*) FROM wharf.catalogue_loads WHERE dataset_id = 'rcut.plain_log'"
    ).fetchone() == (0,)


def test_an_unkeyed_materialized_cut_refresh_waits_for_readers(home: Path, pg: Any) -> None:
    """The other side of the test above: without a key, REFRESH takes ACCESS EXCLUSIVE."""
    write_cut(home, "plain_counts", "SELECT id, count(*) AS n FROM rcut.orders GROUP BY id", True)
    refresh("plain_counts")
    with psycopg.connect(pg.info.dsn, autocommit=False) as reader:
        reader.execute("SELECT count(*) FROM rcut.plain_counts")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            refresh("plain_counts", lock_timeout="1s")
        reader.rollback()


def test_a_materialized_cut_follows_a_changed_definition(home: Path, pg: Any) -> None:
    write_cut(home, "ids", "SELECT id FROM rcut.orders", True)
    refresh("ids")
    pg.execute(f'GRANT SELECT ON rcut.ids TO "{READER}"')
    write_cut(home, "ids", "SELECT id FROM rcut.orders WHERE id = 1", True)

    assert refresh("ids") == data_cuts.Refreshed("replaced")

    assert rows(pg, "rcut.ids") == [(1,)]
    assert pg.execute("SELECT has_table_privilege(%s, 'rcut.ids', 'SELECT')", (READER,)).fetchone()[
        0
    ]
    write_cut(home, "ids", "SELECT id FROM rcut.orders WHERE id = 1", False)  # now a plain view
    assert refresh("ids") == data_cuts.Refreshed("replaced")
    assert pg.execute(
        "SELECT relkind FROM pg_class WHERE oid = 'rcut.ids'::regclass"
    ).fetchone() == ("v",)


def test_a_keyed_cut_and_a_dataset_named_like_its_index_both_publish(home: Path, pg: Any) -> None:
    """A cut's unique index shares the schema's names with the tables: named
    ``<cut>_key``, it made a dataset ``counts_key`` (or the cut, whichever came second)
    fail to publish on every run. Wharf's index names hold ``__wharf_``, which no dataset's
    name may."""
    named_like = ORDERS.replace("dataset: orders", "dataset: counts_key")
    (home / "include" / "schemas" / "rcut" / "counts_key.yaml").write_text(named_like)
    spec = get_spec("rcut.counts_key")
    with connections.connect() as conn:
        load.load(conn, spec, "manual__key", DAY, rows_of(spec, [{"id": 1, "v": "a"}], "m"))
    write_cut(home, "counts", "SELECT id, count(*) AS n FROM rcut.orders GROUP BY id", True, "id")
    assert refresh("counts") == data_cuts.Refreshed("created")
    [(index,)] = pg.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'rcut.counts'::regclass"
    ).fetchall()
    assert index.startswith("rcut.counts__wharf_key_")
    assert rows(pg, "rcut.counts_key")[0][:2] == (1, "a")
