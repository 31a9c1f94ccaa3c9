"""Arrow allocates through jemalloc in Wharf's processes, unless the operator chose a pool.

pyarrow 26's default pool on Linux is mimalloc. Measured with ``bench/load_throughput.py``
(3M rows, the machine's PostgreSQL 15, 2026-12-02): ``validate`` took 2.0-2.3 s and
2.95-3.41 s of CPU with mimalloc, 1.67-2.0 s and 2.51-2.93 s with jemalloc, at 70 MB less
peak RSS; mimalloc's pages went back to the kernel and were zeroed again on the next
batch (``clear_page_erms``, 6% of the step's samples under ``perf``). Each case runs in a
fresh interpreter: the pool is chosen once, at pyarrow's first allocation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_POOL = "import wharf, pyarrow as pa; pa.array([1]); print(pa.default_memory_pool().backend_name)"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="jemalloc is measured on Linux")


def _pool(extra_env: dict[str, str], program: str = _POOL) -> str:
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "plugins"), "PATH": "/usr/bin:/bin", **extra_env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_importing_wharf_first_makes_arrow_allocate_through_jemalloc() -> None:
    assert _pool({}) == "jemalloc"


def test_an_operators_pool_is_kept() -> None:
    assert _pool({"ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"


def test_a_warm_workers_task_modules_choose_the_pool_before_pyarrow() -> None:
    # The preload imports MODULES in order into the forking process: the first must be
    # Wharf's, so that pyarrow (imported by the later ones) reads the choice.
    program = (
        "import importlib; from wharf.orchestration.preload import MODULES\n"
        "import sys; assert 'pyarrow' not in sys.modules, 'pyarrow before the preload'\n"
        "[importlib.import_module(m) for m in MODULES]\n"
        "import pyarrow as pa; pa.array([1]); print(pa.default_memory_pool().backend_name)"
    )
    assert _pool({}, program) == "jemalloc"
