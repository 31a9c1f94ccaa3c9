"""What every test lane needs, and nothing that starts a service. Environment first:
Airflow reads its settings when first imported.

Lanes: ``tests/unit`` (no services, no Airflow metadata database), ``tests/dags`` (parses the
dags folder) and ``tests/integration``, whose conftest creates the datasets database and
migrates Airflow's metadata database (helpers in ``tests/integration/support.py``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
TMP = Path(tempfile.mkdtemp(prefix="wharf-tests-"))
os.environ["AIRFLOW_HOME"] = str(TMP / "airflow")
os.environ["WHARF_LAKE_ROOT"] = (TMP / "lake").as_uri()
os.environ.pop("WHARF_SCHEMAS_DIR", None)
# No OpenLineage events from every test's runs (the local default would write them to a file):
# tests/integration/test_openlineage.py sends its own to a receiver of its own.
os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"

from wharf import environment  # noqa: E402

environment.apply(start_database=False)


@pytest.fixture(scope="session", autouse=True)
def _temp_home() -> Iterator[None]:
    yield
    shutil.rmtree(TMP, ignore_errors=True)


@pytest.fixture
def schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty schemas folder used instead of include/schemas for one test."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(folder))
    return folder
