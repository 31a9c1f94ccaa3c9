"""Safe YAML loading that remembers the line of every key, so errors can name file:line.

Uses libyaml's ``CSafeLoader`` when available: the pure-Python loader made a 500-file parse
2.5 times slower (measured for issue #2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # libyaml missing: correct but slower
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    """A file that is not valid YAML, or not a mapping at the top. ``line`` is 1-based."""

    def __init__(self, file: Path, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


def load_with_lines(file: Path) -> tuple[dict[str, Any], dict[Path_, int]]:
    """Load one YAML file safely.

    Returns the document (a dict) and a map from each key path, such as
    ``("columns", 3, "data_type")``, to its 1-based line.

    Raises ``YamlSyntaxError`` on a syntax error, a duplicate key, or a document that is not
    a mapping.
    """
    text = file.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlSyntaxError(file, 1, "the file is empty; expected a mapping with metadata:")
        if not isinstance(node, yaml.MappingNode):
            raise YamlSyntaxError(file, node.start_mark.line + 1, "expected a mapping at the top")
        lines: dict[Path_, int] = {}
        _index_lines(file, node, (), lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(file, line, f"invalid YAML: {err.problem or err}") from None
    finally:
        loader.dispose()
    return data, lines


def _index_lines(file: Path, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise YamlSyntaxError(file, key_node.start_mark.line + 1, f"duplicate key {key!r}")
            seen.add(key)
            _index_lines(file, value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(file, item, (*path, index), lines)


def line_of(lines: dict[Path_, int], data: Any, loc: tuple[str | int, ...]) -> tuple[int, Path_]:
    """The line of the deepest part of a pydantic error location found in the document.

    Pydantic locations carry extra parts (the tag of a discriminated union, a validator's
    name); those are skipped. Returns the line and the path that was found.
    """
    found: Path_ = ()
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        found = (*found, part)
    return lines.get(found, 1), found
