"""Binary COPY of Arrow record batches into a PostgreSQL table (pgpq), with errors that
name the dataset, row and column PostgreSQL refused."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import psycopg
import pyarrow as pa
from psycopg import sql

from wharf.connections import Cursor
from wharf.contract.dataset import DatasetSpec
from wharf.errors import TerminalError
from wharf.prefetch import prefetch

log = logging.getLogger(__name__)

_PROGRESS_SECONDS = 5.0


class LoadError(TerminalError, RuntimeError):
    """The load failed; the published table is unchanged."""


def copy_batches(
    cur: Cursor, spec: DatasetSpec, table: sql.Composable, stream: Iterator[pa.RecordBatch]
) -> int:
    """Binary-COPY the batches into ``table``; returns the rows copied.

    Raises ``LoadError`` naming the dataset, row (1-based, in curated order), column and
    PostgreSQL's message for a value PostgreSQL refuses.
    """
    import pgpq

    first = next(stream, None)
    if first is None:
        return 0
    encoder = pgpq.ArrowToPostgresBinaryEncoder(first.schema)
    columns = sql.SQL(", ").join(map(sql.Identifier, first.schema.names))
    rows, last_log = 0, time.monotonic()

    def encoded() -> Iterator[tuple[int, bytes]]:
        for batch in _chain(first, stream):
            yield batch.num_rows, encoder.write_batch(batch)

    try:
        with cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(table, columns)
        ) as copy:
            copy.write(encoder.write_header())
            # The batches are read and encoded in a thread of their own while this one waits
            # for the server to take the previous ones.
            for count, data in prefetch(encoded(), name="wharf-copy"):
                copy.write(data)
                rows += count
                if time.monotonic() - last_log > _PROGRESS_SECONDS:
                    log.info("%s: %d rows copied so far", spec.dataset_id, rows)
                    last_log = time.monotonic()
            copy.write(encoder.finish())
    except psycopg.OperationalError:
        raise  # connection lost, cancelled, timed out: transient, the task is retried
    except psycopg.Error as err:
        raise LoadError(copy_error(spec, err)) from err
    return rows


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


_COPY_CONTEXT = re.compile(r"COPY \S+, line (\d+)(?:, column (\w+))?")


def copy_error(spec: DatasetSpec, err: psycopg.Error) -> str:
    """``<dataset>: PostgreSQL refused row N, column C: <message>`` from a COPY error.

    PostgreSQL's error context names the COPY ``line`` (for binary COPY, the row number) and
    the column.
    """
    diag = err.diag
    message = diag.message_primary or str(err).strip()
    if diag.message_detail:
        message += f" ({diag.message_detail})"
    found = _COPY_CONTEXT.search(diag.context or "")
    if found is None:
        return f"{spec.dataset_id}: PostgreSQL refused the load: {message}"
    where = f"row {found.group(1)}"
    if found.group(2):
        where += f", column {found.group(2)!r}"
    return f"{spec.dataset_id}: PostgreSQL refused {where}: {message}"
