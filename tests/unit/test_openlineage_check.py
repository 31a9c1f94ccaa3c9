"""The check tests/integration/test_openlineage.py puts every event through
(``tests/openlineage_check.py``: openlineage-python's models, and the JSON schemas the
packages ship) passes a well-formed event and refuses a broken one, naming where."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openlineage.client.generated import base
from openlineage.client.generated.base import BaseFacet, RunFacet
from openlineage.client.generated.column_lineage_dataset import ColumnLineageDatasetFacet
from openlineage.client.generated.data_quality_metrics_input_dataset import (
    DataQualityMetricsInputDatasetFacet,
)
from openlineage.client.generated.parent_run import ParentRunFacet

from openlineage_check import FACET_KEYS, SHARED_KEYS, InvalidEvent, _facet_class, check_event

PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3"
SPEC = "https://openlineage.io/spec"


def facet(url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": url, **fields}


def event() -> dict[str, Any]:
    """A COMPLETE event of a load step, with a facet of each group."""
    run_facet = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"
    return {
        "eventTime": "2026-12-01T20:00:00.000000+00:00",
        "eventType": "COMPLETE",
        "producer": PRODUCER,
        "schemaURL": f"{SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {
            "runId": "019ad8a2-3c3e-7b2e-9a51-0d2c7f1e4b60",
            "facets": {
                "parent": facet(
                    f"{SPEC}/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
                    run={"runId": "019ad8a2-3c3e-7b2e-9a51-0d2c7f1e4b61"},
                    job={"namespace": "wharf", "name": "olfix.orders"},
                    root={
                        "run": {"runId": "019ad8a2-3c3e-7b2e-9a51-0d2c7f1e4b61"},
                        "job": {"namespace": "wharf", "name": "olfix.orders"},
                    },
                ),
                "airflowDagRun": facet(
                    run_facet,
                    dag={"dag_id": "olfix.orders", "start_date": "2026-12-01T00:00:00+00:00"},
                    dagRun={"dag_id": "olfix.orders", "run_id": "manual__1"},
                ),
            },
        },
        "job": {
            "namespace": "wharf",
            "name": "olfix.orders.load",
            "facets": {
                "jobType": facet(
                    f"{SPEC}/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                    processingType="BATCH",
                    integration="AIRFLOW",
                    jobType="TASK",
                )
            },
        },
        "inputs": [
            {
                "namespace": "file",
                "name": "/lake/curated/olfix/orders",
                "facets": {},
                "inputFacets": {
                    "dataQualityMetrics": facet(
                        f"{SPEC}/facets/1-0-3/DataQualityMetricsInputDatasetFacet.json"
                        "#/$defs/DataQualityMetricsInputDatasetFacet",
                        rowCount=4,
                        columnMetrics={"customer": {"nullCount": 1}},
                    )
                },
            }
        ],
        "outputs": [
            {
                "namespace": "postgres://localhost:5432",
                "name": "wharf.olfix.orders",
                "facets": {
                    "columnLineage": facet(
                        f"{SPEC}/facets/1-2-0/ColumnLineageDatasetFacet.json"
                        "#/$defs/ColumnLineageDatasetFacet",
                        fields={
                            "id": {
                                "inputFields": [
                                    {"namespace": "file", "name": "/lake/x", "field": "id"}
                                ]
                            }
                        },
                    )
                },
                "outputFacets": {
                    "outputStatistics": facet(
                        f"{SPEC}/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
                        "#/$defs/OutputStatisticsOutputDatasetFacet",
                        rowCount=3,
                    )
                },
            }
        ],
    }


def test_a_well_formed_event_is_structured_into_the_clients_models() -> None:
    built = check_event(event())
    assert built.eventType is not None and built.eventType.value == "COMPLETE"
    assert built.run.facets is not None and isinstance(built.run.facets["parent"], ParentRunFacet)
    [read] = built.inputs or []
    assert isinstance(
        (read.inputFacets or {})["dataQualityMetrics"], DataQualityMetricsInputDatasetFacet
    )
    [written] = built.outputs or []
    lineage = (written.facets or {})["columnLineage"]
    assert isinstance(lineage, ColumnLineageDatasetFacet)
    assert lineage.fields["id"].inputFields[0].field == "id"


def broken(change: Any) -> str:
    e = event()
    change(e)
    with pytest.raises(InvalidEvent) as refused:
        check_event(e)
    return str(refused.value)


def test_a_missing_run_id_is_refused() -> None:
    assert broken(lambda e: e["run"].pop("runId")) == "run.runId: missing (required by Run)"


def test_a_facet_field_of_the_wrong_type_is_refused() -> None:
    def stringly(e: dict[str, Any]) -> None:
        e["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] = "3"

    assert (
        broken(stringly)
        == "outputs[0].outputFacets.outputStatistics.rowCount: '3' is not an integer"
    )

    def boolean(e: dict[str, Any]) -> None:
        e["inputs"][0]["inputFacets"]["dataQualityMetrics"]["columnMetrics"]["customer"][
            "nullCount"
        ] = True

    assert "nullCount: True is not an integer" in broken(boolean)


def test_a_missing_field_deep_in_a_facet_is_refused() -> None:
    def no_field(e: dict[str, Any]) -> None:
        del e["outputs"][0]["facets"]["columnLineage"]["fields"]["id"]["inputFields"][0]["field"]

    assert broken(no_field).endswith("inputFields[0].field: missing (required by InputField)")


def test_the_models_own_validators_run() -> None:
    assert "badly formed hexadecimal UUID" in broken(lambda e: e["run"].update(runId="run-1"))
    # A date without a time of day (RunEvent's eventTime validator).
    assert "has to contain time" in broken(lambda e: e.update(eventTime="2026-12-01"))


def test_an_unknown_event_type_is_refused() -> None:
    assert broken(lambda e: e.update(eventType="DONE")).startswith(
        "eventType: 'DONE' is none of ['START', 'RUNNING', 'COMPLETE', 'ABORT', 'FAIL', 'OTHER']"
    )


def test_a_bad_schema_url_or_producer_is_refused() -> None:
    def old_version(e: dict[str, Any]) -> None:
        stats = e["outputs"][0]["outputFacets"]["outputStatistics"]
        stats["_schemaURL"] = stats["_schemaURL"].replace("1-0-2", "1-0-1")

    assert "outputStatistics._schemaURL: " in broken(old_version)
    assert broken(lambda e: e.update(schemaURL="OpenLineage.json")).startswith("schemaURL: ")
    assert broken(lambda e: e.update(producer="wharf")) == (
        "producer: 'wharf' is not an absolute http(s) URL"
    )

    def no_producer(e: dict[str, Any]) -> None:
        del e["job"]["facets"]["jobType"]["_producer"]

    assert broken(no_producer) == "job.facets.jobType._producer: missing (required of every facet)"


def test_an_unknown_facet_or_one_in_the_wrong_group_is_refused() -> None:
    assert "no model for a facet 'rowz'" in broken(
        lambda e: e["run"]["facets"].update(rowz=facet("https://example.org/x"))
    )

    def misplaced(e: dict[str, Any]) -> None:
        e["run"]["facets"]["outputStatistics"] = e["outputs"][0]["outputFacets"].pop(
            "outputStatistics"
        )

    assert "OutputStatisticsOutputDatasetFacet is not a RunFacet" in broken(misplaced)


def test_a_core_object_takes_no_unknown_field() -> None:
    assert "['runID'] are not fields of Run" in broken(lambda e: e["run"].update(runID="x"))


def test_the_providers_shipped_schema_checks_what_its_model_leaves_open() -> None:
    """The provider's model types ``dag`` as a plain dict; its AirflowDagRunFacet.json, read
    from site-packages, requires the dag's id."""

    def no_dag_id(e: dict[str, Any]) -> None:
        del e["run"]["facets"]["airflowDagRun"]["dag"]["dag_id"]

    assert "'dag_id' is a required property" in broken(no_dag_id)


def test_the_common_packages_dq_schema_is_applied() -> None:
    def no_metrics(e: dict[str, Any]) -> None:
        del e["inputs"][0]["inputFacets"]["dataQualityMetrics"]["columnMetrics"]

    assert "columnMetrics" in broken(no_metrics)


def test_every_facet_key_names_a_facet_class_of_the_installed_client() -> None:
    for key in FACET_KEYS:
        assert issubclass(_facet_class(key, BaseFacet), BaseFacet), key
    # (SHARED_KEYS: a key whose class depends on its group.)
    for key, groups in SHARED_KEYS.items():
        for group, (_, name) in groups.items():
            assert _facet_class(key, getattr(base, group)).__name__ == name
    assert _facet_class("airflow", RunFacet).__name__ == "AirflowRunFacet"


def test_the_event_itself_is_not_changed() -> None:
    e = event()
    before = copy.deepcopy(e)
    check_event(e)
    assert e == before
