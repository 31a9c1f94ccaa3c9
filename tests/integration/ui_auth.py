"""An auth manager for the Wharf pages' tests: Airflow's simple auth manager, except that a
user named ``<domain>_reader`` may read only the DAGs of that domain (``<domain>.<name>``),
as a real auth manager (FAB, Keycloak) restricts DAGs per user. Set as
``AIRFLOW__CORE__AUTH_MANAGER=ui_auth.DomainAuthManager``."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class DomainAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        if user.username.endswith("_reader"):
            domain = user.username.removesuffix("_reader")
            if details is not None and details.id and not details.id.startswith(f"{domain}."):
                return False
        return bool(
            super().is_authorized_dag(
                method=method, user=user, access_entity=access_entity, details=details
            )
        )
