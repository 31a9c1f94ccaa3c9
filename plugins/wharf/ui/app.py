"""The Wharf pages: a FastAPI app the plugin mounts at ``/wharf`` in Airflow's API server.

Every route depends on Airflow's own auth (``requires_access_dag``: the JWT of the UI's
session cookie or an ``Authorization: Bearer`` token): an anonymous request gets 401, a user
who may not read the dataset's DAG 403. The lists hold only the DAGs the user may read
(the auth manager's authorized DAG ids). A dataset is named by its DAG id and found among
the valid YAMLs, never opened by a path from the request; a report is found in the audit by
(dataset, run id) and read through the lake.

HTML pages: ``/datasets``, ``/datasets/{dag_id}``, ``/datasets/{dag_id}/runs/{run_id}/report``
and ``.../quarantine``; the same data as JSON under ``/api/``. A dataset's path is
``wharf.orchestration.alerts.DATASET_PAGE``, the page its alerts link to. Freshness is judged
at each request, as of then, by the rule the ``wharf.freshness`` check alerts on
(``views.dataset_rows``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from wharf import connections, lake, settings
from wharf.contract.dataset import DatasetSpec
from wharf.errors import TerminalError
from wharf.ui import pages, queries, views

app = FastAPI(title="Wharf", description="Wharf's operator pages and their JSON.")

ReadDag = Depends(requires_access_dag("GET"))  # the path's {dag_id}, or any DAG for lists
# A report is the validate step's own HTML (values escaped when written): no script runs.
_REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def readable_dag_ids(user: GetUserDep) -> set[str]:
    """The DAG ids the user may read (the auth manager's ``get_authorized_dag_ids``)."""
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


Readable = Annotated[set[str], Depends(readable_dag_ids)]
# A dataset's routes, from ``alerts.DATASET_PAGE`` below the mount point; the path names the
# dataset ``{dag_id}``, which ``requires_access_dag`` checks (a dataset's DAG id is its id).
DATASET = views.DATASET_ROUTE.format(dataset_id="{dag_id}")
RUN = DATASET + "/runs/{run_id}"


def _base(request: Request) -> str:
    """The path the app is mounted at (``/wharf``, below Airflow's base URL's path)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _specs() -> list[DatasetSpec]:
    from wharf.specfiles import load_specs

    return load_specs()[0]


def _spec(dag_id: str) -> DatasetSpec:
    """The valid YAML's spec of the dataset whose DAG is ``dag_id``; 404 when none."""
    for spec in _specs():
        if spec.dag_id == dag_id:
            return spec
    raise HTTPException(404, f"no dataset {dag_id!r}: no valid YAML defines it")


def _rows(base: str, readable: set[str]) -> list[views.DatasetRow]:
    specs = _specs()
    with connections.connect() as conn:
        rows = views.dataset_rows(conn, specs, datetime.now(UTC), base)
    return [r for r in rows if r.dataset_id in readable]


def _datasets(
    request: Request,
    readable: set[str],
    domain: str | None,
    sensitivity: str | None,
    status: str | None,
) -> tuple[list[views.DatasetRow], list[str]]:
    rows = _rows(_base(request), readable)
    domains = sorted({r.domain for r in rows})
    return [r for r in rows if views.matches(r, domain, sensitivity, status)], domains


Filter = Annotated[str | None, Query(max_length=100)]


@app.get("/api/datasets", dependencies=[ReadDag])
def datasets_json(
    request: Request,
    readable: Readable,
    domain: Filter = None,
    sensitivity: Filter = None,
    status: Filter = None,
) -> list[views.DatasetRow]:
    """One row per dataset the user may read, filtered by domain, sensitivity and status
    (``success``, ``failed``, ``never``, ``stale``, ``fresh``, ``manual``)."""
    return _datasets(request, readable, domain, sensitivity, status)[0]


@app.get("/datasets", dependencies=[ReadDag], response_class=HTMLResponse)
def datasets_html(
    request: Request,
    readable: Readable,
    domain: Filter = None,
    sensitivity: Filter = None,
    status: Filter = None,
) -> str:
    """The Datasets page (``datasets_json`` as HTML, with the filter form)."""
    rows, domains = _datasets(request, readable, domain, sensitivity, status)
    filters = {"domain": domain, "sensitivity": sensitivity, "status": status}
    return pages.datasets(rows, domains, filters)


def _page(request: Request, dag_id: str) -> views.DatasetPage:
    from wharf.publish import data_cuts

    spec, base = _spec(dag_id), _base(request)
    specs = _specs()
    try:
        downstream = [c.dataset_id for c in data_cuts.dependents(spec.dataset_id, specs)]
    except Exception:  # a cycle among the cuts: `wharf check` names it
        downstream = []
    with connections.connect() as conn:
        row = next(
            r
            for r in views.dataset_rows(conn, specs, datetime.now(UTC), base)
            if r.dataset_id == spec.dataset_id
        )
        return views.dataset_page(conn, spec, row, _yaml_text(spec), downstream, base)


def _yaml_text(spec: DatasetSpec) -> str:
    """The dataset's YAML as it is now, found from its validated domain and name."""
    folder = settings.schemas_dir() / spec.metadata.domain
    for suffix in (".yaml", ".yml"):
        file = folder / f"{spec.metadata.dataset}{suffix}"
        if file.is_file():
            return file.read_text(encoding="utf-8", errors="replace")
    return ""


@app.get(f"/api{DATASET}", dependencies=[ReadDag])
def dataset_json(request: Request, dag_id: str) -> views.DatasetPage:
    """One dataset: its row, YAML, columns, source and connection, recent runs, schema
    history and lineage. 404 when no valid YAML defines it."""
    return _page(request, dag_id)


@app.get(DATASET, dependencies=[ReadDag], response_class=HTMLResponse)
def dataset_html(request: Request, dag_id: str) -> str:
    """The page of one dataset (``dataset_json`` as HTML)."""
    return pages.dataset(_page(request, dag_id), f"{_base(request)}/datasets")


@app.get(f"{RUN}/report", dependencies=[ReadDag])
def report(dag_id: str, run_id: str) -> HTMLResponse:
    """The validation report of the run: its address is found in the audit by (dataset, run
    id) and must be that run's report in the domain's lake; read through the lake (local or
    ``s3://``). 404 when the run wrote none or it is gone."""
    spec = _spec(dag_id)
    with connections.connect() as conn:
        address = queries.report_uri(conn, spec.dataset_id, run_id)
    if address is None:
        raise HTTPException(404, f"{spec.dataset_id}: run {run_id!r} has no validation report")
    try:
        key, name = lake.file_key(spec.dataset_id, run_id, "reports", address)
        text = lake.read_text(key, "reports", name)
    except FileNotFoundError:
        raise HTTPException(
            404, f"{spec.dataset_id}: the report of run {run_id!r} is gone"
        ) from None
    except TerminalError as err:
        raise HTTPException(404, str(err)) from None
    return HTMLResponse(text, headers={"Content-Security-Policy": _REPORT_POLICY})


def _quarantine(dag_id: str, run_id: str) -> views.QuarantineSample:
    spec = _spec(dag_id)
    with connections.connect() as conn:
        if not queries.run_exists(conn, spec.dataset_id, run_id):
            raise HTTPException(404, f"{spec.dataset_id}: no run {run_id!r}")
        total, rows = queries.quarantine(conn, spec.dataset_id, run_id)
    return views.QuarantineSample(dataset_id=spec.dataset_id, run_id=run_id, total=total, rows=rows)


@app.get(f"/api{RUN}/quarantine", dependencies=[ReadDag])
def quarantine_json(dag_id: str, run_id: str) -> views.QuarantineSample:
    """The first rows the run quarantined, with their reasons (only to users who may read
    the dataset's DAG, whatever its sensitivity). 404 for a run the audit does not know."""
    return _quarantine(dag_id, run_id)


@app.get(f"{RUN}/quarantine", dependencies=[ReadDag], response_class=HTMLResponse)
def quarantine_html(request: Request, dag_id: str, run_id: str) -> str:
    """``quarantine_json`` as HTML."""
    sample = _quarantine(dag_id, run_id)
    return pages.quarantine(sample, views.dataset_url(_base(request), sample.dataset_id))
