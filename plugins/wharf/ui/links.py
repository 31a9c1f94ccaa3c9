"""Extra links on Wharf's tasks in the Airflow UI: ``validate`` opens its run's validation
report, ``load`` the dataset's page. Airflow's API server computes them from the task
instance's key alone (no XCom, no database), below its own base URL.

A dataset's page is ``wharf.orchestration.alerts.DATASET_PAGE`` (the path an alert links
to); ``URL_PREFIX`` is its first segment, where ``plugins/wharf_plugin.py`` mounts the pages.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from wharf.orchestration.dag_factory import LoadStep, ValidateStep

URL_PREFIX = "/wharf"


def dataset_link(dag_id: str) -> str:
    """The dataset's page: ``DATASET_PAGE`` below the path of Airflow's ``[api] base_url``
    (a dataset's DAG id is its dataset id)."""
    from airflow.configuration import conf

    # Imported here: every Airflow process loads the plugin, only the API server links.
    from wharf.orchestration.alerts import DATASET_PAGE

    base = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return base + DATASET_PAGE.format(dataset_id=quote(dag_id, safe=""))


class ValidationReportLink(BaseOperatorLink):
    """On ``validate``: the run's validation report, served by the plugin."""

    name = "Validation report"
    operators: ClassVar[list[type[Any]]] = [ValidateStep]

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return f"{dataset_link(ti_key.dag_id)}/runs/{quote(ti_key.run_id, safe='')}/report"


class DatasetPageLink(BaseOperatorLink):
    """On ``load``: the dataset's page (runs, counts, schema history, lineage)."""

    name = "Dataset page"
    operators: ClassVar[list[type[Any]]] = [LoadStep]

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return dataset_link(ti_key.dag_id)
