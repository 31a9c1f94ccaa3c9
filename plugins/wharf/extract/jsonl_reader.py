"""JSON-lines files: one object per line, landing as text per contract column as an HTTP
source's records do (``wharf.extract.json_records``). An error names the file and line,
never the line's text.

The file is read in blocks of about 1 MiB of whole lines. Each block is parsed by Arrow's
JSON reader (``pyarrow.json``) when the result can be the same text Python's path gives; any
block it cannot vouch for (see ``_ArrowBlocks``) is read again line by line by Python's
``json``, which alone raises the errors, so a bad line fails with the same message either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.extract import Extract

if TYPE_CHECKING:  # file_formats imports this module to read JSON lines
    from wharf.extract.file_formats import Opener

# Bytes of whole lines parsed at a time (a longer line is one block). 1 MiB is about 8,000
# lines of the benchmark's rows: Arrow's per-call cost is amortised, and memory holds one
# block and its table.
_BLOCK_BYTES = 1 << 20
# A gzip file is read in the steps its own line iteration would take, so that a corrupt or
# truncated one fails "after line N" with the N the line-by-line reader gave.
_GZIP_STEP = 8192
_BOM = b"\xef\xbb\xbf"
_MAY_BE_BLANK = re.compile(rb"\n[ \t\r]*\n")
# Contract types whose parse makes ``12`` and ``12.0`` the same value: the only ones for
# which a JSON number Arrow read as a double may land as Python's repr of that double.
_FLOAT_TYPES = frozenset(["double", "float", "decimal"])
_EXACT_DOUBLE = float(2**53)  # above it a JSON integer read as a double has lost digits


def read_jsonl(
    opener: Opener, path: Path, source: FileSource, spec: DatasetSpec, name: str
) -> Extract:
    """One JSON object per line (blank lines skipped; gzip when the name ends in ``.gz``),
    read into batches of at most ``batch_size`` records. Lines are split on ``\n`` before
    decoding, so an error names its exact line (``encoding`` must keep ``\n`` one byte, as
    UTF-8, which JSON lines use, and Latin-1 do). Raises ``ValueError`` naming the file and
    line of a line that is not a JSON object, or the line after which a gzip file breaks."""
    import gzip

    from wharf.extract.json_records import RecordBatcher

    schema = RecordBatcher(spec, source.column_paths, source.batch_size).schema
    arrow = _ArrowBlocks.for_source(spec, source, schema)

    def blocks() -> Iterator[tuple[int, bytes]]:
        with opener() as file:
            gzipped = path.name.endswith(".gz")
            handle: Any = gzip.GzipFile(fileobj=file) if gzipped else file
            try:
                yield from _blocks(handle, _GZIP_STEP if gzipped else _BLOCK_BYTES)
            except _Broken as broken:
                err = broken.__cause__
                # gzip's own message quotes the file's first bytes: say what, not those.
                raise ValueError(
                    f"{name}, after line {broken.lines}: not a gzip file, or a truncated one "
                    f"({type(err).__name__})"
                ) from None

    def batches() -> Iterator[pa.RecordBatch]:
        for first, block in blocks():
            table = arrow.read(block) if arrow is not None else None
            if table is not None:
                yield from table.to_batches(max_chunksize=source.batch_size)
                continue
            batcher = RecordBatcher(spec, source.column_paths, source.batch_size)
            yield from batcher.add(_records(block, first, source.encoding, name))
            yield from batcher.flush()

    return Extract(schema, batches(), f"JSON-lines file {name}")


class _Broken(Exception):
    """A compressed stream that broke after ``lines`` whole lines (its cause: gzip's error)."""

    def __init__(self, lines: int) -> None:
        super().__init__(lines)
        self.lines = lines


def _blocks(handle: IO[bytes], step: int) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, whole lines) of about ``_BLOCK_BYTES``, read ``step`` bytes
    at a time; the last block may end without a newline. A gzip error raises ``_Broken``
    after the whole lines read before it were yielded."""
    import gzip
    import zlib

    read = handle.read1 if hasattr(handle, "read1") else handle.read
    pending, number, end = b"", 1, False
    while not end:
        parts, size, broken = [pending], len(pending), None
        try:
            while True:
                data = read(step)
                if not data:
                    end = True
                    break
                parts.append(data)
                size += len(data)
                if size >= _BLOCK_BYTES and b"\n" in data:
                    break
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            broken = err
        data = b"".join(parts)
        cut = len(data) if end else data.rfind(b"\n") + 1
        block, pending = data[:cut], data[cut:]
        if block:
            yield number, block
            number += block.count(b"\n")
        if broken is not None:
            raise _Broken(number - 1) from broken


def _records(block: bytes, first: int, encoding: str, name: str) -> Iterator[Any]:
    """The block's objects, line by line (``first`` is its first line's number)."""
    # Each line keeps its newline, as a file's lines do: json's error column counts it.
    *lines, last = block.split(b"\n")
    raws = [line + b"\n" for line in lines] + ([last] if last else [])
    for number, raw in enumerate(raws, first):
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{name}, line {number}: not {encoding} text ({err.reason} at byte {err.start + 1})"
            ) from None
        if line.strip():
            yield _json_object(line, name, number)


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


class _ArrowBlocks:
    """Blocks parsed by ``pyarrow.json`` into the landing text, for UTF-8 files whose columns
    read a key or a path of keys (``$.a.b``: struct fields). ``read`` gives None for a block
    whose text could differ from Python's path, which then reads it:

    - Arrow refuses it (not JSON, a line that is not an object, a key twice, a value whose
      kind changes between lines), or it is not UTF-8, or starts with a byte-order mark
      (which Arrow skips and Python refuses), or a line holds more than one object;
    - a column's values are arrays or objects (Python writes them as JSON), or numbers that
      Arrow read as doubles where the contract type is not double/float/decimal (Arrow
      cannot say ``12`` from ``12.0``) or that are integers past 2**53.

    Text that Arrow would read as a timestamp is asked for as text: the block is parsed
    again with those fields declared strings, and so is every later block."""

    def __init__(self, columns: list[tuple[tuple[str, ...], str]], schema: pa.Schema) -> None:
        self._columns = columns  # (path of keys, contract data_type) per landing column
        self._schema = schema
        self._as_text: set[tuple[str, ...]] = set()  # paths declared strings

    @classmethod
    def for_source(
        cls, spec: DatasetSpec, source: FileSource, schema: pa.Schema
    ) -> _ArrowBlocks | None:
        import codecs

        from wharf.extract.json_records import key_steps

        if codecs.lookup(source.encoding).name != "utf-8":
            return None
        columns = []
        for column in spec.columns:
            path = source.column_paths.get(column.name)
            steps = key_steps(path) if path else (column.source_name or column.name,)
            if not steps:
                return None  # a JSONPath beyond keys: Python's path reads the file
            columns.append((steps, str(column.data_type)))
        return cls(columns, schema)

    def read(self, block: bytes) -> pa.Table | None:
        import pyarrow.json as pajson

        if block.startswith(_BOM):
            return None
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        while True:
            try:
                table = pajson.read_json(
                    pa.BufferReader(block),
                    read_options=pajson.ReadOptions(use_threads=False, block_size=len(block) + 1),
                    parse_options=pajson.ParseOptions(explicit_schema=self._declared()),
                )
            except pa.ArrowInvalid:
                return None
            if table.num_rows != lines - _blank_lines(block):
                return None  # two objects on a line, or one over two: Python refuses both
            texts, timestamps = [], set()
            for steps, data_type in self._columns:
                values = _field(table, steps)
                if values is not None and pa.types.is_timestamp(values.type):
                    timestamps.add(steps)
                    continue
                text = _text(values, data_type, table.num_rows)
                if text is None:
                    return None
                texts.append(text)
            if not timestamps:
                return pa.Table.from_arrays(texts, schema=self._schema)
            declared = self._as_text | timestamps
            if timestamps <= self._as_text or any(
                a != b and a == b[: len(a)] for a in declared for b in declared
            ):
                return None  # declared yet inferred, or a path inside another: Python reads it
            self._as_text = declared

    def _declared(self) -> pa.Schema | None:
        """The fields Arrow is told are strings, nested as the paths say."""
        if not self._as_text:
            return None
        tree: dict[str, Any] = {}
        for steps in self._as_text:
            node = tree
            for step in steps[:-1]:
                node = node.setdefault(step, {})
            node[steps[-1]] = None

        def typed(node: dict[str, Any]) -> list[pa.Field]:
            return [
                pa.field(key, pa.string() if sub is None else pa.struct(typed(sub)))
                for key, sub in node.items()
            ]

        return pa.schema(typed(tree))


def _blank_lines(block: bytes) -> int:
    """How many of the block's lines hold only spaces, tabs or a carriage return."""
    import re

    tail = block[block.rfind(b"\n") + 1 :]
    if (
        not _MAY_BE_BLANK.search(block)
        and block[:1] not in b" \t\r\n"
        and (not tail or tail.strip(b" \t\r"))
    ):
        return 0  # the usual answer, found by one scan of Python's re (a literal-led pattern)
    count = len(re.findall(rb"(?m)^[ \t\r]*$", block))
    return count - 1 if block.endswith(b"\n") else count


def _field(table: pa.Table, steps: tuple[str, ...]) -> pa.Array | None:
    """The values at the path of keys, None where every record lacks it; a step into a
    value that is not an object is NULL, as ``json_records`` walks it."""
    import pyarrow.compute as pc

    if steps[0] not in table.column_names:
        return None
    values: pa.Array = table.column(steps[0]).combine_chunks()
    for step in steps[1:]:
        if not pa.types.is_struct(values.type):
            return pa.nulls(len(values))
        if values.type.get_field_index(step) < 0:
            return None
        values = pc.struct_field(values, step)
    return values


def _text(values: pa.Array | None, data_type: str, rows: int) -> pa.Array | None:
    """The values as ``json_records.as_text`` writes them, or None when Arrow's reading
    cannot say what Python's would."""
    import pyarrow.compute as pc

    if values is None or pa.types.is_null(values.type):
        return pa.nulls(rows, pa.string())
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return values.cast(pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(values, "true", "false")
    if pa.types.is_int64(kind):
        return values.cast(pa.string())
    if pa.types.is_float64(kind) and data_type in _FLOAT_TYPES:
        size = pc.abs(values)
        if pc.any(pc.greater_equal(size, _EXACT_DOUBLE)).as_py():
            return None
        # Arrow's cast writes Python's repr digits for 1e-4 <= |v| < 1e10, less the ".0" of
        # a whole number (measured); outside it (1.8037489358642966e+11, 0.0000577...) they
        # part, and those columns take Python's repr, the text json_records gives a float.
        odd = pc.or_(
            pc.greater_equal(size, 1e10), pc.and_(pc.less(size, 1e-4), pc.not_equal(size, 0))
        )
        if pc.any(odd).as_py():
            return pa.array(
                [None if v is None else repr(v) for v in values.to_pylist()], pa.string()
            )
        text = values.cast(pa.string())
        whole = pc.match_substring_regex(text, r"^-?\d+$")
        return pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)
    return None
