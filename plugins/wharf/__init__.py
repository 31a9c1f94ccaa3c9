"""Wharf: a dataset is a YAML file; Airflow 3 turns it into an ingestion DAG."""

import os
import sys

# Arrow's allocator, chosen before pyarrow's first allocation (Arrow reads this variable
# then): jemalloc, not pyarrow 26's default mimalloc on Linux, unless the operator chose one.
# With mimalloc a step's freed pages went back to the kernel and were zeroed again for the
# next batch: validate at 3M rows took 15-20% longer and 70 MB more (tests/unit/
# test_memory_pool.py has the numbers). Setting a variable imports nothing.
if sys.platform == "linux":
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
