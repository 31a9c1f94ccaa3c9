"""A data cut is at least as sensitive as every input (issue #13, item 3): rAPId's levels,
PUBLIC < PRIVATE < PROTECTED, and PROTECTED data stays in its own domain. Refused with the
cut's file and line by the DAG files' ``load_specs`` and by ``wharf check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.cli.check import cmd_check
from wharf.specfiles import load_specs

SOURCE = """\
metadata:
  domain: {domain}
  dataset: {dataset}
  sensitivity: {sensitivity}
  owners: [{{name: Tests, email: tests@example.org}}]
source: {{type: file, path: x.csv}}
columns:
  - {{name: a, data_type: integer}}
"""
CUT = """\
metadata:
  domain: {domain}
  dataset: {dataset}
  kind: data_cut
  sensitivity: {sensitivity}
  owners: [{{name: Tests, email: tests@example.org}}]
schedule: null
sql: cut.sql
depends_on: {depends_on}
columns:
  - {{name: a, data_type: integer}}
"""
SENSITIVITY_LINE = 5


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "sql" / "cut.sql").write_text("SELECT a FROM hr.staff")
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    return home


def _write(project: Path, domain: str, dataset: str, text: str) -> Path:
    file = project / "include" / "schemas" / domain / f"{dataset}.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


def _source(project: Path, domain: str, dataset: str, sensitivity: str) -> Path:
    text = SOURCE.format(domain=domain, dataset=dataset, sensitivity=sensitivity)
    return _write(project, domain, dataset, text)


def _cut(project: Path, domain: str, sensitivity: str, depends_on: str = "[hr.staff]") -> Path:
    text = CUT.format(domain=domain, dataset="cut", sensitivity=sensitivity, depends_on=depends_on)
    return _write(project, domain, "cut", text)


REFUSED = [  # (input sensitivity, cut domain, cut sensitivity, reason)
    ("PROTECTED", "hr", "PUBLIC", "hr.staff, which is PROTECTED"),
    ("PROTECTED", "hr", "PRIVATE", "hr.staff, which is PROTECTED"),
    ("PRIVATE", "hr", "PUBLIC", "hr.staff, which is PRIVATE"),
    ("PROTECTED", "finance", "PROTECTED", "PROTECTED in domain hr"),
]


@pytest.mark.parametrize(("given", "domain", "level", "reason"), REFUSED)
def test_a_cut_less_sensitive_than_an_input_is_refused_naming_it(
    project: Path, given: str, domain: str, level: str, reason: str
) -> None:
    _source(project, "hr", "staff", given)
    cut = _cut(project, domain, level)
    specs, errors = load_specs()
    assert [s.dataset_id for s in specs] == ["hr.staff"]  # the input still loads
    (error,) = errors
    text = str(error)
    assert f"include/schemas/{domain}/cut.yaml:{SENSITIVITY_LINE}: metadata.sensitivity" in text
    assert reason in text, text
    assert cmd_check([str(cut)]) == 1  # also when the cut's file is checked alone


ALLOWED = [  # (input sensitivity, cut domain, cut sensitivity)
    ("PUBLIC", "hr", "PUBLIC"),
    ("PUBLIC", "finance", "PRIVATE"),
    ("PRIVATE", "finance", "PRIVATE"),
    ("PRIVATE", "finance", "PROTECTED"),
    ("PROTECTED", "hr", "PROTECTED"),
]


@pytest.mark.parametrize(("given", "domain", "level"), ALLOWED)
def test_a_cut_as_sensitive_as_its_inputs_loads(
    project: Path, given: str, domain: str, level: str
) -> None:
    _source(project, "hr", "staff", given)
    _cut(project, domain, level)
    specs, errors = load_specs()
    assert not errors, [str(e) for e in errors]
    assert sorted(s.dataset_id for s in specs) == sorted(["hr.staff", f"{domain}.cut"])


def test_the_inputs_found_in_the_sql_count_when_depends_on_is_omitted(project: Path) -> None:
    _source(project, "hr", "staff", "PROTECTED")
    _cut(project, "hr", "PUBLIC", depends_on="[]")
    _, errors = load_specs()
    assert "hr.staff, which is PROTECTED" in str(errors[0])
