"""``wharf check``: the contract, this machine's files and connections, the expectations
GX would build, and (``--rapid``) rAPId's own rules."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any

from wharf import environment, settings
from wharf.connections import USES, fit_for
from wharf.contract.dataset import DatasetSpec
from wharf.demo import connections as demo_connections
from wharf.specfiles import SpecError, SpecIssue, load_spec, spec_files

_LINK_OUT = (
    "a symlink out of the schemas folder: Wharf reads no YAML outside it (commit the file itself)"
)


def cmd_check(paths: list[str], rapid: bool = False) -> int:
    """Check dataset YAML: the contract, the file stage (source files resolved below the
    allowed roots, and present), GX check arguments and the Airflow connections named;
    with ``rapid``, rAPId's stricter date-format rule too.
    Errors exit 1; warnings (what cannot be checked here) are printed only."""
    from wharf.specfiles.reader import escaping_links

    files: list[Path] = []
    links: list[Path] = []
    for raw in paths or [str(settings.schemas_dir())]:
        path = Path(raw)
        files += spec_files(path) if path.is_dir() else [path]
        links += escaping_links(path) if path.is_dir() else []
    for link in links:
        print(SpecError([SpecIssue(link, 1, "", _LINK_OUT)]), file=sys.stderr)
    broken, warned = len(links), 0
    connections = _Connections()
    for file in files:
        try:
            spec = load_spec(file)
            if spec.metadata.kind == "data_cut":
                _check_cut_inputs(file, spec)
            _check_history_name(file, spec)
            check_files(file, spec)
            warnings = _check_source_file(file, spec)
            _check_expectations(file, spec)
            warnings += _check_connections(file, spec, connections)
            if rapid:
                _check_rapid(file, spec)
        except SpecError as err:
            broken += 1
            print(err, file=sys.stderr)
            continue
        warned += len(warnings)
        for warning in warnings:
            print(warning, file=sys.stderr)
    tail = f", {warned} warning(s)" if warned else ""
    checked = len(files) + len(links)
    print(f"wharf check: {checked} file(s), {broken} with errors{tail}", file=sys.stderr)
    return 1 if broken else 0


def _check_cut_inputs(file: Path, cut: DatasetSpec) -> None:
    """A data cut reads only datasets with a YAML under the schemas folder, never itself
    through other cuts, is at least as sensitive as every input and reads none with
    ``row_access``, each input read from its own YAML (whichever files this run checks)."""
    from wharf.specfiles import known_spec, spec_files
    from wharf.specfiles.estate import cut_issues, file_ids

    issues = cut_issues(file, cut, known_spec, file_ids(spec_files()))
    if issues:
        raise SpecError(issues)


def _check_history_name(file: Path, spec: DatasetSpec) -> None:
    """No dataset is named as a reference dataset's history table, or a keyed table's
    primary key, in its domain."""
    from wharf.specfiles import known_spec
    from wharf.specfiles.estate import history_clash_issues

    issues = history_clash_issues(file, spec, known_spec)
    if issues:
        raise SpecError(issues)


def check_files(file: Path, spec: DatasetSpec) -> None:
    """``wharf check``'s file stage: the resolved rule of a local file source (symlinks
    followed, each match of a glob) on this machine's files. Raises ``SpecError`` with the
    path's line. Not run when the DAG processor parses (a file may change after it anyway):
    the reader runs the same rule right before it opens each file."""
    from wharf.contract.file_source import FileSource
    from wharf.errors import UnsafeSpecError
    from wharf.extract import local_paths
    from wharf.specfiles.yaml_lines import load_with_lines

    source = spec.source
    if not isinstance(source, FileSource) or source.is_s3:
        return
    try:
        local_paths.checked_paths(source)
    except UnsafeSpecError as err:
        _, lines = load_with_lines(file)
        line = lines.get(("source", "path"), lines.get(("source",), 1))
        raise SpecError([SpecIssue(file, line, "source.path", str(err))]) from None


def _check_rapid(file: Path, spec: DatasetSpec) -> None:
    """``wharf check --rapid``: rAPId's stricter rules that Wharf itself relaxes, as errors
    (a date column's format: rAPId takes only %Y, %m, %d joined by '/' or '-')."""
    from wharf.contract.columns import rapid_date_format_problem
    from wharf.specfiles import SpecIssue
    from wharf.specfiles.yaml_lines import load_with_lines

    _, lines = load_with_lines(file)
    issues = []
    for index, column in enumerate(spec.columns):
        problem = (
            rapid_date_format_problem(column.format)
            if column.data_type == "date" and column.format
            else None
        )
        if problem is not None:
            line = lines.get(("columns", index, "format"), lines.get(("columns", index), 1))
            issues.append(SpecIssue(file, line, f"columns[{index}].format", problem))
    if issues:
        raise SpecError(issues)


def _source_line(file: Path, key: str) -> int:
    from wharf.specfiles.yaml_lines import load_with_lines

    _, lines = load_with_lines(file)
    return int(lines.get(("source", key), lines.get(("source",), 1)))


def _check_source_file(file: Path, spec: DatasetSpec) -> list[SpecIssue]:
    """A local file source's file (or a glob's first match) exists, once ``check_files``
    has held it below the allowed roots: a missing one is an error, naming the right path
    when the YAML wrote it relative to the project or the YAML's folder instead of
    ``include/reference/``. Below a ``WHARF_FILE_ROOTS`` root that is not on this machine
    (a production drop folder, in CI) it cannot be checked: a warning."""
    from wharf.contract.file_source import FileSource
    from wharf.extract import local_paths

    source = spec.source
    if not isinstance(source, FileSource) or source.is_s3:
        return []
    found = local_paths.resolved_paths(source)
    if found and (source.is_glob or found[0].exists()):
        return []
    path = local_paths.resolved_path(source)
    root = next((r for r in settings.file_roots() if path.is_relative_to(r)), None)
    line = _source_line(file, "path")
    if root is not None and root != settings.reference_dir() and not root.is_dir():
        message = (
            f"warning: {source.path!r} cannot be checked: its root {root} is not on this machine"
        )
        return [SpecIssue(file, line, "source.path", message)]
    if source.is_glob:
        message = f"{source.path!r} matches no file in {_shown(path.parent)}"
    else:
        message = f"no file {_shown(path)}"
        hint = _misplaced(file, source.path)
        if hint:
            message += f": {hint}"
    raise SpecError([SpecIssue(file, line, "source.path", message)])


def _shown(path: Path) -> str:
    """``path`` relative to the project when inside it (``include/reference/x.csv``)."""
    try:
        return str(path.relative_to(settings.project_home()))
    except ValueError:
        return str(path)


def _misplaced(file: Path, written: str) -> str:
    """Where a relative path the YAML wrote exists if read from the project folder, the
    working directory or the YAML's folder; the path to write instead."""
    if Path(written).is_absolute():
        return ""
    reference = settings.reference_dir().resolve()
    for base in (settings.project_home(), Path.cwd(), file.parent):
        found = (base / written).resolve()
        if found.is_file():
            if found.is_relative_to(reference):
                right = str(found.relative_to(reference))
                return f"a relative path is read below include/reference/; did you mean {right!r}?"
            return (
                f"{found} exists, but a relative path is read below include/reference/: "
                "move the file there, or write its absolute path below a WHARF_FILE_ROOTS "
                "folder"
            )
    return ""


def _conn_ids(spec: DatasetSpec) -> list[tuple[tuple[str, ...], str, str | None]]:
    """(YAML path of the field, connection id, its use in ``wharf.connections.USES`` or None)
    for each Airflow connection a dataset's run looks up. An ``s3://`` file source without
    ``conn_id`` uses ``aws_default`` only if defined (else boto3's own credentials)."""
    source = spec.source
    found: list[tuple[tuple[str, ...], str, str | None]] = []
    conn_id = getattr(source, "conn_id", None)
    if source is not None and conn_id:
        use = getattr(source, "broker", None) or source.type
        found.append((("source", "conn_id"), conn_id, use if use in USES else None))
    slack = spec.notifications.slack_webhook_conn_id if spec.notifications else None
    if slack:
        found.append((("notifications", "slack_webhook_conn_id"), slack, "slack"))
    return found


def _check_connections(file: Path, spec: DatasetSpec, connections: _Connections) -> list[SpecIssue]:
    """Each connection the YAML names is defined, and of a type its use takes: an error if
    not, when connections are visible here; a warning when none are (CI), since it cannot
    be checked."""
    from wharf.specfiles.yaml_lines import load_with_lines

    warnings: list[SpecIssue] = []
    issues: list[SpecIssue] = []
    lines = functools.cache(lambda: load_with_lines(file)[1])  # read again only to say where

    def line_of(path: tuple[str, ...]) -> int:
        return int(lines().get(path, lines().get(path[:1], 1)))

    for path, conn_id, use in _conn_ids(spec):
        field = ".".join(path)
        found = connections.lookup(conn_id)
        if found is not None:
            problem = _unfit(found, use)
            if problem:
                issues.append(SpecIssue(file, line_of(path), field, problem))
        elif connections.visible:
            issues.append(
                SpecIssue(
                    file,
                    line_of(path),
                    field,
                    f"no Airflow connection {conn_id!r} is defined (looked up in "
                    f"{connections.where}); define it, e.g. as "
                    f"AIRFLOW_CONN_{conn_id.upper()}, before the DAG runs",
                )
            )
        else:
            warnings.append(
                SpecIssue(
                    file,
                    line_of(path),
                    field,
                    f"warning: connection {conn_id!r} is not defined here and cannot be "
                    "checked: no Airflow connections are visible to wharf check (no "
                    "AIRFLOW_CONN_* variable, secrets backend or metadata database with "
                    "connections)",
                )
            )
    if issues:
        raise SpecError(issues)
    return warnings


def _unfit(conn: Any, use: str | None) -> str:
    """Why ``conn`` cannot serve ``use`` (``wharf.connections.fit_for``), or ""."""
    from wharf.errors import TerminalError

    if use is None or conn is True:
        return ""
    try:
        fit_for(conn, use)
    except TerminalError as err:
        return str(err)
    return ""


class _Connections:
    """The Airflow connections ``wharf check`` can see, found the way a task finds them.

    Connections are *visible* when any of these holds: an ``AIRFLOW_CONN_*`` variable other
    than Wharf's own demo connections (``wharf.demo.connections``, which ``wharf demo`` and
    ``wharf serve-demo`` define for their runs, so they count as defined), a secrets backend
    in Airflow's configuration, or an Airflow metadata database that exists, answers and
    holds at least one connection. Then a name is looked up with Airflow's own
    ``Connection.get_connection_from_secrets`` (its ``AirflowNotFoundException`` means
    undefined). When none is visible (a CI job with no Airflow), only the variables are
    read, so no database file is created, and an unknown name is a warning. Airflow is
    imported only when a YAML names a connection."""

    def __init__(self) -> None:
        self._ready = False
        self.visible = False
        self.where = "AIRFLOW_CONN_* variables"
        self._full_lookup = False

    def _prepare(self) -> None:
        own = {
            k
            for k in os.environ
            if k.startswith("AIRFLOW_CONN_") and k not in demo_connections.VARIABLES
        }
        environment.apply(start_database=False)  # Wharf's AIRFLOW_HOME
        from airflow.configuration import conf

        # A connection read from the metadata database warns about Airflow's Fernet key
        # (after importing Airflow, which configures logging): noise between our lines.
        logging.getLogger("airflow.models.crypto").setLevel(logging.ERROR)

        backend = conf.get("secrets", "backend", fallback="") or ""
        in_database = _metadata_connections(conf.get("database", "sql_alchemy_conn"))
        places = ["AIRFLOW_CONN_* variables"]
        if in_database is not None:
            places.append("the Airflow metadata database")
        if backend:
            places.append(f"the secrets backend {backend}")
        self.where = ", ".join(places[:-1]) + f" and {places[-1]}" if len(places) > 1 else places[0]
        self.visible = bool(own or backend or in_database)
        self._full_lookup = in_database is not None or bool(backend)
        self._ready = True

    def lookup(self, conn_id: str) -> Any:
        """The connection, True for one of Wharf's demo connections (defined for their
        runs, not here), None when it is not defined."""
        if conn_id in demo_connections.CONN_IDS:
            return True
        if not self._ready:
            self._prepare()
        if not self._full_lookup:
            from airflow.secrets.environment_variables import EnvironmentVariablesBackend

            return EnvironmentVariablesBackend().get_connection(conn_id)
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection

        try:
            return Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            return None


def _metadata_connections(url: str) -> int | None:
    """How many connections Airflow's metadata database at ``url`` holds; None when it does
    not exist (a SQLite file is never created here), does not answer within 5 s or has no
    ``connection`` table."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if not parsed.database or not Path(parsed.database).is_file():
                return None
            engine = sa.create_engine(url)
        else:
            engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM connection")).scalar_one())
        finally:
            engine.dispose()
    except Exception:  # unreachable, not migrated, a driver missing: not visible
        return None


def _check_expectations(file: Path, spec: DatasetSpec) -> None:
    """Each check's arguments are of the types GX accepts (the ``Check`` model has already
    held them to Wharf's allow-list; ``build`` holds them to it again). GX is imported only
    when a file has checks: it takes seconds."""
    if not spec.checks:
        return
    from wharf.errors import UnsafeSpecError
    from wharf.specfiles.yaml_lines import load_with_lines
    from wharf.validate.expectations import build

    _, lines = load_with_lines(file)
    issues = []
    for index, check in enumerate(spec.checks):
        try:
            build(check)
        except (ValueError, UnsafeSpecError) as err:
            line = lines.get(("checks", index), 1)
            issues.append(SpecIssue(file, line, f"checks[{index}]", str(err)))
    if issues:
        raise SpecError(issues)
