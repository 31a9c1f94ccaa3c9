"""The SQL guard: exactly one read-only SELECT passes; everything else is refused with its
reason, in each dialect Wharf reads (MySQL/MariaDB, PostgreSQL, SQLite)."""

from __future__ import annotations

import pytest

from wharf.contract.sql_rules import CHECK_DIALECTS, check_query, tables_read
from wharf.errors import UnsafeSpecError

READS = [
    "SELECT * FROM orders ORDER BY id",
    "SELECT id, happened_at FROM events\nWHERE happened_at >= :data_interval_start "
    "AND happened_at < :data_interval_end",
    "WITH recent AS (SELECT * FROM orders WHERE id > 10) SELECT count(*) FROM recent",
    "SELECT a FROM t UNION ALL SELECT b FROM u",
    "(SELECT a FROM t)",
    "SELECT upper(name), coalesce(x, 0), pg_typeof(x) FROM t;",
    "SELECT clock_timestamp(), percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t",
    "-- a comment\nSELECT 1 AS one",
]

# (query, dialects it is tried in, words the refusal must hold)
REFUSED = [
    ("DROP TABLE orders", CHECK_DIALECTS, "found DROP"),
    ("DELETE FROM orders", CHECK_DIALECTS, "found DELETE"),
    ("DELETE FROM orders RETURNING *", CHECK_DIALECTS, "found DELETE"),
    ("UPDATE orders SET id = 1", CHECK_DIALECTS, "found UPDATE"),
    ("INSERT INTO orders VALUES (1)", CHECK_DIALECTS, "INTO is not allowed"),
    ("TRUNCATE orders", CHECK_DIALECTS, "one SELECT"),
    ("SELECT 1; DROP TABLE orders", CHECK_DIALECTS, "found 2 statements"),
    ("SELECT 1; SELECT 2", CHECK_DIALECTS, "found 2 statements"),
    ("", CHECK_DIALECTS, "found 0 statements"),
    ("SELECT * FROM orders INTO OUTFILE '/tmp/x'", ("mysql",), "INTO is not allowed"),
    ("SELECT * FROM orders INTO DUMPFILE '/tmp/x'", ("mysql",), "INTO is not allowed"),
    ("SELECT * INTO copy_of_orders FROM orders", CHECK_DIALECTS, "INTO is not allowed"),
    ("SELECT * FROM orders FOR UPDATE", CHECK_DIALECTS, "locking clause"),
    ("SELECT * FROM orders FOR SHARE", ("postgres",), "locking clause"),
    ("SELECT * FROM orders LOCK IN SHARE MODE", ("mysql",), "locking clause"),
    (
        "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
        ("postgres",),
        "holds a DELETE",
    ),
    (
        "WITH n AS (INSERT INTO orders VALUES (1) RETURNING id) SELECT * FROM n",
        ("postgres",),
        "INTO is not allowed",
    ),
    (
        "WITH u AS (UPDATE orders SET id = 2 RETURNING id) SELECT * FROM u",
        ("postgres",),
        "holds a UPDATE",
    ),
    ("COPY orders TO PROGRAM 'id'", ("postgres",), "found COPY"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", ("postgres",), "found COPY"),
    ("SELECT pg_read_file('/etc/passwd')", CHECK_DIALECTS, "pg_read_file()"),
    ("SELECT pg_catalog.pg_read_binary_file('/etc/passwd')", ("postgres",), "pg_read_binary_file"),
    ("SELECT \"pg_ls_dir\"('.')", ("postgres",), "pg_ls_dir()"),
    ("SELECT lo_import('/etc/passwd')", CHECK_DIALECTS, "lo_import()"),
    ("SELECT lo_export(1, '/tmp/x')", CHECK_DIALECTS, "lo_export()"),
    ("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)", ("postgres",), "dblink()"),
    ("SELECT pg_sleep(10)", CHECK_DIALECTS, "pg_sleep()"),
    ("SELECT SLEEP(10)", ("mysql",), "sleep()"),
    ("SELECT BENCHMARK(100000000, md5('x'))", ("mysql",), "benchmark()"),
    ("SELECT LOAD_FILE('/etc/passwd')", ("mysql",), "load_file()"),
    ("SELECT sys_exec('id')", ("mysql",), "sys_exec()"),
    ("SELECT pg_terminate_backend(1)", CHECK_DIALECTS, "pg_terminate_backend()"),
    ("SELECT set_config('search_path', 'x', false)", CHECK_DIALECTS, "set_config()"),
    ("SELECT nextval('s'), 1", CHECK_DIALECTS, "nextval()"),
    ("SELECT setval('s', 1)", CHECK_DIALECTS, "setval()"),
    ("SELECT pg_advisory_lock(1)", CHECK_DIALECTS, "pg_advisory_lock()"),
    ("SELECT query_to_xml('DELETE FROM orders', true, true, '')", CHECK_DIALECTS, "query_to_xml"),
    ("SELECT GET_LOCK('x', 10)", ("mysql",), "get_lock()"),
    ("SELECT load_extension('/tmp/evil')", ("sqlite",), "load_extension()"),
    ("SELECT rolname, rolpassword FROM pg_authid", CHECK_DIALECTS, "pg_authid is a database"),
    ("SELECT * FROM mysql.user", ("mysql",), "mysql.user is a database catalog"),
    ("SELECT * FROM sqlite_master", ("sqlite",), "sqlite_master is a database catalog"),
    ("SELECT 1 FROM (", CHECK_DIALECTS, "cannot be parsed"),
    ("EXPLAIN ANALYZE DELETE FROM orders", ("postgres",), "unparsed command"),
    ("SET search_path = evil", CHECK_DIALECTS, "found SET"),
    ("VALUES (1)", ("postgres",), "found VALUES"),
    ("SELECT " + "(" * 200 + "1" + ")" * 200, CHECK_DIALECTS, "nested too deeply"),
    ("SELECT " + " + ".join(["a"] * 30_000), CHECK_DIALECTS, "longer than 100,000 characters"),
]


@pytest.mark.parametrize("query", READS)
@pytest.mark.parametrize("dialect", ["postgres", CHECK_DIALECTS])
def test_a_read_passes(query: str, dialect: str | tuple[str, ...]) -> None:
    check_query(query, dialect)


@pytest.mark.parametrize(("query", "dialects", "reason"), REFUSED)
def test_anything_else_is_refused_with_its_reason(
    query: str, dialects: tuple[str, ...], reason: str
) -> None:
    for dialect in dialects:
        with pytest.raises(UnsafeSpecError, match=None) as refused:
            check_query(query, dialect)
        assert reason in str(refused.value), (dialect, str(refused.value))
    with pytest.raises(UnsafeSpecError):  # and by wharf check's generic parsing
        check_query(query, CHECK_DIALECTS)


def test_a_refusal_never_quotes_the_sql() -> None:
    with pytest.raises(UnsafeSpecError) as refused:
        check_query("SELECT 'canary-5f3a' FROM (", "postgres")
    assert "canary-5f3a" not in str(refused.value)
    assert "line 1" in str(refused.value)


def test_tables_read_skips_its_own_with_queries_and_table_functions() -> None:
    text = (
        "WITH m AS (SELECT * FROM transport.flights) "
        "SELECT * FROM m JOIN transport.airlines a USING (carrier), generate_series(1, 2) g"
    )
    assert tables_read(text, "postgres") == [("transport", "airlines"), ("transport", "flights")]


def test_a_with_query_names_no_table_outside_its_own_scope() -> None:
    """A WITH query's name hides a table only where the WITH is seen: ``s`` after the
    subquery that defines it is a table of that name (an unqualified one, which a data cut
    may not read), not the WITH query."""
    text = "SELECT a FROM (WITH s AS (SELECT 1 AS a) SELECT a FROM s) q, s"
    assert tables_read(text, "postgres") == [("", "s")]
    recursive = (
        "WITH RECURSIVE r AS (SELECT 1 AS a UNION ALL SELECT a + 1 FROM r WHERE a < 3) "
        "SELECT * FROM r JOIN (WITH t AS (SELECT * FROM x.y) SELECT * FROM t) z USING (a)"
    )
    assert tables_read(recursive, "postgres") == [("x", "y")]
