"""Access control set up by an admin who is no superuser (issue #13): on a managed server
(Amazon RDS, Cloud SQL) the admin only has CREATEROLE and CREATEDB. `wharf db upgrade` and
`wharf access apply` must still create the roles, hand Wharf's tables to the admin role and a
cut's view to the cut's role, and the loader must then load and refresh as on any server
(PostgreSQL 16 changed what CREATEROLE may do: both 15 and 16 run this)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from loading import rows_of
from support import DATASETS_URL, libpq

from wharf import connections, environment
from wharf.cli.access import reconcile_estate
from wharf.cli.db import upgrade_datasets_db
from wharf.publish import data_cuts, load
from wharf.specfiles import get_spec, load_specs

TABLE = """\
metadata:
  domain: managed
  dataset: things
  sensitivity: PROTECTED
  owners: [{name: Tests, email: tests@example.org}]
source: {type: file, path: x.csv}
columns:
  - {name: id, data_type: integer}
"""
CUT = """\
metadata:
  domain: managed
  dataset: thing_count
  kind: data_cut
  sensitivity: PROTECTED
  owners: [{name: Tests, email: tests@example.org}]
schedule: null
sql: thing_count.sql
columns:
  - {name: n, data_type: integer}
"""


@pytest.fixture
def managed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database owned by an admin login with CREATEROLE and CREATEDB only, and connections
    as a deploy on a managed server defines them; its own role prefix."""
    tag = uuid.uuid4().hex[:6]
    prefix, admin, database = f"mg{tag}", f"mg{tag}_dba", f"wharf_managed_{tag}"
    server = urlsplit(DATASETS_URL)
    superuser = libpq(urlunsplit(server._replace(path="/postgres")))
    with psycopg.connect(superuser, autocommit=True) as pg:
        pg.execute(f'CREATE ROLE "{admin}" LOGIN CREATEROLE CREATEDB')
        pg.execute(f'CREATE DATABASE "{database}" OWNER "{admin}"')
    url = environment.as_user(urlunsplit(server._replace(path=f"/{database}")), admin)
    monkeypatch.setenv("WHARF_ROLE_PREFIX", prefix)
    monkeypatch.setenv("AIRFLOW_CONN_WHARF_DATASETS_ADMIN", url)
    monkeypatch.setenv("AIRFLOW_CONN_WHARF_DATASETS", environment.as_user(url, f"{prefix}_loader"))
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "sql" / "thing_count.sql").write_text(
        "SELECT count(*)::int AS n FROM managed.things"
    )
    (home / "include" / "schemas" / "managed").mkdir(parents=True)
    (home / "include" / "schemas" / "managed" / "things.yaml").write_text(TABLE)
    (home / "include" / "schemas" / "managed" / "thing_count.yaml").write_text(CUT)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    yield prefix
    with psycopg.connect(superuser, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        roles = pg.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) AND rolname <> %s",
            (f"{prefix}_", admin),
        ).fetchall()
        for (role,) in roles:  # then the admin: PostgreSQL 16 records it as their grantor
            pg.execute(f'DROP ROLE "{role}"')
        pg.execute(f'DROP ROLE "{admin}"')


def test_a_createrole_admin_sets_up_roles_and_the_loader_loads(managed: str) -> None:
    prefix = managed
    upgrade_datasets_db()
    assert reconcile_estate(load_specs()[0], apply=True).statements  # roles, grants
    spec, day = get_spec("managed.things"), datetime(2026, 1, 1, tzinfo=UTC)
    with connections.connect() as conn:
        load.load(conn, spec, "manual__1", day, rows_of(spec, [{"id": 1}, {"id": 2}], "m1"))
        assert data_cuts.refresh(conn, get_spec("managed.thing_count")).outcome == "created"
    assert reconcile_estate(load_specs()[0], apply=False).statements == []  # nothing left
    with connections.connect_admin() as conn:
        owners = dict(
            conn.execute(
                "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname IN ('wharf', 'managed') AND c.relkind IN ('r', 'v')"
            ).fetchall()
        )
        assert owners["audit"] == f"{prefix}_admin"
        assert owners["things"] == f"{prefix}_owner"
        assert owners["thing_count"] == f"{prefix}_cut_managed.thing_count"
        # The README's "give an analyst access", as this admin.
        conn.execute(f'CREATE ROLE "{prefix}_analyst" LOGIN')
        conn.execute(f'GRANT "{prefix}_protected_managed" TO "{prefix}_analyst"')
        conn.commit()
    analyst = environment.as_user(os.environ["AIRFLOW_CONN_WHARF_DATASETS"], f"{prefix}_analyst")
    with psycopg.connect(libpq(analyst)) as conn:
        assert conn.execute("SELECT n FROM managed.thing_count").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM managed.things").fetchone() == (2,)


def test_access_plan_before_db_upgrade_names_the_command(
    managed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from wharf.cli.main import main

    assert main(["access", "plan"]) == 1
    assert "run `wharf db upgrade`" in capsys.readouterr().out
