"""A stream dataset's micro-batches in processes of their own, for the SIGKILL fault tests.

Usage: ``python stream_child.py <conninfo>``. This process imports everything once, prints
``ready`` and then reads commands on stdin, one a line: ``run <spec.json> <broker url>
<folder> <die at>`` forks a worker that runs micro-batches of that dataset (the task bodies' work: extract to a
landing file, validate to a curated file and quarantine, load with the offset, acknowledge
the broker) until one reads no event, printing ``<pid> <event>`` (flushed) as each step and
load phase begins: ``extract``, ``validate``, ``load``, ``phase <name>``, ``committed``,
``acked``, ``idle``. ``<die at>`` names an event at which the worker SIGKILLs itself (``-``:
never); the test SIGKILLs it at random moments too. When the worker ends, this process
prints ``<pid> exit <status>``. Forking keeps each kill cheap: a worker starts in
milliseconds, with nothing open but what it opens itself.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))

from wharf.contract.dataset import DatasetSpec
from wharf.extract import Window, stream
from wharf.extract.json_records import compile_path
from wharf.ledger.quarantine import write_quarantine
from wharf.ledger.stream_offsets import StreamRange, read_offset
from wharf.publish import load
from wharf.validate import contract_checks


def say(what: str, die_at: str) -> None:
    print(f"{os.getpid()} {what}", flush=True)
    if what == die_at:
        os.kill(os.getpid(), signal.SIGKILL)


def connector(spec: DatasetSpec, url: str) -> stream.Connect:
    source = spec.stream
    assert source is not None

    def connect(spec: DatasetSpec) -> stream.StreamReader:
        consumer = spec.stream_consumer or ""
        if source.broker == "nats":
            return stream.NatsReader(spec.dataset_id, source, consumer, {"servers": [url]})
        import redis

        return stream.RedisReader(spec.dataset_id, source, consumer, redis.Redis.from_url(url))

    return connect


def micro_batch(spec: DatasetSpec, conninfo: str, url: str, folder: Path, die_at: str) -> int:
    """One run of the dataset; returns the events it read."""
    run_id = f"run_{os.getpid()}_{os.urandom(3).hex()}"
    connect = connector(spec, url)
    say("extract", die_at)
    with psycopg.connect(conninfo) as conn:
        offset = read_offset(conn, spec)
    opened = stream.extract(spec, Window(watermark=offset), connect)
    landing = folder / f"{run_id}.landing.parquet"
    with pq.ParquetWriter(landing, opened.schema) as writer:
        for batch in opened.batches:
            writer.write_batch(batch)
    read = StreamRange.from_json(opened.read)
    say("validate", die_at)
    report = contract_checks.Report(spec.dataset_id)
    rejected: list[pa.RecordBatch] = []
    curated_file = folder / f"{run_id}.curated.parquet"
    schema = contract_checks.curated_schema(spec)
    source = pq.ParquetFile(landing)
    with pq.ParquetWriter(curated_file, schema) as writer:
        for batch in contract_checks.curate(
            spec, source.schema_arrow, source.iter_batches(), run_id, report, rejected.append
        ):
            writer.write_batch(batch)
    if rejected:
        with psycopg.connect(conninfo) as conn:
            write_quarantine(conn, spec.dataset_id, run_id, str(folder), iter(rejected))
    say("load", die_at)
    curated = pq.ParquetFile(curated_file)
    rows = load.Batches(schema, curated.metadata.num_rows, curated.iter_batches())
    with psycopg.connect(conninfo) as conn:
        load.load(
            conn,
            spec,
            run_id,
            None,
            rows,
            on_phase=lambda name: say(f"phase {name}", die_at),
            stream_read=read,
        )
    say("committed", die_at)
    if read.upto is not None:
        stream.acknowledge(spec, read.upto, connect)
    say("acked", die_at)
    return read.messages


def main(conninfo: str) -> None:
    # What a first use imports or builds (jsonpath-ng's parser; pandas, which pyarrow imports
    # at its first conversion from Python objects: 3 s on a busy host) is done once, before
    # forking, so the kills land in the work rather than in imports.
    compile_path("$.a.b")
    pa.array(["x"], pa.string())
    import nats  # noqa: F401
    import redis  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        command, spec_file, url, folder, die_at = line.rstrip("\n").split(" ", 4)
        assert command == "run", line
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                spec = DatasetSpec.model_validate_json(Path(spec_file).read_text())
                while micro_batch(spec, conninfo, url, Path(folder), die_at):
                    pass
                say("idle", die_at)
            except BaseException as err:
                print(f"{os.getpid()} error {type(err).__name__}: {err}", flush=True)
                status = 1
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        print(f"{pid} exit {status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
