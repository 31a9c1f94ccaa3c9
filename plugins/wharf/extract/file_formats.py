"""One file of a file source read in its ``source.format`` (``csv_reader``, ``jsonl_reader``,
``parquet_reader``, ``xlsx_reader``), and checked against what its completeness proofs
expect (``completeness``) as it is read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa

from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.extract import Extract
from wharf.extract.completeness import Digest, Expected, verified
from wharf.extract.csv_reader import read_csv
from wharf.extract.jsonl_reader import read_jsonl
from wharf.extract.parquet_reader import read_parquet
from wharf.extract.xlsx_reader import read_xlsx

# Opens the file afresh on each call: a reader may need it more than once (CSV: its header,
# its rows, and the line of an error).
Opener = Callable[[], IO[bytes]]


def open_file(
    opener: Opener,
    path: Path,
    source: FileSource,
    spec: DatasetSpec,
    name: str,
    expected: Expected,
) -> Extract:
    """The reader of ``source.format`` over the file ``opener`` opens (``path`` gives its
    suffixes; ``name`` is what messages call it), verified against ``expected``: CSV and
    JSON lines are hashed as they are read (the bytes parsed are the bytes hashed), Parquet
    and xlsx, read at random, by a pass over the same open file before they are read."""
    digest = Digest() if expected.digests else None
    main = opener if digest is None else lambda: digest.reading(opener())
    try:
        opened = _read(opener, main, path, source, spec, name, digest)
    except BaseException:
        if digest is not None:
            digest.close()
        raise
    if expected.digests or expected.rows is not None:
        batches = verified(opened.batches, expected, digest, spec.dataset_id, name)
        return Extract(opened.schema, batches, opened.description, opened.modified)
    return opened


def _read(
    opener: Opener,
    main: Opener,
    path: Path,
    source: FileSource,
    spec: DatasetSpec,
    name: str,
    digest: Digest | None,
) -> Extract:
    """The format's reader: ``opener`` opens the file, ``main`` opens it for the rows (the
    digest's reading, when there is one)."""
    if source.format == "csv":
        opened = read_csv(opener, source, name, main)
    elif source.format == "jsonl":
        opened = read_jsonl(main, path, source, spec, name)
    else:
        handle = opener()
        try:
            if digest is not None:
                digest.whole(handle)
            if source.format == "parquet":
                opened = read_parquet(handle, source, name)
            else:
                opened = read_xlsx(
                    handle, source.sheet, source.null_values, source.batch_size, name=name
                )
        except BaseException:
            handle.close()
            raise
        opened = Extract(
            opened.schema, _closing(opened.batches, handle), opened.description, opened.modified
        )
    return opened


def _closing(batches: Iterator[pa.RecordBatch], handle: IO[bytes]) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    finally:
        handle.close()
