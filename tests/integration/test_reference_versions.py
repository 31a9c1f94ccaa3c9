"""Reference datasets on real PostgreSQL: versions (1.0, a row -> minor, a column -> major),
the history table and an "as at" query, a file loaded only when it changed (also through
Airflow: the run succeeds and says so), a failed load that changes nothing, and
``wharf reference diff``."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from loading import checksum, fetch, rows_of
from support import LOADER_URL, ROLE_PREFIX, access_apply, last_audit, libpq, pg_connect, run_dag

from wharf.contract.dataset import DatasetSpec
from wharf.publish import load, reference

DOMAIN = "refver"
COLUMNS = [
    {"name": "code", "data_type": "string", "allow_null": False, "description": "The code."},
    {"name": "name", "data_type": "string", "allow_null": False, "description": "Its name."},
    {"name": "rank", "data_type": "integer", "description": "Its rank."},
]
ROWS = [
    {"code": "a", "name": "Alpha", "rank": 1},
    {"code": "b", "name": "Bravo", "rank": 2},
    {"code": "c", "name": "Charlie", "rank": 3},
]


class Project:
    """A WHARF_HOME of its own with one reference dataset: its YAML (under
    include/schemas/refver/) and its CSV file (under include/reference/), rewritten by
    ``write``."""

    def __init__(self, home: Path, dataset: str) -> None:
        self.home, self.dataset = home, dataset
        self.folder = home / "include" / "schemas" / DOMAIN
        self.folder.mkdir(parents=True)
        (home / "include" / "reference").mkdir(parents=True)

    @property
    def dataset_id(self) -> str:
        return f"{DOMAIN}.{self.dataset}"

    @property
    def table(self) -> str:
        return f'"{DOMAIN}"."{self.dataset}"'

    @property
    def history(self) -> str:
        return f'"{DOMAIN}"."{self.dataset}_history"'

    def document(self, columns: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "metadata": {
                "domain": DOMAIN,
                "dataset": self.dataset,
                "kind": "reference",
                "description": "Codes for the reference tests.",
                "owners": [{"name": "Tests", "email": "tests@example.org"}],
                "update_behaviour": "OVERWRITE",
                "primary_key": ["code"],
            },
            "schedule": None,
            "retries": 0,
            "source": {"type": "file", "path": f"{self.dataset}.csv"},
            "columns": columns,
        }

    def write(
        self, rows: list[dict[str, Any]], columns: list[dict[str, Any]] = COLUMNS
    ) -> DatasetSpec:
        """Write the YAML and the CSV; return the spec."""
        document = self.document(columns)
        (self.folder / f"{self.dataset}.yaml").write_text(yaml.safe_dump(document))
        names = [c["name"] for c in columns]
        with (self.home / "include" / "reference" / f"{self.dataset}.csv").open(
            "w", newline=""
        ) as out:
            writer = csv.DictWriter(out, names)
            writer.writeheader()
            writer.writerows(rows)
        return DatasetSpec.model_validate(document)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    home = tmp_path / "home"
    made = Project(home, f"codes_{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    return made


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq(LOADER_URL)) as connection:
        yield connection


def publish(conn: Any, spec: DatasetSpec, rows: list[dict[str, Any]], run_id: str, **kw: Any):
    return load.load(conn, spec, run_id, None, rows_of(spec, rows, run_id), **kw)


def ledger(pg: Any, project: Project) -> list[tuple[Any, ...]]:
    return fetch(
        pg,
        "SELECT version, rows_added, rows_changed, rows_removed, row_count, run_id, loaded_at"
        " FROM wharf.reference_versions WHERE dataset_id = %s ORDER BY id",
        project.dataset_id,
    )


def as_at(pg: Any, project: Project, moment: Any, columns: str = "code, name") -> list[Any]:
    return fetch(
        pg,
        f"SELECT {columns} FROM {project.history} WHERE valid_from <= %s"
        " AND (valid_to IS NULL OR valid_to > %s) ORDER BY code",
        moment,
        moment,
    )


def test_versions_history_and_as_at(conn: Any, pg: Any, project: Project) -> None:
    spec = project.write(ROWS)
    first = publish(conn, spec, ROWS, "r1")
    assert (first.reference_version, first.unchanged) == ("1.0", False)
    [(version, added, changed, removed, count, run_id, t1)] = ledger(pg, project)
    assert (version, added, changed, removed, count, run_id) == ("1.0", 3, 0, 0, 3, "r1")
    assert fetch(pg, f"SELECT code, version_from, version_to FROM {project.history}") == [
        ("a", "1.0", None),
        ("b", "1.0", None),
        ("c", "1.0", None),
    ]

    edited = [ROWS[0], {**ROWS[1], "name": "Bravo!"}, ROWS[2]]
    spec = project.write(edited)
    assert publish(conn, spec, edited, "r2").reference_version == "1.1"
    t2 = ledger(pg, project)[-1][-1]
    assert ledger(pg, project)[-1][:5] == ("1.1", 0, 1, 0, 3)
    assert fetch(
        pg,
        f"SELECT name, valid_from, valid_to, version_from, version_to FROM {project.history}"
        " WHERE code = 'b' ORDER BY valid_from",
    ) == [("Bravo", t1, t2, "1.0", "1.1"), ("Bravo!", t2, None, "1.1", None)]
    # "As at" the first version (or any time before the second): the old row.
    assert as_at(pg, project, t1) == [("a", "Alpha"), ("b", "Bravo"), ("c", "Charlie")]
    assert as_at(pg, project, t2 - timedelta(microseconds=1))[1] == ("b", "Bravo")
    assert as_at(pg, project, t2)[1] == ("b", "Bravo!")
    assert as_at(pg, project, t1 - timedelta(seconds=1)) == []

    # A row removed and one added: one minor version.
    moved = [edited[0], edited[1], {"code": "d", "name": "Delta", "rank": 4}]
    spec = project.write(moved)
    assert publish(conn, spec, moved, "r3").reference_version == "1.2"
    assert ledger(pg, project)[-1][:5] == ("1.2", 1, 0, 1, 3)
    assert as_at(pg, project, ledger(pg, project)[-1][-1]) == [
        ("a", "Alpha"),
        ("b", "Bravo!"),
        ("d", "Delta"),
    ]

    # A column added: the major version, every row of it in the history.
    wider = [*COLUMNS, {"name": "note", "data_type": "string", "description": "A note."}]
    noted = [{**r, "note": f"n{r['rank']}"} for r in moved]
    spec = project.write(noted, wider)
    assert publish(conn, spec, noted, "r4").reference_version == "2.0"
    t4 = ledger(pg, project)[-1][-1]
    assert ledger(pg, project)[-1][:5] == ("2.0", 0, 0, 0, 3)
    assert as_at(pg, project, t4, "code, note, version_from") == [
        ("a", "n1", "2.0"),
        ("b", "n2", "2.0"),
        ("d", "n4", "2.0"),
    ]
    assert fetch(pg, f"SELECT count(*) FROM {project.history} WHERE version_to = '2.0'") == [(3,)]
    # The history says what the table says, with the same grants, and comments of its own.
    assert fetch(
        pg,
        "SELECT obj_description(%s::regclass), col_description(%s::regclass, 1)",
        project.history,
        project.history,
    ) == [
        (
            "Codes for the reference tests. Every version of the reference dataset "
            f"{project.dataset_id} (wharf.reference_versions), its current rows included: the "
            "rows as at a time t are those with valid_from <= t AND (valid_to IS NULL OR "
            "valid_to > t).",
            "The code.",
        )
    ]
    grants = (
        "SELECT grantee, privilege_type FROM information_schema.role_table_grants"
        " WHERE table_schema = %s AND table_name = %s AND grantee LIKE %s ORDER BY 1, 2"
    )
    readers = fetch(pg, grants, DOMAIN, project.dataset, f"{ROLE_PREFIX}_%")
    assert (f"{ROLE_PREFIX}_public", "SELECT") in readers
    assert fetch(pg, grants, DOMAIN, f"{project.dataset}_history", f"{ROLE_PREFIX}_%") == readers


def test_the_same_file_again_publishes_nothing(conn: Any, pg: Any, project: Project) -> None:
    spec = project.write(ROWS)
    publish(conn, spec, ROWS, "r1")
    table, history, versions = (
        checksum(pg, spec),
        fetch(pg, f"TABLE {project.history}"),
        ledger(pg, project),
    )
    again = publish(conn, spec, ROWS, "r2")
    assert (again.unchanged, again.reference_version, again.published_rows) == (True, "1.0", 3)
    assert (again.inserted, again.deleted) == (0, 0)
    assert reference.summary(again)["reference"] == "unchanged, version 1.0"
    assert checksum(pg, spec) == table  # _wharf_run_id and _wharf_loaded_at too: untouched
    assert fetch(pg, f"TABLE {project.history}") == history
    assert ledger(pg, project) == versions
    # The catalogue's change log has the run, and says nothing changed (last updated stays).
    assert fetch(
        pg,
        "SELECT run_id, structure_changed, data_changed, row_count FROM wharf.catalogue_loads"
        " WHERE dataset_id = %s ORDER BY id",
        spec.dataset_id,
    ) == [("r1", True, True, 3), ("r2", False, False, 3)]
    # A YAML whose columns changed loads the same file again.
    described = [{**c, "description": "Changed."} if c["name"] == "rank" else c for c in COLUMNS]
    spec = project.write(ROWS, described)
    assert publish(conn, spec, ROWS, "r3").unchanged  # a description is no structure
    retyped = [{**c, "data_type": "bigint"} if c["name"] == "rank" else c for c in COLUMNS]
    spec = project.write(ROWS, retyped)
    spec = spec.model_copy(
        update={"load": spec.load.model_copy(update={"allow_destructive_changes": True})}
    )
    result = publish(conn, spec, ROWS, "r4")
    assert (result.unchanged, result.reference_version) == (False, "2.0")


def test_a_failed_load_changes_nothing(conn: Any, pg: Any, project: Project) -> None:
    spec = project.write(ROWS)
    publish(conn, spec, ROWS, "r1")
    before = checksum(pg, spec), fetch(pg, f"TABLE {project.history}"), ledger(pg, project)

    def die(phase: str) -> None:
        if phase == "commit":  # after the history and the ledger were written
            raise RuntimeError("killed before the commit")

    edited = [{**ROWS[0], "name": "Changed"}, ROWS[1], ROWS[2]]
    spec = project.write(edited)
    with pytest.raises(RuntimeError):
        publish(conn, spec, edited, "r2", on_phase=die)
    after = checksum(pg, spec), fetch(pg, f"TABLE {project.history}"), ledger(pg, project)
    assert after == before
    # The next attempt publishes the change (the checksum was not recorded by the failure).
    assert publish(conn, spec, edited, "r2").reference_version == "1.1"


def test_diff_says_what_the_working_copy_would_change(
    pg: Any, project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    from wharf.cli.reference import cmd_reference_diff

    project.write(ROWS)
    assert cmd_reference_diff(project.dataset_id) == 1  # never loaded: all of it is new
    assert "would become version 1.0" in capsys.readouterr().out
    assert run_dag(project.dataset_id) == "success"
    assert cmd_reference_diff(project.dataset_id) == 0
    assert "no change: version 1.0" in capsys.readouterr().out

    edited = [
        {**ROWS[0], "name": "Changed"},
        ROWS[1],
        *({"code": f"n{i:02}", "name": "New", "rank": i} for i in range(15)),
    ]
    project.write(edited, [*COLUMNS, {"name": "extra", "data_type": "date"}])
    assert cmd_reference_diff(project.dataset_id) == 1
    out = capsys.readouterr().out
    assert "would become version 2.0" in out
    assert "column 'extra' added (date)" in out
    assert "15 row(s) added: code=n00, code=n01" in out
    assert "code=n09, ... (5 more)" in out
    assert "1 row(s) changed: code=a" in out
    assert "1 row(s) removed: code=c" in out
    # Nothing was written by the diff.
    assert fetch(pg, f"SELECT count(*) FROM {project.table}") == [(3,)]
    assert cmd_reference_diff("refver.nothing_here") == 2


def test_an_unchanged_run_through_airflow_succeeds_and_says_so(pg: Any, project: Project) -> None:
    project.write(ROWS)
    access_apply()
    assert run_dag(project.dataset_id) == "success"
    assert run_dag(project.dataset_id) == "success"
    status, detail = last_audit(pg, project.dataset_id, "load", "status, detail")
    assert status == "success"
    assert (detail["reference"], detail["unchanged"]) == ("unchanged, version 1.0", True)
    assert last_audit(pg, project.dataset_id, "record", "status")[0] == "success"
    assert fetch(
        pg,
        "SELECT last_status, row_count FROM wharf.catalogue WHERE dataset_id = %s",
        project.dataset_id,
    ) == [("success", 3)]
    assert len(ledger(pg, project)) == 1
    with pg_connect() as fresh:
        assert fetch(fresh, f"SELECT count(*) FROM {project.history}") == [(3,)]


def test_the_loader_may_only_add_to_the_version_ledger(conn: Any, project: Project) -> None:
    spec = project.write(ROWS)
    publish(conn, spec, ROWS, "r1")
    for statement in (
        "UPDATE wharf.reference_versions SET version = '9.9'",
        "DELETE FROM wharf.reference_versions",
        "TRUNCATE wharf.reference_versions",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        conn.rollback()


def test_the_checksum_is_the_one_of_the_file_extract_read(
    conn: Any, pg: Any, project: Project
) -> None:
    """A deploy may replace the file between extract and load: the ledger keeps the checksum
    extract took (then the next run loads the new file), and extract refuses a file that
    changed while it read it."""
    from wharf.errors import TransientError

    spec = project.write(ROWS)
    batches = rows_of(spec, ROWS, "r1")
    read = load.Batches(batches.schema, batches.num_rows, batches.stream, "e" * 64)
    load.load(conn, spec, "r1", None, read)
    assert fetch(
        pg, "SELECT checksum FROM wharf.reference_versions WHERE dataset_id = %s", spec.dataset_id
    ) == [("e" * 64,)]
    assert not publish(conn, spec, ROWS, "r2").unchanged  # the file on disk is another
    before = reference.file_sha256(spec)
    assert reference.same_file(spec, before) == before
    project.write([*ROWS, {"code": "z", "name": "Zulu", "rank": 26}])
    with pytest.raises(TransientError, match="changed while it was read"):
        reference.same_file(spec, before)
