"""One SQL parser (sqlglot) decides what SQL from a YAML or a data-cut file may run.

A ``sql`` source's ``query`` and a data cut's SQL file must be exactly one read-only
``SELECT`` (or ``WITH ... SELECT``, ``UNION`` ...). Whatever sqlglot cannot parse is refused:
the guard never falls back to "probably fine". The database is the second lock: a source query
runs in a read-only transaction (``wharf.extract.sql``), a data cut's DDL as a role that is no
superuser (``wharf.publish.data_cuts``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from wharf.errors import UnsafeSpecError

# What ``wharf check`` parses a source query as: the connection's type is unknown there. The
# query must parse in at least one and be safe in every one that parses it; run time checks
# it again in the connection's own dialect.
CHECK_DIALECTS = ("mysql", "postgres", "sqlite")
# Parsing takes about 1 s per 40,000 characters and dialect: a query or a data cut is short.
MAX_SQL_CHARS = 100_000

# SQLAlchemy dialect name -> sqlglot dialect name (other names are tried as they are).
_SQLALCHEMY_DIALECTS = {
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
}

# Functions that read or write files, run programs or other SQL (ts_stat and ts_rewrite run
# the query text they are given), reach other hosts, sleep, take locks, change settings,
# sequences or index pages (brin_*, gin_clean_pending_list: writes even in a read-only
# transaction), read raw pages past row security (pageinspect), use large objects, or
# signal other sessions. PostgreSQL 15 docs, "Functions and Operators" and "pageinspect".
DENIED_FUNCTIONS = frozenset(
    {
        "load_file", "sleep", "benchmark", "get_lock", "release_lock", "release_all_locks",
        "is_used_lock", "is_free_lock", "master_pos_wait", "source_pos_wait",
        "master_gtid_wait", "set_config", "nextval", "setval", "currval", "lastval",
        "ts_stat", "ts_rewrite", "readfile", "writefile", "edit", "load_extension",
        "fts3_tokenizer", "xp_cmdshell", "openrowset", "opendatasource", "openquery",
        "gin_clean_pending_list", "loread", "lowrite", "get_raw_page", "set_limit", "set_var",
        "fsm_page_contents",
    }
)  # fmt: skip
DENIED_PREFIXES = (
    "pg_", "lo_", "dblink", "sys_", "lib_mysqludf", "http", "query_to_xml", "cursor_to_xml",
    "table_to_xml", "schema_to_xml", "database_to_xml", "sp_", "xp_", "brin_",
    "binary_upgrade_", "heap_page", "page_", "bt_page", "bt_metap", "gin_page", "gist_page",
    "hash_page", "brin_page",
)  # fmt: skip
DENIED_SUBSTRINGS = ("exec", "eval", "shell", "system", "file", "sleep", "advisory", "program")
# pg_* functions that only describe values.
ALLOWED_FUNCTIONS = frozenset({"pg_typeof", "pg_column_size", "pg_size_pretty", "pg_size_bytes"})
# Comments a server runs: MySQL's /*! ... */ and MariaDB's /*M! ... */ (MySQL 8.0 manual,
# "Comments"; MariaDB, "Comment Syntax"), which sqlglot reads as comments.
EXECUTED_COMMENT = re.compile(r"M?!")

# Schemas and table-name prefixes of database catalogs (roles, password hashes, settings).
SYSTEM_SCHEMAS = frozenset(
    {"pg_catalog", "pg_toast", "information_schema", "mysql", "performance_schema", "sys"}
)
SYSTEM_TABLE_PREFIXES = ("pg_", "sqlite_")


def sqlglot_dialect(sqlalchemy_name: str) -> str:
    """The sqlglot dialect of a SQLAlchemy dialect name (``postgresql`` -> ``postgres``).

    Raises ``UnsafeSpecError`` for a database sqlglot has no dialect for: its queries cannot
    be checked (a ``table:`` source still works)."""
    from sqlglot.dialects.dialect import Dialect

    name = _SQLALCHEMY_DIALECTS.get(sqlalchemy_name, sqlalchemy_name)
    if name not in Dialect.classes:
        raise UnsafeSpecError(
            f"Wharf cannot check SQL for a {sqlalchemy_name} database, so it runs no query "
            "there: give 'table:' instead of 'query:'"
        )
    return name


def check_query(text: str, dialect: str | tuple[str, ...]) -> None:
    """Refuse ``text`` unless it is exactly one read-only SELECT in ``dialect``.

    A tuple of dialects (``wharf check``, where the database is unknown): the text must parse
    in at least one and be safe in each that parses it. Raises ``UnsafeSpecError`` with the
    reason (never quoting the text).
    """
    if isinstance(dialect, tuple):
        parsed = 0
        unparsed: UnsafeSpecError | None = None
        for one in dialect:
            try:
                parse_one_select(text, one)
            except _ParseFailure as err:
                unparsed = unparsed or err
                continue
            parsed += 1
        if not parsed:
            assert unparsed is not None
            raise UnsafeSpecError(
                f"{unparsed} (tried as {', '.join(dialect)}); Wharf runs only SQL it can parse"
            )
        return
    parse_one_select(text, dialect)


def runnable_query(text: str, dialect: str) -> str:
    """The SQL to run for a source ``query``: sqlglot's writing of the tree it checked (one
    read-only SELECT in ``dialect``), without comments, its named parameters kept as
    ``:name`` (SQLAlchemy's bind syntax in every dialect). Raises ``UnsafeSpecError``."""
    from sqlglot import exp

    def colon(node: Any) -> Any:
        if isinstance(node, exp.Placeholder) and node.name:
            return exp.var(f":{node.name}")
        return node

    written = parse_one_select(text, dialect).transform(colon).sql(dialect=dialect, comments=False)
    parse_one_select(written, dialect)  # as written: still one read-only SELECT
    return written


class _ParseFailure(UnsafeSpecError):
    """The text does not parse in the dialect (refused like any other unsafe SQL)."""


def parse_one_select(text: str, dialect: str) -> Any:
    """The sqlglot tree of ``text``, which must be one read-only SELECT; else
    ``UnsafeSpecError`` with the reason."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import TokenType

    if len(text) > MAX_SQL_CHARS:
        raise UnsafeSpecError(f"the SQL is longer than {MAX_SQL_CHARS:,} characters")
    try:
        tokens = sqlglot.tokenize(text, read=dialect)
    except SqlglotError as err:
        raise _ParseFailure(f"the SQL cannot be parsed as {dialect}: {_where(err)}") from None
    for comment in (c for t in tokens for c in t.comments):
        if executed := EXECUTED_COMMENT.match(comment):
            raise UnsafeSpecError(
                f"a /*{executed.group()} ... */ comment is SQL that MySQL and MariaDB run: "
                "Wharf refuses it (write the SQL itself, or a plain /* comment */)"
            )
    if any(t.token_type == TokenType.INTO for t in tokens):
        raise UnsafeSpecError(
            "INTO is not allowed (SELECT INTO, INTO OUTFILE/DUMPFILE write tables or files): "
            "give a plain SELECT"
        )
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except SqlglotError as err:
        raise _ParseFailure(f"the SQL cannot be parsed as {dialect}: {_where(err)}") from None
    except RecursionError:
        raise _ParseFailure(f"the SQL is nested too deeply to parse as {dialect}") from None
    if len(statements) != 1:
        raise UnsafeSpecError(
            f"the SQL must be exactly one SELECT statement; found {len(statements)} statements"
        )
    (tree,) = statements
    root = tree
    while isinstance(root, exp.Subquery):
        root = root.this
    if not isinstance(root, exp.Select | exp.SetOperation):
        kind = "an unparsed command" if isinstance(root, exp.Command) else root.key.upper()
        raise UnsafeSpecError(
            f"the SQL must be one SELECT (or WITH ... SELECT); found {kind}, "
            "and Wharf never writes to a source or runs other statements"
        )
    for node in tree.walk():
        _check_node(node)
    return tree


def _check_node(node: Any) -> None:
    from sqlglot import exp

    if isinstance(node, exp.DML | exp.DDL | exp.Command | exp.Set | exp.Pragma):
        raise UnsafeSpecError(
            f"the SQL holds a {node.key.upper()} (e.g. a data-modifying WITH): only reads are "
            "allowed"
        )
    if isinstance(node, exp.Transaction | exp.Commit | exp.Rollback | exp.NextValueFor):
        raise UnsafeSpecError(f"the SQL holds a {node.key.upper()}: only reads are allowed")
    if isinstance(node, exp.Into):
        raise UnsafeSpecError("INTO is not allowed: give a plain SELECT")
    if isinstance(node, exp.Lock):
        raise UnsafeSpecError(
            "a locking clause (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE) is not allowed: "
            "a read must not lock the source's rows"
        )
    if isinstance(node, exp.Func):
        for name in _function_names(node):
            if denied_function(name):
                raise UnsafeSpecError(
                    f"function {name}() is not allowed: it can read files, run commands or "
                    "other SQL, reach other hosts, lock, sleep or change the database"
                )
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        schema, name = node.db.lower(), node.name.lower()
        if schema in SYSTEM_SCHEMAS or name.startswith(SYSTEM_TABLE_PREFIXES):
            shown = f"{schema}.{name}" if schema else name
            raise UnsafeSpecError(
                f"table {shown} is a database catalog: a query reads data, not the "
                "database's roles or settings"
            )


def _function_names(node: Any) -> list[str]:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return [node.name.lower()]
    return [n.lower() for n in type(node).sql_names()]


def denied_function(name: str) -> bool:
    """Whether a function of this (lowercase) name is on the deny-list."""
    if name in ALLOWED_FUNCTIONS:
        return False
    return (
        name in DENIED_FUNCTIONS
        or name.startswith(DENIED_PREFIXES)
        or any(part in name for part in DENIED_SUBSTRINGS)
    )


def tables_read(text: str, dialect: str) -> list[tuple[str, str]]:
    """The ``(schema, table)`` pairs a checked SELECT reads, sorted; ``schema`` is ``""``
    for an unqualified name. Names of its own WITH queries are not tables."""
    from sqlglot import exp

    tree = parse_one_select(text, dialect)
    ctes = _with_query_references(tree)
    found = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function, e.g. generate_series(...)
        if id(table) in ctes:
            continue
        if table.catalog:
            raise UnsafeSpecError(
                f"the SQL names a table in another database ({table.catalog}): read this one's"
            )
        found.add((_folded(table.args.get("db")), _folded(table.this)))
    return sorted(found)


def _with_query_references(tree: Any) -> set[int]:
    """The ids of the tree's table names that name a WITH query seen where they stand
    (sqlglot's scopes: a WITH inside a subquery hides no table outside it); none when the
    scopes cannot be built: every name then counts as a table, the strict side."""
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.scope import traverse_scope

    try:
        scopes = traverse_scope(tree)
    except (SqlglotError, RecursionError):
        return set()
    return {
        id(table)
        for scope in scopes
        for table in scope.tables
        if not table.db and table.name in scope.cte_sources
    }


def _folded(identifier: Any) -> str:
    """An identifier as the database sees it: unquoted names fold to lowercase."""
    if identifier is None:
        return ""
    return str(identifier.name if identifier.quoted else identifier.name.lower())


def _where(err: Any) -> str:
    """Where a sqlglot error is and what it says, without the SQL's text."""
    details = getattr(err, "errors", None) or []
    if details:
        first = details[0]
        return f"{first.get('description')} at line {first.get('line')}, column {first.get('col')}"
    return str(err).splitlines()[0][:200]


# --- data cuts ------------------------------------------------------------------------------
# Schemas no domain may become and no data cut may read: Wharf's own (audit, catalogue,
# staging) and the database's (a table there would shadow or sit beside the system's own).
RESERVED_SCHEMAS = frozenset({"wharf", "public", "information_schema"})
RESERVED_SCHEMA_PREFIXES = ("wharf_", "pg_")
_CUT_SQL_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def reserved_schema(name: str) -> bool:
    """Whether ``name`` is reserved: no domain may be it, no data cut read from it."""
    return name in RESERVED_SCHEMAS or name.startswith(RESERVED_SCHEMA_PREFIXES)


def cut_sql_name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain relative ``.sql`` file name below ``include/sql/`` (the
    lexical rule, for the model), or None."""
    parts = name.split("/")
    if name.startswith("/") or not all(_CUT_SQL_PART.fullmatch(p) for p in parts):
        return (
            f"{name!r} is not a file name below include/sql/: use a relative name of letters, "
            "digits, '_', '-' and '.', e.g. 'flights_per_month.sql' (no '..', no absolute path)"
        )
    if any(p in (".", "..") or p.strip(".") == "" for p in parts):
        return f"{name!r} may not name '.' or '..': the file must be below include/sql/"
    if not name.endswith(".sql"):
        return f"{name!r} must be a .sql file"
    return None


def check_cut(text: str, depends_on: Sequence[str] = ()) -> list[str]:
    """The inputs (``schema.table``, sorted) of a data cut's SQL, which must be one read-only
    SELECT (PostgreSQL) reading only schema-qualified tables outside Wharf's own and the
    catalogs' schemas, each listed in ``depends_on`` when that is given.
    Raises ``UnsafeSpecError``."""
    return list(_checked_inputs(text, tuple(depends_on)))


@functools.lru_cache(maxsize=4096)
def _checked_inputs(text: str, depends_on: tuple[str, ...]) -> tuple[str, ...]:
    # Cached on the text: a parse of the dags folder asks up to six times per cut (the YAML's
    # check, its inputs, cycles, sensitivity, row access, its schedule), and sqlglot takes
    # ~1 ms each. The same text always gets the same answer; a refused one is not cached.
    inputs = []
    for schema, name in tables_read(text, "postgres"):
        if not schema:
            raise UnsafeSpecError(
                f"the SQL reads {name!r} without its schema: name each input as domain.dataset"
            )
        if reserved_schema(schema):
            raise UnsafeSpecError(
                f"the SQL reads {schema}.{name}: a data cut reads datasets, not the {schema!r} "
                "schema"
            )
        inputs.append(f"{schema}.{name}")
    unlisted = sorted(set(inputs) - set(depends_on)) if depends_on else []
    if unlisted:
        raise UnsafeSpecError(
            f"the SQL reads {', '.join(unlisted)}, which depends_on does not list"
        )
    return tuple(inputs)


def filters_rows(text: str) -> bool:
    """Whether a checked SELECT (PostgreSQL) drops rows of what it reads: a WHERE, HAVING,
    QUALIFY, LIMIT, OFFSET or join condition anywhere in it. Such a view is created with
    ``security_barrier`` (PostgreSQL docs, "Rules and Privileges": without it a reader's
    function in a WHERE may see rows the view's own filter would drop). Text sqlglot cannot
    parse counts as filtering: the barrier is the safe side."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(text, read="postgres")
    except sqlglot.errors.SqlglotError:
        return True
    filters = (exp.Where, exp.Having, exp.Qualify, exp.Limit, exp.Offset)
    if any(True for _ in tree.find_all(*filters)):
        return True
    return any(join.args.get("on") or join.args.get("using") for join in tree.find_all(exp.Join))
