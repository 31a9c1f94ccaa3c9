"""The contract documents itself: every YAML field has a description, and the JSON Schema
and the README's field reference are generated from them and kept current."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field

from wharf.cli.main import main
from wharf.cli.schema_docs import (
    FIELDS_END,
    FIELDS_START,
    contract_fields,
    fields_table,
    json_schema_text,
    readme_with_fields,
)
from wharf.contract.base import ContractModel
from wharf.contract.dataset import DatasetSpec
from wharf.specfiles import spec_files
from wharf.specfiles.yaml_lines import load_with_lines

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "include" / "schemas"
SCHEMA_FILE = SCHEMAS / "dataset.schema.json"


def _undescribed(model: type[BaseModel]) -> list[str]:
    return [
        doc.path + (f" ({doc.variant})" if doc.variant else "")
        for doc in contract_fields(model)
        if not (doc.info.description or "").strip()
    ]


def _contract_models() -> set[type[BaseModel]]:
    """Every public model of ``wharf.contract`` (``_PagedStop`` only lends its fields)."""
    found, todo = set(), list(ContractModel.__subclasses__())
    while todo:
        model = todo.pop()
        todo += model.__subclasses__()
        if model.__module__.startswith("wharf.contract.") and not model.__name__.startswith("_"):
            found.add(model)
    return found


def test_every_yaml_field_has_a_description() -> None:
    missing = _undescribed(DatasetSpec)
    assert not missing, "fields without Field(description=...): " + ", ".join(missing)


def test_a_field_without_a_description_is_named() -> None:
    class Bare(ContractModel):
        described: int = Field(default=0, description="Has one.")
        nested: tuple[DatasetSpec, ...] = ()

    assert _undescribed(Bare) == ["nested"]


def test_the_walk_reaches_every_contract_model() -> None:
    walked = {DatasetSpec} | {doc.model for doc in contract_fields()}
    assert walked == _contract_models()


def test_union_members_are_named_by_their_tag() -> None:
    docs = {(doc.path, doc.variant) for doc in contract_fields()}
    assert ("source.type", "sql") in docs
    assert ("source.incremental.lookback", "sql") in docs
    assert ("source.completeness.marker", "file") in docs
    assert ("source.pagination.size", "http, page") in docs
    assert ("source.pagination.total_path", "http, offset") in docs
    assert ("source.pagination.style", "http, link_header") in docs
    assert ("source.retry.max_attempts", "google_sheets") in docs
    assert ("checks[].severity", "") in docs
    assert ("metadata.owners[].email", "") in docs


def _properties(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every property schema anywhere in a JSON Schema, with its JSON pointer."""
    found = []
    if isinstance(node, dict):
        for name, value in node.get("properties", {}).items():
            found.append((f"{where}/properties/{name}", value))
        for key, value in node.items():
            found += _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _properties(value, f"{where}/{index}")
    return found


def test_every_json_schema_property_has_a_description() -> None:
    schema = json.loads(json_schema_text())
    missing = [where for where, prop in _properties(schema) if not prop.get("description")]
    assert not missing, "JSON Schema properties without a description: " + ", ".join(missing)


def test_the_json_schema_is_an_editor_schema() -> None:
    schema = json.loads(json_schema_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["title"] == "Wharf dataset YAML"
    assert '"$id"' not in json_schema_text()


def test_the_committed_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} is stale: run `wharf schema json --write`"
    )


def test_dag_discovery_skips_the_json_schema() -> None:
    found = spec_files(SCHEMAS)
    assert found and all(path.suffix in (".yaml", ".yml") for path in found)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


@pytest.mark.parametrize("file", spec_files(SCHEMAS), ids=lambda p: str(p.relative_to(SCHEMAS)))
def test_the_example_yamls_validate_against_the_json_schema(
    file: Path, validator: jsonschema.Draft7Validator
) -> None:
    data, _ = load_with_lines(file)  # as Wharf reads it: dates stay text, as in an editor
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors


@pytest.mark.parametrize(
    ("change", "at"),
    [
        (lambda d: d["metadata"].update(sensitivity="SECRET"), ["metadata", "sensitivity"]),
        (lambda d: d["source"].update(colour="blue"), ["source"]),
        (lambda d: d["source"].update(batch_size=0), ["source"]),
        (lambda d: d.update(retries=11), ["retries"]),
        (lambda d: d["columns"][0].update(data_type="text"), ["columns", 0, "data_type"]),
        (lambda d: d.update(checks=[{"expect_x": {}, "expect_y": {}}]), ["checks", 0]),
    ],
    ids=["enum", "unknown-key-in-source", "range-in-source", "range", "data-type", "check"],
)
def test_the_json_schema_refuses_what_the_contract_refuses(
    change: Any, at: list[Any], validator: jsonschema.Draft7Validator
) -> None:
    data, _ = load_with_lines(SCHEMAS / "motoring" / "cars.yaml")
    data = copy.deepcopy(data)
    change(data)
    errors = list(validator.iter_errors(data))
    assert errors and all(list(e.absolute_path)[: len(at)] == at for e in errors)


def test_durations_may_be_seconds_in_the_json_schema(
    validator: jsonschema.Draft7Validator,
) -> None:
    data, _ = load_with_lines(SCHEMAS / "motoring" / "cars.yaml")
    assert not list(validator.iter_errors({**data, "retry_delay": 300, "task_timeout": "PT1H"}))


def test_the_readme_field_reference_is_current() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert FIELDS_START in text and FIELDS_END in text
    assert readme_with_fields(text) == text, (
        "README.md's field reference is stale: run `wharf schema docs --write`"
    )


def test_the_field_reference_has_one_row_per_field() -> None:
    rows = fields_table().splitlines()[2:]
    assert len(rows) == len(list(contract_fields()))
    assert (
        "| `source.pagination.size` (http, page) | integer, ≥ 1, ≤ 100,000 | 100 | "
        "Records asked for per page. |"
    ) in rows
    assert any(r.startswith('| `retry_delay` | duration, ≥ PT1S, ≤ P1D | `"PT5M"` |') for r in rows)


def test_readme_with_fields_needs_the_markers() -> None:
    with pytest.raises(ValueError, match="fields:start"):
        readme_with_fields("# no block here\n")
    stale = f"before\n{FIELDS_START}\n| old |\n{FIELDS_END}\nafter\n"
    assert (
        readme_with_fields(stale)
        == f"before\n{FIELDS_START}\n{fields_table()}{FIELDS_END}\nafter\n"
    )


def test_the_cli_prints_the_schema_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "json"]) == 0
    assert capsys.readouterr().out == json_schema_text()
    assert main(["schema", "docs"]) == 0
    assert capsys.readouterr().out == fields_table()
