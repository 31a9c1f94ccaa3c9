"""Warm task starts (issue #16): the processes that fork task processes import the tasks'
modules first (``wharf.orchestration.preload``), so a task does not import them again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wharf.cli.stack import Stack
from wharf.orchestration import preload

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("executor", "command", "warm"),
    [
        ("celery", ["celery", "worker", "-q", "default"], True),
        ("celery", ["scheduler"], False),  # CeleryExecutor's scheduler forks no task
        ("local", ["scheduler"], True),  # LocalExecutor's workers are the scheduler's forks
        ("local", ["api-server"], False),
        ("celery", ["dag-processor"], False),
        ("celery", ["triggerer"], False),
    ],
)
def test_only_the_processes_that_fork_tasks_start_warm(
    tmp_path: Path, executor: str, command: list[str], warm: bool
) -> None:
    assert Stack(tmp_path, executor=executor).forks_tasks(command) is warm


def test_great_expectations_is_preloaded_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WHARF_PRELOAD_GX", raising=False)
    assert "great_expectations" in preload.modules()
    monkeypatch.setenv("WHARF_PRELOAD_GX", "false")
    assert "great_expectations" not in preload.modules()
    assert "wharf.orchestration.tasks" in preload.modules()


def test_a_module_that_does_not_import_is_named_and_left_to_its_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    preload.preload(("wharf_no_such_module", "json"))
    assert capsys.readouterr().err.strip() == (
        "wharf preload: wharf_no_such_module not imported: ModuleNotFoundError"
    )


def test_the_command_runs_airflow_in_a_process_that_has_the_modules() -> None:
    # What a forked task process inherits: the wrapper's own sys.modules when Airflow's CLI
    # runs (`airflow version` here, `airflow scheduler` / `celery worker` in a stack).
    probe = (
        "import sys; sys.argv = ['preload', 'version'];"
        "import airflow.__main__ as m;"
        "m.main = lambda: print(all(n in sys.modules for n in ('wharf.orchestration.tasks',"
        " 'pyarrow.parquet', 'psycopg')));"
        "from wharf.orchestration import preload; preload.main(sys.argv[1:])"
    )
    env = {**os.environ, "WHARF_PRELOAD_GX": "false", "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert "wharf preload: task modules imported in" in done.stderr
    real = subprocess.run(
        [sys.executable, "-m", "wharf.orchestration.preload", "version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert real.returncode == 0, real.stderr
    assert real.stdout.strip().splitlines()[-1].startswith("3.")
