"""Reference datasets without a database: the version rule (Data Workspace's), the changes of
structure it counts, and the contract a reference YAML must meet (file:line errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.cli.check import cmd_check
from wharf.cli.reference import describe
from wharf.publish.reference import (
    ColumnChange,
    Diff,
    Published,
    RowChanges,
    Structure,
    Version,
    column_changes,
    next_version,
    structure,
)
from wharf.specfiles import SpecError, load_spec

GOOD = """\
metadata:
  domain: ref
  dataset: codes
  kind: reference
  owners: [{name: Ref team, email: ref@example.org}]
  update_behaviour: OVERWRITE
  primary_key: [code]
source:
  type: file
  path: codes.csv
columns:
  - {name: code, data_type: string, allow_null: false}
  - {name: name, data_type: string}
"""
BASE = Structure((("code", "text"), ("name", "text")), ("code",))
NONE = RowChanges()


def test_the_first_load_is_1_0() -> None:
    assert next_version(None, [], NONE) == Version(1, 0)
    assert str(next_version(None, [ColumnChange("added", "x")], RowChanges(added=3))) == "1.0"


def test_a_row_added_changed_or_removed_bumps_the_minor_version() -> None:
    for rows in (RowChanges(added=1), RowChanges(changed=2), RowChanges(removed=1)):
        assert next_version(Version(1, 4), [], rows) == Version(1, 5)


def test_a_change_of_structure_bumps_the_major_version_and_resets_the_minor() -> None:
    changed = [ColumnChange("added", "x", wanted="text")]
    assert next_version(Version(1, 4), changed, NONE) == Version(2, 0)
    assert next_version(Version(2, 3), changed, RowChanges(added=5)) == Version(3, 0)


def test_nothing_changed_keeps_the_version() -> None:
    assert next_version(Version(3, 2), [], NONE) == Version(3, 2)


def test_columns_added_removed_renamed_retyped_and_a_new_key_are_changes() -> None:
    assert column_changes(BASE, BASE) == []
    reordered = Structure((("name", "text"), ("code", "text")), ("code",))
    assert column_changes(BASE, reordered) == []  # order alone is no change
    renamed = Structure((("code", "text"), ("title", "text")), ("code",))
    assert [str(c) for c in column_changes(BASE, renamed)] == [
        "column 'name' removed (text)",
        "column 'title' added (text)",
    ]
    retyped = Structure((("code", "text"), ("name", "integer")), ("code",))
    assert [str(c) for c in column_changes(BASE, retyped)] == [
        "column 'name' retyped from text to integer"
    ]
    rekeyed = Structure(BASE.columns, ("code", "name"))
    assert [str(c) for c in column_changes(BASE, rekeyed)] == [
        "primary key changed from (code) to (code, name)"
    ]


def test_the_structure_is_the_postgresql_types_so_string_and_varchar_are_one(
    schemas: Path,
) -> None:
    (schemas / "ref").mkdir()
    (schemas / "ref" / "codes.yaml").write_text(
        GOOD.replace("name, data_type: string", "name, data_type: varchar")
    )
    spec = load_spec(schemas / "ref" / "codes.yaml")
    assert structure(spec) == BASE
    assert Structure.from_json(structure(spec).as_json()) == BASE


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("  primary_key: [code]\n", ""),
            "1: metadata: a reference dataset needs a primary_key: its versions "
            "tell a changed row from a removed and an added one by it",
        ),
        (
            ("update_behaviour: OVERWRITE", "update_behaviour: MERGE"),
            "6: metadata.update_behaviour: a reference dataset has update_behaviour: OVERWRITE "
            "(not MERGE): each version is the whole file",
        ),
        (
            ("path: codes.csv", "path: /srv/drop/codes.csv"),
            "10: source.path: a reference dataset reads one file below include/reference/, "
            "versioned with the code: '/srv/drop/codes.csv' is elsewhere; write a path relative to "
            "include/reference/",
        ),
        (
            ("path: codes.csv", "path: 'codes_*.csv'"),
            "10: source.path: a reference dataset reads one file below include/reference/, "
            "versioned with the code: 'codes_*.csv' is a glob; write a path relative to "
            "include/reference/",
        ),
        (
            ("{name: name, data_type: string}", "{name: valid_from, data_type: string}"),
            "13: columns[1].name: column name 'valid_from' is taken in a reference dataset: its "
            "history table adds valid_from, valid_to, version_from, version_to (use another "
            "name with source_name)",
        ),
        (
            ("dataset: codes", "dataset: " + "c" * 56),
            "3: metadata.dataset: a reference dataset's name is at most 55 characters: its "
            f"history table {'c' * 56 + '_history'!r} must fit PostgreSQL's 63",
        ),
    ],
)
def test_what_a_reference_yaml_needs(
    schemas: Path, monkeypatch: pytest.MonkeyPatch, edit: tuple[str, str], expected: str
) -> None:
    drop = schemas.parent / "drop"  # an allowed root, but not include/reference/
    drop.mkdir()
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(drop))
    edit = (edit[0], edit[1].replace("/srv/drop", str(drop)))
    expected = expected.replace("/srv/drop", str(drop))
    (schemas / "ref").mkdir()
    text = GOOD.replace(*edit)
    name = "c" * 56 if "c" * 56 in text else "codes"
    file = schemas / "ref" / f"{name}.yaml"
    file.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(file)
    assert [f"{i.line}: {i.field}: {i.message}" for i in caught.value.issues] == [expected]


def test_wharf_check_refuses_a_dataset_named_as_a_history_table(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (schemas / "ref").mkdir()
    (schemas / "ref" / "codes.yaml").write_text(GOOD)
    clash = GOOD.replace("dataset: codes", "dataset: codes_history").replace(
        "kind: reference", "kind: source"
    )
    (schemas / "ref" / "codes_history.yaml").write_text(clash)
    assert cmd_check([str(schemas)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{schemas / 'ref' / 'codes.yaml'}:3: metadata.dataset: the history table of this "
        "reference dataset is ref.codes_history, which another YAML defines as a dataset: "
        "rename one of them"
    ) in err
    assert (
        f"{schemas / 'ref' / 'codes_history.yaml'}:3: metadata.dataset: ref.codes_history is "
        "the history table of the reference dataset ref.codes: choose another name"
    ) in err


def test_the_diff_lines_are_bounded_and_name_keys_only() -> None:
    from datetime import UTC, datetime

    published = Published(Version(1, 2), "a" * 64, BASE, 30, datetime(2026, 5, 1, tzinfo=UTC))
    rows = RowChanges(added=12, changed=1, samples={"added": [(f"k{i}",) for i in range(10)]})
    rows.samples["changed"] = [("x" * 100,)]
    found = Diff(published, "b" * 64, [], rows, Version(1, 3))
    lines = describe("ref.codes", ("code",), found)
    assert lines == [
        "ref.codes: the working copy against version 1.2 (loaded 2026-05-01 00:00:00 UTC, 30 rows)",
        "file: changed (sha256 bbbbbbbbbbbb, was aaaaaaaaaaaa)",
        "12 row(s) added: " + ", ".join(f"code=k{i}" for i in range(10)) + ", ... (2 more)",
        "1 row(s) changed: code=" + "x" * 40,
        "would become version 1.3",
    ]
    same = Diff(published, "b" * 64, [], RowChanges(), Version(1, 2))
    assert describe("ref.codes", ("code",), same)[-1] == (
        "no change: version 1.2 (the file differs from the one loaded, but no row or column "
        "does: a load keeps the version)"
    )


def test_a_reference_loads_lineage_names_its_history_and_writes_nothing_when_unchanged(
    schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date
    from types import SimpleNamespace

    from wharf import lake
    from wharf.orchestration import openlineage

    monkeypatch.setenv("AIRFLOW_CONN_WHARF_DATASETS", "postgresql://loader@db.example:5433/wh")
    (schemas / "ref").mkdir()
    (schemas / "ref" / "codes.yaml").write_text(GOOD)
    spec = load_spec(schemas / "ref" / "codes.yaml")
    run = SimpleNamespace(lake_key=lake.RunKey("ref.codes", date(2026, 12, 1), "r1"))

    def written(result: dict[str, object]) -> tuple[list[str], object]:
        _, outputs = openlineage._load(spec, run, result)
        stats = outputs[0].outputFacets.get("outputStatistics")
        return [o.name for o in outputs], stats and stats.rowCount

    assert written({"rows": 3, "unchanged": False}) == (["wh.ref.codes", "wh.ref.codes_history"], 3)
    assert written({"rows": 3, "unchanged": True})[1] == 0
    assert {o.namespace for o in openlineage._load(spec, run, {"rows": 3})[1]} == {
        "postgres://db.example:5433"
    }


def test_wharf_check_refuses_a_dataset_named_as_a_primary_keys_index(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL names a table's primary key ``<table>_pkey``, an index that shares the
    schema's names with the tables: a dataset of that name, made after the keyed one, never
    publishes (``relation "codes_pkey" already exists``)."""
    (schemas / "ref").mkdir()
    (schemas / "ref" / "codes.yaml").write_text(GOOD)
    clash = GOOD.replace("dataset: codes", "dataset: codes_pkey").replace(
        "kind: reference", "kind: source"
    )
    (schemas / "ref" / "codes_pkey.yaml").write_text(clash)
    assert cmd_check([str(schemas)]) == 1
    assert (
        f"{schemas / 'ref' / 'codes_pkey.yaml'}:3: metadata.dataset: ref.codes_pkey is the "
        "name PostgreSQL gives the primary key of ref.codes: choose another name"
    ) in capsys.readouterr().err
