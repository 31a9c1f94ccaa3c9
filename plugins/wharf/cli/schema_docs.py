"""``wharf schema json`` and ``wharf schema docs``: the dataset YAML's JSON Schema (for
editors) and the README's field reference, both from the contract models' descriptions."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from wharf import settings
from wharf.contract.dataset import DatasetSpec

FIELDS_START = "<!-- fields:start -->"
FIELDS_END = "<!-- fields:end -->"
# Draft 7: what yaml-language-server reads; pydantic's output uses no keyword newer drafts
# changed (its "$defs" are reached by JSON pointer, which every draft resolves).
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
_NAMES: dict[Any, str] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "boolean",
    date: "date",
    timedelta: "duration",
    Any: "any",
}


def schema_file() -> Path:
    """Where the JSON Schema is committed (not a ``.yaml``: DAG discovery skips it)."""
    return settings.project_home() / "include" / "schemas" / "dataset.schema.json"


def readme_file() -> Path:
    return settings.project_home() / "README.md"


def json_schema_text() -> str:
    """The dataset YAML's JSON Schema (draft 7, no ``$id``), as the committed file."""
    schema = {"$schema": JSON_SCHEMA_DRAFT, **DatasetSpec.model_json_schema()}
    schema["title"] = "Wharf dataset YAML"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class FieldDoc:
    """One YAML field: its key path (``source.pagination.size``, ``columns[].name``), the
    union members it belongs to (``http, page``; empty outside unions), and its pydantic
    field."""

    path: str
    variant: str
    model: type[BaseModel]
    info: FieldInfo


def contract_fields(
    model: type[BaseModel] = DatasetSpec, prefix: str = "", variant: str = ""
) -> Iterator[FieldDoc]:
    """Every field of ``model`` and of the models inside it (lists, unions, discriminated
    sources and paginations), depth first in declaration order."""
    tag = _discriminator(model)  # a union member's (``type: sql``, ``style: page``) first
    fields = sorted(model.model_fields.items(), key=lambda field: tag is None or field[0] != tag[0])
    for name, info in fields:
        path = prefix + name
        yield FieldDoc(path, variant, model, info)
        for suffix, child, label in _nested(info.annotation):
            inner = ", ".join(part for part in (variant, label) if part)
            yield from contract_fields(child, f"{path}{suffix}.", inner)


def _nested(annotation: Any) -> Iterator[tuple[str, type[BaseModel], str]]:
    """The models in a field's type, as (path suffix, model, union label)."""
    annotation = _bare(annotation)
    if get_origin(annotation) in (tuple, list):
        for suffix, child, label in _nested(get_args(annotation)[0]):
            yield f"[]{suffix}", child, label
        return
    models = [m for m in _members(annotation) if _is_model(m)]
    for child in models:
        yield "", child, _tag(child)[1] if len(models) > 1 else ""


def _bare(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without ``None`` in a union."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    members = _members(annotation)
    if len(members) == 1 and members[0] is not annotation:
        return _bare(members[0])
    return annotation


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [_bare(m) for m in get_args(annotation) if m is not type(None)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _discriminator(model: type[BaseModel]) -> tuple[str, str] | None:
    """A union member's tag: the field holding one literal value, and that value."""
    for name, info in model.model_fields.items():
        values = get_args(info.annotation)
        if get_origin(info.annotation) is Literal and len(values) == 1:
            return name, str(values[0])
    return None


def _tag(model: type[BaseModel]) -> tuple[str, str]:
    tag = _discriminator(model)
    if tag is None:
        raise TypeError(f"{model.__name__} is in a union but has no single-literal field")
    return tag


def type_text(annotation: Any) -> str:
    """A field's type in the YAML's terms: text, list of mappings, `a` or `b`."""
    annotation = _bare(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return _one_of([f"`{value}`" for value in get_args(annotation)])
    if origin in (tuple, list):
        item = type_text(get_args(annotation)[0])
        return "list of " + ("mappings" if item.startswith("mapping") else item)
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {type_text(key)} to {type_text(value)}"
    members = _members(annotation)
    if len(members) > 1 and all(_is_model(m) for m in members):
        return f"mapping, by `{_tag(members[0])[0]}`"
    if len(members) > 1:
        return _one_of([type_text(m) for m in members])
    if _is_model(annotation):
        return "mapping"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _bounds(doc: FieldDoc) -> str:
    """The field's numeric and length bounds: ``≥ 1, ≤ 1,000,000``, ``1-200 characters``."""
    marks = ((at.Ge, "≥", "ge"), (at.Gt, ">", "gt"), (at.Le, "≤", "le"), (at.Lt, "<", "lt"))
    parts, least, most = [], 0, None
    for item in doc.info.metadata:
        parts += [f"{m} {_number(getattr(item, a))}" for k, m, a in marks if isinstance(item, k)]
        least = item.min_length if isinstance(item, at.MinLen) else least
        most = item.max_length if isinstance(item, at.MaxLen) else most
    return ", ".join([*parts, *_length(doc, least, most)])


def _length(doc: FieldDoc, least: int, most: int | None) -> list[str]:
    plural = get_origin(_bare(doc.info.annotation)) in (tuple, list)
    unit = "entries" if plural else "characters"
    if most is None:
        return ["not empty"] if least else []
    if least == most:
        return [f"{most:,} {'entry' if plural else 'character'}"]
    return [f"{least:,}-{most:,} {unit}" if least else f"at most {most:,} {unit}"]


def _number(value: Any) -> str:
    if isinstance(value, timedelta):
        return str(to_jsonable_python(value))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}"


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return "each field's default"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value)
    return f"`{json.dumps(to_jsonable_python(value), ensure_ascii=False)}`"


def fields_table() -> str:
    """The README's field reference: one row per field path, from the descriptions."""
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for doc in contract_fields():
        where = f"`{doc.path}`" + (f" ({doc.variant})" if doc.variant else "")
        kind = ", ".join(p for p in (type_text(doc.info.annotation), _bounds(doc)) if p)
        cells = (where, kind, default_text(doc.info), doc.info.description or "")
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def readme_with_fields(text: str) -> str:
    """``text`` (the README) with the block between the field markers regenerated. Raises
    ValueError when the markers are missing or out of order."""
    start, end = text.find(FIELDS_START), text.find(FIELDS_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md needs a {FIELDS_START} ... {FIELDS_END} block")
    return text[: start + len(FIELDS_START)] + "\n" + fields_table() + text[end:]


def cmd_schema_json(write: bool) -> int:
    text = json_schema_text()
    if write:
        schema_file().write_text(text, encoding="utf-8")
        print(f"wrote {schema_file()}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_schema_docs(write: bool) -> int:
    if not write:
        sys.stdout.write(fields_table())
        return 0
    readme = readme_file()
    try:
        text = readme_with_fields(readme.read_text(encoding="utf-8"))
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    readme.write_text(text, encoding="utf-8")
    print(f"wrote the field reference in {readme}")
    return 0
