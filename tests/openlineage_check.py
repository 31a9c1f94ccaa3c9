"""OpenLineage events checked with what the installed packages ship: there is no copy of
OpenLineage's own JSON schemas here (no package registry ships them, and the one tool that
could bring their repository here forbids committing what it brings).

1. openlineage-python's models (``openlineage.client.generated``, attrs classes generated
   from that very spec): an event is structured into ``RunEvent`` field by field, and each
   facet, by its key, into its facet's class. A missing required field, a value of the wrong
   JSON type, an unknown ``eventType`` or facet key, a facet in the wrong group, a
   ``_schemaURL`` other than the one the model's class names, or a ``producer``/``_producer``
   that is not an absolute http(s) URL is refused; the classes' own validators (``runId`` a
   UUID, ``eventTime`` an ISO date-time) run as the objects are built. A facet may carry
   keys its model lacks (the spec's additional properties); any other object may not, which
   is stricter than the spec, and holds for every event the provider sends here.
2. The JSON schemas the packages do ship, read from site-packages at check time: the Airflow
   provider's ``facets/*.json`` for its own facets (``airflow``, ``airflowDagRun``,
   ``airflowState``, ``debug``; the points where AirflowRunFacet.json is behind Airflow 3.3
   are named in ``AIRFLOW_RUN_FACET_STALE``) and openlineage-integration-common's
   ``provider/data-quality-dataset-facet.json`` for ``dataQualityMetrics`` (its other file,
   ge-assertions-dataset-facet.json, is an older Great Expectations facet with other fields,
   not the spec's ``dataQualityAssertions``, so it checks nothing sent here). Their
   ``$ref`` to OpenLineage.json's base facet is not resolved (that file is what is missing):
   the base fields are checked by 1.

``check_event(event)`` returns the ``RunEvent`` or raises ``InvalidEvent`` naming the path
(``run.facets.parent.run.runId``) and what is wrong.
"""

from __future__ import annotations

import enum
import importlib
import json
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attr
from openlineage.client.generated import base
from openlineage.client.generated.base import BaseFacet


class InvalidEvent(AssertionError):
    """An event that OpenLineage's models or a shipped schema refuse; ``str()`` names the path."""


# Each standard facet key (the spec names it in the facet's own JSON file, which is not here:
# OpenLineage's docs list the same keys), the module of openlineage.client.generated holding
# its class, and that class.
FACET_KEYS: dict[str, tuple[str, str]] = {
    # run
    "nominalTime": ("nominal_time_run", "NominalTimeRunFacet"),
    "parent": ("parent_run", "ParentRunFacet"),
    "processing_engine": ("processing_engine_run", "ProcessingEngineRunFacet"),
    "errorMessage": ("error_message_run", "ErrorMessageRunFacet"),
    "externalQuery": ("external_query_run", "ExternalQueryRunFacet"),
    "extractionError": ("extraction_error_run", "ExtractionErrorRunFacet"),
    "environmentVariables": ("environment_variables_run", "EnvironmentVariablesRunFacet"),
    "executionParameters": ("execution_parameters_run", "ExecutionParametersRunFacet"),
    "jobDependencies": ("job_dependencies_run", "JobDependenciesRunFacet"),
    "test": ("test_run", "TestRunFacet"),
    # job
    "documentation": ("documentation_job", "DocumentationJobFacet"),
    "jobType": ("job_type_job", "JobTypeJobFacet"),
    "ownership": ("ownership_job", "OwnershipJobFacet"),
    "sql": ("sql_job", "SQLJobFacet"),
    "sourceCode": ("source_code_job", "SourceCodeJobFacet"),
    "sourceCodeLocation": ("source_code_location_job", "SourceCodeLocationJobFacet"),
    # dataset
    "schema": ("schema_dataset", "SchemaDatasetFacet"),
    "columnLineage": ("column_lineage_dataset", "ColumnLineageDatasetFacet"),
    "dataSource": ("datasource_dataset", "DatasourceDatasetFacet"),
    "symlinks": ("symlinks_dataset", "SymlinksDatasetFacet"),
    "storage": ("storage_dataset", "StorageDatasetFacet"),
    "lifecycleStateChange": ("lifecycle_state_change_dataset", "LifecycleStateChangeDatasetFacet"),
    "version": ("dataset_version_dataset", "DatasetVersionDatasetFacet"),
    "datasetType": ("dataset_type_dataset", "DatasetTypeDatasetFacet"),
    "catalog": ("catalog_dataset", "CatalogDatasetFacet"),
    "hierarchy": ("hierarchy_dataset", "HierarchyDatasetFacet"),
    # input / output dataset
    "dataQualityMetrics": (
        "data_quality_metrics_input_dataset",
        "DataQualityMetricsInputDatasetFacet",
    ),
    "dataQualityAssertions": (
        "data_quality_assertions_dataset",
        "DataQualityAssertionsDatasetFacet",
    ),
    "inputStatistics": ("input_statistics_input_dataset", "InputStatisticsInputDatasetFacet"),
    "outputStatistics": ("output_statistics_output_dataset", "OutputStatisticsOutputDatasetFacet"),
}
# A key used in more than one group: the group's base class picks the class.
SHARED_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "tags": {
        "RunFacet": ("tags_run", "TagsRunFacet"),
        "JobFacet": ("tags_job", "TagsJobFacet"),
        "DatasetFacet": ("tags_dataset", "TagsDatasetFacet"),
    },
    "ownership": {
        "JobFacet": ("ownership_job", "OwnershipJobFacet"),
        "DatasetFacet": ("ownership_dataset", "OwnershipDatasetFacet"),
    },
    "documentation": {
        "JobFacet": ("documentation_job", "DocumentationJobFacet"),
        "DatasetFacet": ("documentation_dataset", "DocumentationDatasetFacet"),
    },
    "subset": {
        "InputDatasetFacet": ("base_subset_dataset", "InputSubsetInputDatasetFacet"),
        "OutputDatasetFacet": ("base_subset_dataset", "OutputSubsetOutputDatasetFacet"),
    },
}
# Where the provider's AirflowRunFacet.json is behind Airflow 3.3, as (path in the facet,
# JSON-schema keyword, a word of the message): a task instance no longer has the `pool` the
# file requires among the attributes the provider sends, and a task's
# retry_exponential_backoff is now a multiplier (a number), not a boolean. Any other error
# of that file is refused.
Stale = set[tuple[tuple[str, ...], str, str]]
AIRFLOW_RUN_FACET_STALE: Stale = {
    (("taskInstance",), "required", "'pool'"),
    (("task", "retry_exponential_backoff"), "type", "'boolean'"),
}
# The Airflow provider's own facets (its plugins/facets.py) by group and key, each with the
# JSON schema the provider ships for it (its facets/ folder) and that schema's stale points.
PROVIDER_KEYS: dict[tuple[str, str], tuple[str, str | None, Stale]] = {
    ("RunFacet", "airflow"): ("AirflowRunFacet", "AirflowRunFacet", AIRFLOW_RUN_FACET_STALE),
    ("RunFacet", "airflowDagRun"): ("AirflowDagRunFacet", "AirflowDagRunFacet", set()),
    ("RunFacet", "airflowState"): ("AirflowStateRunFacet", "AirflowStateRunFacet", set()),
    ("RunFacet", "debug"): ("AirflowDebugRunFacet", "AirflowDebugRunFacet", set()),
    ("RunFacet", "airflow_mapped_task"): ("AirflowMappedTaskRunFacet", None, set()),
    ("RunFacet", "unknownSourceAttribute"): ("UnknownOperatorAttributeRunFacet", None, set()),
    ("JobFacet", "airflow"): ("AirflowJobFacet", "AirflowJobFacet", set()),
}


def _facet_class(key: str, group: type) -> type:
    if (group.__name__, key) in PROVIDER_KEYS:
        from airflow.providers.openlineage.plugins import facets

        cls: type = getattr(facets, PROVIDER_KEYS[group.__name__, key][0])
        return cls
    spec = SHARED_KEYS.get(key, {}).get(group.__name__) or FACET_KEYS.get(key)
    if spec is None:
        raise KeyError(key)
    module = importlib.import_module(f"openlineage.client.generated.{spec[0]}")
    cls = getattr(module, spec[1])
    assert isinstance(cls, type), (key, cls)
    return cls


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fail(path: str, message: str) -> typing.NoReturn:
    raise InvalidEvent(f"{path or 'event'}: {message}")


def _url(path: str, value: object) -> None:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        _fail(path, f"{value!r} is not an absolute http(s) URL")


def _scalar(value: Any, tp: type, path: str) -> bool:
    """Whether ``tp`` is a JSON scalar's type; raises if it is and ``value`` is not one."""
    wanted: dict[type, tuple[tuple[type, ...], str]] = {
        bool: ((bool,), "a boolean"),
        int: ((int,), "an integer"),
        float: ((int, float), "a number"),
        str: ((str,), "a string"),
    }
    if tp not in wanted:
        return False
    types_, name = wanted[tp]
    # JSON's true is no number: Python's bool is an int.
    if not isinstance(value, types_) or (tp is not bool and isinstance(value, bool)):
        _fail(path, f"{value!r} is not {name}")
    return True


def _union(value: Any, tp: Any, path: str) -> Any:
    arms = typing.get_args(tp)
    if value is None and type(None) in arms:
        return None
    others = [a for a in arms if a is not type(None)]
    if len(others) == 1:
        return _value(value, others[0], path)
    errors = []
    for arm in others:
        try:
            return _value(value, arm, path)
        except InvalidEvent as e:
            errors.append(str(e))
    _fail(path, " / ".join(errors))


def _container(value: Any, tp: Any, path: str) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list or tp is list:
        if not isinstance(value, list):
            _fail(path, f"{type(value).__name__} where an array is wanted")
        (item,) = args or (Any,)
        return [_value(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        _fail(path, f"{type(value).__name__} where an object is wanted")
    _, item = args or (str, Any)
    if isinstance(item, type) and issubclass(item, BaseFacet):
        # A group of facets (``run.facets``, ``inputFacets``...): each by its key.
        return {k: _facet(k, v, item, f"{path}.{k}") for k, v in value.items()}
    return {k: _value(v, item, f"{path}.{k}") for k, v in value.items()}


def _value(value: Any, tp: Any, path: str) -> Any:
    """``value`` (parsed JSON) as type ``tp`` of a model's field, strictly: no coercion."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        return _union(value, tp, path)
    if origin in (list, dict) or tp in (list, dict):
        return _container(value, tp, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if value not in allowed:
            _fail(path, f"{value!r} is none of {allowed}")
        return tp(value)
    if _scalar(value, tp, path):
        return value
    if attr.has(tp):
        return _object(value, tp, path)
    raise TypeError(f"{path}: no rule for the model's type {tp!r}")


def _object(value: Any, cls: type, path: str, *, extra: bool = False) -> Any:
    """An attrs model ``cls`` from the JSON object ``value``: every field without a default
    present, each of its type; keys the model has not, refused unless ``extra`` (a facet's
    additional properties, which the spec allows)."""
    if not isinstance(value, dict):
        _fail(path, f"{type(value).__name__} where an object ({cls.__name__}) is wanted")
    hints = _hints(cls)
    fields = {f.name: f for f in attr.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown and not extra:
        _fail(path, f"{unknown} are not fields of {cls.__name__}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        where = f"{path}.{name}" if path else name
        if name not in value:
            if field.default is attr.NOTHING:
                _fail(where, f"missing (required by {cls.__name__})")
            continue
        converted = _value(value[name], hints[name], where)
        if field.init:
            kwargs[field.alias] = converted
    try:
        built = cls(**kwargs)
    except (TypeError, ValueError, OverflowError) as e:  # the model's own validators
        _fail(path, f"{cls.__name__}: {e}")
    return built


def _facet(key: str, value: Any, group: type, path: str) -> Any:
    try:
        cls = _facet_class(key, group)
    except KeyError:
        _fail(path, f"no model for a facet {key!r} (a {group.__name__})")
    if not issubclass(cls, group):
        _fail(path, f"{cls.__name__} is not a {group.__name__}")
    if not isinstance(value, dict):
        _fail(path, f"{type(value).__name__} where a facet object is wanted")
    # The base facet's fields, which the spec requires of every facet.
    for name in ("_producer", "_schemaURL"):
        if name not in value:
            _fail(f"{path}.{name}", "missing (required of every facet)")
    _url(f"{path}._producer", value["_producer"])
    want = cls._get_schema()  # type: ignore[attr-defined]
    if value["_schemaURL"] != want:
        _fail(f"{path}._schemaURL", f"{value['_schemaURL']!r}, but {cls.__name__} is {want!r}")
    built = _object(value, cls, path, extra=True)
    _, shipped, stale = PROVIDER_KEYS.get((group.__name__, key), ("", None, set()))
    if shipped:
        _shipped_schema(value, _provider_schema(shipped), path, stale)
    elif key == "dataQualityMetrics":
        _shipped_schema(value, _common_dq_schema(), path, set())
    return built


# --- the JSON schemas the packages ship ------------------------------------------------------


def _provider_schema(name: str) -> dict[str, Any]:
    import airflow.providers.openlineage.facets as provider_facets

    spec = json.loads((Path(provider_facets.__file__).parent / f"{name}.json").read_text())
    return _own_part(spec["$defs"][name], spec)


def _common_dq_schema() -> dict[str, Any]:
    import openlineage.common.provider as common_provider

    folder = Path(common_provider.__file__).parent
    spec = json.loads((folder / "data-quality-dataset-facet.json").read_text())
    # This older file writes JSON types as Python's ("int", "bool", "str"); read as meant.
    text = json.dumps(spec["definitions"]["DataQualityDatasetFacet"])
    for py, js in (("int", "integer"), ("bool", "boolean"), ("str", "string")):
        text = text.replace(f'"type": "{py}"', f'"type": "{js}"')
    return _own_part(json.loads(text), spec)


def _own_part(definition: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The facet's own part of ``allOf`` (the other is the $ref to OpenLineage.json's base
    facet, not here), with the document's local definitions for its ``#/...`` refs."""
    own = [p for p in definition["allOf"] if "$ref" not in p]
    assert len(own) == 1, definition
    return {**own[0], "$defs": document.get("$defs", {})}


def _shipped_schema(value: dict[str, Any], schema: dict[str, Any], path: str, stale: Stale) -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)

    def known(e: Any) -> bool:
        at = tuple(str(p) for p in e.absolute_path)
        return any(at == p and e.validator == v and w in e.message for p, v, w in stale)

    errors = [e for e in Draft202012Validator(schema).iter_errors(value) if not known(e)]
    if errors:
        _fail(path, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors))


# --- the event -------------------------------------------------------------------------------


def check_event(event: Any) -> base.RunEvent:
    """``event`` (a parsed RunEvent) as openlineage-python's ``RunEvent``; raises
    ``InvalidEvent`` at the first thing its models or a shipped schema refuse."""
    if not isinstance(event, dict):
        _fail("", "not a JSON object")
    for name in ("producer", "schemaURL"):
        if name not in event:
            _fail(name, "missing")
    _url("producer", event["producer"])
    want = base.RunEvent._get_schema()
    if event["schemaURL"] != want:
        _fail("schemaURL", f"{event['schemaURL']!r}, but a RunEvent is {want!r}")
    if "eventType" not in event:  # optional in the model, but every run event here has one
        _fail("eventType", "missing")
    built: base.RunEvent = _object(event, base.RunEvent, "")
    return built
