"""Parquet files, landing with their own types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import pyarrow as pa

from wharf.contract.file_source import FileSource
from wharf.extract import Extract


def read_parquet(handle: IO[bytes], source: FileSource, name: str) -> Extract:
    """The open file ``handle`` (left open) in batches of ``source.batch_size`` rows, one
    row group's columns read at a time; ``name`` is what messages call it."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(handle, pre_buffer=False)

    def batches() -> Iterator[pa.RecordBatch]:
        with parquet:
            yield from parquet.iter_batches(batch_size=source.batch_size, use_threads=False)

    return Extract(parquet.schema_arrow, batches(), f"Parquet file {name}")
