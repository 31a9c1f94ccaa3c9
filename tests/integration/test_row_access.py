"""Row-level security of a dataset that declares ``row_access`` (issue #13, item 4), on real
PostgreSQL: a reader sees a row only as a member of the role ``<role_prefix><column value>``;
row security is forced, so the table's owner role is bound too; the loader's own policy lets
every update behaviour read and replace every row; the policies follow the YAML (a changed
column or prefix replaces them, no ``row_access`` removes them and disables row security),
and ``wharf access plan | apply`` reconciles them as a load does. A data cut may not read such
a table.

Loads run as tasks run them: ``publish.load.load`` on the loader's login."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from loading import rows_of
from support import DATASETS_URL, ROLE_PREFIX, access_apply, libpq, pg_connect

from wharf import connections, environment
from wharf.errors import UnsafeSpecError
from wharf.publish import access, data_cuts, load
from wharf.specfiles import get_spec

DAY = datetime(2026, 1, 1, tzinfo=UTC)
DATASET_ID = "rls.places"
AREA = f"{ROLE_PREFIX}_area_"
DATASET = """\
metadata:
  domain: rls
  dataset: places
  sensitivity: PRIVATE
  update_behaviour: {behaviour}
  primary_key: [id]
  owners: [{{name: Tests, email: tests@example.org}}]
source: {{type: file, path: x.csv}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
{columns}
load: {{allow_destructive_changes: true}}
{row_access}"""
COLUMNS = "  - {name: area, data_type: string}\n  - {name: region, data_type: string}"
ROW_ACCESS = "row_access: {{column: {column}, role_prefix: {prefix}}}\n"
# id -> (area, region); a NULL area matches no role: that row is shown to no reader.
ROWS = {1: ("north", "south"), 2: ("south", "north"), 3: ("north", "north"), 4: (None, None)}
# Test logins -> the roles they are members of (besides none, for "nobody").
LOGINS = {
    "north": ("private", "area_north"),
    "both": ("private", "area_north", "area_south"),
    "nobody": ("private",),
    "rows_only": ("area_north",),  # a row's role, but not the dataset's reader role
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project whose only dataset is rls.places (PRIVATE, ``row_access`` on ``area``),
    after ``wharf access apply``; the row roles ``<prefix>_area_north`` and ``_south`` and a
    login per entry of ``LOGINS``, made as an admin would."""
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    write(home)
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS rls CASCADE")
        for area in ("north", "south"):
            pg.execute(f'DROP ROLE IF EXISTS "{AREA}{area}"')
            pg.execute(f'CREATE ROLE "{AREA}{area}" NOLOGIN')
        for name, members in LOGINS.items():
            user = f"{ROLE_PREFIX}_t_{name}"
            groups = ", ".join(f'"{ROLE_PREFIX}_{m}"' for m in members)
            pg.execute(f'DROP ROLE IF EXISTS "{user}"')
            pg.execute(f'CREATE ROLE "{user}" LOGIN IN ROLE {groups}')
    access_apply()
    yield home
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS rls CASCADE")
        for name in LOGINS:
            pg.execute(f'DROP ROLE "{ROLE_PREFIX}_t_{name}"')
        for area in ("north", "south"):
            pg.execute(f'DROP ROLE "{AREA}{area}"')


def write(
    home: Path,
    behaviour: str = "OVERWRITE",
    column: str | None = "area",
    prefix: str = AREA,
    columns: str = COLUMNS,
) -> None:
    folder = home / "include" / "schemas" / "rls"
    folder.mkdir(parents=True, exist_ok=True)
    row_access = "" if column is None else ROW_ACCESS.format(column=column, prefix=prefix)
    (folder / "places.yaml").write_text(
        DATASET.format(behaviour=behaviour, columns=columns, row_access=row_access)
    )


def load_rows(rows: dict[int, tuple[str | None, ...]] = ROWS) -> load.LoadResult:
    """Load ``rows`` (id -> (area, region)) into rls.places as a task does."""
    spec = get_spec(DATASET_ID)
    names = spec.column_names[1:]
    batch = [{"id": i, **dict(zip(names, values, strict=False))} for i, values in rows.items()]
    run_id = f"manual__{uuid.uuid4().hex[:6]}"
    with connections.connect() as conn:
        return load.load(conn, spec, run_id, DAY, rows_of(spec, batch, run_id))


def login(name: str) -> psycopg.Connection[Any]:
    """An autocommit connection as the test login ``name``, or as the loader (``loader``)."""
    user = f"{ROLE_PREFIX}_{name}" if name == "loader" else f"{ROLE_PREFIX}_t_{name}"
    return psycopg.connect(libpq(environment.as_user(DATASETS_URL, user)), autocommit=True)


def ids(conn: psycopg.Connection[Any]) -> set[int]:
    return {r[0] for r in conn.execute("SELECT id FROM rls.places").fetchall()}


def visible(name: str) -> set[int]:
    with login(name) as conn:
        return ids(conn)


def security(pg: psycopg.Connection[Any]) -> tuple[bool, bool, dict[str, tuple[Any, ...]]]:
    """(enabled, forced, {policy: (cmd, roles, qual)}) of rls.places."""
    enabled, forced = pg.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rls.places'::regclass"
    ).fetchone()
    policies = pg.execute(
        "SELECT policyname, cmd, roles::text[], qual FROM pg_policies"
        " WHERE schemaname = 'rls' AND tablename = 'places'"
    ).fetchall()
    return enabled, forced, {p[0]: tuple(p[1:]) for p in policies}


def reconciled() -> list[str]:
    """What reconciling rls.places now would change (run as the loader, then committed)."""
    with connections.connect() as conn, conn.cursor() as cur:
        changes = access.reconcile(cur, get_spec(DATASET_ID), access.deployment_roles())
        conn.commit()
    return [text for text, _ in changes.statements]


def test_a_reader_sees_only_the_rows_of_its_roles(home: Path) -> None:
    load_rows()
    assert visible("north") == {1, 3}
    assert visible("both") == {1, 2, 3}
    assert visible("nobody") == set()  # the table's reader, but no row's role
    with login("rows_only") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        ids(conn)  # a row's role without the dataset's reader role reads nothing
    with pg_connect() as pg:
        assert ids(pg) == {1, 2, 3, 4}  # the superuser bypasses row security
    with login("north") as conn:  # a reader cannot switch row security off for itself
        conn.execute("SET row_security = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ids(conn)


def test_a_role_granted_later_shows_its_rows_at_once(home: Path) -> None:
    load_rows()
    with pg_connect() as pg:
        pg.execute(f'GRANT "{AREA}south" TO "{ROLE_PREFIX}_t_north"')
    assert visible("north") == {1, 2, 3}


@pytest.mark.parametrize("behaviour", ["OVERWRITE", "MERGE", "APPEND"])
def test_loads_read_and_replace_every_row(home: Path, behaviour: str) -> None:
    write(home, behaviour)
    first = load_rows()
    assert first.published_rows == len(ROWS)
    again = {**dict.fromkeys(ROWS, ("south", "south")), 5: ("north", None)}
    result = load_rows(again)
    assert result.published_rows == len(again)  # the loader counts every row, NULL area too
    if behaviour == "MERGE":
        assert (result.inserted, result.updated) == (1, len(ROWS))
    else:  # OVERWRITE and the re-run of the same logical date replace every row
        assert (result.deleted, result.inserted) == (len(ROWS), len(again))
    with pg_connect() as pg:
        assert pg.execute("SELECT count(*) FROM rls.places").fetchone() == (len(again),)
    with login("loader") as conn:
        assert ids(conn) == set(again)
    assert visible("north") == {5}
    assert visible("both") == set(again)


def test_a_duplicate_key_fails_the_load_naming_it_and_publishes_nothing(home: Path) -> None:
    load_rows()
    spec = get_spec(DATASET_ID)
    batch = [{"id": i, "area": "north"} for i in (1, 2, 3, 4, 1)]
    with connections.connect() as conn, pytest.raises(load.LoadError) as caught:
        load.load(conn, spec, "manual__dup", DAY, rows_of(spec, batch, "manual__dup"))
    assert str(caught.value) == (
        "rls.places: OVERWRITE needs one row per primary key (id), but the batch repeats keys: "
        "id=1 (2 rows)"
    )
    with pg_connect() as pg:
        assert ids(pg) == set(ROWS)


def test_the_owner_role_is_bound_too(home: Path) -> None:
    load_rows()
    with pg_connect() as pg:
        enabled, forced, policies = security(pg)
    assert (enabled, forced) == (True, True)
    assert policies[access.LOADER_POLICY][:2] == ("ALL", [f"{ROLE_PREFIX}_loader"])
    assert policies[access.ROW_POLICY][:2] == ("SELECT", ["public"])
    with login("loader") as conn:
        conn.execute(f'SET ROLE "{ROLE_PREFIX}_owner"')  # the table's owner, without the
        assert ids(conn) == set()  # loader's policy: bound by the rows' policy (FORCE)
        conn.execute("RESET ROLE")
        assert ids(conn) == set(ROWS)


def test_a_second_load_changes_nothing_and_the_plan_is_empty(home: Path) -> None:
    from wharf.cli.access import reconcile_estate
    from wharf.specfiles import load_specs

    load_rows()
    load_rows()
    assert reconciled() == []
    assert reconcile_estate(load_specs()[0], apply=False).statements == []


def test_a_changed_column_or_prefix_replaces_the_policy(home: Path) -> None:
    load_rows()
    write(home, column="region")
    load_rows()
    assert visible("north") == {2, 3}  # region north
    with pg_connect() as pg:
        read = pg.execute(  # the columns the policy reads, from its dependencies
            "SELECT a.attname FROM pg_policy p JOIN pg_depend d ON d.objid = p.oid"
            " AND d.classid = 'pg_policy'::regclass AND d.refobjsubid > 0"
            " AND d.refobjid = p.polrelid JOIN pg_attribute a ON a.attrelid = p.polrelid"
            " AND a.attnum = d.refobjsubid"
            " WHERE p.polrelid = 'rls.places'::regclass AND p.polname = %s",
            (access.ROW_POLICY,),
        ).fetchall()
    assert read == [("region",)]
    write(home, column="region", prefix=f"{ROLE_PREFIX}_zone_")
    assert reconciled() == [
        f"{DATASET_ID}: drop policy {access.ROW_POLICY} (row_access changed)",
        f"{DATASET_ID}: policy {access.ROW_POLICY}: a row is read by members of "
        f"{ROLE_PREFIX}_zone_<region>",
    ]
    assert visible("north") == set()  # no role is named <prefix>_zone_*
    assert reconciled() == []


def test_a_removed_column_of_the_policy_moves_it_with_the_schema_change(home: Path) -> None:
    load_rows()
    write(home, column="region", columns="  - {name: region, data_type: string}")
    result = load_rows({i: (region,) for i, (_, region) in ROWS.items()})
    assert result.schema_changes == ["removed column 'area' (text)"]
    assert visible("north") == {2, 3}
    assert reconciled() == []


def test_removing_row_access_disables_row_security_on_the_next_load(home: Path) -> None:
    load_rows()
    write(home, column=None)
    load_rows()
    with pg_connect() as pg:
        assert security(pg) == (False, False, {})
    assert visible("nobody") == set(ROWS)  # the PRIVATE reader now sees every row
    assert reconciled() == []


def test_a_policy_made_by_hand_is_left_alone_and_keeps_row_security(home: Path) -> None:
    load_rows()
    with pg_connect() as pg:
        pg.execute(
            f'CREATE POLICY mine ON rls.places FOR SELECT TO "{ROLE_PREFIX}_t_nobody" USING (id = 4)'
        )
    write(home, column=None)
    load_rows()
    with pg_connect() as pg:
        enabled, _, policies = security(pg)
    assert enabled and set(policies) == {"mine", access.LOADER_POLICY}  # disabling it would
    # show every row, and loads still need their policy
    assert visible("nobody") == {4}
    with connections.connect() as conn, conn.cursor() as cur:
        changes = access.reconcile(cur, get_spec(DATASET_ID), access.deployment_roles())
    assert changes.hand_made == [
        f"{DATASET_ID}: row security policy mine was made by hand: left alone"
    ]


def test_access_apply_restores_a_policy_dropped_by_hand(home: Path) -> None:
    from wharf.cli.access import reconcile_estate
    from wharf.specfiles import load_specs

    load_rows()
    with pg_connect() as pg:
        pg.execute(f"DROP POLICY {access.ROW_POLICY} ON rls.places")
        pg.execute("ALTER TABLE rls.places NO FORCE ROW LEVEL SECURITY")
    assert visible("nobody") == set()  # still enabled: no policy shows no row
    planned = reconcile_estate(load_specs()[0], apply=False).statements
    assert [text for text, _ in planned] == [
        f"{DATASET_ID}: policy {access.ROW_POLICY}: a row is read by members of {AREA}<area>",
        f"{DATASET_ID}: enable and force row-level security",
    ]
    access_apply()
    assert visible("north") == {1, 3}
    with pg_connect() as pg:
        assert security(pg)[:2] == (True, True)
    assert reconciled() == []


def test_a_data_cut_over_a_dataset_with_row_access_is_refused_at_refresh(home: Path) -> None:
    load_rows()
    (home / "include" / "sql" / "cut.sql").write_text("SELECT id FROM rls.places")
    (home / "include" / "schemas" / "rls" / "cut.yaml").write_text(
        "metadata:\n  domain: rls\n  dataset: cut\n  kind: data_cut\n  sensitivity: PRIVATE\n"
        "  owners: [{name: Tests, email: tests@example.org}]\nschedule: null\nsql: cut.sql\n"
        "columns:\n  - {name: id, data_type: integer}\n"
    )
    cut = get_spec("rls.cut")
    with connections.connect() as conn, pytest.raises(UnsafeSpecError) as caught:
        data_cuts.refresh(conn, cut)
    assert "rls.cut: the cut reads rls.places, which declares row_access" in str(caught.value)
    write(home, column=None)  # the YAML no longer declares it, but the table is not reloaded
    with connections.connect() as conn, pytest.raises(UnsafeSpecError) as caught:
        data_cuts.refresh(conn, cut)
    assert "rls.cut: the cut reads rls.places, whose table has row-level security" in str(
        caught.value
    )
    with pg_connect() as pg:
        assert pg.execute("SELECT to_regclass('rls.cut')").fetchone() == (None,)


def test_a_dag_run_publishes_a_dataset_with_row_access(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from support import run_dag

    db = tmp_path / "places.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_PLACES_DB", f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE places (id INTEGER, area TEXT, region TEXT)")
        conn.executemany("INSERT INTO places VALUES (?, ?, ?)", [(i, *v) for i, v in ROWS.items()])
    file = home / "include" / "schemas" / "rls" / "places.yaml"
    file.write_text(
        file.read_text().replace(
            "source: {type: file, path: x.csv}",
            "source: {type: sql, conn_id: places_db, table: places}\nretries: 0",
        )
    )
    assert run_dag(DATASET_ID) == "success"
    assert visible("north") == {1, 3}
    with pg_connect() as pg:
        assert pg.execute(
            "SELECT row_count FROM wharf.catalogue WHERE dataset_id = %s", (DATASET_ID,)
        ).fetchone() == (len(ROWS),)  # the record step counts every row, as the loader
