"""Row-level security for a dataset whose YAML declares ``row_access``: enabled and forced,
with exactly Wharf's two policies; without it, none."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import sql

from wharf.connections import Cursor, one_row, qualified
from wharf.contract.dataset import DatasetSpec
from wharf.contract.roles import Roles
from wharf.publish.access.catalog import Changes, relation

log = logging.getLogger(__name__)


ROW_POLICY = "wharf_row_access"
LOADER_POLICY = "wharf_loader"


@dataclass(frozen=True)
class _Policy:
    """One policy as ``pg_policies`` shows it: command, permissive, roles (``public`` for
    PUBLIC), and its USING and WITH CHECK expressions as PostgreSQL deparses them."""

    command: str
    permissive: bool
    roles: tuple[str, ...]
    qual: str | None
    with_check: str | None


def _policies(cur: Cursor, schema: str, name: str) -> dict[str, _Policy]:
    cur.execute(
        "SELECT policyname, cmd, permissive = 'PERMISSIVE', roles::text[], qual, with_check"
        " FROM pg_catalog.pg_policies WHERE schemaname = %s AND tablename = %s",
        (schema, name),
    )
    return {
        row[0]: _Policy(row[1], row[2], tuple(sorted(row[3])), row[4], row[5])
        for row in cur.fetchall()
    }


def _row_security(cur: Cursor, schema: str, name: str) -> tuple[bool, bool]:
    """(row-level security enabled, forced) of the table ``schema.name``, which exists."""
    cur.execute(
        "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    enabled, forced = one_row(cur)
    return bool(enabled), bool(forced)


def row_security_forced(cur: Cursor, spec: DatasetSpec) -> bool:
    """Whether the dataset's table (which exists) forces row-level security on its owner,
    so the loader cannot ``COPY`` into it (PostgreSQL refuses COPY FROM under row
    security: the load copies into a temporary table and INSERTs from it)."""
    return _row_security(cur, spec.metadata.domain, spec.metadata.dataset)[1]


def _row_qual(spec: DatasetSpec) -> sql.Composed:
    """The USING expression of ``wharf_row_access``: the row's column, as text, is the rest
    of the name of a role ``<role_prefix>...`` the reader is a member of (a value with no such
    role, or NULL, shows its row to no one). The roles are read once per query, as a hashed
    subplan: 1M rows counted in 0.11 s, against 0.2 s (and a cost estimate 500 times too high,
    which turns on JIT) for ``EXISTS (... WHERE rolname = prefix || column)`` per row.
    ``pg_has_role`` is given the role's oid: by name it raises for a missing role."""
    assert spec.row_access is not None
    prefix = spec.row_access.role_prefix
    return sql.SQL(
        "{}::text IN (SELECT substr(r.rolname, {}) FROM pg_catalog.pg_roles r"
        " WHERE starts_with(r.rolname, {}) AND pg_catalog.pg_has_role(current_user, r.oid,"
        " 'MEMBER'))"
    ).format(
        sql.Identifier(spec.row_access.column), sql.Literal(len(prefix) + 1), sql.Literal(prefix)
    )


def _row_policy(spec: DatasetSpec, target: sql.Composable) -> sql.Composed:
    return sql.SQL("CREATE POLICY {} ON {} AS PERMISSIVE FOR SELECT TO PUBLIC USING ({})").format(
        sql.Identifier(ROW_POLICY), target, _row_qual(spec)
    )


def _wanted_row_qual(cur: Cursor, spec: DatasetSpec) -> str | None:
    """``wharf_row_access``'s USING expression as PostgreSQL deparses it for this table
    (which depends on the column's type and the server's version), by creating the policy
    on a temporary copy of the table's columns, which no other session sees and which
    locks nothing of the table's. None when the table has no such column yet."""
    assert spec.row_access is not None
    meta = spec.metadata
    table = qualified(meta.domain, meta.dataset)
    cur.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attname = %s AND attnum > 0 AND NOT attisdropped)",
        (table.as_string(cur), spec.row_access.column),
    )
    if not one_row(cur)[0]:
        return None
    copy = sql.SQL("pg_temp.{}").format(sql.Identifier(meta.dataset))
    # (An error aborts the caller's transaction, and the temporary table goes with it.)
    cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {})").format(copy, table))
    cur.execute(_row_policy(spec, copy))
    cur.execute(
        "SELECT qual FROM pg_catalog.pg_policies WHERE schemaname ="
        " (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = pg_my_temp_schema())"
        " AND tablename = %s AND policyname = %s",
        (meta.dataset, ROW_POLICY),
    )
    qual = str(one_row(cur)[0])
    cur.execute(sql.SQL("DROP TABLE {}").format(copy))
    return qual


def row_access_changes(cur: Cursor, spec: DatasetSpec, roles: Roles) -> Changes:
    """The statements that make the dataset's table's row-level security what its
    ``row_access`` says, compared with the catalog (nothing to do when it already is):

    - declared: row security enabled and forced (the owner role is bound too); the policy
      ``wharf_row_access`` (SELECT, to PUBLIC, ``_row_qual``) created, or replaced when its
      column or prefix changed; ``wharf_loader`` (ALL, to the loader role, every row) so a
      load still reads and writes every row;
    - not declared: both policies dropped and row security disabled, unless a policy made by
      hand remains: then only ``wharf_row_access`` is dropped, and row security stays
      (disabling it would show every row), as does the loader's policy.

    A policy made by hand is left alone, and reported. Nothing for a view or a missing
    table."""
    meta = spec.metadata
    changes = Changes()
    found = relation(cur, meta.domain, meta.dataset)
    if found is None or found[0] not in ("r", "p"):
        return changes
    target = qualified(meta.domain, meta.dataset)
    enabled, forced = _row_security(cur, meta.domain, meta.dataset)
    policies = _policies(cur, meta.domain, meta.dataset)
    by_hand = sorted(set(policies) - {ROW_POLICY, LOADER_POLICY})
    for name in by_hand:
        changes.hand_made.append(
            f"{spec.dataset_id}: row security policy {name} was made by hand: left alone"
        )
    if spec.row_access is None:
        # With a policy made by hand row security stays, and the loader keeps its policy.
        dropped = {ROW_POLICY} if by_hand else {ROW_POLICY, LOADER_POLICY}
        for name in sorted(dropped & set(policies)):
            changes.add(
                f"{spec.dataset_id}: drop policy {name} (no row_access)",
                sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(name), target),
            )
        if (enabled or forced) and not by_hand:
            changes.add(
                f"{spec.dataset_id}: disable row-level security",
                sql.SQL(
                    "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY"
                ).format(target),
            )
        return changes
    changes.extend(_row_policy_changes(cur, spec, policies.get(ROW_POLICY)))
    if not (enabled and forced):
        changes.add(
            f"{spec.dataset_id}: enable and force row-level security",
            sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY").format(
                target
            ),
        )
    loader = _Policy("ALL", True, (roles.loader,), "true", "true")
    if policies.get(LOADER_POLICY) != loader:
        if LOADER_POLICY in policies:
            changes.add(
                f"{spec.dataset_id}: drop policy {LOADER_POLICY} (changed)",
                sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(LOADER_POLICY), target),
            )
        changes.add(
            f"{spec.dataset_id}: policy {LOADER_POLICY}: {roles.loader} reads and writes every row",
            sql.SQL(
                "CREATE POLICY {} ON {} AS PERMISSIVE FOR ALL TO {} USING (true) WITH CHECK (true)"
            ).format(sql.Identifier(LOADER_POLICY), target, sql.Identifier(roles.loader)),
        )
    return changes


def _row_policy_changes(cur: Cursor, spec: DatasetSpec, found: _Policy | None) -> Changes:
    """Create ``wharf_row_access``, or replace it when it differs from the YAML's."""
    assert spec.row_access is not None
    changes = Changes()
    meta, row_access = spec.metadata, spec.row_access
    target = qualified(meta.domain, meta.dataset)
    wanted_qual = _wanted_row_qual(cur, spec)
    if wanted_qual is None:  # only `wharf access plan` can see this: a load adds it first
        changes.hand_made.append(
            f"{spec.dataset_id}: row_access.column {row_access.column!r} is not in the table "
            "yet: readers see no row until its next load adds it"
        )
        return changes
    wanted = _Policy("SELECT", True, ("public",), wanted_qual, None)
    if found == wanted:
        return changes
    if found is not None:
        changes.add(
            f"{spec.dataset_id}: drop policy {ROW_POLICY} (row_access changed)",
            sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(ROW_POLICY), target),
        )
    changes.add(
        f"{spec.dataset_id}: policy {ROW_POLICY}: a row is read by members of "
        f"{row_access.role_prefix}<{row_access.column}>",
        _row_policy(spec, target),
    )
    return changes


def release_row_policy(cur: Cursor, spec: DatasetSpec, columns: Iterable[str]) -> None:
    """Drop ``wharf_row_access`` when it reads one of ``columns`` (a schema change is about
    to remove them or change their type, which PostgreSQL refuses under a policy that reads
    them); ``reconcile`` creates it again, in the same transaction, over the new columns."""
    changing = set(columns)
    if not changing:
        return
    meta = spec.metadata
    cur.execute(
        "SELECT a.attname FROM pg_catalog.pg_policy p"
        " JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::regclass"
        " AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass"
        " AND d.refobjid = p.polrelid AND d.refobjsubid > 0"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = p.polrelid AND a.attnum = d.refobjsubid"
        " WHERE p.polrelid = to_regclass(%s) AND p.polname = %s",
        (qualified(meta.domain, meta.dataset).as_string(cur), ROW_POLICY),
    )
    if changing & {r[0] for r in cur.fetchall()}:
        log.info("%s: policy %s dropped for a schema change", spec.dataset_id, ROW_POLICY)
        cur.execute(
            sql.SQL("DROP POLICY {} ON {}").format(
                sql.Identifier(ROW_POLICY), qualified(meta.domain, meta.dataset)
            )
        )


def row_secured(cur: Cursor, dataset_ids: Iterable[str]) -> list[str]:
    """The ones of ``dataset_ids`` whose table has row-level security enabled (a data cut
    may not read them, whatever their YAML says now)."""
    secured = []
    for dataset_id in dataset_ids:
        schema, _, name = dataset_id.partition(".")
        cur.execute(
            "SELECT c.relrowsecurity FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (schema, name),
        )
        row = cur.fetchone()
        if row is not None and row[0]:
            secured.append(dataset_id)
    return secured
