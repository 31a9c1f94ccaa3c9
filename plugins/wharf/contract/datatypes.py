"""rAPId data types and how each maps to Arrow (the lake) and PostgreSQL (the datasets DB).

Source of the type names: rAPId's schema documentation (``data_type`` of a column). The
integer family is sized to PostgreSQL's types so that binary COPY gets exact types.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # pyarrow costs ~70 ms to import: a task start's DAG parse never needs it
    import pyarrow as pa

DataType = Literal[
    "integer",
    "int",
    "bigint",
    "smallint",
    "tinyint",
    "double",
    "float",
    "decimal",
    "string",
    "varchar",
    "char",
    "date",
    "timestamp",
    "boolean",
]
DATA_TYPES: tuple[str, ...] = get_args(DataType)

_POSTGRES: dict[str, str] = {
    "tinyint": "smallint",
    "smallint": "smallint",
    "integer": "integer",
    "int": "integer",
    "bigint": "bigint",
    "double": "double precision",
    "float": "double precision",
    "decimal": "numeric(38, 9)",
    "string": "text",
    "varchar": "text",
    "char": "text",
    "date": "date",
    "timestamp": "timestamp with time zone",
    "boolean": "boolean",
}


def arrow_type(data_type: str) -> pa.DataType:
    """Arrow type of a rAPId ``data_type``; raises ``KeyError`` for an unknown one."""
    return _arrow()[data_type]


@functools.cache
def _arrow() -> dict[str, pa.DataType]:
    import pyarrow as pa

    # decimal(38, 9): Arrow's widest exact decimal that PostgreSQL's numeric holds without loss.
    return {
        "tinyint": pa.int16(),
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "float": pa.float64(),
        "decimal": pa.decimal128(38, 9),
        "string": pa.string(),
        "varchar": pa.string(),
        "char": pa.string(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "boolean": pa.bool_(),
    }


def postgres_type(data_type: str) -> str:
    """PostgreSQL type (SQL text, not user input) of a rAPId ``data_type``."""
    return _POSTGRES[data_type]
