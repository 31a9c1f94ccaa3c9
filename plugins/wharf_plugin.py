"""Wharf's Airflow plugin: the operator pages in the Airflow UI (Browse -> Wharf datasets)
and the extra links of the validate and load tasks.

Airflow loads every plugin in every process, task starts included, so this file imports
only what the links need: the pages' app (FastAPI, Airflow's API auth) is built on its first
request, in the API server.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from wharf.ui.links import URL_PREFIX, DatasetPageLink, ValidationReportLink


class _PagesApp:
    """An ASGI app that imports and builds ``wharf.ui.app`` when it is first called."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from wharf.ui.app import app

                    self._app = app
        await self._app(scope, receive, send)


class WharfPlugin(AirflowPlugin):
    """The Wharf pages at ``/wharf`` and a ``Wharf datasets`` entry in the UI's menu."""

    name = "wharf"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": _PagesApp(), "url_prefix": URL_PREFIX, "name": "Wharf pages"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Wharf datasets",
            "href": f"{URL_PREFIX}/datasets",
            "url_route": "wharf-datasets",
            "destination": "nav",
            "category": "browse",
        }
    ]
    operator_extra_links: ClassVar[list[Any]] = [ValidationReportLink(), DatasetPageLink()]
