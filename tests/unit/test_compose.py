"""docker-compose.yaml is checked with a parser (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services_and_dependencies_exist() -> None:
    services = compose()["services"]
    assert AIRFLOW_SERVICES | {"airflow-db", "datasets-db"} == set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_airflow_services_share_the_project_and_connections() -> None:
    services = compose()["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "apache/airflow:3.3.2" in dockerfile and "requirements.txt" in dockerfile
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["build"] == "."
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
        datasets = urlsplit(service["environment"]["AIRFLOW_CONN_WHARF_DATASETS"])
        assert datasets.hostname == "datasets-db" and datasets.port == 5432
        admin = urlsplit(service["environment"]["AIRFLOW_CONN_WHARF_DATASETS_ADMIN"])
        # Tasks log in as the loader, never as the server's superuser (issue #13).
        assert datasets.username == "wharf_loader" and admin.username == "wharf"
        assert admin.hostname == "datasets-db"
        metadata = urlsplit(service["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        # Least privilege: Airflow's metadata and the datasets are other users and servers.
        assert metadata.username not in (datasets.username, admin.username)
        assert metadata.hostname != datasets.hostname
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        for local in service["volumes"]:
            source = local.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_dir(), f"{name} mounts missing {source}"


def test_the_init_service_migrates_airflow_then_upgrades_wharfs_tables_and_grants() -> None:
    command = compose()["services"]["airflow-init"]["command"]
    assert command[:2] == ["bash", "-c"]
    assert command[2] == (
        "airflow db migrate && python -m wharf db upgrade && python -m wharf access apply"
    )
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = compose()["services"][name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}
