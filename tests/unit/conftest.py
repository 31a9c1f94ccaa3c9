"""The unit lane needs no service: no PostgreSQL (embedded or not) and no Airflow metadata
database. These guards fail a unit test that opens a PostgreSQL connection, and the session
when a service was started or the metadata database touched: such a test belongs in
tests/integration."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from wharf import settings

_DATASETS_CONN = f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}"


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("a unit test opened a PostgreSQL connection: move it to tests/integration")


@pytest.fixture(autouse=True)
def _no_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psycopg, "connect", _refuse)
    monkeypatch.setattr(psycopg.Connection, "connect", _refuse)


@pytest.fixture(scope="session", autouse=True)
def _no_services() -> Iterator[None]:
    yield
    if "support" in sys.modules:  # the integration lane ran in this session too
        return
    assert "pgserver" not in sys.modules, "a unit test started the embedded PostgreSQL"
    assert _DATASETS_CONN not in os.environ, f"{_DATASETS_CONN} was set in the unit lane"
    metadata_db = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    assert not metadata_db.exists(), "a unit test touched Airflow's metadata database"
