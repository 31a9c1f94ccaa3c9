"""``type: file``: a CSV file, streamed with pyarrow's CSV reader.

Every column lands as text exactly as written (``validate`` parses it to the contract), and
only the YAML's ``null_values`` become NULL, so '' and NULL stay distinct when asked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from wharf.sources import Extract, Window
from wharf.spec import DatasetSpec, FileSource

# pyarrow reads CSV in blocks of this many bytes; rows per batch follow from it. 1 MiB blocks
# read 1M rows x 12 columns in 0.48 s at 164 MB peak RSS; 8 MiB blocks in 0.86 s at 284 MB.
_BLOCK_BYTES = 1 << 20


def extract(spec: DatasetSpec, window: Window) -> Extract:
    """Open the CSV (the whole file, whatever the window); raises ``FileNotFoundError``
    naming the path."""
    source = spec.source
    assert isinstance(source, FileSource)
    path = source.resolved_path()
    if not path.is_file():
        raise FileNotFoundError(f"{spec.dataset_id}: source file {path} does not exist")
    with open(path, "rb") as handle:
        header = pacsv.open_csv(
            handle,
            read_options=pacsv.ReadOptions(block_size=1 << 16),
            parse_options=pacsv.ParseOptions(delimiter=source.delimiter),
        ).schema.names
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(delimiter=source.delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            null_values=list(source.null_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )

    def batches() -> Iterator[pa.RecordBatch]:
        with reader:
            yield from reader

    return Extract(reader.schema, batches(), f"CSV file {path}")
