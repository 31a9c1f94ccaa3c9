"""Wharf: report every broken dataset YAML as an Airflow DAG import error.

The message names each file and line and what is expected. The valid datasets' DAGs come
from dags/wharf_datasets.py, which a broken YAML never stops.
"""

from airflow.sdk import get_parsing_context

from wharf.specfiles import load_specs

if get_parsing_context().dag_id is None:  # a worker starting a task needs no report
    _specs, _errors = load_specs()
    if _errors:
        raise ValueError(
            "broken dataset YAML (these DAGs are missing until it is fixed):\n"
            + "\n".join(str(e) for e in _errors)
        )
