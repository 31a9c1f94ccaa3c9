"""``wharf db upgrade``: bring Wharf's own tables in the datasets database to this version."""

from __future__ import annotations

from wharf import environment


def cmd_db_upgrade() -> int:
    """Apply the pending migrations of ``include/sql/wharf/`` to the datasets database,
    printing each one applied, or that it was up to date. Run once per deploy (and by
    ``wharf run``, ``wharf demo``, ``make airflow`` and the compose file's init service)."""
    environment.apply()
    upgrade_datasets_db()
    return 0


def upgrade_datasets_db() -> None:
    """``wharf db upgrade``'s work, for the commands that run it first."""
    from wharf import connections
    from wharf.ledger import migrations

    with connections.connect() as conn:
        applied = migrations.upgrade(conn)
        version = migrations.current_version(conn)
    for migration in applied:
        print(f"wharf db upgrade: applied {migration.path.name} (version {migration.version})")
    if not applied:
        print(f"wharf db upgrade: the datasets database is up to date (version {version})")
