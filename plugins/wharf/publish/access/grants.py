"""What a load or a cut refresh runs, as the loader, in its own transaction: the login
checked, the schema and table owned by the owner role, the grants of its relation reconciled
with its YAML (``reconcile``), and a cut's role given exactly its inputs (``cut_grants``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from psycopg import sql

from wharf import settings
from wharf.connections import Cursor, lock_ddl, one_row, qualified
from wharf.contract.dataset import DatasetSpec
from wharf.contract.roles import Roles
from wharf.publish.access.catalog import (
    APPLY,
    KINDS,
    AccessError,
    Changes,
    relation,
    relation_acl,
    role_exists,
    schema_acl,
)
from wharf.publish.access.row_security import row_access_changes

log = logging.getLogger(__name__)


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
    found = relation(cur, spec.metadata.domain, spec.metadata.dataset)
    wanted = owner_of(spec, roles)
    if found is not None and found[1] != wanted:
        raise AccessError(
            f"{spec.dataset_id}: the {KINDS.get(found[0], 'TABLE').lower()} is owned by "
            f"{found[1]}, not {wanted}: hand it over with {APPLY}"
        )


def owner_of(spec: DatasetSpec, roles: Roles) -> str:
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
    found = relation(cur, meta.domain, meta.dataset)
    if found is None:
        return changes
    kind, owner = KINDS.get(found[0], "TABLE"), found[1]
    wanted_owner = owner_of(spec, roles)
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
    grants = relation_acl(cur, meta.domain, meta.dataset)
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
    changes.extend(schema_grants(cur, meta.domain, reader, ("USAGE",)))
    changes.extend(row_access_changes(cur, spec, roles))
    return changes


def schema_grants(cur: Cursor, schema: str, role: str, privileges: Iterable[str]) -> Changes:
    """GRANT each of ``privileges`` on ``schema`` to ``role`` it does not hold directly
    (checked first: two loads granting at once would race on the schema's catalog row)."""
    changes = Changes()
    held = schema_acl(cur, schema).get(role, set())
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
    changes = schema_grants(cur, cut.metadata.domain, role, ("USAGE", "CREATE"))
    wanted = set(needs)
    for dataset_id in sorted(wanted):
        schema, _, name = dataset_id.partition(".")
        changes.extend(schema_grants(cur, schema, role, ("USAGE",)))
        if "SELECT" not in relation_acl(cur, schema, name).get(role, set()):
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
