"""``wharf`` command line: check YAML, run datasets once, run the demo.

wharf check [PATH ...]      check dataset YAML; prints file:line: field: problem; exit 1
wharf schema generate       draft a dataset YAML from a sample file or a source table
wharf schema json           print the dataset YAML's JSON Schema, for editors (--write)
wharf schema docs           print the README's field reference table (--write)
wharf run [DATASET ...]     run each dataset's DAG once (all when none given), in order,
                            for the schedule's latest complete interval (--logical-date)
wharf demo [--source-only]  write the example source database, start the local API and
                            Sheets servers, then ``run`` everything (--source-only: only
                            write the source database)
wharf serve-demo [-- CMD ...]
                            serve the demo's API and Sheets servers on free ports while
                            CMD runs with their connections (no CMD: print them, serve
                            until Ctrl-C)
wharf db upgrade            apply the pending migrations of Wharf's own tables to the
                            datasets database and set up its roles (once per deploy, as
                            an admin)
wharf access plan | apply   print (plan) or make (apply) the roles and grants the YAMLs
                            imply: reader roles by sensitivity, one role per data cut
wharf catalogue [DATASET] [--json]
                            every dataset: sensitivity, reader roles, whether the grants
                            match, last run, rows; with DATASET its catalogue entry (last
                            updated, hashes, source modified time) and change log
wharf stack [--workers N]   Airflow on CeleryExecutor (API server, scheduler, DAG processor,
                            triggerer, Celery workers; Redis broker, PostgreSQL metadata)
                            as one unit, with health checks, until Ctrl-C
wharf env                   print the environment as shell exports (starts the database)
wharf airflow-info          print the Airflow UI's URL, who logs in and where the password is
wharf reference diff DATASET
                            what the working copy of a reference dataset's file and YAML
                            would change: rows and columns, the version it would become;
                            exit 0 no change, 1 changes, 2 error
wharf watermark reset DATASET
                            delete an incremental dataset's watermark: its next run reads
                            the source from scratch
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wharf import environment, settings
from wharf.cli.access import cmd_access
from wharf.cli.airflow_info import cmd_airflow_info
from wharf.cli.catalogue import cmd_catalogue
from wharf.cli.check import cmd_check
from wharf.cli.db import cmd_db_upgrade
from wharf.cli.demo import cmd_demo, cmd_serve_demo
from wharf.cli.generate import cmd_schema_generate
from wharf.cli.reference import cmd_reference_diff
from wharf.cli.run import cmd_run, cmd_run_dag
from wharf.cli.schema_docs import cmd_schema_docs, cmd_schema_json
from wharf.cli.stack import EXECUTORS, Stack, cmd_stack
from wharf.cli.watermark import cmd_watermark_reset
from wharf.demo import connections as demo_connections


def cmd_env() -> int:
    """Print Airflow's settings, the datasets database's connection and the demo's: its
    source file once written, and its servers' only when they are running, i.e. when this
    runs under ``wharf serve-demo -- ...``, which sets them."""
    environment.apply()
    _define_demo_source()
    keys = [
        *environment.airflow_defaults(),
        f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}",
        f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}",
        *(key for key in demo_connections.VARIABLES if key in os.environ),
    ]
    for key in keys:
        if key in os.environ:  # the admin's connection is Wharf's to define only with its own
            print(f"export {key}='{os.environ[key]}'")
    return 0


def _define_demo_source() -> None:
    """Define ``flights_source`` (a file, so valid while no server runs) unless it is set."""
    for key, value in demo_connections.source_connections().items():
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wharf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check dataset YAML files")
    check.add_argument("paths", nargs="*", help="files or folders (default: include/schemas)")
    check.add_argument(
        "--rapid", action="store_true", help="also report rAPId's stricter date-format rule"
    )
    schema = sub.add_parser("schema", help="dataset YAML tools")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    gen = schema_sub.add_parser(
        "generate", help="draft a dataset YAML from a sample file (CSV, Parquet, xlsx) or table"
    )
    gen.add_argument("sample", nargs="?", help="a CSV, Parquet or xlsx file")
    gen.add_argument("--conn-id", help="an Airflow connection to read --table from instead")
    gen.add_argument("--table", help="'table' or 'schema.table' behind --conn-id")
    gen.add_argument("--domain", required=True)
    gen.add_argument("--dataset", required=True)
    gen.add_argument("--rows", type=int, default=100_000, help="sample size (default 100,000)")
    gen.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    gen.add_argument(
        "--write", action="store_true", help="write include/schemas/<domain>/<dataset>.yaml"
    )
    schema_json = schema_sub.add_parser("json", help="print the dataset YAML's JSON Schema")
    schema_json.add_argument(
        "--write", action="store_true", help="write include/schemas/dataset.schema.json"
    )
    schema_docs = schema_sub.add_parser(
        "docs", help="print the README's field reference (a Markdown table)"
    )
    schema_docs.add_argument(
        "--write", action="store_true", help="rewrite the table in README.md in place"
    )
    run = sub.add_parser("run", help="run datasets once, print rows extracted/loaded")
    run.add_argument("datasets", nargs="*", help="dataset ids such as transport.flights")
    run.add_argument(
        "--logical-date",
        type=_logical_date,
        help="the run's logical date, YYYY-MM-DD or an ISO time (UTC unless an offset is "
        "given); default: the schedule's latest complete interval (no schedule: today 00:00)",
    )
    demo = sub.add_parser("demo", help="seed the example source and run every dataset")
    demo.add_argument(
        "--source-only", action="store_true", help="only write the example source database"
    )
    serve = sub.add_parser(
        "serve-demo", help="serve the demo's local API and Sheets servers while CMD runs"
    )
    serve.add_argument(
        "cmd", nargs=argparse.REMAINDER, help="-- a command to run with the demo's connections"
    )
    db = sub.add_parser("db", help="the datasets database's Wharf tables")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply pending migrations of Wharf's own tables")
    access = sub.add_parser("access", help="roles and grants by sensitivity")
    access_sub = access.add_subparsers(dest="access_command", required=True)
    access_sub.add_parser("plan", help="print what apply would change")
    access_sub.add_parser("apply", help="create roles, hand over objects, reconcile grants")
    catalogue = sub.add_parser(
        "catalogue", help="datasets with sensitivity, readers, last run; or one's change log"
    )
    catalogue.add_argument(
        "dataset", nargs="?", help="one dataset id: its catalogue entry and change log"
    )
    catalogue.add_argument("--json", action="store_true", help="print JSON (keys: README)")
    _add_stack(sub)
    sub.add_parser("env", help="print shell exports for Airflow and the datasets database")
    sub.add_parser(
        "airflow-info", help="print the Airflow UI's URL, its users and the password file"
    )
    _add_reference(sub)
    watermark = sub.add_parser("watermark", help="incremental datasets' watermarks")
    watermark_sub = watermark.add_subparsers(dest="watermark_command", required=True)
    reset = watermark_sub.add_parser(
        "reset", help="delete a dataset's watermark: its next run reads from scratch"
    )
    reset.add_argument("dataset", help="a dataset id such as transport.departures")
    run_dag = sub.add_parser("run-dag", help=argparse.SUPPRESS)
    run_dag.add_argument("dag_id")
    run_dag.add_argument("--logical-date", type=_logical_date)
    run_dag.add_argument("--events-fd", type=int)
    args = parser.parse_args(argv)
    return _COMMANDS[args.command](args)


def _add_stack(sub: Any) -> None:
    """``wharf stack [--workers N] [--port P] [--load-slots N] [--folder F]``."""
    stack = sub.add_parser(
        "stack", help="Airflow on CeleryExecutor with workers, as one unit, until Ctrl-C"
    )
    stack.add_argument("--workers", type=int, default=1, help="Celery workers (default 1)")
    stack.add_argument("--port", type=int, default=8080, help="the UI's port (default 8080)")
    stack.add_argument(
        "--load-slots", type=int, default=2, help="load steps at once (pool wharf_loads)"
    )
    stack.add_argument("--folder", type=Path, help="logs and secrets (default .wharf/stack)")
    stack.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        default="celery",
        help="celery (default: Redis broker, Celery workers) or local (the scheduler runs tasks)",
    )


def _add_reference(sub: Any) -> None:
    """``wharf reference diff DATASET``."""
    ref = sub.add_parser("reference", help="reference datasets' versions")
    ref_sub = ref.add_subparsers(dest="reference_command", required=True)
    ref_diff = ref_sub.add_parser(
        "diff", help="what the working copy would change against the published version"
    )
    ref_diff.add_argument("dataset", help="a dataset id such as reference.countries")


def _schema(args: argparse.Namespace) -> int:
    if args.schema_command == "json":
        return cmd_schema_json(args.write)
    if args.schema_command == "docs":
        return cmd_schema_docs(args.write)
    return cmd_schema_generate(args)


def _run(args: argparse.Namespace) -> int:
    _define_demo_source()
    return cmd_run(args.datasets, args.logical_date)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": lambda args: cmd_check(args.paths, rapid=args.rapid),
    "schema": _schema,
    "run": _run,
    "demo": lambda args: cmd_demo(args.source_only),
    "db": lambda args: cmd_db_upgrade(),
    "access": lambda args: cmd_access(args.access_command == "apply"),
    "catalogue": lambda args: cmd_catalogue(args.dataset, args.json),
    "env": lambda args: cmd_env(),
    "stack": lambda args: cmd_stack(
        Stack(
            args.folder or settings.state_dir() / "stack",
            args.port,
            args.workers,
            args.load_slots,
            args.executor,
        )
    ),
    "airflow-info": lambda args: cmd_airflow_info(),
    "serve-demo": lambda args: cmd_serve_demo(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd),
    "watermark": lambda args: cmd_watermark_reset(args.dataset),
    "reference": lambda args: cmd_reference_diff(args.dataset),
    "run-dag": lambda args: cmd_run_dag(args.dag_id, args.logical_date, args.events_fd),
}


def _logical_date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
