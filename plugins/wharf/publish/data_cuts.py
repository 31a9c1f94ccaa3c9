"""Data cuts: views (or materialized views) over datasets, each created and refreshed by
its own DAG, which its inputs' Assets schedule (``wharf.orchestration.dag_factory``).

A plain view shows its inputs' rows as they are: it is created once and re-created only when
its definition (the SQL file, ``materialized``, the key) changes, which
``wharf.data_cut_definitions`` records by hash. A materialized view is refreshed on every run,
``CONCURRENTLY`` (readers keep reading) when its YAML gives a ``primary_key`` (its unique
index). A definition whose columns changed cannot be ``CREATE OR REPLACE``d: the view is
dropped and created again in one transaction, its grants and comments kept, and the data cuts
built on it re-created after it in dependency order; a view made by hand on it stops the
change, named, rather than being dropped.

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

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Literal

from psycopg import sql

from wharf.connections import Connection, Cursor, lock_ddl, qualified, relation_exists
from wharf.contract.dataset import DatasetSpec
from wharf.contract.sql_rules import check_cut, filters_rows
from wharf.errors import TerminalError, UnsafeSpecError, one_line
from wharf.ledger import changes
from wharf.publish import access
from wharf.publish.comments import comment
from wharf.publish.schema_changes import index_name
from wharf.specfiles import known_spec
from wharf.specfiles.estate import cut_inputs, row_access_problem, sensitivity_problem
from wharf.specfiles.sql_files import cut_sql

log = logging.getLogger(__name__)


# Dataset ids (``schema.table``) a data cut reads: its ``depends_on``, else its SQL's tables.
inputs = cut_inputs


def known_inputs(cut: DatasetSpec) -> list[str] | None:
    """``inputs(cut)``, or None with a warning when its SQL is refused or gone (it changed
    since the YAMLs were loaded): for the callers that only look, never refresh; the cut's
    own DAG fails on it, naming the cause."""
    try:
        return inputs(cut)
    except (UnsafeSpecError, OSError) as err:
        log.warning("%s: inputs unknown: %s", cut.dataset_id, err)
        return None


def dependents(dataset_id: str, specs: Sequence[DatasetSpec]) -> list[DatasetSpec]:
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


Outcome = Literal["created", "replaced", "unchanged", "refreshed", "waiting"]


@dataclass(frozen=True)
class Refreshed:
    """What one run did to a data cut: ``created`` (no view yet), ``replaced`` (its
    definition changed), ``unchanged`` (a plain view, nothing to do), ``refreshed`` (a
    materialized view's rows recomputed) or ``waiting`` (an input is not loaded yet), and the
    data cuts built on it that were re-created with it."""

    outcome: Outcome
    recreated: tuple[str, ...] = ()


def definition_hash(cut: DatasetSpec, text: str) -> str:
    """SHA-256 (hex) of what a cut's view is created from: its SQL text, whether it is
    materialized, and its key (the unique index of a materialized view)."""
    definition = {
        "sql": text.strip(),
        "materialized": cut.materialized,
        "key": list(cut.metadata.primary_key),
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


class DependentViewError(TerminalError):
    """A cut's columns changed and views Wharf does not manage are built on it."""


def refresh(
    conn: Connection, cut: DatasetSpec, run_id: str | None = None, specs: Sequence[DatasetSpec] = ()
) -> Refreshed:
    """Create, re-create or refresh one data cut (``Refreshed``), in one transaction;
    ``specs`` are the estate's YAMLs, whose cuts built on this one are re-created with it
    when it must be dropped. ``waiting`` when an input table does not exist yet.

    The SQL file is read and checked again (it may have changed since ``wharf check``), and
    so are the rules between the cut and its inputs' YAMLs (sensitivity, ``row_access``):
    ``UnsafeSpecError`` naming the dataset if it is refused; ``DependentViewError`` when its
    columns changed under views made by hand."""
    text, needs = checked_definition(cut)
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
        return Refreshed("waiting")
    return run_ddl(conn, cut, text, needs, run_id, specs)


def checked_definition(cut: DatasetSpec) -> tuple[str, list[str]]:
    """The cut's SQL text and inputs, once the SQL and the rules between the cut and its
    inputs' YAMLs pass. Raises ``UnsafeSpecError`` naming the dataset and the rule."""
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
    return text, needs


def run_ddl(
    conn: Connection,
    cut: DatasetSpec,
    text: str,
    needs: list[str],
    run_id: str | None = None,
    specs: Sequence[DatasetSpec] = (),
) -> Refreshed:
    """The cut's DDL as the cut's own role (``Roles.cut``), which holds USAGE and CREATE on
    the cut's schema and SELECT on each of ``needs`` (the cut's inputs), and nothing else;
    then the view's grants reconciled with its sensitivity, and its definition recorded, in
    the same transaction. ``text`` must have passed ``check_cut`` (the database is the second
    lock, not the first).

    Raises ``UnsafeSpecError`` when the SQL reads or calls what the role may not,
    ``DependentViewError`` (``refresh``) and ``access.AccessError`` when the role is missing
    (``wharf access apply`` creates it)."""
    import psycopg

    roles = access.deployment_roles()
    role = roles.cut(cut.dataset_id)
    digest = definition_hash(cut, text)
    try:
        # A transaction block even on an autocommit connection: SET LOCAL ROLE needs one.
        with conn.transaction(), conn.cursor() as cur:
            lock_ddl(cur)
            access.create_schema(cur, cut.metadata.domain, roles)
            access.require_owner(cur, cut, roles)
            access.cut_grants(cur, cut, needs, roles)
            found = access.relation(cur, cut.metadata.domain, cut.metadata.dataset)
            wanted_kind = "m" if cut.materialized else "v"
            if found is None:
                _create(cur, cut, text, role)
                result = Refreshed("created")
            elif found[0] == wanted_kind and _recorded_hash(cur, cut) == digest:
                _keep(cur, cut, role)
                result = Refreshed("refreshed" if cut.materialized else "unchanged")
            else:
                recreated = _replace(cur, cut, text, role, specs, existing_kind=found[0])
                result = Refreshed("replaced", recreated)
            access.reconcile(cur, cut, roles)
            _record_definition(cur, cut, digest, run_id)
            if cut.materialized and run_id is not None:  # its rows are its own: a change log
                changes.record_refresh(cur, cut, run_id)
    except psycopg.errors.InsufficientPrivilege as err:
        raise UnsafeSpecError(
            f"{cut.dataset_id}: its SQL needs what the data-cut role {role} may not do "
            f"({one_line(err)}); a data cut reads only its inputs"
        ) from None
    return result


def _as_role(cur: Cursor, role: str) -> None:
    cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))


def _create(cur: Cursor, cut: DatasetSpec, text: str, role: str) -> None:
    """Create the cut's view as its role (and fill a materialized one), with its comments."""
    view = qualified(cut.metadata.domain, cut.metadata.dataset)
    body = sql.SQL(text.strip().rstrip(";"))  # one checked SELECT from include/sql
    _as_role(cur, role)
    # binary=True: the extended protocol, which runs exactly one statement.
    if cut.materialized:
        cur.execute(
            sql.SQL("CREATE MATERIALIZED VIEW {} AS {} WITH NO DATA").format(view, body),
            binary=True,
        )
        key = cut.metadata.primary_key
        if key:
            cur.execute(
                sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
                    sql.Identifier(index_name(cut, "key", key)),
                    view,
                    sql.SQL(", ").join(sql.Identifier(k) for k in key),
                )
            )
        # The first fill cannot be CONCURRENTLY: that needs a populated view.
        cur.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(view))
        comment(cur, cut, "MATERIALIZED VIEW")
    else:
        _create_or_replace_view(cur, cut, text)
        comment(cur, cut, "VIEW")
    cur.execute("RESET ROLE")


def _create_or_replace_view(cur: Cursor, cut: DatasetSpec, text: str) -> None:
    view = qualified(cut.metadata.domain, cut.metadata.dataset)
    body = sql.SQL(text.strip().rstrip(";"))  # one checked SELECT from include/sql
    # security_barrier where the SELECT filters rows: a reader's own function in a WHERE
    # would otherwise see the rows the view's filter drops.
    options = sql.SQL(" WITH (security_barrier)" if filters_rows(text) else "")
    cur.execute(
        sql.SQL("CREATE OR REPLACE VIEW {}{} AS {}").format(view, options, body), binary=True
    )
    # A view's tables are read with its owner's rights, its functions with the reader's:
    # start a read as the role, so both are checked against it now.
    cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(view))


def _keep(cur: Cursor, cut: DatasetSpec, role: str) -> None:
    """An unchanged definition: a plain view's comments brought up to the YAML; a
    materialized view's rows recomputed, CONCURRENTLY when it has its unique key."""
    view = qualified(cut.metadata.domain, cut.metadata.dataset)
    _as_role(cur, role)
    if cut.materialized:
        concurrently = sql.SQL(" CONCURRENTLY" if cut.metadata.primary_key else "")
        cur.execute(sql.SQL("REFRESH MATERIALIZED VIEW{} {}").format(concurrently, view))
        comment(cur, cut, "MATERIALIZED VIEW")
    else:
        comment(cur, cut, "VIEW")
    cur.execute("RESET ROLE")


def _replace(
    cur: Cursor,
    cut: DatasetSpec,
    text: str,
    role: str,
    specs: Sequence[DatasetSpec],
    existing_kind: str,
) -> tuple[str, ...]:
    """Bring the view to a changed definition; the ids of the cuts re-created after it.

    A plain view whose columns only grow is ``CREATE OR REPLACE``d in place. Otherwise
    (columns dropped, renamed or retyped; a materialized view; plain <-> materialized) it is
    dropped and created again, keeping its grants and comments, and the Wharf cuts built on
    it, which the drop takes with it, are created again in dependency order."""
    import psycopg

    if existing_kind == "v" and not cut.materialized:
        try:
            with cur.connection.transaction():  # a savepoint: a refused REPLACE is undone
                _as_role(cur, role)
                _create_or_replace_view(cur, cut, text)
                comment(cur, cut, "VIEW")
                cur.execute("RESET ROLE")
            return ()
        except psycopg.errors.InvalidTableDefinition as err:
            log.info("%s: re-created (%s)", cut.dataset_id, one_line(err))
    built_on = _built_on(cur, cut, specs)
    kept = {c.dataset_id: _saved(cur, c) for c in [cut, *built_on]}
    keyword = "MATERIALIZED VIEW" if existing_kind == "m" else "VIEW"
    view = qualified(cut.metadata.domain, cut.metadata.dataset)
    cur.execute(sql.SQL("DROP {} {} CASCADE").format(sql.SQL(keyword), view))
    roles = access.deployment_roles()
    for rebuilt in [cut, *built_on]:
        rebuilt_text, rebuilt_needs = (
            (text, None) if rebuilt is cut else checked_definition(rebuilt)
        )
        if rebuilt_needs is not None:
            access.cut_grants(cur, rebuilt, rebuilt_needs, roles)
        _create(cur, rebuilt, rebuilt_text, roles.cut(rebuilt.dataset_id))
        kept[rebuilt.dataset_id].restore(cur, rebuilt)
        comment(cur, rebuilt, "MATERIALIZED VIEW" if rebuilt.materialized else "VIEW")
        if rebuilt is not cut:
            access.reconcile(cur, rebuilt, roles)
    return tuple(c.dataset_id for c in built_on)


def _built_on(cur: Cursor, cut: DatasetSpec, specs: Sequence[DatasetSpec]) -> list[DatasetSpec]:
    """The Wharf data cuts whose views depend on the cut's view, directly or not, inputs
    first. Raises ``DependentViewError`` naming any dependent view no YAML describes."""
    cur.execute(
        """WITH RECURSIVE built_on(oid) AS (
               SELECT DISTINCT r.ev_class FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
               WHERE d.refobjid = %(view)s::regclass AND r.ev_class <> %(view)s::regclass
               UNION
               SELECT r.ev_class FROM built_on b
               JOIN pg_catalog.pg_depend d ON d.refobjid = b.oid
               JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
               WHERE r.ev_class <> b.oid)
           SELECT n.nspname || '.' || c.relname FROM built_on b
           JOIN pg_catalog.pg_class c ON c.oid = b.oid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace""",
        {"view": qualified(cut.metadata.domain, cut.metadata.dataset).as_string(cur)},
    )
    found = {row[0] for row in cur.fetchall()}
    cuts = {s.dataset_id: s for s in specs if s.metadata.kind == "data_cut"}
    foreign = sorted(found - set(cuts))
    if foreign:
        raise DependentViewError(
            f"{cut.dataset_id}: its columns changed, so its view must be dropped and created "
            f"again, but views no Wharf YAML describes are built on it: {', '.join(foreign)}; "
            "drop or change them first (Wharf never drops a view it does not manage)"
        )
    return [c for c in dependents(cut.dataset_id, specs) if c.dataset_id in found]


@dataclass(frozen=True)
class _Kept:
    """A view's grants and comments (the view's under ``None``, each column's under its
    name), saved before a drop and put back after the create where the column still is."""

    grants: list[sql.Composed]
    comments: dict[str | None, str]

    def restore(self, cur: Cursor, cut: DatasetSpec) -> None:
        view = qualified(cut.metadata.domain, cut.metadata.dataset)
        for statement in self.grants:
            cur.execute(statement)
        columns = set(_columns(cur, view))
        keyword = sql.SQL("MATERIALIZED VIEW" if cut.materialized else "VIEW")
        for column, text in self.comments.items():
            if column is None:
                cur.execute(
                    sql.SQL("COMMENT ON {} {} IS {}").format(keyword, view, sql.Literal(text))
                )
            elif column in columns:
                cur.execute(
                    sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                        view, sql.Identifier(column), sql.Literal(text)
                    )
                )


def _saved(cur: Cursor, cut: DatasetSpec) -> _Kept:
    view = qualified(cut.metadata.domain, cut.metadata.dataset).as_string(cur)
    cur.execute(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN NULL"
        " ELSE pg_get_userbyid(a.grantee) END"
        " FROM pg_catalog.pg_class c, aclexplode(c.relacl) a"
        " WHERE c.oid = %s::regclass AND a.grantee <> c.relowner",
        (view,),
    )
    target = qualified(cut.metadata.domain, cut.metadata.dataset)
    grants = [
        sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(privilege), target, sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC")
        )
        for privilege, grantee in cur.fetchall()
    ]
    cur.execute(
        "SELECT a.attname, d.description FROM pg_catalog.pg_description d"
        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid"
        " WHERE d.objoid = %s::regclass AND d.classoid = 'pg_catalog.pg_class'::regclass",
        (view,),
    )
    return _Kept(grants, dict(cur.fetchall()))


def _columns(cur: Cursor, view: sql.Composable) -> list[str]:
    cur.execute(
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = %s::regclass"
        " AND attnum > 0 AND NOT attisdropped",
        (view.as_string(cur),),
    )
    return [row[0] for row in cur.fetchall()]


def _recorded_hash(cur: Cursor, cut: DatasetSpec) -> str | None:
    cur.execute(
        "SELECT sha256 FROM wharf.data_cut_definitions WHERE dataset_id = %s", (cut.dataset_id,)
    )
    row = cur.fetchone()
    return None if row is None else str(row[0])


def _record_definition(cur: Cursor, cut: DatasetSpec, digest: str, run_id: str | None) -> None:
    cur.execute(
        """INSERT INTO wharf.data_cut_definitions (dataset_id, sha256, materialized, run_id)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (dataset_id) DO UPDATE SET sha256 = EXCLUDED.sha256,
               materialized = EXCLUDED.materialized, run_id = EXCLUDED.run_id,
               defined_at = now()
           WHERE wharf.data_cut_definitions.sha256 <> EXCLUDED.sha256""",
        (cut.dataset_id, digest, cut.materialized, run_id),
    )
