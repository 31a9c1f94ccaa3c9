"""Data cuts: views (or materialized views) over datasets, refreshed in dependency order.

A data cut's SQL is one file below ``include/sql/`` holding one read-only SELECT (checked by
``wharf.contract.sql_rules`` in ``wharf check`` and again here, before every refresh). Its inputs are
its ``depends_on`` list, or else the tables its SQL reads, found by the same parser.

The cut's DDL runs as ``wharf_data_cuts`` (``SET LOCAL ROLE``): a NOLOGIN role that is no
superuser and may read only the cut's inputs, so even SQL that got past the parser cannot read
files, run programs or read tables it was not given. The role owns the cut's views.
"""

from __future__ import annotations

import logging
from graphlib import TopologicalSorter

from psycopg import sql

from wharf.connections import Connection, Cursor, lock_ddl, one_row, qualified, relation_exists
from wharf.contract.dataset import DatasetSpec
from wharf.contract.sql_rules import check_cut
from wharf.errors import TerminalError, UnsafeSpecError, one_line
from wharf.publish.comments import comment
from wharf.specfiles import spec_metadata
from wharf.specfiles.estate import sensitivity_problem
from wharf.specfiles.sql_files import cut_sql

log = logging.getLogger(__name__)

# Interim: the access-control work replaces it with Wharf's own roles.
CUT_ROLE = "wharf_data_cuts"


def inputs(cut: DatasetSpec) -> list[str]:
    """Dataset ids (``schema.table``) the data cut reads."""
    if cut.depends_on:
        return list(cut.depends_on)
    return check_cut(cut_sql(cut))


def dependents(dataset_id: str, specs: list[DatasetSpec]) -> list[DatasetSpec]:
    """Data cuts that read ``dataset_id`` directly or through other cuts, inputs first. A cut
    whose SQL is refused (it changed since the YAMLs were loaded) is left out, with a warning:
    its own DAG fails on it.

    Raises ``graphlib.CycleError`` if data cuts depend on each other in a cycle.
    """
    graph = {}
    cuts = {}
    for spec in specs:
        if spec.metadata.kind != "data_cut":
            continue
        try:
            graph[spec.dataset_id] = set(inputs(spec))
        except (UnsafeSpecError, FileNotFoundError) as err:
            log.warning("%s: not refreshed: %s", spec.dataset_id, err)
            continue
        cuts[spec.dataset_id] = spec
    reached = {dataset_id}
    changed = True
    while changed:
        changed = False
        for cut_id, needs in graph.items():
            if cut_id not in reached and needs & reached:
                reached.add(cut_id)
                changed = True
    order = TopologicalSorter(graph).static_order()
    return [cuts[c] for c in order if c in cuts and c in reached and c != dataset_id]


def refresh(conn: Connection, cut: DatasetSpec) -> str:
    """Create or refresh one data cut. Returns ``"refreshed"``, or ``"waiting"`` when an
    input table does not exist yet (it is created once its inputs have loaded).

    The SQL file is read and checked again (it may have changed since ``wharf check``):
    ``UnsafeSpecError`` naming the dataset if it is refused."""
    assert cut.sql is not None
    try:
        text = cut_sql(cut)
        needs = check_cut(text, cut.depends_on)
    except (UnsafeSpecError, FileNotFoundError) as err:
        raise UnsafeSpecError(f"{cut.dataset_id}: sql: include/sql/{cut.sql}: {err}") from None
    needs = list(cut.depends_on) or needs
    problem = sensitivity_problem(cut, spec_metadata, needs)  # inputs' YAML may have changed
    if problem:
        raise UnsafeSpecError(f"{cut.dataset_id}: metadata.sensitivity: {problem}")
    missing = []
    with conn.cursor() as cur:
        for dataset_id in needs:
            schema, _, name = dataset_id.partition(".")
            if not relation_exists(cur, schema, name):
                missing.append(dataset_id)
    if missing:
        log.info("%s: waiting for %s", cut.dataset_id, ", ".join(missing))
        return "waiting"
    run_ddl(conn, cut, text, needs)
    return "refreshed"


def run_ddl(conn: Connection, cut: DatasetSpec, text: str, needs: list[str]) -> None:
    """The cut's DDL as ``CUT_ROLE``, which is granted USAGE and CREATE on the cut's schema
    and SELECT on each of ``needs`` (the cut's inputs), and nothing else. ``text`` must have
    passed ``check_cut`` (the database is the second lock, not the first).

    Raises ``UnsafeSpecError`` when the SQL reads or calls what the role may not."""
    import psycopg

    meta = cut.metadata
    view = qualified(meta.domain, meta.dataset)
    body = sql.SQL(text.strip().rstrip(";"))  # one checked SELECT from include/sql
    try:
        with conn.cursor() as cur:
            lock_ddl(cur)
            ensure_role(cur)
            cur.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(meta.domain))
            )
            _grant_schema(cur, meta.domain, "USAGE")
            _grant_schema(cur, meta.domain, "CREATE")
            for dataset_id in needs:
                schema, _, name = dataset_id.partition(".")
                _grant_schema(cur, schema, "USAGE")
                _grant_select(cur, schema, name)
            _adopt(cur, meta.domain, meta.dataset)
            cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(CUT_ROLE)))
            # binary=True: the extended protocol, which runs exactly one statement.
            if cut.materialized:
                cur.execute(
                    sql.SQL("CREATE MATERIALIZED VIEW IF NOT EXISTS {} AS {} WITH NO DATA").format(
                        view, body
                    ),
                    binary=True,
                )
                cur.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(view))
                comment(cur, cut, "MATERIALIZED VIEW")
            else:
                cur.execute(
                    sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(view, body), binary=True
                )
                # A view's tables are read with its owner's rights, its functions with the
                # reader's: start a read as the role, so both are checked against it now.
                cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(view))
                comment(cur, cut, "VIEW")
            cur.execute("RESET ROLE")
    except psycopg.errors.InsufficientPrivilege as err:
        conn.rollback()
        raise UnsafeSpecError(
            f"{cut.dataset_id}: its SQL needs what the data-cut role {CUT_ROLE} may not do "
            f"({one_line(err)}); a data cut reads only its inputs"
        ) from None
    conn.commit()


def ensure_role(cur: Cursor, role: str = CUT_ROLE) -> None:
    """Create ``role`` (NOLOGIN, no superuser) if missing, safe against a concurrent
    creation. Raises ``TerminalError`` if a role of that name exists with superuser or
    BYPASSRLS rights: Wharf then refuses to run data cuts as it."""
    cur.execute(
        sql.SQL(
            "DO $$ BEGIN"
            " IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN"
            " CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;"
            " END IF;"
            " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;"
            " END $$"
        ).format(name=sql.Literal(role), role=sql.Identifier(role))
    )
    cur.execute(
        "SELECT rolsuper OR rolbypassrls, pg_has_role(current_user, oid, 'MEMBER')"
        " FROM pg_catalog.pg_roles WHERE rolname = %s",
        (role,),
    )
    privileged, member = one_row(cur)
    if privileged:
        raise TerminalError(
            f"the role {role} is a superuser or bypasses row security: Wharf runs data "
            "cuts only as a role without those rights; ALTER ROLE it NOSUPERUSER NOBYPASSRLS"
        )
    if not member:  # Wharf's user is no superuser: it needs the role to SET ROLE to it
        cur.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def _grant_schema(cur: Cursor, schema: str, privilege: str) -> None:
    cur.execute(
        "SELECT has_schema_privilege(%s, oid, %s) FROM pg_catalog.pg_namespace WHERE nspname = %s",
        (CUT_ROLE, privilege, schema),
    )
    found = cur.fetchone()
    if found is not None and not found[0]:
        cur.execute(
            sql.SQL("GRANT {} ON SCHEMA {} TO {}").format(
                sql.SQL(privilege), sql.Identifier(schema), sql.Identifier(CUT_ROLE)
            )
        )


def _grant_select(cur: Cursor, schema: str, name: str) -> None:
    relation = qualified(schema, name)
    cur.execute(
        "SELECT has_table_privilege(%s, %s::regclass, 'SELECT')",
        (CUT_ROLE, relation.as_string(cur)),
    )
    if not one_row(cur)[0]:
        cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(relation, sql.Identifier(CUT_ROLE)))


def _adopt(cur: Cursor, schema: str, name: str) -> None:
    """Hand a cut's view made by an earlier Wharf (owned by the superuser) to ``CUT_ROLE``,
    once, so the role can replace or refresh it."""
    cur.execute(
        "SELECT c.relkind, pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    found = cur.fetchone()
    if found is None or found[1] == CUT_ROLE or found[0] not in ("v", "m"):
        return
    kind = "MATERIALIZED VIEW" if found[0] == "m" else "VIEW"
    log.info("%s.%s: handing the %s to %s", schema, name, kind.lower(), CUT_ROLE)
    cur.execute(
        sql.SQL("ALTER {} {} OWNER TO {}").format(
            sql.SQL(kind), qualified(schema, name), sql.Identifier(CUT_ROLE)
        )
    )
