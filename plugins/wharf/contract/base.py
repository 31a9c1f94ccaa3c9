"""What every contract model shares: frozen, no unknown keys, and errors that point at
the key they are about (``wharf.specfiles`` turns the key path into a line)."""

from __future__ import annotations

import functools
import threading
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
)
from pydantic_core import PydanticCustomError


class ContractModel(BaseModel):
    """A YAML mapping: frozen, and an unknown key is an error (``extra='forbid'``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def duration_or_seconds(schema: dict[str, Any]) -> None:
    """A ``timedelta`` field's JSON Schema: pydantic reads seconds as well as ISO 8601 text,
    but writes only ``{"type": "string", "format": "duration"}``."""
    del schema["type"], schema["format"]
    schema["anyOf"] = [{"type": "string", "format": "duration"}, {"type": "number"}]


def spec_error(message: str, *at: str | int) -> PydanticCustomError:
    """A model-level error; ``at`` is the key path it points at (its line is reported)."""
    return PydanticCustomError("wharf_spec", message, {"at": at} if at else None)


def rapid_error(rule: str, message: str, **ctx: Any) -> PydanticCustomError:
    """An error quoting the rAPId rule it enforces; ``at`` in ``ctx`` points at a key."""
    return PydanticCustomError("rapid_rule", message + " (rAPId: " + rule + ")", ctx or None)


# A JSONPath's size, measured on its parsed tree (every operator, `where` included):
# jsonpath-ng parses 1,000 steps, then recurses past Python's limit compiling and walking
# them at every run; a record nested 64 deep is far past what an API or a file holds.
MAX_JSONPATH_STEPS = 64
MAX_JSONPATH_CHARS = 1_000
# Each further `..` multiplies what a record yields (`$..*..*..*..*` gave 487,635 values of
# one 422-byte record, ten times the three-`..` path's): one is enough to find a key.
MAX_JSONPATH_DESCENTS = 1


@functools.lru_cache(maxsize=8192)
def jsonpath_problem(path: str) -> str | None:
    """Why ``path`` is not a JSONPath (jsonpath-ng's parser) of at most
    ``MAX_JSONPATH_STEPS`` steps and ``MAX_JSONPATH_DESCENTS`` ``..``, or None if it is one."""
    if len(path) > MAX_JSONPATH_CHARS:
        return f"longer than {MAX_JSONPATH_CHARS:,} characters"
    # Cached, and one parser reused: jsonpath_ng.parse() builds its LALR parser on every call
    # (~1 ms), and 2,000 YAMLs re-validated from the spec cache at every DAG-folder parse
    # repeat the same paths. The same text always gets the same answer.
    with _JSONPATH_LOCK:
        try:
            tree = _jsonpath_parser().parse(path)
        except Exception as err:  # jsonpath-ng raises bare Exception and JsonPathLexerError
            return str(err)
    nodes, descents = _jsonpath_size(tree)
    if nodes > 2 * MAX_JSONPATH_STEPS + 1:  # $.a.b: Root, two Fields, two Child joins
        return f"more than {MAX_JSONPATH_STEPS} steps: Wharf follows at most {MAX_JSONPATH_STEPS}"
    if descents > MAX_JSONPATH_DESCENTS:
        return "more than one '..': each multiplies the values a record yields"
    return None


def _jsonpath_size(tree: Any) -> tuple[int, int]:
    """(nodes, ``..`` nodes) of a parsed JSONPath, walked without recursion."""
    from jsonpath_ng.jsonpath import Descendants

    nodes = descents = 0
    stack = [tree]
    while stack:
        node = stack.pop()
        nodes += 1
        descents += isinstance(node, Descendants)
        stack += [getattr(node, side) for side in ("left", "right") if hasattr(node, side)]
    return nodes, descents


_JSONPATH_LOCK = threading.Lock()  # a ply parser keeps its state on itself while it parses


@functools.cache
def _jsonpath_parser() -> Any:
    from jsonpath_ng.parser import JsonPathParser

    return JsonPathParser()
