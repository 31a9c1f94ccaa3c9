"""Wharf: one Airflow DAG per dataset YAML under include/schemas/, and wharf.freshness.

This file builds the DAGs of every domain that has no DAG file of its own
(``dags/wharf_domain_<domain>.py``, which Airflow's DAG processor parses on its own: README,
"The estate"), so a new domain's YAMLs need no DAG-file change. Parsing reads local YAML only
(no connection, no database). A broken YAML is skipped here and reported by
dags/wharf_yaml_errors.py, so it never hides the other datasets' DAGs.
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from wharf.orchestration.dag_factory import FRESHNESS_DAG_ID, build_dag, build_freshness_dag
from wharf.specfiles import dag_specs, domains

_only = get_parsing_context().dag_id  # set when a worker starts one task
if _only in (None, FRESHNESS_DAG_ID):  # Wharf's own check of every dataset's freshness
    globals()[FRESHNESS_DAG_ID] = build_freshness_dag()
_split = {
    f.stem.removeprefix("wharf_domain_") for f in Path(__file__).parent.glob("wharf_domain_*.py")
}
# A task start reads only its own YAML (the DAG id is "<domain>.<dataset>", its file name).
if _only != FRESHNESS_DAG_ID:
    for _spec in dag_specs([d for d in domains() if d not in _split], _only):
        globals()[_spec.dag_id] = build_dag(_spec)
