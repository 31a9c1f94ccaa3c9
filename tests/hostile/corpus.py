"""A corpus of hostile dataset YAML (issue #10): each case is a file a YAML author could
commit, and the exact ``line: field: message`` that ``wharf check`` must answer.

Every case is checked three ways (tests/unit/test_hostile_yaml.py, tests/dags/test_integrity.py): ``load_spec``
refuses it with that message, ``wharf check`` exits 1 naming it without a traceback, and the
dags folder with every case in it still loads every other DAG.
"""

from __future__ import annotations

from wharf import settings

GOOD = """\
metadata:
  domain: shop
  dataset: orders
  description: Orders.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
source:
  type: sql
  conn_id: shop_db
  table: orders
columns:
  - {name: order_id, data_type: integer, allow_null: false}
  - {name: placed_at, data_type: timestamp}
"""


def edit(old: str, new: str) -> bytes:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1).encode()


_MANY_COLUMNS = "\n".join(f"  - {{name: c{i}, data_type: integer}}" for i in range(1_600))

FILE_GOOD = GOOD.replace(
    "source:\n  type: sql\n  conn_id: shop_db\n  table: orders\n",
    "source:\n  type: file\n  path: orders.csv\n",
)


# Each passed the parser, then every run's compile recursed too deep (or, for the last,
# yielded 487,635 values of one 422-byte record).
_DEEP_PATHS = {
    "steps": "$" + ".a" * 100,
    "where": "a" + " where a" * 100,
    "descents": "$..*..*..*..*",
}


def file_edit(extra: str) -> bytes:
    return FILE_GOOD.replace("  path: orders.csv\n", f"  path: orders.csv\n  {extra}\n").encode()


# name -> (file bytes, "line: field: message"); the file is shop/orders.yaml unless the name
# says otherwise (domain/dataset in CASE_PATHS).
CASES: dict[str, tuple[bytes, str]] = {
    # --- the reader: encoding, control characters, tags, keys, limits -------------------
    "utf16": (
        GOOD.encode("utf-16"),
        "1: : the file is UTF-16 text; save it as UTF-8",
    ),
    "invalid_utf8": (
        GOOD.replace("Orders.", "Orders \xff.").encode("latin-1"),
        "4: : the file is not UTF-8 text (byte 0xff on this line)",
    ),
    "control_character": (
        edit("Orders.", "Orders\x01."),
        "4: : control character #x0001 is not allowed in YAML",
    ),
    "nul_escape_in_owner": (
        edit("name: Shop team", 'name: "Shop\\0team"'),
        "5: : control character #x0000 in a value: only tab and newline are allowed",
    ),
    "complex_key": (
        GOOD.encode() + b"? [a, b]\n: 1\n",
        "14: : a key must be text (quote a number or yes/no: '1'); a list or mapping cannot "
        "be a key",
    ),
    "integer_key": (
        GOOD.encode() + b"1: one\n",
        "14: : a key must be text (quote a number or yes/no: '1'); a list or mapping cannot "
        "be a key",
    ),
    "python_tag": (
        GOOD.encode() + b"retries: !!python/object/apply:os.system [id]\n",
        "14: : the tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed: "
        "write a plain value, list or mapping",
    ),
    "binary_tag": (
        edit("Orders.", "!!binary aGVsbG8="),
        "4: : the tag 'tag:yaml.org,2002:binary' is not allowed: write a plain value, list or "
        "mapping",
    ),
    "bad_int_tag": (
        GOOD.encode() + b"retries: !!int two\n",
        "14: : 'two' is not a valid int",
    ),
    "bad_float_tag": (
        GOOD.encode() + b"max_rejected_fraction: !!float half\n",
        "14: : 'half' is not a valid float",
    ),
    "timestamp_tag_is_text": (
        edit("Orders.", "!!timestamp not-a-date\n  version: !!timestamp 2024-01-01"),
        "5: metadata.version: Input should be a valid integer, unable to parse string as an "
        "integer",
    ),
    "deep_nesting": (
        GOOD.encode() + b"load: " + b"[" * 1_000 + b"]" * 1_000 + b"\n",
        "14: : nested more than 32 levels deep",
    ),
    "deeper_nesting": (
        GOOD.encode() + b"load: " + b"[" * 30_000 + b"]" * 30_000 + b"\n",
        "14: : nested more than 32 levels deep",
    ),
    "deep_block_mappings": (
        GOOD.encode()
        + b"load:\n"
        + b"".join(b" " * (n + 1) + b"k%d:\n" % n for n in range(40))
        + b"  " * 41
        + b"x\n",
        "46: : nested more than 32 levels deep",
    ),
    "deep_block_sequences": (
        GOOD.encode() + b"load:\n  " + b"- " * 40 + b"x\n",
        "15: : nested more than 32 levels deep",
    ),
    "huge_integer": (
        GOOD.encode() + b"retries: " + b"9" * 4_301 + b"\n",
        "14: : an integer longer than 30 digits",
    ),
    "alias_bomb": (
        GOOD.encode()
        + b"x-bomb:\n"
        + b"".join(
            (f"  a{n}: &a{n} [" + ", ".join([f"*a{n - 1}" if n else "x"] * 9) + "]\n").encode()
            for n in range(9)
        ),
        "15: : more than 200,000 values once aliases are expanded",
    ),
    "too_many_aliases": (
        GOOD.encode() + b"x-anchor: &x 1\nx-list: [" + b", ".join([b"*x"] * 101) + b"]\n",
        "15: : more than 100 aliases (*)",
    ),
    "too_big": (
        GOOD.encode() + b"# " + b"x" * 1_000_001 + b"\n",
        "1: : the file is larger than 1,000,000 bytes, the limit for a YAML",
    ),
    "huge_value": (
        edit("Orders.", "x" * 100_001),
        "4: : a value longer than 100,000 characters",
    ),
    # --- names: reserved schemas and columns, trailing newlines ----------------------------
    "domain_wharf": (
        edit("domain: shop", "domain: wharf"),
        "2: metadata.domain: domain 'wharf' is reserved: 'wharf', 'wharf_*', 'public', "
        "'information_schema' and 'pg_*' are Wharf's or PostgreSQL's own schemas",
    ),
    "domain_wharf_staging": (
        edit("domain: shop", "domain: wharf_staging"),
        "2: metadata.domain: domain 'wharf_staging' is reserved: 'wharf', 'wharf_*', "
        "'public', 'information_schema' and 'pg_*' are Wharf's or PostgreSQL's own schemas",
    ),
    "domain_public": (
        edit("domain: shop", "domain: public"),
        "2: metadata.domain: domain 'public' is reserved: 'wharf', 'wharf_*', 'public', "
        "'information_schema' and 'pg_*' are Wharf's or PostgreSQL's own schemas",
    ),
    "domain_information_schema": (
        edit("domain: shop", "domain: information_schema"),
        "2: metadata.domain: domain 'information_schema' is reserved: 'wharf', 'wharf_*', "
        "'public', 'information_schema' and 'pg_*' are Wharf's or PostgreSQL's own schemas",
    ),
    "domain_pg_catalog": (
        edit("domain: shop", "domain: pg_catalog"),
        "2: metadata.domain: domain 'pg_catalog' is reserved: 'wharf', 'wharf_*', 'public', "
        "'information_schema' and 'pg_*' are Wharf's or PostgreSQL's own schemas",
    ),
    "dataset_trailing_newline": (
        edit("dataset: orders", 'dataset: "orders\\n"'),
        "3: metadata.dataset: 'orders\\n' is not a valid dataset name: use lowercase letters, "
        "digits and underscores, starting with a letter, at most 63 characters (it becomes a "
        "PostgreSQL table)",
    ),
    "column_trailing_newline": (
        edit("name: order_id,", 'name: "order_id\\n",'),
        "12: columns[0].name: column name 'order_id\\n' breaks rAPId's column heading style "
        "guide: lowercase letters, digits and underscores only, not only digits or "
        "underscores, at most 63 characters (e.g. 'order_id')",
    ),
    "column_xmin": (
        edit("name: placed_at,", "name: xmin,"),
        "13: columns[1].name: column name 'xmin' is a PostgreSQL system column (tableoid, "
        "xmin, cmin, xmax, cmax, ctid, oid): every table has it already; use another name "
        "with source_name",
    ),
    "column_ctid": (
        edit("name: placed_at,", "name: ctid,"),
        "13: columns[1].name: column name 'ctid' is a PostgreSQL system column (tableoid, "
        "xmin, cmin, xmax, cmax, ctid, oid): every table has it already; use another name "
        "with source_name",
    ),
    "column_wharf_prefix": (
        edit("name: placed_at,", "name: _wharf_run_id,"),
        "13: columns[1].name: column name '_wharf_run_id' starts with '_wharf_', which Wharf "
        "reserves for its own columns",
    ),
    "conn_id_trailing_newline": (
        edit("conn_id: shop_db", 'conn_id: "shop_db\\n"'),
        "9: source.conn_id: 'shop_db\\n' is not an Airflow connection id: letters, "
        "digits, '_', '.', '-' (credentials belong in the Airflow connection, never in YAML)",
    ),
    "too_many_columns": (
        edit(
            "  - {name: order_id, data_type: integer, allow_null: false}\n"
            "  - {name: placed_at, data_type: timestamp}\n",
            _MANY_COLUMNS + "\n",
        ),
        "11: columns: Tuple should have at most 1597 items after validation, not 1600",
    ),
    "long_description": (
        edit("Orders.", "x" * 10_001),
        "4: metadata.description: String should have at most 10000 characters",
    ),
    # --- what passed check and then failed every run --------------------------------------
    "encoding_rot13": (
        file_edit("encoding: rot13"),
        "10: source.encoding: 'rot13' is not a text encoding Python knows (e.g. utf-8, "
        "latin-1, cp1252)",
    ),
    "encoding_unknown": (
        file_edit("encoding: klingon"),
        "10: source.encoding: 'klingon' is not a text encoding Python knows (e.g. utf-8, "
        "latin-1, cp1252)",
    ),
    "delimiter_is_quotechar": (
        file_edit("delimiter: '\"'"),
        "10: source.delimiter: delimiter, quotechar and escapechar must be three different "
        "characters, none of them a line break",
    ),
    "delimiter_is_newline": (
        file_edit('delimiter: "\\n"'),
        "10: source.delimiter: delimiter, quotechar and escapechar must be three different "
        "characters, none of them a line break",
    ),
    # --- what a YAML may never make Wharf do (the other rules' own tests go deeper) ---------
    "gx_row_condition": (
        GOOD.encode()
        + b"checks:\n  - expect_column_values_to_not_be_null:\n"
        + b"      {column: order_id, row_condition: 'order_id > 0', condition_parser: pandas}\n",
        "15: checks[0]: expect_column_values_to_not_be_null: row_condition is evaluated as "
        "Python by pandas; Wharf refuses it",
    ),
    "sql_source_writes": (
        edit("  table: orders", "  query: DROP TABLE orders"),
        "10: source.query: the SQL must be one SELECT (or WITH ... SELECT); found DROP, and "
        "Wharf never writes to a source or runs other statements",
    ),
    "sql_source_into_outfile": (
        edit("  table: orders", "  query: SELECT * FROM orders INTO OUTFILE '/tmp/x'"),
        "10: source.query: INTO is not allowed (SELECT INTO, INTO OUTFILE/DUMPFILE write "
        "tables or files): give a plain SELECT",
    ),
    "dataset_named_like_an_index": (
        GOOD.replace("dataset: orders", "dataset: orders__wharf_d_0a1b2c3d").encode(),
        "3: metadata.dataset: dataset 'orders__wharf_d_0a1b2c3d' holds '__wharf_', which Wharf "
        "reserves for the names of its indexes",
    ),
    "sql_source_on_the_datasets_database": (
        edit("  conn_id: shop_db", "  conn_id: wharf_datasets"),
        "9: source.conn_id: 'wharf_datasets' is Wharf's own connection (the datasets "
        "database): a dataset's YAML may not name it (a dataset built on others is a data cut)",
    ),
    "sql_source_on_the_datasets_database_in_capitals": (
        edit("  conn_id: shop_db", "  conn_id: Wharf_Datasets"),
        "9: source.conn_id: 'Wharf_Datasets' is Wharf's own connection (the datasets "
        "database): a dataset's YAML may not name it (a dataset built on others is a data cut)",
    ),
    "slack_alerts_through_the_admin_connection": (
        GOOD.encode() + b"notifications: {slack_webhook_conn_id: wharf_datasets_admin}\n",
        "14: notifications.slack_webhook_conn_id: 'wharf_datasets_admin' is Wharf's own "
        "connection (the datasets database's administrator): a dataset's YAML may not name it "
        "(a dataset built on others is a data cut)",
    ),
    "sql_source_executable_comment": (
        edit(
            "  table: orders",
            "  query: \"SELECT order_id /*! , LOAD_FILE('/etc/hostname') */ FROM orders\"",
        ),
        "10: source.query: a /*! ... */ comment is SQL that MySQL and MariaDB run: Wharf "
        "refuses it (write the SQL itself, or a plain /* comment */)",
    ),
    "sql_source_mariadb_executable_comment": (
        edit("  table: orders", '  query: "SELECT order_id /*M!100000 , SLEEP(9) */ FROM orders"'),
        "10: source.query: a /*M! ... */ comment is SQL that MySQL and MariaDB run: Wharf "
        "refuses it (write the SQL itself, or a plain /* comment */)",
    ),
    "sql_source_ts_rewrite": (
        edit(
            "  table: orders",
            "  query: \"SELECT ts_rewrite('x'::tsquery, 'SELECT 1') AS q FROM orders\"",
        ),
        "10: source.query: function ts_rewrite() is not allowed: it can read files, run "
        "commands or other SQL, reach other hosts, lock, sleep or change the database",
    ),
    "sql_source_brin_summarize": (
        edit(
            "  table: orders", "  query: \"SELECT brin_summarize_new_values('orders_brin') AS n\""
        ),
        "10: source.query: function brin_summarize_new_values() is not allowed: it can read "
        "files, run commands or other SQL, reach other hosts, lock, sleep or change the "
        "database",
    ),
    "file_outside_roots": (
        FILE_GOOD.replace("path: orders.csv", "path: /etc/passwd").encode(),
        f"9: source.path: '/etc/passwd' is outside the allowed file roots "
        f"({settings.reference_dir()}): use a path relative to include/reference/, or an "
        "operator adds its folder to WHARF_FILE_ROOTS",
    ),
    **{
        f"jsonpath_too_deep_{kind}": (
            FILE_GOOD.replace(
                "path: orders.csv",
                f"path: orders.jsonl\n  format: jsonl\n  column_paths: {{order_id: '{path}'}}",
            ).encode(),
            f"11: source.column_paths.order_id: '{path}' is not a JSONPath ("
            + (
                "more than one '..': each multiplies the values a record yields)"
                if kind == "descents"
                else "more than 64 steps: Wharf follows at most 64)"
            ),
        )
        for kind, path in _DEEP_PATHS.items()
    },
    "file_dot_dot": (
        FILE_GOOD.replace("path: orders.csv", "path: ../../../etc/passwd").encode(),
        "9: source.path: '../../../etc/passwd' has a '..' component: a file source stays "
        "below its root",
    ),
    "file_proc_environ": (
        FILE_GOOD.replace("path: orders.csv", "path: /proc/self/environ").encode(),
        "9: source.path: '/proc/self/environ' is below /proc: Wharf never reads /proc, /sys "
        "or /dev",
    ),
    "http_param_format_spec": (
        GOOD.replace(
            "  type: sql\n  conn_id: shop_db\n  table: orders\n",
            "  type: http\n  conn_id: shop_api\n  params: {since: '{data_interval_start:>99999999}'}\n",
        ).encode(),
        "10: source.params.since: {data_interval_start} has a format spec; write "
        "{data_interval_start} alone (Wharf writes it in ISO 8601)",
    ),
    "http_full_url": (
        GOOD.replace(
            "  type: sql\n  conn_id: shop_db\n  table: orders\n",
            "  type: http\n  conn_id: shop_api\n  path: https://user:secret@evil.example/x\n",
        ).encode(),
        "10: source.path: path is a full URL (not repeated here: it may hold credentials): give "
        "the path under the connection's base URL, which belongs in the Airflow connection with "
        "any credentials",
    ),
    "data_cut_outside_include_sql": (
        b"metadata:\n  domain: shop\n  dataset: orders\n  kind: data_cut\n"
        b"  owners: [{name: Shop team, email: shop@example.org}]\nsql: ../../etc/passwd\n",
        "6: sql: '../../etc/passwd' is not a file name below include/sql/: use a relative "
        "name of letters, digits, '_', '-' and '.', e.g. 'flights_per_month.sql' (no '..', no "
        "absolute path)",
    ),
    # --- scheduling: what Airflow can run --------------------------------------------------
    "schedule_every_second": (
        GOOD.encode() + b'schedule: "* * * * * *"\n',
        "14: schedule: '* * * * * *' is not a schedule: expected a 5-field cron expression "
        "(minute hour day-of-month month day-of-week) such as '0 2 * * *', one of @hourly, "
        "@daily, @weekly, @monthly, @yearly, or null for manual runs only",
    ),
    "schedule_30_february": (
        GOOD.encode() + b'schedule: "0 0 30 2 *"\n',
        "14: schedule: '0 0 30 2 *' never fires (no such date, e.g. 30 February): the DAG "
        "would never run",
    ),
    "retry_delay_overflow": (
        GOOD.encode() + b"retry_delay: P999999999D\n",
        "14: retry_delay: Input should be less than or equal to 1 day",
    ),
    "retry_delay_negative": (
        GOOD.encode() + b"retry_delay: -5\n",
        "14: retry_delay: Input should be greater than or equal to 1 second",
    ),
    "task_timeout_too_long": (
        GOOD.encode() + b"task_timeout: P2D\n",
        "14: task_timeout: Input should be less than or equal to 1 day",
    ),
}
