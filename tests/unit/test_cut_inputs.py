"""Issue #15 item 2: ``wharf check`` reads a data cut's SQL (sqlglot, PostgreSQL): every input
is a dataset with a YAML, else ``file:line: sql: unknown table shop.ordrs (did you mean
shop.orders?)``; a cut that reads itself through other cuts is a cycle, refused on each cut of
it; SQL that writes is refused. The DAG files' ``load_specs`` refuses the same cuts, so no DAG
waits for an Asset that never comes. Also the YAML of item 1: ``refresh: all | any``, no time
schedule by default, a key only on a materialized cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.cli.check import cmd_check
from wharf.specfiles import SpecError, load_spec, load_specs

ORDERS = """\
metadata:
  domain: shop
  dataset: orders
  description: Orders.
  sensitivity: PUBLIC
  owners: [{name: Shop, email: shop@example.org}]
  update_behaviour: OVERWRITE
source: {type: file, path: orders.csv}
columns:
  - {name: day, data_type: date}
  - {name: amount, data_type: integer}
"""
CUT = """\
metadata:
  domain: shop
  dataset: {name}
  kind: data_cut
  description: A cut.
  sensitivity: PUBLIC
  owners: [{{name: Shop, email: shop@example.org}}]
sql: {name}.sql
{extra}"""
SQL_LINE = 8


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for folder in ("include/sql", "include/reference", "include/schemas/shop"):
        (home / folder).mkdir(parents=True)
    (home / "include/reference/orders.csv").write_text("day,amount\n2026-01-01,3\n")
    (home / "include/schemas/shop/orders.yaml").write_text(ORDERS)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include/schemas"))
    return home


def _shown(file: Path) -> str:
    """A YAML as errors name it: relative to the project."""
    return str(file.relative_to(file.parents[3]))


def _cut(project: Path, name: str, sql: str, extra: str = "") -> Path:
    (project / "include/sql" / f"{name}.sql").write_text(sql)
    file = project / "include/schemas/shop" / f"{name}.yaml"
    file.write_text(CUT.format(name=name, extra=extra))
    return file


def test_an_unknown_input_names_the_line_and_the_closest_dataset(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = _cut(project, "per_day", "SELECT day, sum(amount) FROM shop.ordrs GROUP BY day")

    assert cmd_check([]) == 1
    err = capsys.readouterr().err
    assert (
        f"{_shown(cut)}:{SQL_LINE}: sql: unknown table shop.ordrs (did you mean shop.orders?)"
        in err
    )
    specs, errors = load_specs()
    assert [s.dataset_id for s in specs] == ["shop.orders"]
    assert "unknown table shop.ordrs" in str(errors[0])


def test_an_unknown_input_listed_in_depends_on_names_its_entry(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = _cut(
        project,
        "per_day",
        "SELECT day FROM shop.orders JOIN hr.staff ON true",
        "depends_on: [shop.orders, hr.staff]\n",
    )

    assert cmd_check([]) == 1
    err = capsys.readouterr().err
    assert f"{_shown(cut)}:9: depends_on[1]: unknown table hr.staff:" in err  # nothing close


def test_known_inputs_pass(project: Path) -> None:
    _cut(project, "per_day", "SELECT day, sum(amount) AS amount FROM shop.orders GROUP BY day")
    _cut(project, "busy_days", "SELECT day FROM shop.per_day WHERE amount > 10")

    assert cmd_check([]) == 0
    assert len(load_specs()[0]) == 3


def test_a_cycle_of_cuts_is_refused_on_each_of_them(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _cut(project, "first", "SELECT day FROM shop.orders JOIN shop.second USING (day)")
    second = _cut(project, "second", "SELECT day FROM shop.first")
    alone = _cut(project, "alone", "SELECT day FROM shop.first")

    assert cmd_check([]) == 1
    err = capsys.readouterr().err
    assert (
        f"{_shown(first)}:{SQL_LINE}: sql: data cuts read each other in a cycle: "
        "shop.first -> shop.second -> shop.first"
    ) in err
    assert f"{_shown(second)}:{SQL_LINE}: sql: data cuts read each other in a cycle" in err
    assert f"{_shown(alone)}:" not in err  # it reads the cycle, it is not part of it
    specs, errors = load_specs()
    assert sorted(s.dataset_id for s in specs) == ["shop.alone", "shop.orders"]
    assert len(errors) == 2


def test_a_cut_reading_itself_is_a_cycle(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = _cut(project, "me", "SELECT day FROM shop.me")

    assert cmd_check([]) == 1
    assert (
        f"{_shown(cut)}:{SQL_LINE}: sql: data cuts read each other in a cycle: shop.me -> shop.me"
        in (capsys.readouterr().err)
    )


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("WITH gone AS (DELETE FROM shop.orders RETURNING *) SELECT * FROM gone", "DELETE"),
        ("INSERT INTO shop.orders SELECT * FROM shop.orders", "INTO is not allowed"),
        ("UPDATE shop.orders SET amount = 0", "found UPDATE"),
        ("DROP TABLE shop.orders", "found DROP"),
        ("SELECT * INTO shop.copy FROM shop.orders", "INTO is not allowed"),
        ("SELECT 1; DELETE FROM shop.orders", "exactly one SELECT"),
    ],
)
def test_sql_that_writes_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str], sql: str, reason: str
) -> None:
    cut = _cut(project, "bad", sql)

    assert cmd_check([]) == 1
    err = capsys.readouterr().err
    assert f"{_shown(cut)}:{SQL_LINE}: sql: include/sql/bad.sql:" in err and reason in err


def test_refresh_defaults_to_all_and_a_cut_has_no_time_schedule_by_default(project: Path) -> None:
    plain = load_spec(_cut(project, "plain", "SELECT day FROM shop.orders"))
    assert plain.refresh_when == "all" and plain.schedule is None
    anyone = load_spec(
        _cut(project, "anyone", "SELECT day FROM shop.orders", 'refresh: any\nschedule: "@daily"\n')
    )
    assert anyone.refresh_when == "any" and anyone.schedule == "@daily"


def test_refresh_is_only_for_data_cuts(project: Path) -> None:
    file = project / "include/schemas/shop/orders.yaml"
    file.write_text(ORDERS + "refresh: any\n")
    with pytest.raises(SpecError, match=r"orders.yaml:12: refresh: 'refresh' is only for kind"):
        load_spec(file)


def test_a_key_needs_a_materialized_cut_and_its_columns(project: Path) -> None:
    keyed = "  primary_key: [day]\n"
    text = CUT.format(name="keyed", extra="columns:\n  - {name: day, data_type: date}\n")
    text = text.replace("  owners:", keyed + "  owners:")
    (project / "include/sql/keyed.sql").write_text("SELECT day FROM shop.orders")
    file = project / "include/schemas/shop/keyed.yaml"
    file.write_text(text)
    with pytest.raises(SpecError, match="only a materialized view has an index"):
        load_spec(file)
    file.write_text(text + "materialized: true\n")
    assert load_spec(file).metadata.primary_key == ("day",)
    file.write_text(text.replace("[day]", "[day, shop]") + "materialized: true\n")
    with pytest.raises(SpecError, match="primary_key names columns not under 'columns': shop"):
        load_spec(file)
