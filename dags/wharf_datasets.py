"""Wharf: one Airflow DAG per dataset YAML under include/schemas/, and wharf.freshness.

Parsing reads local YAML only (no connection, no database). A broken YAML is skipped here
and reported by dags/wharf_yaml_errors.py, so it never hides the other datasets' DAGs.
"""

from airflow.sdk import get_parsing_context

from wharf.orchestration.dag_factory import FRESHNESS_DAG_ID, build_dag, build_freshness_dag
from wharf.specfiles import get_spec, load_specs

_only = get_parsing_context().dag_id  # set when a worker starts one task
if _only in (None, FRESHNESS_DAG_ID):  # Wharf's own check of every dataset's freshness
    globals()[FRESHNESS_DAG_ID] = build_freshness_dag()
# A task start reads only its own YAML (the DAG id is "<domain>.<dataset>", its file name).
_specs = [] if _only == FRESHNESS_DAG_ID else [get_spec(_only)] if _only else load_specs()[0]
for _spec in _specs:
    globals()[_spec.dag_id] = build_dag(_spec)
