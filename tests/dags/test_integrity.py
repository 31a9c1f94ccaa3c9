"""DAG integrity: the dags folder imports cleanly, one DAG per YAML, no I/O at parse time."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from unittest.mock import patch

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseHook

from wharf.orchestration.dag_factory import FRESHNESS_DAG_ID
from wharf.specfiles import load_specs

ROOT = Path(__file__).resolve().parents[2]
DAGS = str(ROOT / "dags")


def _parse() -> DagBag:
    """Parse the dags folder with connections and network sockets forbidden."""

    def no_network(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"network or database I/O at parse time: connect{args[1:]}")

    with (
        patch.object(BaseHook, "get_connection") as get_connection,
        patch.object(socket.socket, "connect", no_network),
    ):
        bag = DagBag(dag_folder=DAGS)
    assert get_connection.call_count == 0, "a connection was fetched at parse time"
    return bag


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return _parse()


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}


def test_one_dag_per_yaml(dagbag: DagBag) -> None:
    specs, _ = load_specs()
    assert sorted(dagbag.dag_ids) == sorted([FRESHNESS_DAG_ID, *(s.dag_id for s in specs)])


def test_each_dag_comes_from_its_domains_own_file_else_the_catch_all(dagbag: DagBag) -> None:
    # Issue #16 item 5: Airflow's DAG processor parses each file on its own.
    for dag in dagbag.dags.values():
        own = "wharf_domain_transport.py" if dag.dag_id.startswith("transport.") else None
        assert Path(dag.fileloc).name == (own or "wharf_datasets.py"), dag.dag_id
    assert "transport.flights" in dagbag.dags and "motoring.cars" in dagbag.dags


def test_a_new_dataset_and_a_new_domain_need_no_dag_file_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hostile.corpus import GOOD

    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "include" / "schemas", schemas)
    (schemas / "shop").mkdir()
    (schemas / "shop" / "orders.yaml").write_text(GOOD)
    extra = GOOD.replace("domain: shop", "domain: transport").replace("orders", "extra")
    (schemas / "transport" / "extra.yaml").write_text(extra)
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(schemas))
    bag = _parse()
    assert bag.import_errors == {}
    assert Path(bag.dags["shop.orders"].fileloc).name == "wharf_datasets.py"
    assert Path(bag.dags["transport.extra"].fileloc).name == "wharf_domain_transport.py"
    assert len(bag.dags) == len(load_specs()[0]) + 1  # and wharf.freshness


def test_freshness_dag(dagbag: DagBag, monkeypatch: pytest.MonkeyPatch) -> None:
    dag = dagbag.dags[FRESHNESS_DAG_ID]
    assert [t.task_id for t in dag.tasks] == ["check"]
    assert dag.max_active_runs == 1 and not dag.catchup and "wharf" in dag.tags
    assert dag.tasks[0].execution_timeout is not None
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", FRESHNESS_DAG_ID)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "check")
    bag = _parse()  # its task start reads no YAML
    assert bag.dag_ids == [FRESHNESS_DAG_ID] and bag.import_errors == {}


@pytest.mark.parametrize("dag_id", [s.dag_id for s in load_specs()[0]])
def test_dag_shape(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    spec = next(s for s in load_specs()[0] if s.dag_id == dag_id)
    expected = (
        ["refresh", "record"]
        if spec.metadata.kind == "data_cut"
        else ["extract", "validate", "load", "record"]
    )
    assert [t.task_id for t in dag.topological_sort()] == expected
    for task in dag.tasks:
        assert task.retries == spec.retries
        assert task.retry_delay == spec.retry_delay
        assert task.execution_timeout == spec.task_timeout  # no task holds a slot for ever
        assert task.retry_exponential_backoff == 2.0
    assert dag.get_task("record").trigger_rule == "all_done"
    assert dag.max_active_runs == 1
    # Committing the YAML is the intent to schedule it (README, "Start, log in, pause").
    assert dag.is_paused_upon_creation is False
    assert "wharf" in dag.tags and spec.metadata.domain in dag.tags


def test_a_data_cut_is_scheduled_on_all_of_its_inputs_assets(dagbag: DagBag) -> None:
    """Issue #15: the example cut over flights and airlines runs once both have loaded (its
    refresh's outlet is its own Asset); the inputs' DAGs no longer refresh it inline."""
    from airflow.sdk import AssetAll

    cut = dagbag.dags["transport.flights_per_carrier_month"]
    condition = cut.timetable.asset_condition
    assert isinstance(condition, AssetAll)
    assert sorted(a.name for a in condition.objects) == ["transport.airlines", "transport.flights"]
    assert [a.name for a in cut.get_task("refresh").outlets] == [
        "transport.flights_per_carrier_month"
    ]
    flights = dagbag.dags["transport.flights"]
    assert [a.name for a in flights.get_task("load").outlets] == ["transport.flights"]
    assert "refresh" not in flights.task_ids


def test_broken_yaml_is_an_import_error_and_hides_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "include" / "schemas", schemas)
    (schemas / "transport" / "broken.yaml").write_text(
        "metadata:\n  domain: transport\n  dataset: broken\n  colour: blue\n"
    )
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(schemas))
    bag = _parse()
    specs, _ = load_specs()
    assert sorted(bag.dag_ids) == sorted([FRESHNESS_DAG_ID, *(s.dag_id for s in specs)])
    assert len(specs) == len(list((ROOT / "include" / "schemas").rglob("*.yaml")))
    [(file, message)] = bag.import_errors.items()
    assert file.endswith("wharf_yaml_errors.py")
    assert f"{schemas}/transport/broken.yaml:4: metadata.colour: unknown key 'colour'" in message


def test_task_start_parses_only_its_own_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "transport.airlines")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "extract")
    bag = _parse()
    assert bag.dag_ids == ["transport.airlines"]
    assert bag.import_errors == {}


def test_no_yaml_string_reaches_an_operator_argument(dagbag: DagBag) -> None:
    # Operator arguments are rendered as Jinja: tasks get only the dataset id.
    for dag in dagbag.dags.values():
        if dag.dag_id == FRESHNESS_DAG_ID:
            continue  # no arguments at all
        for task in dag.tasks:
            assert list(task.op_args) == [task.task_id, dag.dag_id]
            assert task.op_kwargs == {}


def test_hostile_yaml_hides_no_other_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostile.corpus import CASES

    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "include" / "schemas", schemas)
    (schemas / "shop").mkdir()
    for case, (data, _) in CASES.items():
        (schemas / "shop" / f"{case}.yaml").write_bytes(data)
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(schemas))
    bag = _parse()
    examples, _ = load_specs(ROOT / "include" / "schemas")
    assert sorted(bag.dag_ids) == sorted([FRESHNESS_DAG_ID, *(s.dag_id for s in examples)])
    [(file, message)] = bag.import_errors.items()
    assert file.endswith("wharf_yaml_errors.py")
    for case, (_, expected) in CASES.items():
        assert f"{schemas}/shop/{case}.yaml:{expected.split(':', 1)[0]}: " in message, case


def test_the_serialized_dag_keeps_unpaused_at_creation(dagbag: DagBag) -> None:
    # The DAG processor creates the DAG's row from its serialized form: is_paused_upon_creation
    # set there wins over Airflow's [core] dags_are_paused_at_creation (True by default).
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dagbag.dags.values():
        stored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert stored.is_paused_upon_creation is False, dag.dag_id


def test_a_yamls_text_reaches_the_dag_docs_as_text_not_markdown() -> None:
    """The DAG's docs (Airflow renders them as Markdown in the operator's browser) show a
    description as written: an image would load from a host the YAML's author picks, a
    link would point there, and a '|' would break the columns' table."""
    from wharf.contract.dataset import DatasetSpec
    from wharf.orchestration.dag_factory import build_dag

    hostile = "![x](https://evil.example/p.png) [login](https://evil.example) <b>a|b</b>"
    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "orders",
                "description": hostile,
                "owners": [{"name": "Shop", "email": "shop@example.org"}],
            },
            "source": {"type": "sql", "conn_id": "shop_db", "table": "orders"},
            "columns": [{"name": "id", "data_type": "integer", "description": hostile}],
        }
    )
    doc = build_dag(spec).doc_md
    assert doc is not None
    import re

    for markup in (r"!\[", r"\]\(", r"<b>", r"\|b"):  # each unescaped
        assert not re.search(r"(?<!\\)" + markup, doc), markup
    assert doc.count(r"https://evil\.example") == 4  # the text itself is kept
