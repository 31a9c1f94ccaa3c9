"""Access by sensitivity on real PostgreSQL (issue #13, DESIGN invariant 9): the privilege
matrix. Each role is logged in as, and proven with real queries, not only with
``has_table_privilege``: which tables and views it reads, that it cannot write, create or change
the audit; that a PROTECTED table is invisible without its domain's grant; that a changed
sensitivity moves the grant on the next load and revokes the old one; that grants survive every
update behaviour and a schema change.

Loads and refreshes run as tasks run them: ``publish.load.load`` and ``data_cuts.refresh`` on
the loader's login (the ``wharf_datasets`` connection)."""

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
from wharf.publish import access, data_cuts, load
from wharf.specfiles import get_spec

DAY = datetime(2026, 1, 1, tzinfo=UTC)
DATASET = """\
metadata:
  domain: {domain}
  dataset: {dataset}
  sensitivity: {sensitivity}
  update_behaviour: {behaviour}
  primary_key: [id]
  owners: [{{name: Tests, email: tests@example.org}}]
source: {{type: file, path: x.csv}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: v, data_type: string}}
{extra}"""
CUT = """\
metadata:
  domain: {domain}
  dataset: {dataset}
  kind: data_cut
  sensitivity: {sensitivity}
  owners: [{{name: Tests, email: tests@example.org}}]
schedule: null
sql: {dataset}.sql
columns:
  - {{name: id, data_type: integer}}
"""
# Readers: a login per reader role, named as an analyst's would be.
READERS = ("public", "private", "acc", "acc2")


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Schemas acc (a PUBLIC, a PRIVATE and a PROTECTED table, a PUBLIC and a PROTECTED cut)
    and acc2 (a PROTECTED table), loaded as the loader after ``wharf access apply``; a login
    per reader role and one for the operator role."""
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS acc CASCADE")
        pg.execute("DROP SCHEMA IF EXISTS acc2 CASCADE")
    write(home, "acc", "open", "PUBLIC")
    write(home, "acc", "inner", "PRIVATE")
    write(home, "acc", "secret", "PROTECTED")
    write(home, "acc2", "secret2", "PROTECTED")
    write_cut(home, "acc", "open_cut", "PUBLIC", "SELECT id FROM acc.open WHERE id > 1")
    write_cut(home, "acc", "secret_cut", "PROTECTED", "SELECT id FROM acc.secret")
    access_apply()
    for dataset_id in ("acc.open", "acc.inner", "acc.secret", "acc2.secret2"):
        load_rows(dataset_id, [1, 2, 3])
    refresh("acc.open_cut", "acc.secret_cut")
    logins = {**{r: reader_role(r) for r in READERS}, "operator": f"{ROLE_PREFIX}_operator"}
    with pg_connect() as pg:
        for login, role in logins.items():
            user = f"{ROLE_PREFIX}_t_{login}"
            pg.execute(f'DROP ROLE IF EXISTS "{user}"')
            pg.execute(f'CREATE ROLE "{user}" LOGIN IN ROLE "{role}"')
    yield home
    with pg_connect() as pg:
        for login in logins:
            pg.execute(f'DROP OWNED BY "{ROLE_PREFIX}_t_{login}"')
            pg.execute(f'DROP ROLE "{ROLE_PREFIX}_t_{login}"')


def reader_role(login: str) -> str:
    if login in ("public", "private"):
        return f"{ROLE_PREFIX}_{login}"
    return f"{ROLE_PREFIX}_protected_{login}"


def write(home: Path, domain: str, dataset: str, sensitivity: str, **kw: Any) -> None:
    folder = home / "include" / "schemas" / domain
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dataset}.yaml").write_text(
        DATASET.format(
            domain=domain,
            dataset=dataset,
            sensitivity=sensitivity,
            behaviour=kw.get("behaviour", "OVERWRITE"),
            extra=kw.get("extra", ""),
        )
    )


def write_cut(home: Path, domain: str, dataset: str, sensitivity: str, query: str) -> None:
    (home / "include" / "sql" / f"{dataset}.sql").write_text(query)
    folder = home / "include" / "schemas" / domain
    (folder / f"{dataset}.yaml").write_text(
        CUT.format(domain=domain, dataset=dataset, sensitivity=sensitivity)
    )


def load_rows(dataset_id: str, ids: list[int], run_id: str | None = None) -> load.LoadResult:
    """Load rows ``ids`` as a task does: on the loader's login."""
    spec = get_spec(dataset_id)
    rows = [{"id": i, "v": f"v{i}"} for i in ids]
    run_id = run_id or f"manual__{uuid.uuid4().hex[:6]}"
    with connections.connect() as conn:
        return load.load(conn, spec, run_id, DAY, rows_of(spec, rows, run_id))


def refresh(*cut_ids: str) -> None:
    with connections.connect() as conn:
        for cut_id in cut_ids:
            assert data_cuts.refresh(conn, get_spec(cut_id)).outcome != "waiting"


def login(name: str) -> psycopg.Connection[Any]:
    """An autocommit connection logged in as the test login ``name``, or as a Wharf role
    (``loader``)."""
    user = f"{ROLE_PREFIX}_{name}" if name == "loader" else f"{ROLE_PREFIX}_t_{name}"
    return psycopg.connect(libpq(environment.as_user(DATASETS_URL, user)), autocommit=True)


def readable(conn: psycopg.Connection[Any], relation: str) -> bool:
    """Whether ``SELECT`` on ``relation`` works for this login (a real read)."""
    try:
        conn.execute(f"SELECT count(*) FROM {relation}").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def refused(conn: psycopg.Connection[Any], statement: str) -> bool:
    """Whether PostgreSQL refuses ``statement`` for lack of privilege (or ownership)."""
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


RELATIONS = (
    "acc.open",
    "acc.inner",
    "acc.secret",
    "acc2.secret2",
    "acc.open_cut",
    "acc.secret_cut",
)
# Who reads what: PRIVATE includes PUBLIC; PROTECTED only with the domain's own role.
EXPECTED = {
    "public": {"acc.open", "acc.open_cut"},
    "private": {"acc.open", "acc.open_cut", "acc.inner"},
    "acc": {"acc.secret", "acc.secret_cut"},
    "acc2": {"acc2.secret2"},
    "operator": set(),
}


def test_each_reader_reads_exactly_what_its_sensitivity_allows(estate: Path) -> None:
    for name, expected in EXPECTED.items():
        with login(name) as conn:
            found = {r for r in RELATIONS if readable(conn, r)}
            assert found == expected, name
            listed = conn.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables"
                " WHERE table_schema IN ('acc', 'acc2')"
            ).fetchall()
            # A PROTECTED table is not even listed to a reader without its domain's grant.
            assert {r[0] for r in listed} == expected, name


def test_a_reader_cannot_write_create_or_touch_the_audit(estate: Path) -> None:
    for name in READERS:
        with login(name) as conn:
            table = "acc.open" if name in ("public", "private") else "acc.secret"
            if name == "acc2":
                table = "acc2.secret2"
            for statement in (
                f"INSERT INTO {table} (id) VALUES (99)",
                f"UPDATE {table} SET v = 'x'",
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
                f"ALTER TABLE {table} ADD COLUMN x int",
                "CREATE TABLE acc.mine (a int)",
                "CREATE SCHEMA mine",
                "SELECT * FROM wharf.audit",
                "INSERT INTO wharf.audit (dataset_id, run_id, step, status) VALUES"
                " ('x', 'x', 'x', 'x')",
            ):
                assert refused(conn, statement), (name, statement)


def test_the_loader_is_no_superuser_and_cannot_change_the_audit(estate: Path) -> None:
    with login("loader") as conn:
        attributes = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        ).fetchone()
        assert attributes == (False, False, False, False)
        count = conn.execute("SELECT count(*) FROM wharf.audit").fetchone()
        conn.execute(
            "INSERT INTO wharf.audit (dataset_id, run_id, step, status) VALUES"
            " ('acc.open', 'manual__t', 'load', 'success')"
        )
        assert conn.execute("SELECT count(*) FROM wharf.audit").fetchone()[0] == count[0] + 1
        for statement in (
            "UPDATE wharf.audit SET status = 'success'",
            "DELETE FROM wharf.audit",
            "TRUNCATE wharf.audit",
            "ALTER TABLE wharf.audit DISABLE TRIGGER ALL",
            "ALTER TABLE wharf.audit OWNER TO CURRENT_USER",
            "DROP TABLE wharf.audit",
            "CREATE RULE r AS ON INSERT TO wharf.audit DO INSTEAD NOTHING",
            "SELECT setval('wharf.audit_id_seq', 1)",
            f"SET ROLE {ROLE_PREFIX}_admin",
            f"CREATE ROLE {ROLE_PREFIX}_evil",
            f"GRANT {ROLE_PREFIX}_protected_acc TO CURRENT_USER",
        ):
            assert refused(conn, statement), statement
        # The owner role, which the loader is a member of, has no more on the audit.
        conn.execute(f"SET ROLE {ROLE_PREFIX}_owner")
        assert refused(
            conn,
            "INSERT INTO wharf.audit (dataset_id, run_id, step, status)"
            " VALUES ('x', 'x', 'x', 'x')",
        )


def test_the_operator_reads_wharfs_tables_and_writes_none(estate: Path) -> None:
    with login("operator") as conn:
        for table in (
            "alerts",
            "audit",
            "audit_attempts",
            "catalogue",
            "catalogue_changes",
            "catalogue_loads",
            "freshness",
            "lineage",
            "quarantine",
            "schema_history",
            "watermarks",
            "schema_migrations",
        ):
            assert readable(conn, f"wharf.{table}"), table
        assert refused(conn, "DELETE FROM wharf.catalogue")
        assert refused(
            conn, "INSERT INTO wharf.lineage (run_id, source, target) VALUES ('a','b','c')"
        )


def test_a_changed_sensitivity_moves_the_grant_on_the_next_load(estate: Path) -> None:
    write(estate, "acc", "inner", "PUBLIC")
    load_rows("acc.inner", [1, 2, 3])
    with login("public") as conn:
        assert readable(conn, "acc.inner")
    write(estate, "acc", "inner", "PROTECTED")
    access_apply()  # the domain's protected role exists already; apply is what a deploy runs
    load_rows("acc.inner", [1, 2, 3])
    with login("public") as pub, login("private") as priv, login("acc") as prot:
        assert not readable(pub, "acc.inner")
        assert not readable(priv, "acc.inner")
        assert readable(prot, "acc.inner")
    with pg_connect() as pg:
        grantees = pg.execute(
            "SELECT DISTINCT grantee FROM information_schema.role_table_grants"
            " WHERE table_schema = 'acc' AND table_name = 'inner' AND grantee <> table_schema"
        ).fetchall()
    assert {g[0] for g in grantees} - {f"{ROLE_PREFIX}_owner"} == {f"{ROLE_PREFIX}_protected_acc"}


@pytest.mark.parametrize("behaviour", ["OVERWRITE", "APPEND", "MERGE"])
def test_grants_survive_every_update_behaviour_and_a_schema_change(
    estate: Path, behaviour: str
) -> None:
    write(estate, "acc", "open", "PUBLIC", behaviour=behaviour)
    load_rows("acc.open", [1, 2, 3, 4, 5])
    write(
        estate,
        "acc",
        "open",
        "PUBLIC",
        behaviour=behaviour,
        extra="  - {name: added, data_type: string}\n",
    )
    load_rows("acc.open", [1, 2, 3, 4, 5, 6])
    refresh("acc.open_cut")
    with login("public") as conn:
        assert readable(conn, "acc.open")
        assert readable(conn, "acc.open_cut")
        assert conn.execute("SELECT count(added) FROM acc.open").fetchone() == (0,)
    with login("acc") as conn:
        assert not readable(conn, "acc.open")


def test_a_hand_made_grant_is_left_alone_and_reported(estate: Path) -> None:
    with pg_connect() as pg:
        pg.execute(f'GRANT SELECT ON acc.open TO "{ROLE_PREFIX}_t_acc"')
        pg.execute(f'GRANT SELECT ON acc.open TO "{ROLE_PREFIX}_protected_acc2"')  # managed
    with connections.connect() as conn, conn.cursor() as cur:
        changes = access.reconcile(cur, get_spec("acc.open"), access.deployment_roles())
        conn.commit()
    assert [t for t, _ in changes.statements] == [
        f"acc.open: revoke SELECT from {ROLE_PREFIX}_protected_acc2"
    ]
    assert changes.hand_made == [
        f"acc.open: SELECT granted by hand to {ROLE_PREFIX}_t_acc, which Wharf does not "
        "manage: left alone"
    ]
    with login("acc") as conn:
        assert readable(conn, "acc.open")  # the hand-made grant stays
    with login("acc2") as conn:
        assert not readable(conn, "acc.open")


def test_a_cut_role_reads_exactly_its_inputs(estate: Path) -> None:
    cut_role = f"{ROLE_PREFIX}_cut_acc.open_cut"
    with pg_connect() as pg:
        pg.execute(f'GRANT SELECT ON acc.secret TO "{cut_role}"')  # stale, e.g. an old input
    refresh("acc.open_cut")
    with pg_connect() as pg:
        pg.execute(f'SET ROLE "{cut_role}"')
        assert readable(pg, "acc.open")
        assert not readable(pg, "acc.secret")
        assert not readable(pg, "acc.inner")
        assert pg.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'acc.open_cut'::regclass"
        ).fetchone() == (["security_barrier=true"],)


def test_a_missing_protected_role_fails_the_load_naming_it_and_the_command(estate: Path) -> None:
    write(estate, "acc3", "fresh", "PROTECTED")
    with pytest.raises(access.AccessError) as caught:
        load_rows("acc3.fresh", [1])
    assert f"the role {ROLE_PREFIX}_protected_acc3 does not exist" in str(caught.value)
    assert "wharf access apply" in str(caught.value)
    with pg_connect() as pg:
        assert pg.execute("SELECT to_regclass('acc3.fresh')").fetchone() == (None,)  # rolled back
        pg.execute("DROP SCHEMA IF EXISTS acc3 CASCADE")


def test_plan_shows_nothing_to_do_after_apply(estate: Path) -> None:
    from wharf.cli.access import reconcile_estate
    from wharf.specfiles import load_specs

    changes = reconcile_estate(load_specs()[0], apply=False)
    assert changes.statements == []


def test_a_task_refuses_a_superuser_login(estate: Path) -> None:
    with pg_connect() as pg, pg.cursor() as cur, pytest.raises(access.AccessError) as caught:
        access.require_loader(cur, access.deployment_roles())
    assert "superuser" in str(caught.value)
    with login("loader") as conn, conn.cursor() as cur:
        access.require_loader(cur, access.deployment_roles())


def test_db_upgrade_sets_the_loaders_password_from_its_connection_as_a_verifier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from wharf.cli.db import upgrade_datasets_db

    secret = f"pw-{uuid.uuid4().hex}"
    parts = urlsplit(environment.as_user(DATASETS_URL, f"{ROLE_PREFIX}_loader"))
    with_password = parts._replace(netloc=parts.netloc.replace("@", f":{secret}@", 1))
    monkeypatch.setenv("AIRFLOW_CONN_WHARF_DATASETS", urlunsplit(with_password))
    upgrade_datasets_db()
    with pg_connect() as pg:
        stored = pg.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (f"{ROLE_PREFIX}_loader",)
        ).fetchone()[0]
        pg.execute(f'ALTER ROLE "{ROLE_PREFIX}_loader" PASSWORD NULL')
    assert stored.startswith("SCRAM-SHA-256$")
    assert secret not in stored


def test_wharf_catalogue_shows_sensitivity_readers_and_grant_drift(
    estate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wharf.cli.main import main

    with pg_connect() as pg:  # drift made by hand: an extra grant to a Wharf reader role
        pg.execute(f'GRANT SELECT ON acc.secret TO "{ROLE_PREFIX}_public"')
    write(estate, "acc", "later", "PRIVATE")  # not loaded yet
    assert main(["catalogue"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "dataset",
        "kind",
        "sensitivity",
        "readers",
        "grants",
        "last",
        "run",
        "rows",
    ]
    rows = {line.split()[0]: line for line in out[1:]}
    p = ROLE_PREFIX
    assert f"PUBLIC       {p}_public, {p}_private" in rows["acc.open"]
    assert "exact" in rows["acc.open"]
    assert f"PROTECTED    {p}_protected_acc" in rows["acc.secret"]
    assert f"extra: {p}_public" in rows["acc.secret"]
    assert "not loaded" in rows["acc.later"] and "never" in rows["acc.later"]
    from wharf.ledger.catalogue import upsert_catalogue

    with connections.connect() as conn:  # as the record step writes it, as the loader
        upsert_catalogue(conn, get_spec("acc.open"), "manual__t", "success", 3)
    with pg_connect() as pg:
        readers = pg.execute(
            "SELECT sensitivity, readers FROM wharf.catalogue WHERE dataset_id = 'acc.open'"
        ).fetchone()
    assert readers == ("PUBLIC", [f"{p}_public", f"{p}_private"])


def test_a_table_an_earlier_wharf_made_fails_its_load_until_apply_hands_it_over(
    estate: Path,
) -> None:
    write(estate, "acc", "legacy", "PUBLIC")
    with pg_connect() as pg:  # as Wharf made it before roles: the superuser owns it
        pg.execute("CREATE TABLE acc.legacy (id integer NOT NULL PRIMARY KEY, v text)")
    with pytest.raises(access.AccessError) as caught:
        load_rows("acc.legacy", [1])
    assert "acc.legacy: the table is owned by postgres" in str(caught.value)
    assert "wharf access apply" in str(caught.value)
    access_apply()
    load_rows("acc.legacy", [1, 2])
    with pg_connect() as pg:
        owner = pg.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'acc.legacy'::regclass"
        ).fetchone()
    assert owner == (f"{ROLE_PREFIX}_owner",)
    with login("public") as conn:
        assert conn.execute("SELECT count(*) FROM acc.legacy").fetchone() == (2,)


def test_plan_reports_a_role_no_yaml_needs_and_never_drops_it(estate: Path) -> None:
    from wharf.cli.access import reconcile_estate
    from wharf.specfiles import load_specs

    (estate / "include" / "schemas" / "acc2" / "secret2.yaml").unlink()
    changes = reconcile_estate(load_specs()[0], apply=True)
    assert f"{ROLE_PREFIX}_protected_acc2" in changes.unused_roles
    with pg_connect() as pg:
        assert pg.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s", (f"{ROLE_PREFIX}_protected_acc2",)
        ).fetchone() == (1,)


def test_the_loader_cannot_read_another_database_on_its_server(estate: Path) -> None:
    """A source database beside the datasets database (same server): the loader's login
    reaches it (PostgreSQL lets every role CONNECT by default) but reads nothing in it."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"wharf_src_{uuid.uuid4().hex[:6]}"
    server = urlsplit(DATASETS_URL)
    with pg_connect() as pg:
        pg.execute(f'CREATE DATABASE "{name}"')
    try:
        source = urlunsplit(server._replace(path=f"/{name}"))
        with psycopg.connect(libpq(source), autocommit=True) as src:
            src.execute("CREATE TABLE customers AS SELECT 1 AS id")
        loader = environment.as_user(source, f"{ROLE_PREFIX}_loader")
        with psycopg.connect(libpq(loader), autocommit=True) as conn:
            assert not readable(conn, "customers")
            assert refused(conn, "CREATE TABLE mine (a int)")
    finally:
        with pg_connect() as pg:
            pg.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_apply_leaves_a_broken_yaml_out_and_reconciles_the_rest(
    estate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wharf.cli.main import main

    (estate / "include" / "schemas" / "acc" / "broken.yaml").write_text("metadata: [\n")
    with pg_connect() as pg:  # drift the apply must fix
        pg.execute(f'REVOKE SELECT ON acc.open FROM "{ROLE_PREFIX}_public"')
    assert main(["access", "apply"]) == 0
    out = capsys.readouterr().out
    assert "wharf access apply: warning: left out: " in out and "acc/broken.yaml:" in out
    assert f"applied: acc.open: grant SELECT to {ROLE_PREFIX}_public" in out
    with login("public") as conn:
        assert readable(conn, "acc.open")
