"""Extra links on Wharf's tasks in the Airflow UI: ``validate`` opens its run's validation
report, ``load`` the dataset's page. Airflow's API server computes them from the task
instance's key alone (no XCom, no database), below its own base URL."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from wharf.orchestration.dag_factory import LoadStep, ValidateStep


def plugin_base() -> str:
    """The path of the Wharf pages: ``/wharf`` below the path of Airflow's ``[api]
    base_url``."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/") + "/wharf"


def dataset_link(dag_id: str) -> str:
    return f"{plugin_base()}/datasets/{quote(dag_id, safe='')}"


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
