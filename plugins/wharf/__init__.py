"""Wharf: a dataset is a YAML file; Airflow 3 turns it into an ingestion DAG."""
