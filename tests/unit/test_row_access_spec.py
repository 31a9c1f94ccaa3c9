"""Row-level security in the contract (issue #13, item 4): ``row_access: {column, role_prefix}``
names one of the YAML's columns and a role prefix; it is not for data cuts, and no data cut may
read a dataset that declares it. Each mistake is reported at its file:line by ``load_spec``,
``load_specs`` (the DAG files) and ``wharf check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.cli.check import cmd_check
from wharf.specfiles import SpecError, load_spec, load_specs

SOURCE = """\
metadata:
  domain: hr
  dataset: staff
  sensitivity: PRIVATE
  owners: [{{name: Tests, email: tests@example.org}}]
source: {{type: file, path: x.csv}}
columns:
  - {{name: id, data_type: integer}}
  - {{name: area, data_type: string}}
  - {{name: joined, data_type: date}}
{row_access}"""
ROW_ACCESS = """\
row_access:
  column: {column}
  role_prefix: {prefix}
"""
CUT = """\
metadata:
  domain: hr
  dataset: cut
  kind: data_cut
  sensitivity: PRIVATE
  owners: [{{name: Tests, email: tests@example.org}}]
schedule: null
sql: cut.sql
depends_on: {depends_on}
columns:
  - {{name: id, data_type: integer}}
{extra}"""
# Lines in the files above (1-based).
ROW_ACCESS_LINE, COLUMN_LINE, PREFIX_LINE = 11, 12, 13
CUT_SQL_LINE, CUT_DEPENDS_ON_LINE, CUT_EXTRA_LINE = 8, 9, 12


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "sql" / "cut.sql").write_text("SELECT id FROM hr.staff")
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    return home


def _write(project: Path, dataset: str, text: str) -> Path:
    file = project / "include" / "schemas" / "hr" / f"{dataset}.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


def _source(project: Path, column: str | None = "area", prefix: str = "wharf_area_") -> Path:
    row_access = "" if column is None else ROW_ACCESS.format(column=column, prefix=prefix)
    return _write(project, "staff", SOURCE.format(row_access=row_access))


def _cut(project: Path, depends_on: str = "[hr.staff]", extra: str = "") -> Path:
    return _write(project, "cut", CUT.format(depends_on=depends_on, extra=extra))


def errors_of(file: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(file)
    return [f"{i.line}: {i.field}: {i.message}" for i in caught.value.issues]


def test_row_access_loads_into_the_spec(project: Path) -> None:
    spec = load_spec(_source(project))
    assert spec.row_access is not None
    assert (spec.row_access.column, spec.row_access.role_prefix) == ("area", "wharf_area_")
    assert load_spec(_source(project, None)).row_access is None


def test_an_integer_column_is_allowed(project: Path) -> None:
    spec = load_spec(_source(project, "id"))
    assert spec.row_access is not None and spec.row_access.column == "id"


def test_a_column_not_in_columns_is_refused_at_its_line(project: Path) -> None:
    assert errors_of(_source(project, "region")) == [
        f"{COLUMN_LINE}: row_access.column: row_access.column 'region' is not in 'columns'"
    ]


def test_a_date_column_is_refused_naming_why(project: Path) -> None:
    (error,) = errors_of(_source(project, "joined"))
    assert error.startswith(
        f"{COLUMN_LINE}: row_access.column: row_access.column 'joined' is a date column: it "
        "must be a string or integer one"
    )
    assert "settings each reader's session may change" in error


@pytest.mark.parametrize(
    "prefix", ["Area_", "1area", "area-", "a" * 41, "'x'", "area_; DROP TABLE x"]
)
def test_a_bad_role_prefix_is_refused_at_its_line(project: Path, prefix: str) -> None:
    (error,) = errors_of(_source(project, prefix=f'"{prefix}"'))
    assert error.startswith(f"{PREFIX_LINE}: row_access.role_prefix: ")


def test_an_unknown_key_under_row_access_is_refused(project: Path) -> None:
    text = SOURCE.format(row_access=ROW_ACCESS.format(column="area", prefix="p_") + "  x: 1\n")
    (error,) = errors_of(_write(project, "staff", text))
    assert error == "14: row_access.x: unknown key 'x'"


def test_a_data_cut_may_not_declare_row_access(project: Path) -> None:
    _source(project, None)
    cut = _cut(project, extra=ROW_ACCESS.format(column="id", prefix="p_"))
    (error,) = errors_of(cut)
    assert error.startswith(f"{CUT_EXTRA_LINE}: row_access: a data_cut has no 'row_access'")


def test_a_cut_reading_a_dataset_with_row_access_is_refused_at_its_input(project: Path) -> None:
    _source(project)
    cut = _cut(project, depends_on="\n  - hr.staff")
    specs, errors = load_specs()
    assert [s.dataset_id for s in specs] == ["hr.staff"]  # the input still loads
    (error,) = errors
    text = str(error)
    assert f"include/schemas/hr/cut.yaml:{CUT_DEPENDS_ON_LINE + 1}: depends_on[0]: " in text
    assert "the cut reads hr.staff, which declares row_access" in text
    assert cmd_check([str(cut)]) == 1  # also when the cut's file is checked alone


def test_inputs_found_in_the_sql_are_refused_at_the_sql_line(project: Path) -> None:
    _source(project)
    _cut(project, depends_on="[]")
    _, errors = load_specs()
    (error,) = errors
    assert f"include/schemas/hr/cut.yaml:{CUT_SQL_LINE}: sql: the cut reads hr.staff" in str(error)


def test_a_cut_over_a_dataset_without_row_access_loads(project: Path) -> None:
    _source(project, None)
    cut = _cut(project)
    specs, errors = load_specs()
    assert not errors, [str(e) for e in errors]
    assert sorted(s.dataset_id for s in specs) == ["hr.cut", "hr.staff"]
    assert cmd_check([str(cut)]) == 0
