"""``type: file``: CSV, Parquet, xlsx or JSON-lines files (one, or a glob's matches), local or
on S3, streamed in batches.

CSV and xlsx values land as text exactly as written (``validate`` parses them to the
contract), and only the YAML's ``null_values`` become NULL, so '' and NULL stay distinct when
asked. Parquet lands with its own types. JSON lines land as text per contract column, as an
HTTP source's records do (``wharf.extract.json_records``).

An ``s3://`` object is read through the Amazon provider's ``S3Hook`` (``connections.s3_hook``:
the connection holds the credentials, region and endpoint): each object is downloaded,
streamed, to a temporary file, read by the same readers as a local file, and deleted once its
batches are read.

The threat model's file rule holds here again, whatever ``wharf check`` saw: a local file is
resolved (symlinks followed) and checked below the allowed roots right before it is opened,
each match of a glob in turn; it is opened without following a symlink, must be a regular
file, and the path of the opened descriptor is checked once more, so a symlink swapped in
between the check and the open is refused too. An ``s3://`` bucket must be allowed
(``WHARF_S3_BUCKETS``). Errors name the file and line, never a line's contents.

Here is the entry; the parts live beside it: ``local_files`` and ``s3_files`` (the file sets),
``completeness`` (the proofs that files are whole), ``file_formats`` (one file read in its
format, checked against those proofs) over ``csv_reader``, ``jsonl_reader``,
``parquet_reader`` and ``xlsx_reader``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pyarrow as pa

from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.extract import Extract, Modified, Window
from wharf.extract.completeness import Beside, Expected, expectations
from wharf.extract.local_files import LocalFiles
from wharf.extract.s3_files import S3Files


def extract(spec: DatasetSpec, window: Window) -> Extract:
    """Open the file, or every file a glob matches, in name order (whatever the window).

    Raises ``FileNotFoundError`` naming the path, pattern or S3 URL; a later file whose
    columns differ from the first's fails the extract naming both. With
    ``source.completeness``, markers and manifests are checked before any file is opened,
    and each file's digest and row count once its last batch is read
    (``IncompleteSourceError``).
    """
    source = spec.source
    assert isinstance(source, FileSource)
    files: _Files = S3Files(spec, source) if source.is_s3 else LocalFiles(spec, source)
    names = files.names
    if not names:
        raise FileNotFoundError(f"{spec.dataset_id}: no source file matches {files.where}")
    expected = expectations(spec, source, files)
    first = files.open(0, expected[0])
    if len(names) == 1:
        return first
    modified = Modified()  # the newest of the files' times
    modified.include(first.modified)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from first.batches
        for index in range(1, len(names)):
            opened = files.open(index, expected[index])
            modified.include(opened.modified)
            if opened.schema.names != first.schema.names:
                raise ValueError(
                    f"{spec.dataset_id}: {names[index]} has columns "
                    f"{', '.join(opened.schema.names)}; {names[0]} has "
                    f"{', '.join(first.schema.names)}"
                )
            yield from (b.cast(first.schema) for b in opened.batches)

    return Extract(first.schema, batches(), f"{len(names)} files {files.where}", modified)


class _Files(Beside, Protocol):
    """The files a source reads (``LocalFiles``, ``S3Files``): the path or pattern
    (``where``), a reader of each, and the completeness files beside each (``Beside``)."""

    where: str

    def open(self, index: int, expected: Expected) -> Extract: ...
