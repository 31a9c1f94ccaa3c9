"""Access control's shared pieces: the error, the change list, and the catalog's view of
roles, owners and ACLs (grantee -> privileges)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from psycopg import sql

from wharf import settings
from wharf.connections import Cursor, one_row
from wharf.contract.dataset import DatasetSpec
from wharf.contract.roles import Roles
from wharf.errors import TerminalError

log = logging.getLogger(__name__)


APPLY = "`wharf access apply` (run by an admin of the datasets database)"


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


def role_exists(cur: Cursor, role: str) -> bool:
    cur.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %s)", (role,))
    return bool(one_row(cur)[0])


# The ACL of one relation (schema, name) or one schema (name), exploded.
RELATION_ACL = (
    "WITH o AS (SELECT c.relacl AS acl, c.relowner AS owner FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %s AND c.relname = %s)"
    " SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type FROM o, aclexplode(o.acl) a"
    " LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee WHERE a.grantee <> o.owner"
)
SCHEMA_ACL = (
    "WITH o AS (SELECT nspacl AS acl, nspowner AS owner FROM pg_catalog.pg_namespace"
    " WHERE nspname = %s)"
    " SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type FROM o, aclexplode(o.acl) a"
    " LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee WHERE a.grantee <> o.owner"
)


def acl(cur: Cursor, query: str, params: tuple[object, ...]) -> dict[str, set[str]]:
    """Grantee -> privileges of one ACL (``RELATION_ACL`` or ``SCHEMA_ACL``); the owner's
    implicit rights are not in it."""
    cur.execute(query, params)
    found: dict[str, set[str]] = {}
    for grantee, privilege in cur.fetchall():
        found.setdefault(grantee, set()).add(privilege)
    return found


def relation(cur: Cursor, schema: str, name: str) -> tuple[str, str] | None:
    """(relkind, owner) of ``schema.name``, None when it does not exist."""
    cur.execute(
        "SELECT c.relkind, pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def relation_acl(cur: Cursor, schema: str, name: str) -> dict[str, set[str]]:
    return acl(cur, RELATION_ACL, (schema, name))


def schema_acl(cur: Cursor, schema: str) -> dict[str, set[str]]:
    return acl(cur, SCHEMA_ACL, (schema,))


KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


def grants_state(cur: Cursor, spec: DatasetSpec, roles: Roles) -> str:
    """How the dataset's relation's grants compare with its YAML, for ``wharf catalogue``:
    ``"not loaded"`` (no relation yet), ``"exact"``, or what differs (``"missing SELECT for
    wharf_private"``, ``"extra: wharf_public"``)."""
    meta = spec.metadata
    if relation(cur, meta.domain, meta.dataset) is None:
        return "not loaded"
    reader = roles.reader(meta)
    grants = relation_acl(cur, meta.domain, meta.dataset)
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
