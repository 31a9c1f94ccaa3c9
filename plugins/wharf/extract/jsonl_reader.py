"""JSON-lines files: one object per line, landing as text per contract column as an HTTP
source's records do (``wharf.extract.json_records``). An error names the file and line,
never the line's text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.extract import Extract

if TYPE_CHECKING:  # file_formats imports this module to read JSON lines
    from wharf.extract.file_formats import Opener


def read_jsonl(
    opener: Opener, path: Path, source: FileSource, spec: DatasetSpec, name: str
) -> Extract:
    """One JSON object per line (blank lines skipped; gzip when the name ends in ``.gz``),
    read line by line into batches of ``batch_size`` records. Lines are split on ``\n``
    before decoding, so an error names its exact line (``encoding`` must keep ``\n`` one
    byte, as UTF-8, which JSON lines use, and Latin-1 do)."""
    import gzip
    import zlib

    from wharf.extract.json_records import RecordBatcher

    batcher = RecordBatcher(spec, source.column_paths, source.batch_size)

    def records() -> Iterator[Any]:
        number = 0
        with opener() as file:
            handle: Any = gzip.GzipFile(fileobj=file) if path.name.endswith(".gz") else file
            try:
                for number, raw in enumerate(handle, 1):
                    try:
                        line = raw.decode(source.encoding)
                    except UnicodeDecodeError as err:
                        raise ValueError(
                            f"{name}, line {number}: not {source.encoding} text ({err.reason} "
                            f"at byte {err.start + 1})"
                        ) from None
                    if line.strip():
                        yield _json_object(line, name, number)
            except (gzip.BadGzipFile, EOFError, zlib.error) as err:
                # gzip's own message quotes the file's first bytes: say what, not those.
                raise ValueError(
                    f"{name}, after line {number}: not a gzip file, or a truncated one "
                    f"({type(err).__name__})"
                ) from None

    def batches() -> Iterator[pa.RecordBatch]:
        yield from batcher.add(records())
        yield from batcher.flush()

    return Extract(batcher.schema, batches(), f"JSON-lines file {name}")


def _json_object(line: str, name: str, number: int) -> Any:
    """The line's JSON object. An error names the line and the problem, never the line's
    text (a file can hold a secret on a line that is not JSON)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{name}, line {number}: not valid JSON ({err.msg} at column {err.pos + 1})"
        ) from None
    except RecursionError:
        raise ValueError(f"{name}, line {number}: JSON nested too deep") from None
    if not isinstance(record, dict):
        raise ValueError(
            f"{name}, line {number}: expected a JSON object, found {type(record).__name__}"
        )
    return record
