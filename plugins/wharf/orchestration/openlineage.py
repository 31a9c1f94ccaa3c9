"""OpenLineage inputs and outputs of each Wharf step, for Airflow's OpenLineage provider.

The provider's listener asks each task's operator for ``get_openlineage_facets_on_complete``
and ``..._on_failure`` (``dag_factory.WharfStep``); this module answers:

- ``extract``: the source -> the run's landing folder (OutputStatistics: rows landed);
- ``validate``: the landing -> curated (and quarantine when the YAML quarantines), with the
  landing's DataQualityMetrics (rows, NULLs per column as landed) and DataQualityAssertions
  (the contract per column, each Great Expectations check);
- ``load``: curated -> the table (schema facet from the YAML; OutputStatistics: rows written);
- ``refresh``: a cut's inputs -> the cut (schema
  facet, ColumnLineage from its SQL, OutputStatistics: its rows);
- ``record``: nothing (it writes Wharf's own tables only).

Names follow OpenLineage's naming spec (https://openlineage.io/docs/spec/naming): the
datasets database is ``postgres://host:port`` + ``database.schema.table``, lake folders
``file`` + absolute path or ``s3://bucket`` + key, sources their own namespace
(``source_datasets``). Hosts and ports come from the Airflow connections when the step runs
(never at parse time); a login or password never reaches an event. The numbers come from the
step's XCom return value and its audit row (``wharf.audit``), never from reading data again.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from wharf import connections, lake, settings
from wharf.connections import Endpoint
from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.contract.http_source import HttpSource
from wharf.contract.reference import history_name
from wharf.contract.sheets_source import GoogleSheetsSource
from wharf.contract.sql_source import SqlSource
from wharf.errors import WharfError

log = logging.getLogger(__name__)

# The Google Sheets API has no OpenLineage naming of its own: one namespace for the service,
# as BigQuery's ``bigquery``; a dataset is a sheet of a spreadsheet.
SHEETS_NAMESPACE = "gsheets"
_DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "mysql": 3306, "mariadb": 3306}


@dataclass(frozen=True)
class Name:
    """An OpenLineage dataset identity: ``namespace`` (the datasource) and ``name``."""

    namespace: str
    name: str


# --- naming: pure functions of an Endpoint and the YAML, unit-tested per source type --------


def postgres_name(server: Endpoint, schema: str, table: str) -> Name:
    """``postgres://host:port`` + ``database.schema.table``. A Unix-socket server (its host a
    folder, percent-encoded in a connection URI: ``%2Ftmp%2F...``) is on this machine:
    ``localhost``."""
    from urllib.parse import unquote

    socket = unquote(server.host).startswith("/")
    host = "localhost" if socket or not server.host else server.host
    return Name(
        f"postgres://{host.lower()}:{server.port or 5432}",
        f"{server.database or 'postgres'}.{schema}.{table}",
    )


def sql_table_name(source: Endpoint, table: str) -> Name:
    """A table of a SQL source, ``schema.table`` or ``table`` as written, in the naming of
    its database: MySQL/MariaDB ``mysql://host:port`` + ``database.table`` (a schema is a
    database there), PostgreSQL as ``postgres_name`` (schema ``public`` by default), SQLite
    ``sqlite`` + ``table`` (OpenLineage's own Great Expectations integration names it so),
    any other ``scheme://host:port`` + ``database.table``."""
    schema, _, bare = table.rpartition(".")
    scheme = source.scheme
    if scheme in ("postgres", "postgresql"):
        return postgres_name(source, schema or "public", bare)
    if scheme == "sqlite":
        return Name("sqlite", bare)
    if scheme in ("mysql", "mariadb"):
        return Name(
            f"mysql://{source.host.lower()}:{source.port or 3306}",
            f"{schema or source.database}.{bare}",
        )
    port = f":{source.port}" if source.port else ""
    database = ".".join(p for p in (source.database, schema) if p)
    return Name(f"{scheme}://{source.host.lower()}{port}", f"{database}.{bare}".lstrip("."))


def query_tables(query: str, scheme: str) -> list[str]:
    """``schema.table`` (or ``table``) of each table a source's query reads, in the order
    openlineage-sql finds them."""
    import openlineage_sql

    dialect = {"postgresql": "postgres", "mariadb": "mysql"}.get(scheme, scheme)
    parsed = openlineage_sql.parse([query], dialect=dialect)
    return [".".join(p for p in (t.schema, t.name) if p) for t in parsed.in_tables]


def http_name(conn: Endpoint, path: str) -> Name:
    """``scheme://host[:port]`` of the connection's base URL (the port only when it is not
    the scheme's default) + the URL's path: the connection's base path and ``source.path``
    joined as the HTTP provider joins them. Never its userinfo or query."""
    host = conn.host
    base = host if "://" in host else f"{conn.database or 'http'}://{host}"
    if conn.port:
        base = f"{base}:{conn.port}"
    url = (
        base + "/" + path
        if path and not base.endswith("/") and not path.startswith("/")
        else base + path
    )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return Name(f"{scheme}://{(parts.hostname or '').lower()}{port}", parts.path or "/")


def file_name(source: FileSource) -> Name:
    """A local file ``file`` + its absolute path, an S3 object ``s3://bucket`` + its key; a
    glob names the folder its matches lie in (the dataset is that folder's files)."""
    if source.is_s3:
        bucket, key = source.s3_bucket_key()
        return Name(f"s3://{bucket}", _glob_folder(key) if source.is_glob else key)
    from wharf.extract.local_paths import resolved_path

    path = posixpath.normpath(str(resolved_path(source)))
    return Name("file", _glob_folder(path) if source.is_glob else path)


def _glob_folder(path: str) -> str:
    parts = path.split("/")
    for i, part in enumerate(parts):
        if any(ch in part for ch in "*?["):
            return "/".join(parts[:i]) or "/"
    return path


def sheets_name(source: GoogleSheetsSource) -> Name:
    """``gsheets`` + ``spreadsheet_id/sheet``."""
    return Name(SHEETS_NAMESPACE, f"{source.spreadsheet_id}/{source.sheet}")


def source_datasets(spec: DatasetSpec, conn: Endpoint | None) -> list[Name]:
    """What ``extract`` reads. ``conn`` is the source's connection (None for local and S3
    files, which name their own place). A query's tables are found by parsing it."""
    source = spec.source
    if isinstance(source, SqlSource):
        assert conn is not None
        tables = [source.table] if source.table else query_tables(source.query or "", conn.scheme)
        return [sql_table_name(conn, t) for t in tables]
    if isinstance(source, HttpSource):
        assert conn is not None
        return [http_name(conn, source.path)]
    if isinstance(source, GoogleSheetsSource):
        return [sheets_name(source)]
    if isinstance(source, FileSource):
        return [file_name(source)]
    return []


def lake_name(uri: str) -> Name:
    """A lake folder's URI as OpenLineage names it: ``file:///a/b`` -> ``file`` + ``/a/b``,
    ``s3://bucket/k`` -> ``s3://bucket`` + ``k``."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Name("file", unquote(parts.path))
    return Name(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"))


# --- facets ----------------------------------------------------------------------------------


def schema_facet(spec: DatasetSpec) -> Any:
    """The YAML's columns, their ``data_type`` and description, in order."""
    from openlineage.client.generated.schema_dataset import (
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    return SchemaDatasetFacet(
        fields=[
            SchemaDatasetFacetFields(
                name=c.name,
                type=c.data_type,
                description=c.description or None,
                ordinal_position=i,
            )
            for i, c in enumerate(spec.columns, start=1)
        ]
    )


def column_lineage(cut_sql: str, server: Endpoint) -> dict[str, list[Name | str]]:
    """Per output column of a cut's SQL, the input columns it comes from, as
    ``[Name(dataset), field, Name, field, ...]``: openlineage-sql's column lineage in the
    PostgreSQL dialect (an unqualified table is in ``public``)."""
    import openlineage_sql

    parsed = openlineage_sql.parse([cut_sql], dialect="postgres", default_schema="public")
    lineage: dict[str, list[Name | str]] = {}
    for item in parsed.column_lineage:
        fields: list[Name | str] = []
        for source in item.lineage:
            if source.origin is None:
                continue
            fields += [postgres_name(server, source.origin.schema or "public", source.origin.name)]
            fields += [source.name]
        if fields:
            lineage[item.descendant.name] = fields
    return lineage


def column_lineage_facet(cut_sql: str, server: Endpoint) -> Any:
    """The ColumnLineage facet of a cut (``column_lineage``)."""
    from openlineage.client.generated.column_lineage_dataset import (
        ColumnLineageDatasetFacet,
        Fields,
        InputField,
    )

    found = column_lineage(cut_sql, server)
    return ColumnLineageDatasetFacet(
        fields={
            column: Fields(
                inputFields=[
                    InputField(namespace=ds.namespace, name=ds.name, field=str(field))
                    for ds, field in zip(pairs[::2], pairs[1::2], strict=True)
                    if isinstance(ds, Name)
                ]
            )
            for column, pairs in found.items()
        }
    )


def quality_facets(spec: DatasetSpec, rows: int | None, detail: dict[str, Any]) -> dict[str, Any]:
    """The landing's input facets from ``validate``'s audit detail: ``dataQualityMetrics``
    (rows read, NULLs per column as landed) and ``dataQualityAssertions`` (per column,
    ``wharf_contract``: no value broke its data_type or allow_null; each Great Expectations
    check by its expectation, with its column, severity and unexpected count)."""
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )
    from openlineage.client.generated.data_quality_metrics_input_dataset import (
        ColumnMetrics,
        DataQualityMetricsInputDatasetFacet,
    )

    nulls: dict[str, int] = detail.get("null_counts") or {}
    violations: dict[str, int] = detail.get("violations") or {}
    metrics = DataQualityMetricsInputDatasetFacet(
        rowCount=rows,
        columnMetrics={name: ColumnMetrics(nullCount=int(n)) for name, n in nulls.items()},
    )
    assertions = [
        Assertion(
            assertion="wharf_contract",
            success=not violations.get(c.name),
            column=c.name,
            severity="error",
            actual=str(violations.get(c.name, 0)),
            expected="0",
        )
        for c in spec.columns
        if c.name in nulls or c.name in violations
    ]
    for check in detail.get("checks") or []:
        arguments = check.get("arguments") or {}
        column = arguments.get("column")
        assertions.append(
            Assertion(
                assertion=str(check.get("expectation")),
                success=bool(check.get("success")),
                column=column if isinstance(column, str) else None,
                severity=check.get("severity"),
                actual=None
                if check.get("unexpected_count") is None
                else str(check["unexpected_count"]),
            )
        )
    facets: dict[str, Any] = {"dataQualityMetrics": metrics}
    if assertions:
        facets["dataQualityAssertions"] = DataQualityAssertionsDatasetFacet(assertions=assertions)
    return facets


def output_statistics(rows: int | None) -> dict[str, Any]:
    """``{"outputStatistics": ...}`` with ``rowCount``, or nothing when unknown."""
    if rows is None:
        return {}
    from openlineage.client.generated.output_statistics_output_dataset import (
        OutputStatisticsOutputDatasetFacet,
    )

    return {"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=int(rows))}


# --- per step --------------------------------------------------------------------------------


def step_lineage(step: str, dataset_id: str, task_instance: Any, state: str) -> Any:
    """The ``OperatorLineage`` of one step's attempt. ``state``: ``complete`` (with facets
    from the XCom return value and the audit row) or ``failed`` (names only: nothing was
    published). ``task_instance``: Airflow's running task instance."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    from wharf.orchestration.run_context import current_run
    from wharf.specfiles import get_spec

    spec = get_spec(dataset_id)
    run = current_run(dataset_id, task_instance.get_template_context())
    done = state == "complete"
    result = _result(task_instance) if done else {}
    if step == "extract":
        inputs, outputs = _extract(spec, run, result)
    elif step == "validate":
        inputs, outputs = _validate(spec, run, result, _audit_detail(run, step) if done else None)
    elif step == "load":
        inputs, outputs = _load(spec, run, result)
    elif step == "refresh":
        inputs, outputs = _refresh(spec, result)
    else:
        inputs, outputs = [], []
    return OperatorLineage(inputs=inputs, outputs=outputs)


def _result(task_instance: Any) -> dict[str, Any]:
    """The step's XCom return value (its counts and lake paths)."""
    value = task_instance.xcom_pull(task_ids=task_instance.task_id)
    return value if isinstance(value, dict) else {}


def _audit_detail(run: Any, step: str) -> dict[str, Any]:
    """The ``detail`` of this attempt's end row in ``wharf.audit`` (empty when it has none:
    an audit row that could not be written is logged by the step, not fatal)."""
    with connections.connect() as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT detail FROM wharf.audit WHERE dataset_id = %s AND run_id = %s
                   AND step = %s AND event = 'end' AND try_number IS NOT DISTINCT FROM %s
               ORDER BY id DESC LIMIT 1""",
            (run.dataset_id, run.run_id, step, run.try_number),
        )
        found = cur.fetchone()
    return dict(found[0]) if found and found[0] else {}


def _input(name: Name, facets: dict[str, Any] | None = None, input_facets: Any = None) -> Any:
    from openlineage.client.event_v2 import InputDataset

    return InputDataset(
        name.namespace, name.name, facets=facets or {}, inputFacets=input_facets or {}
    )


def _output(name: Name, facets: dict[str, Any] | None = None, output_facets: Any = None) -> Any:
    from openlineage.client.event_v2 import OutputDataset

    return OutputDataset(
        name.namespace, name.name, facets=facets or {}, outputFacets=output_facets or {}
    )


def _datasets_db() -> Endpoint:
    return connections.endpoint(settings.datasets_conn_id())


def _table(server: Endpoint, dataset_id: str) -> Name:
    schema, _, table = dataset_id.partition(".")
    return postgres_name(server, schema, table)


def _extract(spec: DatasetSpec, run: Any, result: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    source = spec.source
    conn_id = getattr(source, "conn_id", None)
    conn = (
        connections.endpoint(conn_id)
        if conn_id and isinstance(source, SqlSource | HttpSource)
        else None
    )
    landing = result.get("landing") or lake.uri(run.lake_key, "landing")
    return (
        [_input(n) for n in source_datasets(spec, conn)],
        [_output(lake_name(landing), output_facets=output_statistics(result.get("rows")))],
    )


def _validate(
    spec: DatasetSpec, run: Any, result: dict[str, Any], detail: dict[str, Any] | None
) -> tuple[list[Any], list[Any]]:
    landing = lake_name(lake.uri(run.lake_key, "landing"))
    curated = lake_name(result.get("curated") or lake.uri(run.lake_key, "curated"))
    inputs = [
        _input(
            landing,
            input_facets=None
            if detail is None
            else quality_facets(spec, _rows_read(result), detail),
        )
    ]
    outputs = [
        _output(curated, {"schema": schema_facet(spec)}, output_statistics(result.get("rows")))
    ]
    if spec.on_invalid == "quarantine":
        rejected = result.get("rejected") if result else None
        outputs.append(
            _output(
                lake_name(lake.uri(run.lake_key, "quarantine")), None, output_statistics(rejected)
            )
        )
    return inputs, outputs


def _rows_read(result: dict[str, Any]) -> int | None:
    """Rows validate read from the landing: those it kept and those it rejected."""
    if result.get("rows") is None:
        return None
    return int(result["rows"]) + int(result.get("rejected") or 0)


def _load(spec: DatasetSpec, run: Any, result: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    curated = lake_name(lake.uri(run.lake_key, "curated"))
    written = None
    if result:
        # Rows this load wrote: all of them for OVERWRITE, the new and changed ones else.
        written = (
            result.get("rows")
            if spec.metadata.update_behaviour == "OVERWRITE"
            else int(result.get("inserted") or 0) + int(result.get("updated") or 0)
        )
        if result.get("unchanged"):  # a reference file as loaded before: nothing written
            written = 0
    server = _datasets_db()
    outputs = [
        _output(
            _table(server, spec.dataset_id),
            {"schema": schema_facet(spec)},
            output_statistics(written),
        )
    ]
    if spec.metadata.kind == "reference":  # every version's rows, beside the table
        history = history_name(spec.metadata.dataset)
        outputs.append(_output(postgres_name(server, spec.metadata.domain, history)))
    return [_input(curated)], outputs


def _refresh(spec: DatasetSpec, result: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """A cut's own step (``refresh``): its input
    tables -> the cut, with its schema, its column lineage and, once done, its rows."""
    from wharf.publish import data_cuts
    from wharf.specfiles.sql_files import cut_sql

    if spec.metadata.kind != "data_cut":
        return [], []
    server = _datasets_db()
    facets = {"schema": schema_facet(spec)}
    try:
        facets["columnLineage"] = column_lineage_facet(cut_sql(spec), server)
    except (OSError, WharfError) as err:  # the SQL went or is refused since the refresh
        log.warning("%s: no column lineage: %s", spec.dataset_id, err)
    rows = result.get("rows") if result else None
    return (
        [_input(_table(server, needed)) for needed in data_cuts.inputs(spec)],
        [_output(_table(server, spec.dataset_id), facets, output_statistics(rows))],
    )
