"""The lake: landing / raw / curated / quarantine zones of Parquet files.

Layout (names from the MoJ and Hackney platforms)::

    <root>/<zone>/<domain>/<dataset>/ingestion_date=YYYY-MM-DD/run_id=<id>/part-N.parquet

Each domain has one root (``settings.lake_root(domain)``: its ``WHARF_LAKE_ROOTS`` entry or
``WHARF_LAKE_ROOT``), so every zone of a domain's runs lies below its root alone and a bucket
policy can give its service group that bucket or prefix. A root is ``file:///...`` by default
and ``s3://bucket/prefix`` in production; both go through pyarrow's filesystems, so there is
one code path. An ``s3://`` root is reached through its domain's Airflow AWS connection
(``settings.lake_conn_id(domain)``, through ``connections.s3_filesystem``), as S3 file sources
are. A local root's folders are created 0700 and its files 0600, whatever the umask
(``_OwnerOnly``). The storage's errors name the root (never a key of the connection):
terminal when the configuration is wrong (no such bucket, access refused), transient
otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from wharf import connections, settings
from wharf.errors import TerminalError, TransientError, WharfError

Zone = Literal["landing", "raw", "curated", "quarantine", "reports"]
# A part file rolls over past this many rows, so one file never grows without bound.
ROWS_PER_FILE = 2_000_000
ROWS_PER_GROUP = 65_536
# More distinct partition values than this in one run is almost surely a wrong column.
MAX_PARTITIONS = 10_000
# Dictionary pages halve the writing speed (1M rows x 12 text columns: 1.44 s with them,
# 0.78 s without) and saved 3% of the size on the load benchmark's data. LZ4 instead of
# Parquet's default Snappy: that landing (1M rows as text) reads in 0.49 s of CPU instead of
# 0.80 s and writes in 0.82 s instead of 0.92 s, 8% larger; the curated rows read in 0.32 s
# instead of 0.43 s, the same size (issue #18; uncompressed is 3 times the size, ZSTD half
# the size but slower to write).
_WRITE_OPTIONS = {"use_dictionary": False, "compression": "lz4"}


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """``_WRITE_OPTIONS`` with min/max statistics only where a reader's filter uses them,
    ``schema``'s non-text columns: text's cost a fifth of the curated zone's write at 3M rows
    and 15% of reading it back (issue #18), for filters on text that Wharf never runs
    (``tests/unit/test_lake_statistics.py``)."""
    kept = [f.name for f in schema if not _is_text(f.type)]
    return {**_WRITE_OPTIONS, "write_statistics": kept or False}


def _is_text(kind: pa.DataType) -> bool:
    return any(
        check(kind)
        for check in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_binary,
            pa.types.is_large_binary,
            pa.types.is_string_view,
            pa.types.is_binary_view,
        )
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# pyarrow's S3 errors ("AWS Error <CODE> during <operation>") that a retry cannot heal: the
# bucket or the connection's keys are wrong.
_MISCONFIGURED = re.compile(
    r"AWS Error (NO_SUCH_BUCKET|ACCESS_DENIED|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH"
    r"|INVALID_CLIENT_TOKEN_ID|MISSING_AUTHENTICATION_TOKEN)\b"
    r"|AWS Error UNKNOWN \(HTTP status 40[0134]\)|Bucket '[^']*' not found"
)


@dataclass(frozen=True)
class RunKey:
    """What identifies one run of one dataset in the lake."""

    dataset_id: str
    ingestion_date: date
    run_id: str

    @property
    def domain(self) -> str:
        """The dataset's domain: which lake root and connection its zones use."""
        return self.dataset_id.split(".", 1)[0]

    def folder(self, zone: Zone) -> str:
        """The run's folder in ``zone``, relative to its domain's root."""
        domain, dataset = self.dataset_id.split(".", 1)
        # run ids hold ':' and '+' (manual__2026-01-01T00:00:00+00:00): keep paths portable.
        run = _UNSAFE.sub("_", self.run_id)
        return (
            f"{zone}/{domain}/{dataset}/ingestion_date={self.ingestion_date.isoformat()}"
            f"/run_id={run}"
        )


def _filesystem(key: RunKey) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``key``'s domain and its root's path on it (no trailing ``/``): S3
    through the domain's connection, or the local disk, owner only."""
    root = settings.lake_root(key.domain)
    if root.startswith("s3://"):
        fs: pafs.FileSystem = connections.s3_filesystem(settings.lake_conn_id(key.domain))
        return fs, root.removeprefix("s3://")
    local, base = pafs.FileSystem.from_uri(root)
    return pafs.PyFileSystem(_OwnerOnly(local)), base.rstrip("/")


@contextmanager
def _reported(key: RunKey, counted: _Counter | None = None) -> Iterator[None]:
    """The storage's errors (pyarrow raises ``OSError``) as Wharf errors naming ``key``'s
    lake root. A missing file stays ``FileNotFoundError``; an error of ``counted``'s input
    (the source's batches) passes as it is."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as err:
        if counted is not None and err is counted.error:
            raise
        raise _storage_error(err, key.domain) from err


def _storage_error(err: OSError, domain: str) -> WharfError:
    root = settings.lake_root(domain)
    text = f"lake {root}: {err}"
    if not (isinstance(err, PermissionError) or _MISCONFIGURED.search(str(err))):
        return TransientError(text)
    if root.startswith("s3://"):
        text += f" (check the bucket and the AWS connection {settings.lake_conn_id(domain)!r})"
    return TerminalError(text)


def uri(key: RunKey, zone: Zone, name: str = "") -> str:
    """Full URI of a run's folder in a zone (or of the file ``name`` in it), below its
    domain's root, for logs and the audit."""
    return f"{settings.lake_root(key.domain)}/{key.folder(zone)}" + (f"/{name}" if name else "")


def write_batches(
    key: RunKey,
    zone: Zone,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    partition_by: Sequence[str] = (),
) -> int:
    """Write record batches as Parquet into a zone, replacing whatever this run wrote there.

    Replacing makes a task retry idempotent. Small batches (a CSV block, an API page) are
    gathered into row groups of ``ROWS_PER_GROUP`` rows, so memory stays bounded and readers
    do not pay per tiny row group. ``partition_by`` columns (rAPId's ``partition_index``
    order) lay the files out in ``col=value/`` folders (Hive style, values URL-quoted, NULL as
    ``__HIVE_DEFAULT_PARTITION__``); ``read_batches`` restores them exactly. Returns the
    number of rows written (an empty input still writes one file holding the schema, so
    readers find the columns).
    """
    counted = _Counter(batches)
    with _reported(key, counted):
        fs, base = _filesystem(key)
        folder = f"{base}/{key.folder(zone)}"
        fs.delete_dir_contents(folder, missing_dir_ok=True)
        fs.create_dir(folder, recursive=True)
        if partition_by:
            _write_partitioned(fs, folder, schema, _row_groups(counted), partition_by)
            if counted.rows == 0:
                _writer(f"{folder}/part-0.parquet", schema, fs).close()
        else:
            _write_parts(fs, folder, schema, _row_groups(counted))
    return counted.rows


def _write_parts(
    fs: pafs.FileSystem, folder: str, schema: pa.Schema, groups: Iterator[pa.Table]
) -> None:
    """Row groups into ``part-N.parquet`` files of at most ``ROWS_PER_FILE`` rows."""
    part, in_file = 0, 0
    writer = _writer(f"{folder}/part-0.parquet", schema, fs)
    try:
        for group in groups:
            if in_file >= ROWS_PER_FILE:
                writer.close()
                part, in_file = part + 1, 0
                writer = _writer(f"{folder}/part-{part}.parquet", schema, fs)
            writer.write_table(group, row_group_size=group.num_rows)
            in_file += group.num_rows
    finally:
        writer.close()


class _Counter:
    """Passes batches through, counting their rows and keeping the error that ended them
    (so ``_reported`` does not take a source's ``OSError`` for the lake's)."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self.batches, self.rows = batches, 0
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self.batches:
                self.rows += batch.num_rows
                yield batch
        except BaseException as err:
            self.error = err
            raise


def _write_partitioned(
    fs: pafs.FileSystem,
    folder: str,
    schema: pa.Schema,
    groups: Iterator[pa.Table],
    partition_by: Sequence[str],
) -> None:
    import pyarrow.dataset as ds

    # One batch per gathered group: ``to_batches`` alone would hand back the small input
    # batches, and write_dataset writes a row group per batch and partition.
    batches = (batch for group in groups for batch in group.combine_chunks().to_batches())
    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema, batches),
        folder,
        filesystem=fs,
        format="parquet",
        file_options=ds.ParquetFileFormat().make_write_options(**_write_options(schema)),
        partitioning=ds.partitioning(
            pa.schema([schema.field(c) for c in partition_by]), flavor="hive"
        ),
        basename_template="part-{i}.parquet",
        max_partitions=MAX_PARTITIONS,
        max_rows_per_file=ROWS_PER_FILE,
        max_rows_per_group=ROWS_PER_GROUP,
        existing_data_behavior="overwrite_or_ignore",
        use_threads=False,
    )


class ZoneWriter:
    """Parquet written batch by batch into one run's folder of a zone (replacing it), for a
    stream produced alongside another (the rejected rows of ``validate``)."""

    def __init__(self, key: RunKey, zone: Zone, schema: pa.Schema) -> None:
        self.key = key
        with _reported(key):
            self.fs, base = _filesystem(key)
            self.folder = f"{base}/{key.folder(zone)}"
            self.fs.delete_dir_contents(self.folder, missing_dir_ok=True)
            self.fs.create_dir(self.folder, recursive=True)
            self._writer = _writer(f"{self.folder}/part-0.parquet", schema, self.fs)

    def write(self, batch: pa.RecordBatch) -> None:
        with _reported(self.key):
            self._writer.write_batch(batch)

    def close(self) -> None:
        with _reported(self.key):
            self._writer.close()


def _writer(path: str, schema: pa.Schema, fs: pafs.FileSystem) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, schema, filesystem=fs, **_write_options(schema))


def _row_groups(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= ROWS_PER_GROUP:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _part_files(fs: pafs.FileSystem, base: str, key: RunKey, zone: Zone) -> list[str]:
    """The part files of one run in one zone (partition folders included), in write order;
    raises ``FileNotFoundError``."""
    folder = f"{base}/{key.folder(zone)}"
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    files = sorted((i.path for i in infos if i.path.endswith(".parquet")), key=_write_order)
    if not files:
        raise FileNotFoundError(f"no Parquet files in {uri(key, zone)}")
    return files


def _write_order(path: str) -> tuple[str, int]:
    folder, _, name = path.rpartition("/")
    return folder, int(name.removeprefix("part-").split(".")[0])


def read_schema(key: RunKey, zone: Zone) -> pa.Schema:
    """The schema of an unpartitioned zone (landing, raw)."""
    with _reported(key):
        fs, base = _filesystem(key)
        return pq.read_schema(_part_files(fs, base, key, zone)[0], filesystem=fs)


def count_rows(key: RunKey, zone: Zone) -> int:
    """Rows of one run in one zone, from the Parquet footers (no data is read)."""
    total = 0
    with _reported(key):
        fs, base = _filesystem(key)
        for path in _part_files(fs, base, key, zone):
            with fs.open_input_file(path) as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
    return total


def read_batches(
    key: RunKey, zone: Zone, schema: pa.Schema | None = None, batch_size: int = 16_384
) -> Iterator[pa.RecordBatch]:
    """Stream a run's Parquet in record batches with flat memory.

    Partition folders (``col=value/``) give their columns back, typed as in ``schema``
    (strings without it); batches then follow ``schema``'s column order.

    ``pre_buffer=False``: pyarrow's default pre-buffers whole column chunks (peak 454 MB at
    5M rows, measured for issue #3). One decoding thread and 16,384-row batches: loading 1M
    rows x 12 columns peaked at 298 MB with threads and 65,536-row batches, 220 MB like this,
    in the same 3.4 s (``bench/load_throughput.py``).
    """
    with _reported(key):
        fs, base = _filesystem(key)
        folder = f"{base}/{key.folder(zone)}"
        files = _part_files(fs, base, key, zone)
        names = [p.split("=", 1)[0] for p in files[0][len(folder) + 1 :].split("/")[:-1]]
        if names:
            yield from _read_partitioned(fs, folder, files, names, schema, batch_size)
            return
        # ParquetFile, not pyarrow.dataset: the dataset scanner (and its import) peaked 110 MB
        # higher reading the same 1M rows.
        for path in files:
            with fs.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle, pre_buffer=False)
                for batch in parquet.iter_batches(batch_size=batch_size, use_threads=False):
                    yield batch if schema is None else batch.select(schema.names)


def _read_partitioned(
    fs: pafs.FileSystem,
    folder: str,
    files: list[str],
    names: list[str],
    schema: pa.Schema | None,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    import pyarrow.dataset as ds

    fields = [
        schema.field(n) if schema is not None and n in schema.names else pa.field(n, pa.string())
        for n in names
    ]
    dataset = ds.dataset(
        files,
        filesystem=fs,
        format=ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False)
        ),
        partitioning=ds.partitioning(pa.schema(fields), flavor="hive"),
        partition_base_dir=folder,
    )
    yield from dataset.to_batches(
        columns=schema.names if schema is not None else None,
        batch_size=batch_size,
        use_threads=False,
        batch_readahead=1,
        fragment_readahead=1,
    )


def write_text(key: RunKey, zone: Zone, name: str, text: str) -> str:
    """Write one text file (a report) into a run's folder of a zone; returns its URI."""
    with _reported(key):
        fs, base = _filesystem(key)
        folder = f"{base}/{key.folder(zone)}"
        fs.create_dir(folder, recursive=True)
        with fs.open_output_stream(f"{folder}/{name}") as out:
            out.write(text.encode("utf-8"))
    return uri(key, zone, name)


# The name of a file Wharf writes into a run's folder (a report): no folder, no dot first.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,100}")


def file_key(dataset_id: str, run_id: str, zone: Zone, file_uri: str) -> tuple[RunKey, str]:
    """The run key and file name of ``file_uri``, a file Wharf wrote into ``zone`` for this
    dataset's run ``run_id`` (as its audit row records it, ``uri(key, zone, name)``).

    Raises ``TerminalError`` naming the dataset and run (never the address) unless the address
    is exactly that of such a file below the domain's current lake root: nothing else is read,
    whatever an audit row holds."""
    domain, dataset = dataset_id.split(".", 1)
    prefix = f"{settings.lake_root(domain)}/{zone}/{domain}/{dataset}/ingestion_date="
    refused = TerminalError(
        f"{dataset_id}: the {zone} file of run {run_id} is not in this run's folder of the lake"
    )
    if not file_uri.startswith(prefix):
        raise refused
    day, _, rest = file_uri.removeprefix(prefix).partition("/")
    try:
        key = RunKey(dataset_id, date.fromisoformat(day), run_id)
    except ValueError:
        raise refused from None
    name = rest.rpartition("/")[2]
    if not _FILE_NAME.fullmatch(name) or uri(key, zone, name) != file_uri:
        raise refused
    return key, name


def read_text(key: RunKey, zone: Zone, name: str, max_bytes: int = 20_000_000) -> str:
    """The text file ``name`` (UTF-8) of a run's folder in a zone. Raises
    ``FileNotFoundError`` when it is missing and ``TerminalError`` when it is larger than
    ``max_bytes`` (a report is kilobytes)."""
    if not _FILE_NAME.fullmatch(name):
        raise TerminalError(f"{key.dataset_id}: {name[:60]!r} is not a file name of the lake")
    with _reported(key):
        fs, base = _filesystem(key)
        with fs.open_input_stream(f"{base}/{key.folder(zone)}/{name}") as handle:
            data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TerminalError(f"{key.dataset_id}: {uri(key, zone, name)} is over {max_bytes} bytes")
    return bytes(data).decode("utf-8", errors="replace")


def copy_zone(key: RunKey, source: Zone, target: Zone) -> None:
    """Copy one run's files between zones (landing -> raw keeps the history)."""
    with _reported(key):
        fs, base = _filesystem(key)
        origin, folder = f"{base}/{key.folder(source)}", f"{base}/{key.folder(target)}"
        fs.delete_dir_contents(folder, missing_dir_ok=True)
        for path in _part_files(fs, base, key, source):
            destination = f"{folder}/{path[len(origin) + 1 :]}"
            fs.create_dir(destination.rpartition("/")[0], recursive=True)
            fs.copy_file(path, destination)


def checksum(key: RunKey, zone: Zone) -> str:
    """SHA-256 over one run's part files in a zone (their paths below the run's folder and
    their bytes, in write order): what tells one landing from another."""
    import hashlib

    digest = hashlib.sha256()
    with _reported(key):
        fs, base = _filesystem(key)
        folder = f"{base}/{key.folder(zone)}"
        for path in _part_files(fs, base, key, zone):
            digest.update(path[len(folder) :].encode() + b"\0")
            with fs.open_input_stream(path) as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


# --- a local lake is its owner's alone ----------------------------------------------------------
_FOLDER_MODE, _FILE_MODE = 0o700, 0o600


class _OwnerOnly(pafs.FileSystemHandler):
    """pyarrow's local filesystem whose new folders are 0700 and files 0600, whatever the
    umask: a lake holds PROTECTED rows, rejected rows and reports. Only what creates goes
    through Python; reads, listings and deletes are the local filesystem's own (native
    files, native speed). Used as ``pafs.PyFileSystem(_OwnerOnly(local))``."""

    def __init__(self, local: pafs.FileSystem) -> None:
        self.local = local

    def create_dir(self, path: str, recursive: bool) -> None:
        missing = [path]
        while recursive and not os.path.exists(parent := os.path.dirname(missing[-1])):
            missing.append(parent)
        for folder in reversed(missing):
            _private_folder(folder)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        _private_file(path)
        return self.local.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        _private_file(path)
        return self.local.open_append_stream(path, metadata=metadata)

    def copy_file(self, src: str, dest: str) -> None:
        _private_file(dest)
        self.local.copy_file(src, dest)
        os.chmod(dest, _FILE_MODE)  # whatever way the copy made the file

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)  # a rename keeps the mode

    def get_type_name(self) -> str:
        return "wharf-owner-only-local"

    def equals(self, other: Any) -> bool:
        return isinstance(other, _OwnerOnly) and bool(self.local.equals(other.local))

    def normalize_path(self, path: str) -> str:
        return str(self.local.normalize_path(path))

    def get_file_info(self, paths: list[str]) -> Any:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> Any:
        return self.local.get_file_info(selector)

    def open_input_stream(self, path: str) -> Any:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self.local.open_input_file(path)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise PermissionError("the lake never empties the root of the disk")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)


def _private_folder(folder: str) -> None:
    """Create ``folder`` 0700; one that exists is left as it is (the operator's root)."""
    try:
        os.mkdir(folder, _FOLDER_MODE)
    except FileExistsError:
        if os.path.isdir(folder):
            return
        raise
    os.chmod(folder, _FOLDER_MODE)  # mkdir's mode passes through the umask; chmod's does not


def _private_file(path: str) -> None:
    """Create ``path`` 0600 (or make an existing file 0600) before it is written."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, _FILE_MODE)
    try:
        os.fchmod(descriptor, _FILE_MODE)
    finally:
        os.close(descriptor)
