"""JSON-lines files: one object per line, landing as text per contract column as an HTTP
source's records do (``wharf.extract.json_records``). An error names the file and line,
never the line's text.

The file is read in blocks of about 2 MiB of whole lines. Each block is parsed by Arrow's
JSON reader (``pyarrow.json``) when the result can be the same text Python's path gives; any
block it cannot vouch for (see ``_ArrowBlocks``) is read again line by line by Python's
``json``, which alone raises the errors, so a bad line fails with the same message either way.
Up to ``_AHEAD`` blocks are parsed and turned into text at once, in threads (Arrow releases
the GIL), while this thread reads the file; batches come in the file's order.
"""

from __future__ import annotations

import json
import re
import struct
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.extract import Extract

if TYPE_CHECKING:  # file_formats imports this module to read JSON lines
    from wharf.extract.file_formats import Opener

# Bytes of whole lines parsed at a time (a longer line is one block). 2 MiB is about 13,000
# lines of the benchmark's rows, enough to amortise Arrow's and the checks' per-call costs;
# memory holds _AHEAD + 1 blocks and their tables (4 MiB blocks read no faster on 2 cores
# and raised peak RSS by 20 to 60 MB, from run to run: each thread's allocator keeps its own).
_BLOCK_BYTES = 2 << 20
# Blocks Arrow parses at once, in as many threads, ahead of the one being yielded.
_AHEAD = 2
# A gzip file is read in the steps its own line iteration would take, so that a corrupt or
# truncated one fails "after line N" with the N the line-by-line reader gave.
_GZIP_STEP = 8192
_BOM = b"\xef\xbb\xbf"
_NEWLINE, _SPACE = 0x0A, 0x20
# Contract types whose parse makes ``12`` and ``12.0`` the same value: the only ones for
# which a JSON number Arrow read as a double may land as Python's repr of that double.
_FLOAT_TYPES = frozenset(["double", "float", "decimal"])


def _double(value: float) -> pa.Scalar:
    """An Arrow double built from its bytes: ``pa.scalar`` of a Python object imports pandas
    (pyarrow's check for pandas objects: 0.3 s or more and 45 MB here), which this reader
    never needs."""
    return pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(struct.pack("=d", value))])[0]


def _string(text: str) -> pa.Scalar:
    """An Arrow string built from its bytes, for the reason ``_double`` gives."""
    data = text.encode()
    offsets = pa.py_buffer(struct.pack("=ii", 0, len(data)))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])[0]


_EXACT_DOUBLE = _double(2**53)  # above it a JSON integer read as a double has lost digits
# Where Arrow's cast of a double writes Python's repr digits (see _text).
_REPR_LOW, _REPR_HIGH, _ZERO = _double(1e-4), _double(1e10), _double(0.0)
_POINT_ZERO, _EMPTY = _string(".0"), _string("")


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

    def blocks() -> Iterator[tuple[int, bytearray]]:
        with opener() as file:
            gzipped = path.name.endswith(".gz")
            handle: Any = gzip.GzipFile(fileobj=file) if gzipped else file
            try:
                yield from _blocks(handle.readinto, _GZIP_STEP if gzipped else _BLOCK_BYTES)
            except _Broken as broken:
                err = broken.__cause__
                # gzip's own message quotes the file's first bytes: say what, not those.
                raise ValueError(
                    f"{name}, after line {broken.lines}: not a gzip file, or a truncated one "
                    f"({type(err).__name__})"
                ) from None

    def batches() -> Iterator[pa.RecordBatch]:
        for first, block, table in _parsed(blocks(), arrow):
            if table is not None:
                yield from table.to_batches(max_chunksize=source.batch_size)
                continue
            batcher = RecordBatcher(spec, source.column_paths, source.batch_size)
            yield from batcher.add(_records(bytes(block), first, source.encoding, name))
            yield from batcher.flush()

    return Extract(schema, batches(), f"JSON-lines file {name}")


class _Broken(Exception):
    """A compressed stream that broke after ``lines`` whole lines (its cause: gzip's error)."""

    def __init__(self, lines: int) -> None:
        super().__init__(lines)
        self.lines = lines


def _parsed(
    blocks: Iterator[tuple[int, bytearray]], arrow: _ArrowBlocks | None
) -> Iterator[tuple[int, bytearray, pa.Table | None]]:
    """(number of the block's first line, block, Arrow's table of it or None) in the file's
    order, Arrow parsing up to ``_AHEAD`` blocks at once in threads. An error reading the
    file is raised once the blocks read before it were yielded."""
    if arrow is None:
        for first, block in blocks:
            yield first, block, None
        return
    pool = ThreadPoolExecutor(max_workers=_AHEAD, thread_name_prefix="wharf-jsonl")
    pending: deque[tuple[int, bytearray, Future[pa.Table | None]]] = deque()
    failure: Exception | None = None
    try:
        while True:
            try:
                first, block = next(blocks)
            except StopIteration:
                break
            except Exception as err:  # raised below, once the blocks before it are yielded
                failure = err
                break
            pending.append((first, block, pool.submit(arrow.read, block)))
            if len(pending) > _AHEAD:
                first, block, parsed = pending.popleft()
                yield first, block, parsed.result()
        while pending:
            first, block, parsed = pending.popleft()
            yield first, block, parsed.result()
        if failure is not None:
            raise failure
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _blocks(readinto: Callable[[memoryview], int], step: int) -> Iterator[tuple[int, bytearray]]:
    """(number of the first line, whole lines) of about ``_BLOCK_BYTES``, read ``step`` bytes
    at a time straight into a new buffer per block (Arrow reads it where it is); the last
    block may end without a newline. A gzip error raises ``_Broken`` after the whole lines
    read before it were yielded."""
    import gzip
    import zlib

    pending, number, end = b"", 1, False
    while not end:
        block, size, broken = bytearray(len(pending) + _BLOCK_BYTES), len(pending), None
        block[:size] = pending
        try:
            while True:
                if size == len(block):
                    block.extend(bytes(len(block)))  # a line longer than a block: more room
                with memoryview(block)[size : size + step] as room:
                    got = readinto(room)
                if not got:
                    end = True
                    break
                size += got
                if size >= _BLOCK_BYTES and block.find(b"\n", size - got, size) >= 0:
                    break
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            broken = err
        cut = size if end else block.rfind(b"\n", 0, size) + 1
        pending = bytes(block[cut:size])
        del block[cut:]
        if block:
            yield number, block
            number += _newline_count(block)
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
        self._as_text: frozenset[tuple[str, ...]] = frozenset()  # declared strings

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

    def read(self, block: bytearray) -> pa.Table | None:
        if block.startswith(_BOM):
            return None
        if not block.isascii():  # ASCII is UTF-8, and the check is a tenth of decoding's
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                return None
        lines = _non_blank_lines(block)
        declared = self._as_text  # what another thread learns meanwhile, a later parse uses
        while True:
            try:
                table = pajson.read_json(
                    pa.BufferReader(pa.py_buffer(block)),
                    read_options=pajson.ReadOptions(use_threads=False, block_size=len(block) + 1),
                    parse_options=pajson.ParseOptions(explicit_schema=_declared(declared)),
                )
            except pa.ArrowInvalid:
                return None
            if table.num_rows != lines:
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
            known = declared | timestamps
            if timestamps <= declared or any(
                a != b and a == b[: len(a)] for a in known for b in known
            ):
                return None  # declared yet inferred, or a path inside another: Python reads it
            declared = known
            self._as_text = self._as_text | known


def _declared(paths: frozenset[tuple[str, ...]]) -> pa.Schema | None:
    """The fields Arrow is told are strings, nested as the paths say."""
    if not paths:
        return None
    tree: dict[str, Any] = {}
    for steps in paths:
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


def _newline_count(block: bytearray) -> int:
    """How many newlines the block holds (NumPy counts them in a quarter of the time
    ``bytes.count`` takes, measured on 2 MiB blocks)."""
    import numpy as np

    return int(np.count_nonzero(np.frombuffer(block, np.uint8) == _NEWLINE))


def _non_blank_lines(block: bytearray) -> int:
    """How many of the block's lines hold more than spaces, tabs or a carriage return."""
    import numpy as np

    data = np.frombuffer(block, np.uint8)
    starts = np.flatnonzero(data == _NEWLINE) + 1  # the lines after the first
    if block.endswith(b"\n"):
        starts = starts[:-1]
    lines = starts.size + 1
    # A line that starts past a space is not blank: the usual answer, from one byte a line.
    if data[0] > _SPACE and not np.any(data[starts] <= _SPACE):
        return lines
    blanks = len(re.findall(rb"(?m)^[ \t\r]*$", block))
    return lines - (blanks - 1 if block.endswith(b"\n") else blanks)


def _field(table: pa.Table, steps: tuple[str, ...]) -> pa.Array | None:
    """The values at the path of keys, None where every record lacks it; a step into a
    value that is not an object is NULL, as ``json_records`` walks it."""
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
    if values is None or pa.types.is_null(values.type):
        return pa.nulls(rows, pa.string())
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return values.cast(pa.string())
    if pa.types.is_boolean(kind):
        return values.cast(pa.string())  # true, false
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
            pc.greater_equal(size, _REPR_HIGH),
            pc.and_(pc.less(size, _REPR_LOW), pc.not_equal(size, _ZERO)),
        )
        if pc.any(odd).as_py():
            return pa.array(
                [None if v is None else repr(v) for v in values.to_pylist()], pa.string()
            )
        text = values.cast(pa.string())
        whole = pc.equal(pc.floor(values), values)  # the cast wrote no ".0": add it
        return pc.binary_join_element_wise(text, pc.if_else(whole, _POINT_ZERO, _EMPTY), _EMPTY)
    return None
