"""Safe, bounded YAML loading that remembers the line of every key, so errors name file:line.

A dataset YAML is written by someone less trusted than a DAG author (README, "Threat model"),
and the DAG processor reads every YAML: whatever a file holds must end here as a
``YamlSyntaxError`` naming its line, never as another exception that would hide the other
datasets' DAGs, and never by exhausting the machine. Hence the limits below, checked before
(size, encoding, nesting, aliases: a token scan, which is not recursive) and while (nodes after
alias expansion, tags, keys, values) the document is composed, and before anything is
constructed.

Uses libyaml's ``CSafeLoader`` when available: the pure-Python loader made a 500-file parse
2.5 times slower (measured for issue #2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # libyaml missing: correct but slower
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]

# A dataset YAML is a few KB; 1 MB holds about 10,000 columns.
MAX_FILE_BYTES = 1_000_000
# Wharf's contract nests five deep (checks -> arguments -> value_set -> ...); libyaml's C
# composer recurses per level and crashed the process at 30,000.
MAX_DEPTH = 32
# Aliases are legal YAML but a "billion laughs" document expands a few hundred bytes into
# billions of nodes: at most this many aliases, and this many nodes once they are expanded.
MAX_ALIASES = 100
MAX_NODES = 200_000
MAX_SCALAR_CHARS = 100_000
# Python refuses int() of more than 4,300 digits (CVE-2020-10735); no field needs 30.
MAX_INT_DIGITS = 30

_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"
_PLAIN_TAGS = {
    _STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}
# Dates are read as the text they are written as: the contract parses what it needs, and a
# date object would not survive the spec cache's JSON.
_AS_TEXT_TAGS = {"tag:yaml.org,2002:timestamp"}
# C0 controls but tab and newline, DEL, C1 controls; NUL included (PostgreSQL refuses it).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SCALAR_CONSTRUCTOR = yaml.SafeLoader("")


class YamlSyntaxError(ValueError):
    """A file that is not valid YAML, breaks a limit, or is not a mapping at the top.
    ``line`` is 1-based."""

    def __init__(self, file: Path, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


def load_with_lines(file: Path) -> tuple[dict[str, Any], dict[Path_, int]]:
    """Load one YAML file safely and within the limits above.

    Returns the document (a dict of str, int, float, bool, None, lists and dicts with str
    keys) and a map from each key path, such as ``("columns", 3, "data_type")``, to its
    1-based line.

    Raises ``YamlSyntaxError`` on a file that is too big or not UTF-8, a syntax error, a
    duplicate or non-text key, a tag other than YAML's plain ones, a control character, a
    limit broken, or a document that is not a mapping.
    """
    text = _read_text(file)
    if _may_break_scan_limits(text):
        _scan(file, text)
    loader = _Loader(text)
    try:
        with _located(file, text):
            node = loader.get_single_node()
            if node is None:
                raise YamlSyntaxError(
                    file, 1, "the file is empty; expected a mapping with metadata:"
                )
            if not isinstance(node, yaml.MappingNode):
                raise YamlSyntaxError(
                    file, node.start_mark.line + 1, "expected a mapping at the top"
                )
            lines: dict[Path_, int] = {}
            _Walk(file, lines).node(node, (), 0)
            data = loader.construct_document(node)
    finally:
        loader.dispose()
    return data, lines


def _read_text(file: Path) -> str:
    with file.open("rb") as stream:
        raw = stream.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise YamlSyntaxError(
            file, 1, f"the file is larger than {MAX_FILE_BYTES:,} bytes, the limit for a YAML"
        )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise YamlSyntaxError(file, 1, "the file is UTF-16 text; save it as UTF-8")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise YamlSyntaxError(
            file, line, f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x} on this line)"
        ) from None


def _may_break_scan_limits(text: str) -> bool:
    """Whether the token scan is needed (it is a fifth of reading a YAML). No alias without
    a '*'; and a block level starts further right than its parent, within its line's run of
    indentation, '-' and '?', so the nesting is at most that run plus the flow brackets. The
    walk of the composed nodes checks the exact depth again."""
    if "*" in text:
        return True
    flow = text.count("[") + text.count("{")
    if flow + 2 > MAX_DEPTH:
        return True
    lead = max((len(line) - len(line.lstrip(" -?")) for line in text.splitlines()), default=0)
    return lead + flow + 2 > MAX_DEPTH


def _scan(file: Path, text: str) -> None:
    """Nesting and alias limits from libyaml's tokens: the scanner does not recurse, so a
    document nested 30,000 deep is refused before the composer could crash on it."""
    loader = _Loader(text)
    depth = aliases = 0
    try:
        with _located(file, text):
            while (token := loader.get_token()) is not None:
                kind = type(token)
                if kind in _OPENING:
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise YamlSyntaxError(
                            file,
                            token.start_mark.line + 1,
                            f"nested more than {MAX_DEPTH} levels deep",
                        )
                elif kind in _CLOSING:
                    depth -= 1
                elif kind is yaml.AliasToken:
                    aliases += 1
                    if aliases > MAX_ALIASES:
                        raise YamlSyntaxError(
                            file, token.start_mark.line + 1, f"more than {MAX_ALIASES} aliases (*)"
                        )
    finally:
        loader.dispose()


def _reader_error(file: Path, text: str, err: yaml.reader.ReaderError) -> YamlSyntaxError:
    line = text[: err.position].count("\n") + 1
    return YamlSyntaxError(
        file, line, f"control character #x{err.character:04x} is not allowed in YAML"
    )


_OPENING = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


@contextmanager
def _located(file: Path, text: str) -> Iterator[None]:
    """libyaml's errors as ``YamlSyntaxError`` at their line."""
    try:
        yield
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(file, err) from None
    except yaml.reader.ReaderError as err:
        raise _reader_error(file, text, err) from None
    except yaml.YAMLError as err:
        raise YamlSyntaxError(file, 1, f"invalid YAML: {err}") from None


def _syntax_error(file: Path, err: yaml.MarkedYAMLError) -> YamlSyntaxError:
    mark = err.problem_mark or err.context_mark
    line = mark.line + 1 if mark else 1
    return YamlSyntaxError(file, line, f"invalid YAML: {err.problem or err}")


class _Walk:
    """One pass over the composed nodes: lines of keys, and every node-level rule."""

    def __init__(self, file: Path, lines: dict[Path_, int]) -> None:
        self.file, self.lines, self.nodes = file, lines, 0

    def fail(self, node: yaml.Node, message: str) -> YamlSyntaxError:
        return YamlSyntaxError(self.file, node.start_mark.line + 1, message)

    def node(self, node: yaml.Node, path: Path_, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, f"more than {MAX_NODES:,} values once aliases are expanded")
        if depth > MAX_DEPTH:  # aliases can nest what the scan saw flat
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep")
        self.lines[path] = node.start_mark.line + 1
        if node.tag in _AS_TEXT_TAGS:
            node.tag = _STR
        if node.tag not in _PLAIN_TAGS:
            raise self.fail(
                node, f"the tag {node.tag!r} is not allowed: write a plain value, list or mapping"
            )
        if isinstance(node, yaml.MappingNode):
            self.mapping(node, path, depth)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.node(item, (*path, index), depth + 1)
        elif isinstance(node, yaml.ScalarNode):
            self.scalar(node)

    def mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> None:
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _BOOL:
                # YAML 1.1 reads a plain on/off/yes/no as a boolean; a key is always text
                # (``notifications.on``), as YAML 1.2 and GitHub Actions' ``on:`` read it.
                key_node.tag = _STR
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                raise self.fail(
                    key_node,
                    "a key must be text (quote a number or yes/no: '1'); a list or mapping "
                    "cannot be a key",
                )
            key = key_node.value
            if _CONTROL.search(key) or "\n" in key or "\t" in key:
                raise self.fail(key_node, "a key may not hold control characters")
            if key in seen:
                raise self.fail(key_node, f"duplicate key {key[:100]!r}")
            seen.add(key)
            self.node(value_node, (*path, key), depth + 1)
            self.lines[(*path, key)] = key_node.start_mark.line + 1

    def scalar(self, node: yaml.ScalarNode) -> None:
        value: str = node.value
        if len(value) > MAX_SCALAR_CHARS:
            raise self.fail(node, f"a value longer than {MAX_SCALAR_CHARS:,} characters")
        if node.tag == _STR:
            found = _CONTROL.search(value)
            if found:
                raise self.fail(
                    node,
                    f"control character #x{ord(found.group()):04x} in a value: only tab and "
                    "newline are allowed",
                )
            return
        if node.tag == "tag:yaml.org,2002:int" and len(value) > MAX_INT_DIGITS:
            raise self.fail(node, f"an integer longer than {MAX_INT_DIGITS} digits")
        try:  # an explicit !!int / !!float / !!bool / !!null must hold what its tag says
            _SCALAR_CONSTRUCTOR.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError, yaml.YAMLError):
            kind = node.tag.rsplit(":", 1)[-1]
            raise self.fail(node, f"{value[:100]!r} is not a valid {kind}") from None
        finally:
            _SCALAR_CONSTRUCTOR.constructed_objects.clear()


def line_of(lines: dict[Path_, int], data: Any, loc: tuple[str | int, ...]) -> tuple[int, Path_]:
    """The line of the deepest part of a pydantic error location found in the document.

    Pydantic locations carry extra parts (the tag of a discriminated union, a validator's
    name); those are skipped. Returns the line and the path that was found.
    """
    found: Path_ = ()
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:  # noqa: SIM114 - two arms: mypy narrows each
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        found = (*found, part)
    return lines.get(found, 1), found
