"""``wharf db upgrade``: bring Wharf's own tables and roles in the datasets database to this
version, as an admin of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wharf import environment

if TYPE_CHECKING:
    from wharf.connections import Connection


def cmd_db_upgrade() -> int:
    """Apply the pending migrations of ``include/sql/wharf/`` to the datasets database, then
    create Wharf's fixed roles and set the ownership and grants of its own tables, printing
    what changed. Run once per deploy by an admin (and by ``wharf run``, ``wharf demo``,
    ``make airflow`` and the compose file's init service)."""
    environment.apply()
    upgrade_datasets_db()
    return 0


def upgrade_datasets_db() -> None:
    """``wharf db upgrade``'s work, for the commands that run it first. Raises
    ``access.AccessError`` when a role of Wharf's names exists with powers it must not have."""
    from wharf import connections
    from wharf.ledger import migrations
    from wharf.publish import access

    with connections.connect_admin() as conn:
        applied = migrations.upgrade(conn)
        version = migrations.current_version(conn)
        roles = access.deployment_roles()
        with conn.transaction(), conn.cursor() as cur:
            connections.lock_ddl(cur)
            access.set_up(cur, roles)
            password_set = _set_loader_password(conn, roles.loader)
    for migration in applied:
        print(f"wharf db upgrade: applied {migration.path.name} (version {migration.version})")
    if not applied:
        print(f"wharf db upgrade: the datasets database is up to date (version {version})")
    print(f"wharf db upgrade: roles {', '.join(roles.fixed)} in place")
    if password_set:
        print(f"wharf db upgrade: {roles.loader}'s password set from its connection")


def _set_loader_password(conn: Connection, loader: str) -> bool:
    """Give the loader role the password of the ``wharf_datasets`` connection when that
    connection logs in as it with one (and is not the admin's own). Only a SCRAM-SHA-256
    verifier, computed here by libpq, reaches the server: the password never appears in a
    statement or the server's log."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook
    from psycopg import sql

    from wharf import settings

    try:
        found = BaseHook.get_connection(settings.datasets_conn_id())
    except AirflowNotFoundException:
        return False
    if found.login != loader or not found.password:
        return False
    verifier = conn.pgconn.encrypt_password(
        found.password.encode(), loader.encode(), b"scram-sha-256"
    )
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(loader), sql.Literal(verifier.decode())
            )
        )
    return True
