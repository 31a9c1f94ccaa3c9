"""Warm task starts: an Airflow command run with Wharf's task modules already imported.

Airflow 3 runs every task in a process forked (bare ``os.fork``, ``supervisor.start``) from
the process that executes it: a LocalExecutor worker, itself forked from the scheduler, or a
Celery pool process, forked from ``airflow celery worker``. A fork shares its parent's
modules, so whatever that parent imported a task does not import again. Measured under the
real scheduler (``bench/nightly.py``), a task process spent 0.5-1.5 s importing the step's
modules (pyarrow, psycopg, sqlalchemy, Wharf's pipeline) against a body of 0.3-1 s at
100,000 rows: the largest part of a task's start.

``python -m wharf.orchestration.preload scheduler`` (or ``celery worker …``) imports
``MODULES`` and then runs ``airflow scheduler`` in the same process; ``wharf stack`` and
the compose file start the scheduler and the Celery workers this way. Nothing is connected
or started here (no thread, no socket, no file), so the fork copies no state a task could
share by mistake. Great Expectations is imported too (4-7 s and about 160 MB once per
forking process, saved in every ``validate`` of a dataset with ``checks``), unless
``WHARF_PRELOAD_GX=false``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time

# What a step imports when it runs (``dag_factory.run_step`` -> ``orchestration.tasks``),
# the source modules ``wharf.extract`` imports by type, and what steps import inside their
# bodies: the datasets database's hook (``connections.connect``: a fifth of a task process's
# samples under py-spy before it was here), the lake's datasets, the report.
MODULES = (
    "wharf.orchestration.tasks",
    "wharf.orchestration.openlineage",
    "wharf.validate.report",
    "wharf.extract.file",
    "wharf.extract.sql",
    "wharf.extract.http",
    "wharf.extract.google_sheets",
    "wharf.extract.stream",
    "airflow.providers.postgres.hooks.postgres",
    "airflow.providers.http.hooks.http",
    "pyarrow.compute",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "pyarrow.csv",
    "pyarrow.json",
    "pgpq",
    "psycopg",
    "sqlalchemy",
    "adbc_driver_manager",
    "adbc_driver_postgresql",
    "connectorx",
    "python_calamine",
    "fastexcel",
    "jinja2.ext",
)
GX_MODULES = ("great_expectations",)


def modules() -> tuple[str, ...]:
    """The modules to import first: ``MODULES`` and, unless ``WHARF_PRELOAD_GX`` is false,
    Great Expectations."""
    without_gx = os.environ.get("WHARF_PRELOAD_GX", "").lower() in ("0", "false", "no")
    return MODULES + (() if without_gx else GX_MODULES)


def preload(names: tuple[str, ...]) -> float:
    """Import ``names``; returns the seconds it took. A module that fails to import is left
    to the task that needs it, which fails with the real error in its own log."""
    began = time.monotonic()
    gx_log = logging.getLogger("great_expectations")
    level = gx_log.level
    gx_log.setLevel(logging.WARNING)  # GX logs a line per API it registers at import
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as err:  # the task's own import reports it
                print(f"wharf preload: {name} not imported: {type(err).__name__}", file=sys.stderr)
    finally:
        gx_log.setLevel(level)
    return time.monotonic() - began


def main(argv: list[str]) -> None:
    """Run ``airflow <argv>`` in this process once ``modules()`` are imported."""
    import airflow  # noqa: F401 - Airflow's settings first, as `airflow` itself starts

    seconds = preload(modules())
    print(f"wharf preload: task modules imported in {seconds:.2f} s", file=sys.stderr)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *argv]
    airflow_main()


if __name__ == "__main__":
    main(sys.argv[1:])
