"""JSON records (from an API page or a JSON-lines file) to Arrow text batches.

Each contract column takes its value from the record's key ``source_name`` or ``name``, or
from a JSONPath (jsonpath-ng) given per column. Values land as text, as CSV values do, and
``validate`` parses them to the contract's types: strings as they are, numbers and booleans
as JSON writes them (``1.5``, ``true``), objects and arrays as compact JSON, JSON ``null``
and missing keys as NULL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from wharf.contract.dataset import DatasetSpec

Getter = Callable[[Any], Any]


def compile_path(path: str) -> Getter:
    """A function ``record -> value`` for a JSONPath: None when nothing matches, the value
    when one thing does, the list of values when several do.

    Paths made only of names and indexes (``$.a.b[0].c``) are walked directly, about 50x
    faster than jsonpath-ng's ``find``, which evaluates any other path.
    """
    from jsonpath_ng import parse

    try:  # wharf check bounds a path's size; a YAML changed since is refused here too
        parsed = parse(path)
        steps = _simple_steps(parsed)
    except RecursionError:
        raise ValueError(f"a JSONPath of {len(path):,} characters is nested too deeply") from None
    if steps is not None:
        return lambda record: _walk(record, steps)

    def find(record: Any) -> Any:
        matches = [m.value for m in parsed.find(record)]
        if not matches:
            return None
        return matches[0] if len(matches) == 1 else matches

    return find


def key_steps(path: str) -> tuple[str, ...] | None:
    """The keys of a JSONPath made of names only (``$.a.b`` -> ``("a", "b")``), else None
    (indexes, wildcards, filters, or ``$`` itself)."""
    from jsonpath_ng import parse

    steps = _simple_steps(parse(path))
    if not steps or not all(isinstance(step, str) for step in steps):
        return None
    return tuple(str(step) for step in steps)


def records_getter(path: str) -> Callable[[Any], list[Any]]:
    """A function ``page -> records`` for ``records_path``: the path may point at the array
    (``$.data``) or at its elements (``$.data[*]``). Raises ``ValueError`` when the page has
    no such array (the message names the path and the keys found)."""
    from jsonpath_ng import parse
    from jsonpath_ng.jsonpath import Child, Slice, Wildcard

    parsed = parse(path)
    if isinstance(parsed, Child) and isinstance(parsed.right, Wildcard | Slice):
        parsed = parsed.left  # '$.data[*]' -> the array at '$.data'
    steps = _simple_steps(parsed)

    def records(page: Any) -> list[Any]:
        if steps is not None:
            found = _walk(page, steps)
        else:
            matches = [m.value for m in parsed.find(page)]
            found = matches[0] if len(matches) == 1 else matches
        if isinstance(found, list):
            return found
        if found is None:
            raise ValueError(
                f"records_path {path!r} matches nothing in the response (found {_keys(page)})"
            )
        if isinstance(found, Mapping):
            return [found]
        raise ValueError(f"records_path {path!r} points at a {type(found).__name__}, not records")

    return records


def _keys(page: Any, most: int = 10, chars: int = 40) -> str:
    """A page's top-level keys for a message: names only, never values, at most ``most`` of
    them, each cut to ``chars`` characters (a page keyed by data must not fill an error)."""
    if not isinstance(page, Mapping):
        return type(page).__name__
    keys = [repr(str(k)[:chars]) for k in list(page)[:most]]
    more = len(page) - len(keys)
    return ", ".join(keys) + (f" and {more} more" if more > 0 else "") if keys else "no keys"


def _simple_steps(parsed: Any) -> tuple[str | int, ...] | None:
    from jsonpath_ng.jsonpath import Child, Fields, Index, Root, This

    if isinstance(parsed, Root | This):
        return ()
    if isinstance(parsed, Fields) and len(parsed.fields) == 1 and parsed.fields[0] != "*":
        return (parsed.fields[0],)
    if isinstance(parsed, Index) and len(parsed.indices) == 1:
        return (parsed.indices[0],)
    if isinstance(parsed, Child):
        left, right = _simple_steps(parsed.left), _simple_steps(parsed.right)
        if left is not None and right is not None:
            return left + right
    return None


def _walk(value: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return None
            value = value[step]
        elif isinstance(value, Mapping):
            value = value.get(step)
        else:
            return None
    return value


def _key_getter(key: str) -> Getter:
    return lambda record: record.get(key) if isinstance(record, dict) else None


def as_text(value: Any) -> str | None:
    """A JSON value as landing text (see the module docstring)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RecordBatcher:
    """Turns records into landing batches of at most ``batch_size`` rows, one text column
    per contract column, named as the contract expects to find it (``source_name`` or name).
    """

    def __init__(self, spec: DatasetSpec, column_paths: Mapping[str, str], batch_size: int):
        self.schema = pa.schema(
            [pa.field(c.source_name or c.name, pa.string()) for c in spec.columns]
        )
        self._getters: list[Getter] = []
        for column in spec.columns:
            path = column_paths.get(column.name)
            key = column.source_name or column.name
            self._getters.append(compile_path(path) if path else _key_getter(key))
        self._batch_size = batch_size
        self._pending: list[Any] = []

    def add(self, records: Iterable[Any]) -> Iterator[pa.RecordBatch]:
        """Take ``records`` (a page, or a lazy stream: read one at a time); yield each batch
        as it fills."""
        for record in records:
            self._pending.append(record)
            if len(self._pending) >= self._batch_size:
                chunk, self._pending = self._pending, []
                yield self._batch(chunk)

    def flush(self) -> Iterator[pa.RecordBatch]:
        """Yield what is left as a last, shorter batch."""
        if self._pending:
            chunk, self._pending = self._pending, []
            yield self._batch(chunk)

    def _batch(self, records: list[Any]) -> pa.RecordBatch:
        arrays = [
            pa.array([as_text(get(r)) for r in records], pa.string()) for get in self._getters
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
