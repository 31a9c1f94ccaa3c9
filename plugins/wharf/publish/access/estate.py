"""What an admin runs: ``wharf db upgrade`` (``set_up``: the fixed roles, Wharf's own schema)
and ``wharf access plan | apply`` (``estate_changes``: every role, owner and grant the YAMLs
imply)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from psycopg import sql

from wharf.connections import Cursor, one_row, qualified
from wharf.contract.dataset import DatasetSpec
from wharf.contract.reference import history_spec
from wharf.contract.roles import Roles
from wharf.publish.access.catalog import (
    KINDS,
    AccessError,
    Changes,
    relation_acl,
    role_exists,
    schema_acl,
)
from wharf.publish.access.grants import cut_input_changes, relation_changes, schema_grants

# Wharf's own tables the loader writes (every table of the schema but these): the
# append-only ones it may only add to, and the read-only ones.
APPEND_ONLY = ("audit", "catalogue_loads", "reference_versions")
READ_ONLY = ("schema_migrations",)
# Attributes no Wharf role may have: each would let it step around every grant (the queries
# below test rolsuper, rolcreaterole, rolcreatedb, rolbypassrls and rolreplication).
log = logging.getLogger(__name__)


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
    changes.extend(schema_grants(cur, "wharf", roles.loader, ("USAGE",)))
    changes.extend(schema_grants(cur, "wharf", roles.operator, ("USAGE",)))
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
    keyword = "SEQUENCE" if kind == "S" else KINDS[kind]
    if owner != roles.admin and not (kind == "S" and _owned_by_column(cur, name)):
        changes.add(
            f"wharf.{name}: owner {owner} -> {roles.admin}",
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(keyword), target, sql.Identifier(roles.admin)
            ),
        )
    if kind == "S":
        wanted = {roles.loader: {"USAGE"}, roles.operator: {"SELECT"}}
    elif kind in ("v", "m") or name in READ_ONLY:
        wanted = {roles.loader: {"SELECT"}, roles.operator: {"SELECT"}}
    elif name in APPEND_ONLY:
        wanted = {roles.loader: {"SELECT", "INSERT"}, roles.operator: {"SELECT"}}
    else:
        wanted = {
            roles.loader: {"SELECT", "INSERT", "UPDATE", "DELETE"},
            roles.operator: {"SELECT"},
        }
    found = relation_acl(cur, "wharf", name)
    on = sql.SQL("{} {}").format(sql.SQL("SEQUENCE" if kind == "S" else "TABLE"), target)
    for grantee in sorted(set(found) | set(wanted)):
        has, want = found.get(grantee, set()), wanted.get(grantee, set())
        if has - want:
            changes.add(
                f"wharf.{name}: revoke {', '.join(sorted(has - want))} from {grantee}",
                _privileges("REVOKE {} ON {} FROM {}", has - want, on, grantee),
            )
        if want - has:
            changes.add(
                f"wharf.{name}: grant {', '.join(sorted(want - has))} to {grantee}",
                _privileges("GRANT {} ON {} TO {}", want - has, on, grantee),
            )
    return changes


def _privileges(
    template: str, privileges: set[str], on: sql.Composable, grantee: str
) -> sql.Composed:
    """``template`` (GRANT or REVOKE) with ``privileges`` on ``on`` for ``grantee``."""
    who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
    listed = sql.SQL(", ").join(sql.SQL(p) for p in sorted(privileges))
    return sql.SQL(template).format(listed, on, who)


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
        if spec.metadata.kind == "reference":  # its history table: the same owner and readers
            changes.extend(relation_changes(cur, history_spec(spec), roles, adopt=True))
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
    for grantee, privileges in sorted(schema_acl(cur, domain).items()):
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
