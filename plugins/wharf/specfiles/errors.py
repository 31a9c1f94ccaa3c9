"""A YAML's problems as ``file:line: field: message``, from pydantic's errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from wharf import settings
from wharf.contract.sources import PAGINATION_STYLES, SOURCE_TYPES
from wharf.errors import TerminalError
from wharf.specfiles.yaml_lines import line_of


@dataclass(frozen=True)
class SpecIssue:
    """One problem in one YAML file. ``line`` is 1-based; ``field`` a dotted path."""

    file: Path
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{_display(self.file)}:{self.line}: {where}{self.message}"


class SpecError(TerminalError, ValueError):
    """A dataset YAML that breaks the contract. ``issues`` lists each problem."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(settings.project_home().resolve()))
    except ValueError:
        return str(file)


def _field(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_TAGS = {"'type'": "source type", "'style'": "pagination style"}


def _tag(error: Any) -> str:
    return str(error["ctx"]["discriminator"]).strip("'")


_MESSAGES = {
    "missing": lambda e, name: f"required key '{name}' is missing",
    "extra_forbidden": lambda e, name: f"unknown key '{name}'",
    "union_tag_invalid": lambda e, name: (
        f"unknown {_TAGS[e['ctx']['discriminator']]} {e['ctx']['tag']!r}; expected one of: "
        f"{e['ctx']['expected_tags'].replace(chr(39), '')}"
    ),
    "union_tag_not_found": lambda e, name: (
        f"{name} needs {e['ctx']['discriminator']}, one of: "
        f"{', '.join(SOURCE_TYPES if _tag(e) == 'type' else PAGINATION_STYLES)}"
    ),
    "literal_error": lambda e, name: (
        f"{e['input']!r} is not allowed; expected one of: {e['ctx']['expected']}"
    ),
}


def _without_tags(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """``loc`` without the tags pydantic puts after a discriminated union's key (``source``,
    ``stream``, ``stream``: the second is the source's own key ``stream``), so the line
    found is the key's, not a same-named key's of the YAML."""
    out: list[str | int] = []
    node = data
    for part in loc:
        tagged = isinstance(node, dict) and part in (node.get("type"), node.get("style"))
        if tagged and not (out and out[-1] == _TAG_SEEN):
            out.append(_TAG_SEEN)
            continue
        out.append(part)
        node = node.get(part) if isinstance(node, dict) else None
    return tuple(p for p in out if p is not _TAG_SEEN)


_TAG_SEEN = "\0tag"


def issues_of(file: Path, err: ValidationError, data: Any, lines: dict) -> list[SpecIssue]:
    issues = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        if e["type"] in ("wharf_spec", "rapid_rule"):
            loc = (*loc, *e.get("ctx", {}).get("at", ()))
        if e["type"] == "union_tag_invalid":
            loc = (*loc, _tag(e))
        line, found = line_of(lines, data, _without_tags(loc, data))
        named = [
            p for p in loc if isinstance(p, str) and p not in (*SOURCE_TYPES, *PAGINATION_STYLES)
        ]
        name = str(named[-1]) if named else ""
        render = _MESSAGES.get(e["type"])
        message = render(e, name) if render else e["msg"]
        field = _field(found if e["type"] != "missing" else (*found, name))
        issues.append(SpecIssue(file, line, field, message))
    return issues
