"""Wharf: the Airflow DAGs of one domain's dataset YAMLs, the domain this file's name gives
(``wharf_domain_<domain>.py``); dags/wharf_datasets.py builds every other domain's.

Airflow's DAG processor parses each DAG file on its own, every ``min_file_process_interval``,
each within its own import timeout: a domain with a file of its own costs that file's parse,
not the whole estate's, and a failure in it hides no other domain. To give a domain its own
file, copy this one under its name (README, "The estate"). Parsing reads local YAML only.
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import dag_specs

_domain = Path(__file__).stem.removeprefix("wharf_domain_")
for _spec in dag_specs([_domain], get_parsing_context().dag_id):  # a task start: its own only
    globals()[_spec.dag_id] = build_dag(_spec)
