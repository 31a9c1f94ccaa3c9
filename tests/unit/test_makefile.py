"""The Makefile's commands, run with stand-in programs (no Airflow starts here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Stands in for wharf: `demo --source-only`, `db upgrade` and `access apply` succeed;
# `airflow-info` says it ran; `serve-demo -- CMD` runs CMD, as the real one.
FAKE_WHARF = """#!/bin/sh
[ "$1 $2" = "demo --source-only" ] && exit 0
[ "$1" = db ] && exit 0
[ "$1" = access ] && exit 0
[ "$1" = airflow-info ] && echo "wharf airflow-info" && exit 0
[ "$1" = stack ] && echo "wharf $*" && exit 0
shift 2
exec "$@"
"""
# Stands in for `airflow standalone`, which starts its scheduler, API server, triggerer and
# DAG processor as `airflow ...` by name: say which `airflow` that would find.
FAKE_AIRFLOW = """#!/bin/sh
command -v airflow
"""


def _fake_venv(tmp_path: Path) -> tuple[Path, Path, str]:
    """A venv of stand-ins (``FAKE_WHARF``, ``FAKE_AIRFLOW``), and a PATH without any venv."""
    venv = tmp_path / "venv"
    bin_dir = venv / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("wharf", FAKE_WHARF), ("airflow", FAKE_AIRFLOW), ("python", "")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (venv / ".synced").touch()  # newer than requirements.txt: nothing is installed
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "venv" not in p)
    return venv, bin_dir, path


def _make(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    venv, bin_dir, path = _fake_venv(tmp_path)
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), *args, f"VENV={venv}", f"BIN={bin_dir}"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        check=False,
    )
    return result, bin_dir


def test_make_airflow_prints_how_to_log_in_then_starts_standalone_with_the_venvs_airflow(
    tmp_path: Path,
) -> None:
    result, bin_dir = _make(tmp_path, "airflow")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["wharf airflow-info", str(bin_dir / "airflow")]


def test_make_stack_prepares_the_demo_then_starts_wharf_stack_with_its_workers(
    tmp_path: Path,
) -> None:
    result, _ = _make(tmp_path, "stack", "WORKERS=3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["wharf stack --workers 3"]
