"""Access by sensitivity: Wharf's roles, and the grants the YAML implies, reconciled.

The role model is ``wharf.contract.roles``. What is Wharf's to manage, and so reconciled to
exactly what the YAML implies (a grant it no longer implies is revoked):

- on each dataset table or data-cut view: its owner (the owner role; a cut's own role), and
  the SELECT of the reader and cut roles (``Roles.managed``); a grant to any other role was
  made by hand and is left alone, and reported;
- on each domain schema: USAGE for the reader roles of its datasets, USAGE and CREATE for its
  cuts' roles;
- on Wharf's own schema: the admin role owns it and every table in it; the loader may INSERT
  and SELECT ``wharf.audit`` and ``wharf.reference_versions`` and nothing else there, write
  the other tables (not ``schema_migrations``), and the operator role reads them all;
- on a reference dataset's history table (``<dataset>_history``): the same as its table's;
- on a dataset table whose YAML declares ``row_access``: row-level security, enabled and
  forced, and Wharf's two policies (``row_access_changes``); without it, none.

Two callers, one compiler: a load or cut refresh runs, as the loader and in its own
transaction, the changes of its relation (``reconcile``, ``cut_grants``); ``wharf access plan``
prints and ``wharf access apply`` runs, as an admin, the changes of the whole estate
(``estate_changes``), creating the roles a load cannot (a new domain's protected role, a new
cut's role). A load whose role is missing fails at once naming it and that command.

The modules: ``catalog`` (the error, ``Changes``, the catalog's ACLs), ``grants`` (what a
load or refresh runs), ``row_security`` (``row_access``), ``estate`` (what an admin runs).
Callers import this package: its names are those modules' public ones.
"""

from wharf.publish.access.catalog import (
    APPLY,
    AccessError,
    Changes,
    deployment_roles,
    grants_state,
    relation,
)
from wharf.publish.access.estate import (
    estate_changes,
    estate_roles,
    role_changes,
    set_up,
    wharf_schema_changes,
)
from wharf.publish.access.grants import (
    create_schema,
    cut_grants,
    hand_to_owner,
    reconcile,
    require_loader,
    require_owner,
)
from wharf.publish.access.row_security import (
    LOADER_POLICY,
    ROW_POLICY,
    release_row_policy,
    row_secured,
    row_security_forced,
)

__all__ = [
    "APPLY",
    "LOADER_POLICY",
    "ROW_POLICY",
    "AccessError",
    "Changes",
    "create_schema",
    "cut_grants",
    "deployment_roles",
    "estate_changes",
    "estate_roles",
    "grants_state",
    "hand_to_owner",
    "reconcile",
    "relation",
    "release_row_policy",
    "require_loader",
    "require_owner",
    "role_changes",
    "row_secured",
    "row_security_forced",
    "set_up",
    "wharf_schema_changes",
]
