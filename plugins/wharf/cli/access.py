"""``wharf access plan | apply``: the roles and grants the dataset YAMLs imply, compared
with the datasets database (plan) and made so (apply), as an admin of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wharf import environment

if TYPE_CHECKING:
    from wharf.connections import Cursor
    from wharf.contract.dataset import DatasetSpec
    from wharf.publish.access import Changes


def cmd_access(apply: bool) -> int:
    """Print each change the YAMLs imply (``plan``), or make them in one transaction
    (``apply``), then the grants made by hand that are left alone and the roles no YAML
    needs. A YAML that fails ``wharf check`` is left out, with a warning (its dataset's
    grants stay as they are: one broken YAML must not hold back the others). Exit 0; 1 when
    the database is not upgraded or a role is too powerful to be Wharf's."""
    environment.apply()
    from wharf.errors import TerminalError
    from wharf.specfiles import load_specs

    specs, failures = load_specs()
    verb = "apply" if apply else "plan"
    for failure in failures:
        print(f"wharf access {verb}: warning: left out: {str(failure).splitlines()[0]}")
    try:
        changes = reconcile_estate(specs, apply)
    except TerminalError as err:
        print(f"wharf access {verb}: {err}")
        return 1
    for text, _ in changes.statements:
        print(f"{'applied' if apply else 'would'}: {text}")
    for text in changes.hand_made:
        print(f"left alone: {text}")
    for role in changes.unused_roles:
        print(f"unused: role {role}: no YAML needs it (a removed domain or cut); drop it by hand")
    print(
        f"wharf access {verb}: {len(changes.statements)} change(s)"
        f"{'' if apply else ' to make'}, {len(changes.hand_made)} hand-made grant(s) left alone"
    )
    return 0


def reconcile_estate(specs: list[DatasetSpec], apply: bool) -> Changes:
    """The estate's access changes (``access.estate_changes``), made in one transaction as
    the admin when ``apply``. Raises ``access.AccessError``, and
    ``migrations.SchemaVersionError`` before ``wharf db upgrade``."""
    from wharf import connections
    from wharf.ledger import migrations
    from wharf.publish import access

    with connections.connect_admin() as conn, conn.cursor() as cur:
        migrations.require_head(conn)
        connections.lock_ddl(cur)
        changes = access.estate_changes(
            cur, specs, access.deployment_roles(), _cut_inputs(cur, specs)
        )
        if apply:
            changes.run(cur)
            conn.commit()
    return changes


def _cut_inputs(cur: Cursor, specs: list[DatasetSpec]) -> dict[str, list[str]]:
    """Cut id -> its inputs that exist, for the cuts whose view exists."""
    from wharf.connections import relation_exists
    from wharf.publish import data_cuts

    found = {}
    for spec in specs:
        meta = spec.metadata
        if meta.kind != "data_cut" or not relation_exists(cur, meta.domain, meta.dataset):
            continue
        needs = data_cuts.known_inputs(spec)
        if needs is None:
            continue  # its grants stay as they are until its SQL is fixed
        found[spec.dataset_id] = [n for n in needs if relation_exists(cur, *n.split(".", 1))]
    return found
