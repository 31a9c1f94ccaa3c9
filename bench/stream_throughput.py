"""Stream throughput: events/s from a JetStream backlog to committed rows, against the broker's
own consume rate measured in the same run, and peak RSS as the backlog grows.

For each backlog size (default 25,000 and 100,000 events; the README's figures: ``--events
250000 1000000``) it:

1. publishes that many of the example's sensor readings (``wharf.demo.sensors``) to a stream
   of its own, ``streamx_bench_<n>``, as plain NATS messages the stream stores (the rate is
   printed; it is not what is measured);
2. **nats consume** (the limit): reads the whole backlog with nats-py from one process, an
   ephemeral pull consumer without acks, fetches of 10,000: what this broker gives any
   Python consumer here, decoding nothing;
3. **wharf**: runs the example dataset ``sensors.readings``'s steps on that stream (a copy of
   its YAML, the same columns and checks): ``extract`` (from the committed offset, none yet,
   to the stream's last event, landed as Parquet), ``validate`` (contract, quarantine, Great
   Expectations) and ``load`` (binary COPY, the rows and the new offset in one transaction,
   then the broker's acknowledgement), each in its own process as under Airflow; its events/s
   is the backlog over the three steps' seconds (imports excluded), "publish to committed
   row" for a backlog already published. Peak RSS is each process's ``VmHWM``.

It prints one line per backlog and way, the ratio of Wharf's rate to the limit, and the
Markdown table of the README. The host is shared: compare the ratios, not the seconds.

Run: ``python bench/stream_throughput.py [--events N ...]``. The broker is the NATS at
``WHARF_NATS_URL`` (default ``nats://127.0.0.1:4222``), else the embedded one
(``wharf.demo.broker``); the database ``WHARF_DATASETS_DB_URL`` or the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
from wharf import environment, settings  # noqa: E402

WORK = ROOT / ".wharf" / "bench" / "stream"
EXAMPLE = ROOT / "include" / "schemas" / "sensors" / "readings.yaml"
CONN_ID = "streamx_bench_broker"
STEPS = ("extract", "validate", "load")
FETCH = 10_000


def stream_name(events: int) -> str:
    return f"streamx_bench_{events}"


def dataset_id(events: int) -> str:
    return f"bench.stream_{events}"


def write_spec(events: int) -> None:
    """The example's YAML, reading this backlog's stream through the bench's connection."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["metadata"]["domain"], spec["metadata"]["dataset"] = dataset_id(events).split(".")
    spec["schedule"] = None
    spec.pop("wake_on_events", None)
    spec["source"].update(
        conn_id=CONN_ID,
        stream=stream_name(events),
        subject=f"{stream_name(events)}.readings",
        max_messages_per_run=events,
        batch_size=FETCH,
    )
    folder = settings.schemas_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"stream_{events}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


# --- the children ----------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_consume(events: int) -> float:
    """The broker's own rate: every event of the backlog fetched, nothing decoded."""
    import nats
    import nats.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    async def consume() -> float:
        client = await nats.connect(os.environ["WHARF_BENCH_NATS_URL"])
        js = client.jetstream()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            # The server drops an ephemeral consumer idle this long (default 5 s): a fetch
            # that waited for a busy host's CPU must still find it.
            inactive_threshold=600.0,
        )
        info = await js.add_consumer(stream_name(events), config)
        sub = await js.pull_subscribe_bind(consumer=info.name, stream=stream_name(events))
        started, seen, idle = time.perf_counter(), 0, 0
        while seen < events:
            try:
                messages = await sub.fetch(FETCH, timeout=30)
            except nats.errors.TimeoutError:
                idle += 1  # none arrived in time (a busy host): ask again, a few times
                if idle == 10:
                    raise
                continue
            seen, idle = seen + len(messages), 0
        seconds = time.perf_counter() - started
        await client.close()
        return seconds

    return asyncio.run(consume())


class _Context(dict[str, Any]):
    """What Wharf's step bodies read of Airflow's task context outside Airflow: the earlier
    steps' XComs (kept as files by the parent) and the load's outlet events."""

    def __init__(self, xcoms: dict[str, Any]) -> None:
        super().__init__(
            ti=SimpleNamespace(xcom_pull=lambda task_ids: xcoms.get(task_ids)),  # noqa: PLW0108 (called with task_ids=)
            outlet_events=defaultdict(lambda: SimpleNamespace(extra={})),
        )


def child_step(step: str, events: int) -> float:
    """One step of the dataset's run (its task body), with the earlier steps' XComs."""
    import airflow.sdk

    if step == "load":
        import airflow.providers.postgres.hooks.postgres  # import time excluded
    from wharf.ledger.audit import AuditRow
    from wharf.orchestration import tasks
    from wharf.orchestration.run_context import Run
    from wharf.specfiles import get_spec

    xcoms = {s: json.loads(_xcom(s).read_text()) for s in STEPS if _xcom(s).is_file()}
    airflow.sdk.get_current_context = lambda: _Context(xcoms)  # type: ignore[assignment]
    spec = get_spec(dataset_id(events))
    run = Run(
        dataset_id=spec.dataset_id,
        dag_id=spec.dag_id,
        run_id=f"bench_{events}",
        run_type="manual",
        logical_date=None,
        try_number=1,
        ingestion_date=datetime.now(UTC).date(),
    )
    started = time.perf_counter()
    result = tasks._BODIES[step](spec, run, AuditRow(spec.dataset_id, run.run_id, step, "running"))
    seconds = time.perf_counter() - started
    _xcom(step).write_text(json.dumps(result, default=str))
    return seconds


def _xcom(step: str) -> Path:
    return WORK / f"xcom-{step}.json"


# --- the parent ------------------------------------------------------------------------------
def run_child(way: str, events: int) -> dict[str, Any]:
    """``way`` in its own process; its seconds and peak RSS. Exits if it failed."""
    out = WORK / "child.json"
    log = WORK / "children.log"  # the steps' own log lines
    with log.open("a") as lines:
        done = subprocess.run(
            [sys.executable, __file__, "--child", way, str(events), str(out)],
            stdout=lines,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"{way} failed (status {done.returncode}; see {log})")
    found: dict[str, Any] = json.loads(out.read_text())
    return found


def publish(url: str, events: int) -> float | None:
    """Publish ``events`` readings to a new stream ``streamx_bench_<events>``; seconds (None
    when a stream of exactly those events is there already, from an interrupted run)."""
    import nats

    from wharf.demo import sensors

    async def fresh_stream() -> bool:
        client = await nats.connect(url)
        js = client.jetstream()
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                state = (await js.stream_info(stream_name(events))).state
                if state.first_seq == 1 and state.last_seq == state.messages == events:
                    return False
                await js.delete_stream(stream_name(events))
            await js.add_stream(name=stream_name(events), subjects=[f"{stream_name(events)}.>"])
            return True
        finally:
            await client.close()

    if not asyncio.run(fresh_stream()):
        return None
    payloads = sensors.encode(sensors.readings(events, seed=events))
    started = time.perf_counter()
    subject = f"{stream_name(events)}.readings"
    last = asyncio.run(
        sensors.publish_nats(url, payloads, stream_name(events), subject, acked=False)
    )
    if last != events:
        raise SystemExit(f"published up to sequence {last}, expected {events}")
    return time.perf_counter() - started


def delete_stream(url: str, events: int) -> None:
    import nats

    async def delete() -> None:
        client = await nats.connect(url)
        await client.jetstream().delete_stream(stream_name(events))
        await client.close()

    asyncio.run(delete())


def reset_dataset(events: int) -> None:
    """No table and no committed offset of this backlog's dataset (a run before this one)."""
    import psycopg

    admin = os.environ[f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}"]
    with psycopg.connect(environment.libpq_conninfo(admin), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS bench.stream_{events} CASCADE")
        conn.execute(
            "DELETE FROM wharf.stream_offsets WHERE dataset_id = %s", (dataset_id(events),)
        )
    for step in STEPS:
        _xcom(step).unlink(missing_ok=True)


def committed(events: int) -> tuple[int, str | None]:
    """Rows in the loaded table and the committed offset."""
    import psycopg
    from psycopg import sql

    admin = os.environ[f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}"]
    with psycopg.connect(environment.libpq_conninfo(admin)) as conn:
        table = sql.Identifier("bench", f"stream_{events}")
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        offset = conn.execute(
            "SELECT last_id FROM wharf.stream_offsets WHERE dataset_id = %s", (dataset_id(events),)
        ).fetchone()
    return int(rows[0]) if rows else 0, offset[0] if offset else None


def measure(url: str, events: int) -> list[dict[str, Any]]:
    write_spec(events)
    reset_dataset(events)
    published = publish(url, events)
    if published is None:
        print(f"publish        {events:>9,} events: the stream of an earlier run, kept")
    else:
        rate = events / published
        print(f"publish        {events:>9,} events {published:7.1f} s {rate:>9,.0f} events/s")
    limit = run_child("consume", events)
    steps = {step: run_child(step, events) for step in STEPS}
    rows, offset = committed(events)
    if offset != str(events) or rows != events:
        raise SystemExit(f"committed {rows} rows up to offset {offset}, expected {events}")
    delete_stream(url, events)
    seconds = sum(s["seconds"] for s in steps.values())
    return [
        {"way": "nats consume", "events": events, **limit, "detail": ""},
        {
            "way": "wharf",
            "events": events,
            "seconds": seconds,
            "rss_mb": max(s["rss_mb"] for s in steps.values()),
            "ratio": limit["seconds"] / seconds,
            "detail": ", ".join(
                f"{k} {v['seconds']:.1f} s {v['rss_mb']:.0f} MB" for k, v in steps.items()
            ),
        },
    ]


def _line(r: dict[str, Any]) -> str:
    ratio = f"  {r['ratio']:.2f}x the limit" if "ratio" in r else ""
    return (
        f"{r['way']:<14} {r['events']:>9,} events {r['seconds']:7.1f} s "
        f"{r['events'] / r['seconds']:>9,.0f} events/s  peak RSS {r['rss_mb']:5.0f} MB{ratio}"
    )


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| way | events | seconds | events/s | vs nats consume | peak RSS | steps |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "1.00x"
        lines.append(
            f"| {r['way']} | {r['events']:,} | {r['seconds']:.1f} | "
            f"{r['events'] / r['seconds']:,.0f} | {ratio} | {r['rss_mb']:.0f} MB | {r['detail']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--child", nargs=3, metavar=("WAY", "EVENTS", "OUT"))
    args = parser.parse_args()
    if args.child:
        way, events, out = args.child[0], int(args.child[1]), Path(args.child[2])
        seconds = child_consume(events) if way == "consume" else child_step(way, events)
        out.write_text(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb()}))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    # The bench's copies of the example YAML live in a schemas folder of their own.
    os.environ["WHARF_SCHEMAS_DIR"] = str(WORK / "schemas")
    os.environ["WHARF_LAKE_ROOT"] = (WORK / "lake").as_uri()
    environment.apply()
    from wharf.cli.db import upgrade_datasets_db
    from wharf.demo import broker

    upgrade_datasets_db()
    url = broker.nats_url()
    os.environ["WHARF_BENCH_NATS_URL"] = url
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = url
    print(f"broker {url}; each way in its own process; the host is shared: read the ratios")
    results = []
    for events in args.events:
        for result in measure(url, events):
            results.append(result)
            print(_line(result), flush=True)
            if result["detail"]:
                print(f"{'':15}{result['detail']}", flush=True)
    print()
    print(markdown(results))


if __name__ == "__main__":
    main()
