"""Small Arrow values (a run id repeated, a value set, a timestamp) built from buffers.

``pa.scalar`` and ``pa.array`` given Python values first ask pandas whether they are pandas
objects, which imports pandas: about 0.5 s and 40 MB in a validate or load task that never
needs it (issue #18; ``tests/unit/test_no_pandas.py``). These build the same values from
their bytes instead.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECONDS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def strings(values: Sequence[str | None]) -> pa.Array:
    """A string array of ``values`` (None: NULL)."""
    data, offsets = bytearray(), array("i", [0])
    for value in values:
        if value is not None:
            data += value.encode("utf-8")
        offsets.append(len(data))
    buffers = [_validity(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(bytes(data))]
    return pa.Array.from_buffers(pa.string(), len(values), buffers)


def timestamps(values: Sequence[datetime | None], type_: pa.DataType) -> pa.Array:
    """A timestamp array of ``type_`` (unit s, ms or us) of ``values`` (a naive datetime is
    UTC; None: NULL). Pendulum's datetimes (Airflow's logical dates) are taken too."""
    per_tick = _MICROSECONDS[type_.unit]
    ticks = array("q", [0 if v is None else _microseconds(v) // per_tick for v in values])
    buffers = [_validity(values), pa.py_buffer(ticks.tobytes())]
    return pa.Array.from_buffers(type_, len(values), buffers)


def _microseconds(moment: datetime) -> int:
    """Since the Unix epoch, in whole numbers (a float timestamp would round them)."""
    delta = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


Value = str | datetime | bool | int | None


def scalar(value: Value, type_: pa.DataType) -> pa.Scalar:
    """``value`` as an Arrow scalar of ``type_``: a string, a timestamp (as ``timestamps``
    takes it), a boolean, a 64-bit integer or NULL of any type. Raises ``TypeError`` for
    another pairing."""
    if value is None:
        return pa.nulls(1, type_)[0]
    if isinstance(value, str) and pa.types.is_string(type_):
        return strings([value])[0]
    if isinstance(value, datetime) and pa.types.is_timestamp(type_):
        return timestamps([value], type_)[0]
    if isinstance(value, bool) and pa.types.is_boolean(type_):
        return pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(bytes([value]))])[0]
    if isinstance(value, int) and not isinstance(value, bool) and type_ == pa.int64():
        return pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(array("q", [value]))])[0]
    raise TypeError(f"no Arrow {type_} from {type(value).__name__}")


def repeat(value: Value, type_: pa.DataType, length: int) -> pa.Array:
    """``value`` (as ``scalar`` takes it) ``length`` times."""
    return pa.repeat(scalar(value, type_), length)


def _validity(values: Sequence[object]) -> pa.Buffer | None:
    """Arrow's validity bitmap of ``values`` (a bit per value, set unless None); None when
    none is None."""
    if all(v is not None for v in values):
        return None
    bits = bytearray((len(values) + 7) // 8)
    for index, value in enumerate(values):
        if value is not None:
            bits[index >> 3] |= 1 << (index & 7)
    return pa.py_buffer(bytes(bits))
