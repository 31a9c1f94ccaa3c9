"""Data cuts: views (or materialized views) over datasets, refreshed in dependency order.

A data cut's SQL is one file below ``include/sql/`` holding one read-only SELECT (checked by
``wharf.contract.sql_rules`` in ``wharf check`` and again here, before every refresh). Its inputs are
its ``depends_on`` list, or else the tables its SQL reads, found by the same parser.

The cut's DDL runs as the cut's own role (``SET LOCAL ROLE``; ``wharf.contract.roles``): a
NOLOGIN role that is no superuser and may read only this cut's inputs, so even SQL that got
past the parser cannot read files, run programs or read tables it was not given. The role owns
the cut's view: a view reads its tables with its owner's rights, so one owner role for every
cut would let each cut's view read every other cut's inputs (a PUBLIC cut could then show
a PROTECTED table if its SQL ever got past the parser), and refreshing a materialized view
needs its ownership. One role per cut keeps both exact.
"""

from __future__ import annotations

import logging
from graphlib import TopologicalSorter

from psycopg import sql

from wharf.connections import Connection, lock_ddl, qualified, relation_exists
from wharf.contract.dataset import DatasetSpec
from wharf.contract.sql_rules import check_cut, filters_rows
from wharf.errors import UnsafeSpecError, one_line
from wharf.publish import access
from wharf.publish.comments import comment
from wharf.specfiles import known_spec
from wharf.specfiles.estate import row_access_problem, sensitivity_problem
from wharf.specfiles.sql_files import cut_sql

log = logging.getLogger(__name__)


def inputs(cut: DatasetSpec) -> list[str]:
    """Dataset ids (``schema.table``) the data cut reads."""
    if cut.depends_on:
        return list(cut.depends_on)
    return check_cut(cut_sql(cut))


def known_inputs(cut: DatasetSpec) -> list[str] | None:
    """``inputs(cut)``, or None with a warning when its SQL is refused or gone (it changed
    since the YAMLs were loaded): for the callers that only look, never refresh; the cut's
    own DAG fails on it, naming the cause."""
    try:
        return inputs(cut)
    except (UnsafeSpecError, OSError) as err:
        log.warning("%s: inputs unknown: %s", cut.dataset_id, err)
        return None


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

    The SQL file is read and checked again (it may have changed since ``wharf check``), and
    so are the rules between the cut and its inputs' YAMLs (sensitivity, ``row_access``):
    ``UnsafeSpecError`` naming the dataset if it is refused."""
    assert cut.sql is not None
    try:
        text = cut_sql(cut)
        needs = check_cut(text, cut.depends_on)
    except (UnsafeSpecError, FileNotFoundError) as err:
        raise UnsafeSpecError(f"{cut.dataset_id}: sql: include/sql/{cut.sql}: {err}") from None
    needs = list(cut.depends_on) or needs
    problem = sensitivity_problem(cut, known_spec, needs)  # inputs' YAML may have changed
    if problem:
        raise UnsafeSpecError(f"{cut.dataset_id}: metadata.sensitivity: {problem}")
    with_rows = row_access_problem(cut, known_spec, needs)
    if with_rows:
        raise UnsafeSpecError(f"{cut.dataset_id}: {with_rows[1]}")
    missing = []
    with conn.cursor() as cur:
        for dataset_id in needs:
            schema, _, name = dataset_id.partition(".")
            if not relation_exists(cur, schema, name):
                missing.append(dataset_id)
        secured = access.row_secured(cur, [n for n in needs if n not in missing])
    if secured:  # row security made by hand, or a YAML's row_access not yet loaded away
        raise UnsafeSpecError(
            f"{cut.dataset_id}: the cut reads {', '.join(secured)}, whose table has row-level "
            "security: a data cut reads its inputs with its own role's rights (a materialized "
            "view would hold the rows that role may see, for every reader of the cut)"
        )
    if missing:
        log.info("%s: waiting for %s", cut.dataset_id, ", ".join(missing))
        return "waiting"
    run_ddl(conn, cut, text, needs)
    return "refreshed"


def run_ddl(conn: Connection, cut: DatasetSpec, text: str, needs: list[str]) -> None:
    """The cut's DDL as the cut's own role (``Roles.cut``), which holds USAGE and CREATE on
    the cut's schema and SELECT on each of ``needs`` (the cut's inputs), and nothing else;
    then the view's grants reconciled with its sensitivity, in the same transaction. ``text``
    must have passed ``check_cut`` (the database is the second lock, not the first).

    Raises ``UnsafeSpecError`` when the SQL reads or calls what the role may not, and
    ``access.AccessError`` when the role is missing (``wharf access apply`` creates it)."""
    import psycopg

    meta = cut.metadata
    roles = access.deployment_roles()
    role = roles.cut(cut.dataset_id)
    view = qualified(meta.domain, meta.dataset)
    body = sql.SQL(text.strip().rstrip(";"))  # one checked SELECT from include/sql
    try:
        # A transaction block even on an autocommit connection: SET LOCAL ROLE needs one.
        with conn.transaction(), conn.cursor() as cur:
            lock_ddl(cur)
            access.create_schema(cur, meta.domain, roles)
            access.require_owner(cur, cut, roles)
            access.cut_grants(cur, cut, needs, roles)
            cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
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
                # security_barrier where the SELECT filters rows: a reader's own function in
                # a WHERE would otherwise see the rows the view's filter drops.
                options = sql.SQL(" WITH (security_barrier)" if filters_rows(text) else "")
                cur.execute(
                    sql.SQL("CREATE OR REPLACE VIEW {}{} AS {}").format(view, options, body),
                    binary=True,
                )
                # A view's tables are read with its owner's rights, its functions with the
                # reader's: start a read as the role, so both are checked against it now.
                cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(view))
                comment(cur, cut, "VIEW")
            cur.execute("RESET ROLE")
            access.reconcile(cur, cut, roles)
    except psycopg.errors.InsufficientPrivilege as err:
        conn.rollback()
        raise UnsafeSpecError(
            f"{cut.dataset_id}: its SQL needs what the data-cut role {role} may not do "
            f"({one_line(err)}); a data cut reads only its inputs"
        ) from None
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
