"""Wharf's PostgreSQL roles, named from one prefix, and who may read a dataset.

The role model (README, "Access control"):

- ``<prefix>_admin`` (NOLOGIN) owns Wharf's own schema and tables; no other Wharf role is a
  member of it, so no one who loads can change or disable ``wharf.audit``;
- ``<prefix>_owner`` (NOLOGIN) owns the domain schemas and their tables;
- ``<prefix>_loader`` (LOGIN, no superuser, cannot create roles or databases) is a member of
  the owner role; tasks log in as it through the ``wharf_datasets`` connection;
- ``<prefix>_operator`` (NOLOGIN) reads Wharf's own tables;
- readers by rAPId's sensitivity: ``<prefix>_public``; ``<prefix>_private``, a member of the
  public role (PRIVATE includes PUBLIC); ``<prefix>_protected_<domain>`` per domain, which
  holds that domain's PROTECTED datasets only;
- ``<prefix>_cut_<domain>.<dataset>`` (NOLOGIN) per data cut: it owns the cut's view and
  reads exactly the cut's inputs (a view reads its tables with its owner's rights).

PostgreSQL reserves the bare name ``public``, and role names are one namespace per server:
the prefix (``WHARF_ROLE_PREFIX``) lets several deployments share a server, provided no
deployment's prefix starts with another's followed by ``_`` (``wharf`` and ``wharf_cut``
would overlap).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from wharf.contract.metadata import Metadata

PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,23}")
# PostgreSQL truncates identifiers past 63 bytes (NAMEDATALEN - 1).
MAX_NAME = 63


@dataclass(frozen=True)
class Roles:
    """The role names of one deployment. Raises ``ValueError`` for a prefix that is not
    1-24 lowercase letters, digits and underscores starting with a letter."""

    prefix: str

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise ValueError(
                f"role prefix {self.prefix!r}: 1-24 lowercase letters, digits and underscores, "
                "starting with a letter"
            )

    @property
    def admin(self) -> str:
        return f"{self.prefix}_admin"

    @property
    def owner(self) -> str:
        return f"{self.prefix}_owner"

    @property
    def loader(self) -> str:
        return f"{self.prefix}_loader"

    @property
    def operator(self) -> str:
        return f"{self.prefix}_operator"

    @property
    def public(self) -> str:
        return f"{self.prefix}_public"

    @property
    def private(self) -> str:
        return f"{self.prefix}_private"

    def protected(self, domain: str) -> str:
        """The role holding ``domain``'s PROTECTED datasets."""
        return _bounded(f"{self.prefix}_protected_{domain}")

    def cut(self, dataset_id: str) -> str:
        """The role that owns the data cut ``dataset_id`` (``domain.dataset``). The dot stays
        in the name (legal, quoted): with ``_`` instead, cuts ``a.b_c`` and ``a_b.c`` would share
        one role, and each could read the other's inputs."""
        return _bounded(f"{self.prefix}_cut_{dataset_id}")

    @property
    def fixed(self) -> tuple[str, ...]:
        """The roles every deployment has, in the order they are created."""
        return (self.admin, self.owner, self.loader, self.operator, self.public, self.private)

    def managed(self, role: str) -> bool:
        """Whether ``role`` is a reader or cut role of this deployment (its grants on dataset
        tables are Wharf's to reconcile)."""
        return role in (self.public, self.private) or role.startswith(
            (f"{self.prefix}_protected_", f"{self.prefix}_cut_")
        )

    def reader(self, meta: Metadata) -> str:
        """The one role a dataset's SELECT is granted to, by its sensitivity."""
        if meta.sensitivity == "PUBLIC":
            return self.public
        if meta.sensitivity == "PRIVATE":
            return self.private
        return self.protected(meta.domain)

    def readers(self, meta: Metadata) -> tuple[str, ...]:
        """Every reader role that can read the dataset (directly or as a member): a PUBLIC
        dataset is read by the public and private roles, a PRIVATE one by the private role, a
        PROTECTED one only by its domain's protected role."""
        if meta.sensitivity == "PUBLIC":
            return (self.public, self.private)
        return (self.reader(meta),)


def _bounded(name: str) -> str:
    """``name`` if it fits PostgreSQL's 63 bytes, else its first 46 characters and 16 hex
    digits (64 bits) of its SHA-256, so two long names do not collide by truncation."""
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: MAX_NAME - 17]}_{digest}"
