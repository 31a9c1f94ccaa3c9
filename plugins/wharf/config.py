"""Where Wharf finds its project folders, its lake and its datasets database.

Every location can be overridden by an environment variable so the same code runs in the
embedded demo, in tests and in production:

- ``WHARF_HOME``: the project root (default: two folders above this package).
- ``WHARF_SCHEMAS_DIR``: dataset YAML (default ``<home>/include/schemas``).
- ``WHARF_LAKE_ROOT``: ``file:///...`` or ``s3://bucket/prefix`` (default ``<home>/.wharf/lake``).
- ``WHARF_DATASETS_CONN_ID``: the Airflow connection of the datasets PostgreSQL database
  (default ``wharf_datasets``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATASETS_CONN_ID_DEFAULT = "wharf_datasets"


def project_home() -> Path:
    """The project root: ``WHARF_HOME`` or the folder holding ``plugins/``."""
    return Path(os.environ.get("WHARF_HOME") or Path(__file__).resolve().parents[2])


def schemas_dir() -> Path:
    """Folder of dataset YAML files, one sub-folder per domain."""
    return Path(os.environ.get("WHARF_SCHEMAS_DIR") or project_home() / "include" / "schemas")


def sql_dir() -> Path:
    """Folder of data-cut SQL files and Wharf's own DDL."""
    return project_home() / "include" / "sql"


def reference_dir() -> Path:
    """Folder of reference data files versioned with the code."""
    return project_home() / "include" / "reference"


def state_dir() -> Path:
    """Wharf's local working folder (embedded database, lake, Airflow home): ``<home>/.wharf``."""
    return project_home() / ".wharf"


def lake_root() -> str:
    """Root URI of the lake: ``WHARF_LAKE_ROOT`` or a local folder under ``.wharf/lake``."""
    return os.environ.get("WHARF_LAKE_ROOT") or (state_dir() / "lake").as_uri()


def datasets_conn_id() -> str:
    """Airflow connection id of the datasets PostgreSQL database."""
    return os.environ.get("WHARF_DATASETS_CONN_ID", DATASETS_CONN_ID_DEFAULT)
