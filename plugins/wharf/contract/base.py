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


# Steps of a JSONPath (names, indexes, unions: its '.', '[', '|' and '&'). jsonpath-ng
# parses 1,000 steps, then recurses past Python's limit compiling and walking them at every
# run; a record nested 64 deep is already far past what an API or a file holds.
MAX_JSONPATH_STEPS = 64


@functools.lru_cache(maxsize=8192)
def jsonpath_problem(path: str) -> str | None:
    """Why ``path`` is not a JSONPath (jsonpath-ng's parser) of at most
    ``MAX_JSONPATH_STEPS`` steps, or None if it is one."""
    if sum(map(path.count, ".[|&")) > MAX_JSONPATH_STEPS:
        return f"more than {MAX_JSONPATH_STEPS} steps: Wharf follows at most {MAX_JSONPATH_STEPS}"
    # Cached, and one parser reused: jsonpath_ng.parse() builds its LALR parser on every call
    # (~1 ms), and 2,000 YAMLs re-validated from the spec cache at every DAG-folder parse
    # repeat the same paths. The same text always gets the same answer.
    with _JSONPATH_LOCK:
        try:
            _jsonpath_parser().parse(path)
        except Exception as err:  # jsonpath-ng raises bare Exception and JsonPathLexerError
            return str(err)
    return None


_JSONPATH_LOCK = threading.Lock()  # a ply parser keeps its state on itself while it parses


@functools.cache
def _jsonpath_parser() -> Any:
    from jsonpath_ng.parser import JsonPathParser

    return JsonPathParser()
