"""Access by sensitivity: Wharf's roles, and the grants the YAML implies, reconciled.

The role model is ``wharf.contract.roles``. What is Wharf's to manage, and so reconciled to
exactly what the YAML implies (a grant it no longer implies is revoked):

- on each dataset table or data-cut view: its owner (the owner role; a cut's own role), and
  the SELECT of the reader and cut roles (``Roles.managed``); a grant to any other role was
  made by hand and is left alone, and reported;
- on each domain schema: USAGE for the reader roles of its datasets, USAGE and CREATE for its
  cuts' roles;
- on Wharf's own schema: the admin role owns it and every table in it; the loader may INSERT
  and SELECT ``wharf.audit`` and nothing else there, write the other tables (not
  ``schema_migrations``), and the operator role reads them all;
- on a dataset table whose YAML declares ``row_access``: row-level security, enabled and
  forced, and Wharf's two policies (``row_access_changes``); without it, none.

Two callers, one compiler: a load or cut refresh runs, as the loader and in its own
transaction, the changes of its relation (``reconcile``, ``cut_grants``); ``wharf access plan``
prints and ``wharf access apply`` runs, as an admin, the changes of the whole estate
(``estate_changes``), creating the roles a load cannot (a new domain's protected role, a new
cut's role). A load whose role is missing fails at once naming it and that command.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg import sql

from wharf import settings
from wharf.connections import Cursor, lock_ddl, one_row, qualified
from wharf.contract.dataset import DatasetSpec
from wharf.contract.roles import Roles
from wharf.errors import TerminalError

log = logging.getLogger(__name__)

APPLY = "`wharf access apply` (run by an admin of the datasets database)"

# Wharf's own tables the loader writes (every table of the schema but these two).
_AUDIT = "audit"
_READ_ONLY = ("schema_migrations",)
# Attributes no Wharf role may have: each would let it step around every grant (the queries
# below test rolsuper, rolcreaterole, rolcreatedb, rolbypassrls and rolreplication).


class AccessError(TerminalError):
    """A role is missing or too powerful, or an object is not owned as Wharf's model says."""


def deployment_roles() -> Roles:
    """The roles of this deployment (``WHARF_ROLE_PREFIX``)."""
    return Roles(settings.role_prefix())


@dataclass
class Changes:
    """What reconciling found: the statements to run, each with its description, the grants
    made by hand that are left alone (as text), and the protected and cut roles of this
    deployment no YAML needs any more (never dropped by Wharf: grants to people may hang on
    them)."""

    statements: list[tuple[str, sql.Composed]] = field(default_factory=list)
    hand_made: list[str] = field(default_factory=list)
    unused_roles: list[str] = field(default_factory=list)

    def add(self, text: str, statement: sql.Composed) -> None:
        self.statements.append((text, statement))

    def extend(self, other: Changes) -> None:
        self.statements += other.statements
        self.hand_made += other.hand_made

    def run(self, cur: Cursor) -> None:
        for text, statement in self.statements:
            log.info("access: %s", text)
            cur.execute(statement)
        for text in self.hand_made:
            log.warning("access: %s", text)


# --- reading the catalog ---------------------------------------------------------------------


def role_exists(cur: Cursor, role: str) -> bool:
    cur.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %s)", (role,))
    return bool(one_row(cur)[0])


# The ACL of one relation (schema, name) or one schema (name), exploded.
_RELATION_ACL = (
    "WITH o AS (SELECT c.relacl AS acl, c.relowner AS owner FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %s AND c.relname = %s)"
    " SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type FROM o, aclexplode(o.acl) a"
    " LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee WHERE a.grantee <> o.owner"
)
_SCHEMA_ACL = (
    "WITH o AS (SELECT nspacl AS acl, nspowner AS owner FROM pg_catalog.pg_namespace"
    " WHERE nspname = %s)"
    " SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type FROM o, aclexplode(o.acl) a"
    " LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee WHERE a.grantee <> o.owner"
)


def _acl(cur: Cursor, query: str, params: tuple[object, ...]) -> dict[str, set[str]]:
    """Grantee -> privileges of one ACL (``_RELATION_ACL`` or ``_SCHEMA_ACL``); the owner's
    implicit rights are not in it."""
    cur.execute(query, params)
    found: dict[str, set[str]] = {}
    for grantee, privilege in cur.fetchall():
        found.setdefault(grantee, set()).add(privilege)
    return found


def _relation(cur: Cursor, schema: str, name: str) -> tuple[str, str] | None:
    """(relkind, owner) of ``schema.name``, None when it does not exist."""
    cur.execute(
        "SELECT c.relkind, pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def _relation_acl(cur: Cursor, schema: str, name: str) -> dict[str, set[str]]:
    return _acl(cur, _RELATION_ACL, (schema, name))


def _schema_acl(cur: Cursor, schema: str) -> dict[str, set[str]]:
    return _acl(cur, _SCHEMA_ACL, (schema,))


_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


def grants_state(cur: Cursor, spec: DatasetSpec, roles: Roles) -> str:
    """How the dataset's relation's grants compare with its YAML, for ``wharf catalogue``:
    ``"not loaded"`` (no relation yet), ``"exact"``, or what differs (``"missing SELECT for
    wharf_private"``, ``"extra: wharf_public"``)."""
    meta = spec.metadata
    if _relation(cur, meta.domain, meta.dataset) is None:
        return "not loaded"
    reader = roles.reader(meta)
    grants = _relation_acl(cur, meta.domain, meta.dataset)
    problems = []
    if "SELECT" not in grants.get(reader, set()):
        problems.append(f"missing SELECT for {reader}")
    extra = sorted(
        g
        for g in grants
        if g != reader and roles.managed(g) and not g.startswith(f"{roles.prefix}_cut_")
    )
    if extra:
        problems.append(f"extra: {', '.join(extra)}")
    return "; ".join(problems) or "exact"


# --- what a load or refresh runs, as the loader ------------------------------------------------


def require_loader(cur: Cursor, roles: Roles) -> None:
    """Raise ``AccessError`` unless the session's user is a Wharf loader: not a superuser
    (nor able to create roles or bypass row security), and a member of the owner role. Run
    before every task's first write (one SELECT)."""
    cur.execute(
        "SELECT r.rolname, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls"
        " OR r.rolreplication,"
        " EXISTS (SELECT FROM pg_catalog.pg_roles o WHERE o.rolname = %s),"
        " pg_has_role(r.oid, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s), 'USAGE')"
        " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
        (roles.owner, roles.owner),
    )
    user, powerful, owner_exists, member = one_row(cur)
    if powerful:
        raise AccessError(
            f"the datasets connection {settings.datasets_conn_id()!r} logs in as {user}, a "
            f"superuser or a role that can create roles, databases or bypass row security: "
            f'tasks run as the loader role {roles.loader}, which cannot (README, "Access '
            'control")'
        )
    if not owner_exists or not member:
        raise AccessError(
            f"the datasets connection logs in as {user}, which is not a member of the owner "
            f"role {roles.owner}: run `wharf db upgrade` as an admin, and log in as "
            f"{roles.loader}"
        )


def require_role(cur: Cursor, role: str, dataset_id: str) -> None:
    """Raise ``AccessError`` naming ``role`` and ``wharf access apply`` when it is missing."""
    if not role_exists(cur, role):
        raise AccessError(f"{dataset_id}: the role {role} does not exist: create it with {APPLY}")


def create_schema(cur: Cursor, schema: str, roles: Roles) -> None:
    """``CREATE SCHEMA IF NOT EXISTS`` owned by the owner role. Raises ``AccessError`` when
    the schema exists with another owner (made before Wharf's roles: an admin hands it over)."""
    cur.execute(
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(roles.owner)
        )
    )
    cur.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = %s",
        (schema,),
    )
    owner = one_row(cur)[0]
    if owner != roles.owner:
        raise AccessError(
            f"schema {schema} is owned by {owner}, not {roles.owner}: hand it over with {APPLY}"
        )


def hand_to_owner(cur: Cursor, spec: DatasetSpec, roles: Roles) -> None:
    """Give a table the load just created to the owner role (the loader created it)."""
    cur.execute(
        sql.SQL("ALTER TABLE {} OWNER TO {}").format(
            qualified(spec.metadata.domain, spec.metadata.dataset), sql.Identifier(roles.owner)
        )
    )


def require_owner(cur: Cursor, spec: DatasetSpec, roles: Roles) -> None:
    """Raise ``AccessError`` when the dataset's relation exists and is not owned by its Wharf
    owner (a table made before roles existed: the loader could not change it)."""
    found = _relation(cur, spec.metadata.domain, spec.metadata.dataset)
    wanted = _owner_of(spec, roles)
    if found is not None and found[1] != wanted:
        raise AccessError(
            f"{spec.dataset_id}: the {_KINDS.get(found[0], 'TABLE').lower()} is owned by "
            f"{found[1]}, not {wanted}: hand it over with {APPLY}"
        )


def _owner_of(spec: DatasetSpec, roles: Roles) -> str:
    return roles.cut(spec.dataset_id) if spec.metadata.kind == "data_cut" else roles.owner


def reconcile(cur: Cursor, spec: DatasetSpec, roles: Roles) -> Changes:
    """Bring the grants of the dataset's table or view, and its row-level security, to what
    its YAML implies, in the caller's transaction. Raises ``AccessError`` when its reader
    role is missing or the relation is not owned by its Wharf owner (both are fixed by
    ``wharf access apply``).

    When something must change, it takes the DDL lock (``connections.lock_ddl``) and plans
    again: two transactions granting on one table or schema at once would fail with "tuple
    concurrently updated". The lock is held until the caller's commit, so call this last."""
    require_role(cur, roles.reader(spec.metadata), spec.dataset_id)
    changes = relation_changes(cur, spec, roles, adopt=False)
    if changes.statements:
        lock_ddl(cur)
        changes = relation_changes(cur, spec, roles, adopt=False)  # as others left it
    changes.run(cur)
    return changes


def relation_changes(cur: Cursor, spec: DatasetSpec, roles: Roles, adopt: bool) -> Changes:
    """The statements that make a dataset's relation (which must exist) owned, granted and
    row-secured (``row_access_changes``) as the YAML implies. With ``adopt`` (an admin), a
    wrong owner is changed; without, it raises ``AccessError``."""
    meta = spec.metadata
    changes = Changes()
    found = _relation(cur, meta.domain, meta.dataset)
    if found is None:
        return changes
    kind, owner = _KINDS.get(found[0], "TABLE"), found[1]
    wanted_owner = _owner_of(spec, roles)
    target = qualified(meta.domain, meta.dataset)
    if not adopt:
        require_owner(cur, spec, roles)
    elif owner != wanted_owner:
        changes.add(
            f"{spec.dataset_id}: owner {owner} -> {wanted_owner}",
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(kind), target, sql.Identifier(wanted_owner)
            ),
        )
    reader = roles.reader(meta)
    grants = _relation_acl(cur, meta.domain, meta.dataset)
    for grantee, privileges in sorted(grants.items()):
        if grantee.startswith(f"{roles.prefix}_cut_"):
            continue  # a cut's input: the cut's own refresh reconciles it (``cut_grants``)
        extra = privileges - ({"SELECT"} if grantee == reader else set())
        if not roles.managed(grantee):
            changes.hand_made.append(
                f"{spec.dataset_id}: {', '.join(sorted(privileges))} granted by hand to "
                f"{grantee}, which Wharf does not manage: left alone"
            )
        elif extra:
            changes.add(
                f"{spec.dataset_id}: revoke {', '.join(sorted(extra))} from {grantee}",
                sql.SQL("REVOKE {} ON {} FROM {}").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in sorted(extra)),
                    target,
                    sql.Identifier(grantee),
                ),
            )
    if "SELECT" not in grants.get(reader, set()):
        changes.add(
            f"{spec.dataset_id}: grant SELECT to {reader}",
            sql.SQL("GRANT SELECT ON {} TO {}").format(target, sql.Identifier(reader)),
        )
    changes.extend(_schema_grants(cur, meta.domain, reader, ("USAGE",)))
    changes.extend(row_access_changes(cur, spec, roles))
    return changes


def _schema_grants(cur: Cursor, schema: str, role: str, privileges: Iterable[str]) -> Changes:
    """GRANT each of ``privileges`` on ``schema`` to ``role`` it does not hold directly
    (checked first: two loads granting at once would race on the schema's catalog row)."""
    changes = Changes()
    held = _schema_acl(cur, schema).get(role, set())
    for privilege in privileges:
        if privilege not in held:
            changes.add(
                f"schema {schema}: grant {privilege} to {role}",
                sql.SQL("GRANT {} ON SCHEMA {} TO {}").format(
                    sql.SQL(privilege), sql.Identifier(schema), sql.Identifier(role)
                ),
            )
    return changes


def cut_grants(cur: Cursor, cut: DatasetSpec, needs: list[str], roles: Roles) -> Changes:
    """Give the cut's own role exactly what its DDL needs (``cut_input_changes``), in the
    caller's transaction. Raises ``AccessError`` when the role is missing or the session's
    user cannot ``SET ROLE`` to it."""
    role = roles.cut(cut.dataset_id)
    require_role(cur, role, cut.dataset_id)
    cur.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (role,))
    if not one_row(cur)[0]:
        raise AccessError(
            f"{cut.dataset_id}: the loader is not a member of the cut's role {role}: "
            f"grant it with {APPLY}"
        )
    changes = cut_input_changes(cur, cut, needs, roles)
    changes.run(cur)
    return changes


def cut_input_changes(cur: Cursor, cut: DatasetSpec, needs: list[str], roles: Roles) -> Changes:
    """USAGE and CREATE on the cut's schema for its role, USAGE on each input's schema and
    SELECT on each input (``needs``: dataset ids of relations that exist), and a REVOKE of its
    SELECT on any relation it no longer reads."""
    role = roles.cut(cut.dataset_id)
    changes = _schema_grants(cur, cut.metadata.domain, role, ("USAGE", "CREATE"))
    wanted = set(needs)
    for dataset_id in sorted(wanted):
        schema, _, name = dataset_id.partition(".")
        changes.extend(_schema_grants(cur, schema, role, ("USAGE",)))
        if "SELECT" not in _relation_acl(cur, schema, name).get(role, set()):
            changes.add(
                f"{cut.dataset_id}: its role {role} may read {dataset_id}",
                sql.SQL("GRANT SELECT ON {} TO {}").format(
                    qualified(schema, name), sql.Identifier(role)
                ),
            )
    cur.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a"
        " WHERE a.grantee = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)"
        " AND c.relowner <> a.grantee AND a.privilege_type = 'SELECT'",
        (role,),
    )
    for schema, name in cur.fetchall():
        if f"{schema}.{name}" not in wanted:
            changes.add(
                f"{cut.dataset_id}: its role {role} no longer reads {schema}.{name}",
                sql.SQL("REVOKE SELECT ON {} FROM {}").format(
                    qualified(schema, name), sql.Identifier(role)
                ),
            )
    return changes


# --- row-level security (a dataset's row_access) ----------------------------------------------

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
    found = _relation(cur, meta.domain, meta.dataset)
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


# --- what an admin runs: wharf db upgrade, wharf access plan | apply ---------------------------


def role_changes(cur: Cursor, roles: Roles, extra: Iterable[str] = ()) -> Changes:
    """Create the deployment's fixed roles and ``extra`` (protected and cut roles) where
    missing, with their memberships: the loader in the owner role and in every cut role, the
    private role in the public one, and an admin who is no superuser in the roles it hands
    objects to. Raises ``AccessError`` for an existing role of one of
    those names that is a superuser or may create roles or databases, bypass row security or
    replicate: Wharf will not hand it its objects."""
    changes = Changes()
    for role in (*roles.fixed, *sorted(set(extra))):
        _refuse_powerful(cur, role)
        if not role_exists(cur, role):
            login = "LOGIN" if role == roles.loader else "NOLOGIN"
            changes.add(
                f"create role {role}",
                sql.SQL(
                    "CREATE ROLE {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
                    " NOREPLICATION"
                ).format(sql.Identifier(role), sql.SQL(login)),
            )
    cuts = [r for r in sorted(set(extra)) if r.startswith(f"{roles.prefix}_cut_")]
    memberships = [(roles.owner, roles.loader), (roles.public, roles.private)]
    memberships += [(r, roles.loader) for r in cuts]
    cur.execute(
        "SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
    )
    admin, superuser = one_row(cur)
    if not superuser:
        # An admin that only has CREATEROLE (a managed server's, e.g. RDS) can hand objects
        # to a role only as a member of it (ALTER ... OWNER TO needs SET ROLE to the owner).
        memberships += [(r, admin) for r in (roles.admin, roles.owner, *cuts)]
    for group, member in memberships:
        if not _member(cur, member, group):
            changes.add(
                f"grant {group} to {member}",
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)),
            )
    return changes


def set_up(cur: Cursor, roles: Roles) -> None:
    """``wharf db upgrade``'s access work, as the admin, in the caller's transaction: the
    fixed roles (``role_changes``), then Wharf's own schema (``wharf_schema_changes``)."""
    role_changes(cur, roles).run(cur)
    wharf_schema_changes(cur, roles).run(cur)


def _refuse_powerful(cur: Cursor, role: str) -> None:
    cur.execute(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication"
        " FROM pg_catalog.pg_roles WHERE rolname = %s",
        (role,),
    )
    row = cur.fetchone()
    if row is not None and row[0]:
        raise AccessError(
            f"the role {role} exists and is a superuser or may create roles or databases, "
            f"bypass row security or replicate: Wharf gives its objects only to roles without "
            f"those rights; ALTER ROLE {role} NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS "
            "NOREPLICATION, or choose another WHARF_ROLE_PREFIX"
        )


def _member(cur: Cursor, member: str, group: str) -> bool:
    """Whether ``member`` is a direct member of ``group`` (False when either is missing)."""
    cur.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_auth_members m"
        " JOIN pg_catalog.pg_roles g ON g.oid = m.roleid"
        " JOIN pg_catalog.pg_roles u ON u.oid = m.member"
        " WHERE g.rolname = %s AND u.rolname = %s)",
        (group, member),
    )
    return bool(one_row(cur)[0])


def wharf_schema_changes(cur: Cursor, roles: Roles) -> Changes:
    """Wharf's own schema and every table, view and sequence in it owned by the admin role,
    with exactly the loader's and operator's grants; CREATE on the database for the owner
    role (it creates the domain schemas)."""
    changes = Changes()
    cur.execute("SELECT current_database()")
    database = sql.Identifier(one_row(cur)[0])
    cur.execute(
        "SELECT has_database_privilege(%s, current_database(), 'CREATE')"
        " FROM pg_catalog.pg_roles WHERE rolname = %s",
        (roles.owner, roles.owner),
    )
    row = cur.fetchone()
    if row is None or not row[0]:
        changes.add(
            f"grant CREATE on the database to {roles.owner}",
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                database, sql.Identifier(roles.owner)
            ),
        )
    cur.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = 'wharf'"
    )
    if one_row(cur)[0] != roles.admin:
        changes.add(
            f"schema wharf: owner -> {roles.admin}",
            sql.SQL("ALTER SCHEMA wharf OWNER TO {}").format(sql.Identifier(roles.admin)),
        )
    changes.extend(_schema_grants(cur, "wharf", roles.loader, ("USAGE",)))
    changes.extend(_schema_grants(cur, "wharf", roles.operator, ("USAGE",)))
    cur.execute(
        "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'wharf' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') ORDER BY 1"
    )
    for name, kind, owner in cur.fetchall():
        changes.extend(_wharf_relation(cur, roles, name, kind, owner))
    return changes


def _wharf_relation(cur: Cursor, roles: Roles, name: str, kind: str, owner: str) -> Changes:
    changes = Changes()
    target = qualified("wharf", name)
    keyword = "SEQUENCE" if kind == "S" else _KINDS[kind]
    if owner != roles.admin and not (kind == "S" and _owned_by_column(cur, name)):
        changes.add(
            f"wharf.{name}: owner {owner} -> {roles.admin}",
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(keyword), target, sql.Identifier(roles.admin)
            ),
        )
    if kind == "S":
        wanted = {roles.loader: {"USAGE"}, roles.operator: {"SELECT"}}
    elif kind in ("v", "m") or name in _READ_ONLY:
        wanted = {roles.loader: {"SELECT"}, roles.operator: {"SELECT"}}
    elif name == _AUDIT:
        wanted = {roles.loader: {"SELECT", "INSERT"}, roles.operator: {"SELECT"}}
    else:
        wanted = {
            roles.loader: {"SELECT", "INSERT", "UPDATE", "DELETE"},
            roles.operator: {"SELECT"},
        }
    found = _relation_acl(cur, "wharf", name)
    for grantee in sorted(set(found) | set(wanted)):
        has, want = found.get(grantee, set()), wanted.get(grantee, set())
        if has - want:
            changes.add(
                f"wharf.{name}: revoke {', '.join(sorted(has - want))} from {grantee}",
                sql.SQL("REVOKE {} ON {} {} FROM {}").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in sorted(has - want)),
                    sql.SQL(keyword if kind == "S" else "TABLE"),
                    target,
                    sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
                ),
            )
        if want - has:
            changes.add(
                f"wharf.{name}: grant {', '.join(sorted(want - has))} to {grantee}",
                sql.SQL("GRANT {} ON {} {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in sorted(want - has)),
                    sql.SQL(keyword if kind == "S" else "TABLE"),
                    target,
                    sql.Identifier(grantee),
                ),
            )
    return changes


def _owned_by_column(cur: Cursor, sequence: str) -> bool:
    """Whether a sequence belongs to a column (a bigserial): it follows its table's owner,
    and ALTER SEQUENCE ... OWNER TO refuses to change it on its own."""
    cur.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.objid = %s::regclass"
        " AND d.deptype IN ('a', 'i'))",
        (qualified("wharf", sequence).as_string(cur),),
    )
    return bool(one_row(cur)[0])


def estate_roles(specs: Iterable[DatasetSpec], roles: Roles) -> list[str]:
    """The roles the YAMLs need beyond the fixed ones: each PROTECTED dataset's domain role
    and each data cut's own role."""
    needed = set()
    for spec in specs:
        if spec.metadata.sensitivity == "PROTECTED":
            needed.add(roles.protected(spec.metadata.domain))
        if spec.metadata.kind == "data_cut":
            needed.add(roles.cut(spec.dataset_id))
    return sorted(needed)


def estate_changes(
    cur: Cursor, specs: list[DatasetSpec], roles: Roles, cut_inputs: dict[str, list[str]]
) -> Changes:
    """Everything ``wharf access apply`` does, as statements to run in order: the roles,
    Wharf's own schema, each domain schema (owner adopted, reader USAGE no dataset needs
    revoked), then each dataset's relation that exists (owner adopted, grants reconciled)
    and each cut's inputs (``cut_inputs``: cut id -> the inputs that exist). The roles are
    created by the first statements; the rest is planned from the objects as they are."""
    needed = estate_roles(specs, roles)
    changes = role_changes(cur, roles, needed)
    changes.unused_roles = _unused_roles(cur, roles, needed)
    changes.extend(wharf_schema_changes(cur, roles))
    for domain in sorted({s.metadata.domain for s in specs}):
        readers = {roles.reader(s.metadata) for s in specs if s.metadata.domain == domain}
        changes.extend(_domain_schema_changes(cur, domain, roles, readers))
    for spec in sorted(specs, key=lambda s: s.dataset_id):
        changes.extend(relation_changes(cur, spec, roles, adopt=True))
        if spec.dataset_id in cut_inputs:
            changes.extend(cut_input_changes(cur, spec, cut_inputs[spec.dataset_id], roles))
    return changes


def _unused_roles(cur: Cursor, roles: Roles, needed: list[str]) -> list[str]:
    cur.execute(
        "SELECT rolname FROM pg_catalog.pg_roles"
        " WHERE starts_with(rolname, %s) OR starts_with(rolname, %s) ORDER BY 1",
        (f"{roles.prefix}_protected_", f"{roles.prefix}_cut_"),
    )
    return [r for (r,) in cur.fetchall() if r not in needed]


def _domain_schema_changes(cur: Cursor, domain: str, roles: Roles, readers: set[str]) -> Changes:
    changes = Changes()
    cur.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = %s",
        (domain,),
    )
    row = cur.fetchone()
    if row is None:
        return changes
    if row[0] != roles.owner:
        changes.add(
            f"schema {domain}: owner {row[0]} -> {roles.owner}",
            sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(
                sql.Identifier(domain), sql.Identifier(roles.owner)
            ),
        )
    for grantee, privileges in sorted(_schema_acl(cur, domain).items()):
        if "USAGE" in privileges and grantee not in readers and roles.managed(grantee):
            if grantee.startswith(f"{roles.prefix}_cut_"):
                continue  # its cut's refresh reconciles it
            changes.add(
                f"schema {domain}: revoke USAGE from {grantee} (no dataset of it is theirs)",
                sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(
                    sql.Identifier(domain), sql.Identifier(grantee)
                ),
            )
    return changes
