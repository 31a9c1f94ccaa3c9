"""OpenLineage dataset names of each source type, the lake and the datasets database, as
OpenLineage's naming spec writes them (https://openlineage.io/docs/spec/naming); and the
local transport default, which a user's own setting always wins over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wharf import environment, settings
from wharf.connections import Endpoint
from wharf.contract.file_source import FileSource
from wharf.contract.sheets_source import GoogleSheetsSource
from wharf.orchestration.openlineage import (
    Name,
    column_lineage,
    file_name,
    http_name,
    lake_name,
    postgres_name,
    query_tables,
    sheets_name,
    sql_table_name,
)


def endpoint(scheme: str, host: str, port: int | None, database: str = "") -> Endpoint:
    return Endpoint(conn_type=scheme, scheme=scheme, host=host, port=port, database=database)


def test_postgres_is_host_port_and_database_schema_table() -> None:
    server = endpoint("postgresql", "DB.example.org", 6432, "analytics")
    assert postgres_name(server, "shop", "orders") == Name(
        "postgres://db.example.org:6432", "analytics.shop.orders"
    )
    # No port in the connection: PostgreSQL's own; a Unix socket is this machine.
    assert postgres_name(endpoint("postgresql", "/srv/pg", None, "wharf"), "a", "b") == Name(
        "postgres://localhost:5432", "wharf.a.b"
    )


def test_a_sql_sources_table_in_its_databases_naming() -> None:
    mysql = endpoint("mysql", "10.0.0.5", None, "shop")
    assert sql_table_name(mysql, "orders") == Name("mysql://10.0.0.5:3306", "shop.orders")
    # In MySQL a schema is a database.
    assert sql_table_name(mysql, "crm.customers") == Name("mysql://10.0.0.5:3306", "crm.customers")
    pg = endpoint("postgresql", "pg", 5433, "erp")
    assert sql_table_name(pg, "orders") == Name("postgres://pg:5433", "erp.public.orders")
    assert sql_table_name(pg, "sales.orders") == Name("postgres://pg:5433", "erp.sales.orders")
    assert sql_table_name(endpoint("sqlite", "", None, "/data/x.db"), "orders") == Name(
        "sqlite", "orders"
    )
    assert sql_table_name(endpoint("mssql", "sql1", 1433, "dw"), "dbo.t") == Name(
        "mssql://sql1:1433", "dw.dbo.t"
    )


def test_a_querys_tables_are_found_by_parsing_it() -> None:
    query = "SELECT o.id, c.name FROM orders o JOIN crm.customers c ON c.id = o.customer_id"
    assert sorted(query_tables(query, "mysql")) == ["crm.customers", "orders"]


def test_http_is_the_base_urls_origin_and_the_path_never_its_credentials() -> None:
    conn = endpoint("http", "https://user:secret@API.example.org/v2", None)
    assert http_name(conn, "/orders") == Name("https://api.example.org", "/v2/orders")
    # host and scheme in their own fields, as an Airflow HTTP connection may keep them.
    conn = Endpoint(conn_type="http", scheme="http", host="127.0.0.1", port=8080, database="http")
    assert http_name(conn, "v1/items") == Name("http://127.0.0.1:8080", "/v1/items")
    conn = endpoint("http", "https://api.example.org:443", None)
    assert http_name(conn, "") == Name("https://api.example.org", "/")


def test_files_local_and_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    local = FileSource(type="file", path="countries.csv")
    assert file_name(local) == Name("file", str(settings.reference_dir() / "countries.csv"))
    glob = FileSource(type="file", path="drops/2026-*/part-*.csv")
    assert file_name(glob) == Name("file", str(settings.reference_dir() / "drops"))
    monkeypatch.setenv("WHARF_S3_BUCKETS", "landing-bucket")
    s3 = FileSource(type="file", path="s3://landing-bucket/raw/orders.parquet", format="parquet")
    assert file_name(s3) == Name("s3://landing-bucket", "raw/orders.parquet")
    s3_glob = FileSource(type="file", path="s3://landing-bucket/raw/2026-*/x.csv")
    assert file_name(s3_glob) == Name("s3://landing-bucket", "raw")


def test_google_sheets_has_a_namespace_of_its_own() -> None:
    sheet = GoogleSheetsSource(
        type="google_sheets", conn_id="sheets", spreadsheet_id="1AbC_d-9", sheet="Q1 budget"
    )
    assert sheets_name(sheet) == Name("gsheets", "1AbC_d-9/Q1 budget")


def test_lake_folders() -> None:
    assert lake_name("file:///var/lake/landing/shop/orders/run_id=x") == Name(
        "file", "/var/lake/landing/shop/orders/run_id=x"
    )
    assert lake_name("s3://lake-bucket/prefix/curated/shop/orders") == Name(
        "s3://lake-bucket", "prefix/curated/shop/orders"
    )


def test_a_cuts_column_lineage_from_its_sql() -> None:
    server = endpoint("postgresql", "pg", 5432, "wharf")
    lineage = column_lineage(
        "SELECT o.id, c.name AS customer, o.amount + o.tax AS gross "
        "FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id",
        server,
    )
    orders = Name("postgres://pg:5432", "wharf.shop.orders")
    customers = Name("postgres://pg:5432", "wharf.shop.customers")
    assert lineage["id"] == [orders, "id"]
    assert lineage["customer"] == [customers, "name"]
    pairs = lineage["gross"]
    assert sorted(zip(pairs[1::2], pairs[::2], strict=True)) == [
        ("amount", orders),
        ("tax", orders),
    ]


@pytest.fixture
def no_openlineage_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [*environment._OPENLINEAGE_SETTINGS, "OPENLINEAGE__TRANSPORT__TYPE"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_locally_events_go_to_a_file_under_the_state_dir(no_openlineage_settings: None) -> None:
    transport = json.loads(environment.openlineage_defaults()["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {
        "type": "file",
        "log_file_path": str(settings.state_dir() / "openlineage" / "events.jsonl"),
        "append": True,
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("AIRFLOW__OPENLINEAGE__TRANSPORT", '{"type": "console"}'),
        ("OPENLINEAGE_URL", "http://marquez:5000"),
        ("OPENLINEAGE__TRANSPORT__TYPE", "console"),
        ("AIRFLOW__OPENLINEAGE__DISABLED", "true"),
    ],
)
def test_a_users_transport_or_off_switch_wins(
    no_openlineage_settings: None, monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(key, value)
    assert "AIRFLOW__OPENLINEAGE__TRANSPORT" not in environment.openlineage_defaults()


def test_an_openlineage_yml_in_the_working_folder_is_used(
    no_openlineage_settings: None, tmp_path: Path
) -> None:
    (tmp_path / "openlineage.yml").write_text("transport:\n  type: console\n")
    defaults = environment.openlineage_defaults()
    assert "AIRFLOW__OPENLINEAGE__TRANSPORT" not in defaults
    assert defaults["AIRFLOW__OPENLINEAGE__CONFIG_PATH"] == str(tmp_path / "openlineage.yml")
