"""``type: file``: CSV, Parquet, xlsx or JSON-lines files (one, or a glob's matches), local or
on S3, streamed in batches.

CSV and xlsx values land as text exactly as written (``validate`` parses them to the
contract), and only the YAML's ``null_values`` become NULL, so '' and NULL stay distinct when
asked. Parquet lands with its own types. JSON lines land as text per contract column, as an
HTTP source's records do (``wharf.extract.json_records``).

An ``s3://`` object is read through the Amazon provider's ``S3Hook`` (``connections.s3_hook``:
the connection holds the credentials, region and endpoint): each object is downloaded,
streamed, to a temporary file, read by the same readers as a local file, and deleted once its
batches are read.

The threat model's file rule holds here again, whatever ``wharf check`` saw: a local file is
resolved (symlinks followed) and checked below the allowed roots right before it is opened,
each match of a glob in turn; it is opened without following a symlink, must be a regular
file, and the path of the opened descriptor is checked once more, so a symlink swapped in
between the check and the open is refused too. An ``s3://`` bucket must be allowed
(``WHARF_S3_BUCKETS``). Errors name the file and line, never a line's contents.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import weakref
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv

from wharf import connections, settings
from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.errors import TerminalError, TransientError, UnsafeSpecError
from wharf.extract import Extract, Window, local_paths

Opener = Callable[[], IO[bytes]]

# pyarrow reads CSV in blocks of this many bytes; rows per batch follow from it. 1 MiB blocks
# read 1M rows x 12 columns in 0.48 s at 164 MB peak RSS; 8 MiB blocks in 0.86 s at 284 MB.
_BLOCK_BYTES = 1 << 20
# boto3's managed download buffers up to max_concurrency x multipart_chunksize in flight
# (10 x 8 MiB by default): 2,000,000 CSV rows from S3 peaked at 315 MB with the defaults.
_S3_TRANSFER = {"max_concurrency": 2, "multipart_chunksize": 8 << 20, "max_io_queue": 16}


def extract(spec: DatasetSpec, window: Window) -> Extract:
    """Open the file, or every file a glob matches, in name order (whatever the window).

    Raises ``FileNotFoundError`` naming the path, pattern or S3 URL; a later file whose
    columns differ from the first's fails the extract naming both. With
    ``source.completeness``, markers and manifests are checked before any file is opened,
    and each file's digest and row count once its last batch is read
    (``IncompleteSourceError``).
    """
    source = spec.source
    assert isinstance(source, FileSource)
    files: _Files = _S3Files(spec, source) if source.is_s3 else _LocalFiles(spec, source)
    names = files.names
    if not names:
        raise FileNotFoundError(f"{spec.dataset_id}: no source file matches {files.where}")
    expected = _expectations(spec, source, files)
    first = files.open(0, expected[0])
    if len(names) == 1:
        return first

    def batches() -> Iterator[pa.RecordBatch]:
        yield from first.batches
        for index in range(1, len(names)):
            opened = files.open(index, expected[index])
            if opened.schema.names != first.schema.names:
                raise ValueError(
                    f"{spec.dataset_id}: {names[index]} has columns "
                    f"{', '.join(opened.schema.names)}; {names[0]} has "
                    f"{', '.join(first.schema.names)}"
                )
            yield from (b.cast(first.schema) for b in opened.batches)

    return Extract(first.schema, batches(), f"{len(names)} files {files.where}")


class _Files(Protocol):
    """The files a source reads: the path or pattern (``where``), each file's name as
    messages show it, and a reader of each; and the completeness files beside each file:
    ``folder`` (the folder a file lies in), ``side_name`` (a file beside it, as messages
    show it) and ``read_side`` (at most ``limit`` bytes of it, none when ``limit`` is None;
    None when there is no such file)."""

    where: str
    names: list[str]

    def open(self, index: int, expected: _Expected) -> Extract: ...

    def folder(self, index: int) -> str: ...

    def base_name(self, index: int) -> str: ...

    def side_name(self, index: int, name: str) -> str: ...

    def read_side(self, index: int, name: str, limit: int | None) -> bytes | None: ...


class _LocalFiles:
    def __init__(self, spec: DatasetSpec, source: FileSource):
        self.spec, self.source = spec, source
        self.where = str(local_paths.resolved_path(source))
        self.prefix = f"{spec.dataset_id}: source.path "
        # Checked before anything is said about existence: no oracle for files outside.
        self.paths = local_paths.checked_paths(source, self.prefix)
        if len(self.paths) == 1 and not self.paths[0].is_file():
            raise FileNotFoundError(f"{spec.dataset_id}: no source file {self.where}")
        self.names = [str(p) for p in self.paths]

    def open(self, index: int, expected: _Expected) -> Extract:
        path = self.paths[index]
        described = self.source.described(path)
        return _open(
            lambda: open_below(path, described, self.prefix),
            path,
            self.source,
            self.spec,
            self.names[index],
            expected,
        )

    def folder(self, index: int) -> str:
        return str(self.paths[index].parent)

    def base_name(self, index: int) -> str:
        return self.paths[index].name

    def side_name(self, index: int, name: str) -> str:
        return str(self.paths[index].parent / name)

    def read_side(self, index: int, name: str, limit: int | None) -> bytes | None:
        """Opened as the data is (``open_below``: below the allowed roots, no symlink out,
        a regular file), so a completeness file is no way to read elsewhere."""
        side = self.paths[index].parent / name
        described = f"completeness file {str(side)!r}"
        try:
            with open_below(side, described, self.prefix) as handle:
                return _read_at_most(handle, limit, self.spec.dataset_id, str(side))
        except FileNotFoundError:
            return None


def open_below(path: Path, described: str, prefix: str = "") -> IO[bytes]:
    """``path`` opened for reading if it is a regular file below the allowed roots, checked
    right before the open (symlinks followed) and again on the opened descriptor (Linux:
    ``/proc/self/fd``), so nothing swapped in between is read. Raises ``UnsafeSpecError``
    naming ``described`` (the path as the YAML writes it), never the file's contents."""
    real = settings.resolve_under(path, described, prefix)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)  # O_NONBLOCK: a FIFO must not hang the open
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeSpecError(f"{prefix}{described} became a symlink while opened") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeSpecError(f"{prefix}{described} is not a regular file")
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # no procfs (not Linux): the check before the open stands
            opened = real
        if not settings.below_real_roots(opened, settings.real_roots()):
            raise UnsafeSpecError(
                f"{prefix}{described} changed while opened: it is now outside the allowed "
                f"file roots ({settings.roots_text()})"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _S3Files:
    """Objects of an ``s3://bucket/key`` URL, or of a glob in its key: the keys under the
    pattern's literal prefix that match it whole, ``*`` and ``?`` not crossing '/'."""

    def __init__(self, spec: DatasetSpec, source: FileSource):
        self.spec, self.source = spec, source
        self.where = source.path
        self.bucket, pattern = source.s3_bucket_key()
        problem = settings.s3_bucket_problem(self.bucket)
        if problem is not None:
            raise UnsafeSpecError(f"{spec.dataset_id}: source.path {problem}")
        self.hook = connections.s3_hook(source.aws_conn_id, transfer_config_args=_S3_TRANSFER)
        if source.is_glob:
            self.keys = self._matching(pattern)
        else:
            self.keys = [pattern]
        self.names = [f"s3://{self.bucket}/{key}" for key in self.keys]

    def _matching(self, pattern: str) -> list[str]:
        prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        try:
            listed = self.hook.list_keys(bucket_name=self.bucket, prefix=prefix)
        except Exception as err:
            if _not_found(err):
                raise FileNotFoundError(
                    f"{self.spec.dataset_id}: no source file matches {self.source.path} "
                    f"(no bucket {self.bucket!r})"
                ) from None
            raise
        matches = glob_matcher(pattern)
        return sorted(
            key
            for key in listed
            if matches(key) and not self.source.is_completeness_file(PurePosixPath(key).name)
        )

    def folder(self, index: int) -> str:
        return self.keys[index].rpartition("/")[0]

    def base_name(self, index: int) -> str:
        return self.keys[index].rpartition("/")[2]

    def _side_key(self, index: int, name: str) -> str:
        folder = self.folder(index)
        return f"{folder}/{name}" if folder else name

    def side_name(self, index: int, name: str) -> str:
        return f"s3://{self.bucket}/{self._side_key(index, name)}"

    def read_side(self, index: int, name: str, limit: int | None) -> bytes | None:
        """The object beside the data (the same bucket, so the same allow-list)."""
        key, client = self._side_key(index, name), self.hook.get_conn()
        try:
            if limit is None:  # only whether it is there
                client.head_object(Bucket=self.bucket, Key=key)
                return b""
            body = client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as err:
            if _not_found(err):
                return None
            raise
        with closing(body):
            return _read_at_most(body, limit, self.spec.dataset_id, self.side_name(index, name))

    def open(self, index: int, expected: _Expected) -> Extract:
        key, name = self.keys[index], self.names[index]
        folder = Path(tempfile.mkdtemp(prefix="wharf-s3-"))
        try:
            path = self._download(key, name, folder)
            opened = _open(lambda: open(path, "rb"), path, self.source, self.spec, name, expected)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        batches = _deleting(opened.batches, folder)
        # Also when the batches are never read: delete the file once they are dropped.
        weakref.finalize(batches, shutil.rmtree, folder, True)
        return Extract(opened.schema, batches, opened.description)

    def _download(self, key: str, name: str, folder: Path) -> Path:
        """The object streamed to a file in ``folder`` (never whole in memory), named with
        the key's suffixes so the readers know it (``.xlsx``, ``.gz``), then checked against
        the object: its size against the ``ContentLength``, and its MD5 against the ETag
        when that is one (a single-part upload without KMS or customer keys). A mismatch is
        a ``TransientError``: the bytes are not the object's, and a retry downloads again."""
        suffix = re.sub(r"[^A-Za-z0-9.]", "", "".join(PurePosixPath(key).suffixes[-2:]))
        path = folder / f"object{suffix}"
        try:
            obj = self.hook.get_key(key, self.bucket)  # HEAD: the size and ETag to expect
            extra = dict(self.hook.extra_args)
            if getattr(self.hook, "_requester_pays", False):
                extra["RequestPayer"] = "requester"
            if obj.version_id and obj.version_id != "null":
                extra["VersionId"] = obj.version_id  # the very version HEAD described
            with open(path, "wb") as file:
                obj.download_fileobj(file, ExtraArgs=extra, Config=self.hook.transfer_config)
        except Exception as err:
            if _not_found(err):
                raise FileNotFoundError(f"{self.spec.dataset_id}: no source file {name}") from None
            raise
        size = path.stat().st_size
        prefix = f"{self.spec.dataset_id}: {name}: "
        if size != obj.content_length:
            raise TransientError(
                f"{prefix}the download has {size:,} bytes, the object {obj.content_length:,} "
                "(its ContentLength): the download was cut short or the object changed while "
                "it was downloaded; nothing of it was read"
            )
        etag = str(obj.e_tag or "").strip('"')
        keyed = obj.server_side_encryption == "aws:kms" or obj.sse_customer_algorithm
        if re.fullmatch(r"[0-9a-f]{32}", etag) and not keyed:
            with open(path, "rb") as handle:
                md5 = hashlib.file_digest(handle, "md5").hexdigest()
            if md5 != etag:
                raise TransientError(
                    f"{prefix}the download's MD5 is {md5}, the object's ETag {etag}: the bytes "
                    "changed on the way or the object changed while it was downloaded; nothing "
                    "of it was read"
                )
        return path


# --- completeness (source.completeness) -----------------------------------------------------
# A checksum file holds one digest; a manifest lists a folder's files: both are bounded.
_CHECKSUM_BYTES = 4_096
_MANIFEST_BYTES = 16 << 20
_HASH_CHUNK = 1 << 20


class IncompleteSourceError(TerminalError):
    """A file source's completeness proof is missing or does not match the data: a marker
    not there, a checksum or manifest that disagrees with the bytes or rows read. Terminal:
    the producer must finish (or fix) the drop; the message says what was expected and found
    (digests and counts, never the file's contents)."""


@dataclass
class _Expected:
    """What one file must be: sha256 digests (each with the phrase naming where it was
    declared) and a row count, or nothing to check."""

    digests: list[tuple[str, str]] = field(default_factory=list)
    rows: int | None = None
    rows_from: str = ""


def _expectations(spec: DatasetSpec, source: FileSource, files: _Files) -> list[_Expected]:
    """Each file's expectations, from the completeness files beside it; markers and
    manifests are checked here, before any data file is opened."""
    expected = [_Expected() for _ in files.names]
    c = source.completeness
    if c is None:
        return expected
    ds = spec.dataset_id
    folders: dict[str, list[int]] = {}
    for index in range(len(files.names)):
        folders.setdefault(files.folder(index), []).append(index)
    for indices in folders.values():
        first = indices[0]
        if c.marker is not None and files.read_side(first, c.marker, None) is None:
            raise IncompleteSourceError(
                f"{ds}: no marker file {files.side_name(first, c.marker)!r}: "
                "completeness.marker says the files beside it are complete only once it exists "
                "(they may still be being written); nothing was read"
            )
        if c.manifest is not None:
            _from_manifest(ds, source, files, indices, c.manifest, expected)
    if c.checksum is not None:
        for index in range(len(files.names)):
            side = f"{files.base_name(index)}.{c.checksum}"
            shown = files.side_name(index, side)
            text = files.read_side(index, side, _CHECKSUM_BYTES)
            if text is None:
                raise IncompleteSourceError(
                    f"{ds}: no checksum file {shown!r}: completeness.checksum says each file has "
                    "its sha256 beside it (as sha256sum writes it); nothing was read"
                )
            digest = _digest_in(text, shown, ds)
            expected[index].digests.append((digest, f"its checksum file {shown!r}"))
    return expected


def _digest_in(text: bytes, shown: str, ds: str) -> str:
    """The digest a ``.sha256`` file holds: the first word of its first line (``sha256sum``
    writes ``<digest>  <name>``; a bare digest will do)."""
    try:
        words = text.decode("ascii").split()
    except UnicodeDecodeError:
        words = []
    first = words[0].removeprefix("\\") if words else ""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", first):
        raise IncompleteSourceError(
            f"{ds}: {shown!r} is not a sha256 checksum file (expected 64 hex digits, as "
            "sha256sum writes them, first on its first line)"
        )
    return first.lower()


def _from_manifest(
    ds: str,
    source: FileSource,
    files: _Files,
    indices: list[int],
    name: str,
    expected: list[_Expected],
) -> None:
    """The rows and digests the folder's manifest lists for each of its files read; with a
    glob, every file it lists that the pattern matches must be there too."""
    shown = files.side_name(indices[0], name)
    where = f"the manifest {shown!r}"
    raw = files.read_side(indices[0], name, _MANIFEST_BYTES)
    if raw is None:
        raise IncompleteSourceError(
            f"{ds}: no manifest file {shown!r}: completeness.manifest says the files beside it "
            "are listed in it; nothing was read"
        )
    try:
        document = json.loads(raw)
    except UnicodeDecodeError:
        raise IncompleteSourceError(f"{ds}: {where} is not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as err:
        raise IncompleteSourceError(
            f"{ds}: {where} is not JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from None
    except (ValueError, RecursionError):
        raise IncompleteSourceError(f"{ds}: {where} is not JSON Wharf can read") from None
    listed = document.get("files") if isinstance(document, dict) else None
    shape = '{"files": {"<file name>": {"rows": <data rows>, "sha256": "<hex digest>"}}}'
    if not isinstance(listed, dict):
        raise IncompleteSourceError(f'{ds}: {where} has no "files" object (expected {shape})')
    present = set()
    for index in indices:
        base = files.base_name(index)
        present.add(base)
        entry = listed.get(base)
        if entry is None:
            raise IncompleteSourceError(
                f"{ds}: {where} does not list {files.names[index]!r}: completeness.manifest "
                "says it lists each file read; nothing was read"
            )
        rows = entry.get("rows") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        rows_ok = rows is None or (type(rows) is int and rows >= 0)
        digest_ok = digest is None or (
            isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest) is not None
        )
        if (rows is None and digest is None) or not rows_ok or not digest_ok:
            raise IncompleteSourceError(
                f'{ds}: {where}\'s entry for {files.names[index]!r} needs "rows" (a whole '
                f'number) and/or "sha256" (64 hex digits): expected {shape}'
            )
        if rows is not None:
            expected[index].rows, expected[index].rows_from = rows, where
        if digest is not None:
            expected[index].digests.append((digest.lower(), where))
    if source.is_glob:
        pattern = source.path.rpartition("/")[2]
        missing = [
            n
            for n in listed
            if isinstance(n, str)
            and "/" not in n
            and fnmatch.fnmatchcase(n, pattern)
            and n not in present
            and not source.is_completeness_file(n)
        ]
        if missing:  # not named: a manifest's entries are its contents
            many = len(missing) > 1
            raise IncompleteSourceError(
                f"{ds}: {where} lists {len(missing)} file{'s' if many else ''} matching the "
                f"path that {'are' if many else 'is'} not there ({len(listed)} listed, "
                f"{len(present)} found): the drop is incomplete; nothing was read"
            )


def _read_at_most(handle: Any, limit: int | None, ds: str, shown: str) -> bytes:
    """A completeness file's bytes (``limit`` None: none, only that it is there)."""
    if limit is None:
        return b""
    data: bytes = handle.read(limit + 1)
    if len(data) > limit:
        raise IncompleteSourceError(
            f"{ds}: {shown!r} is larger than {limit:,} bytes, more than a completeness file holds"
        )
    return data


class _Digest:
    """The sha256 of a file's bytes: of those a reader reads (``reading``), the rest read to
    the end by ``finish``; or of the whole file first (``whole``), for readers that seek."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.raw: IO[bytes] | None = None

    def update(self, data: bytes | memoryview) -> None:
        self.hash.update(data)
        self.size += len(data)

    def reading(self, raw: IO[bytes]) -> IO[bytes]:
        """``raw`` as a buffered file that hashes what is read from it; closing it leaves
        ``raw`` open for ``finish``."""
        self.raw = raw
        return io.BufferedReader(_Hashing(raw, self), buffer_size=_HASH_CHUNK)

    def whole(self, handle: IO[bytes]) -> None:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            self.update(chunk)
        handle.seek(0)

    def finish(self) -> str:
        """The digest of every byte of the file (what the reader left unread included)."""
        if self.raw is not None:
            for chunk in iter(lambda: self.raw.read(_HASH_CHUNK), b""):  # type: ignore[union-attr]
                self.update(chunk)
        self.close()
        return self.hash.hexdigest()

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()


class _Hashing(io.RawIOBase):
    """A raw stream over ``raw`` feeding each byte read to ``digest``."""

    def __init__(self, raw: IO[bytes], digest: _Digest) -> None:
        self._raw, self._digest, self._position = raw, digest, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count: int = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self._digest.update(memoryview(buffer)[:count])
            self._position += count
        return count

    def tell(self) -> int:
        return self._position


def _verified(
    batches: Iterator[pa.RecordBatch],
    expected: _Expected,
    digest: _Digest | None,
    ds: str,
    name: str,
) -> Iterator[pa.RecordBatch]:
    """``batches``, then, once the file is read, its digest and row count checked against
    ``expected``: a mismatch fails the extract, so nothing of the run is published."""
    rows = 0
    try:
        for batch in batches:
            rows += batch.num_rows
            yield batch
        found = digest.finish() if digest is not None else ""
    finally:
        if digest is not None:
            digest.close()
    for want, where in expected.digests:
        if found != want:
            assert digest is not None
            raise IncompleteSourceError(
                f"{ds}: source file {name!r} does not match {where}: expected sha256 {want}, "
                f"found {found} over {digest.size:,} bytes read: the file is incomplete or "
                "changed; the run publishes nothing"
            )
    if expected.rows is not None and rows != expected.rows:
        raise IncompleteSourceError(
            f"{ds}: source file {name!r} does not match {expected.rows_from}: expected "
            f"{expected.rows:,} rows, found {rows:,}: the file is incomplete or changed; the run "
            "publishes nothing"
        )


def _not_found(err: Exception) -> bool:
    """Whether an S3 error says the object or bucket does not exist."""
    from airflow.exceptions import AirflowNotFoundException
    from botocore.exceptions import ClientError

    if isinstance(err, AirflowNotFoundException):
        return True
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code"))
        return code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound")
    return False


def _deleting(batches: Iterator[pa.RecordBatch], folder: Path) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a '/'-separated key matches ``pattern`` whole, segment by segment (fnmatch's
    ``*``, ``?`` and ``[...]`` within a segment, so ``*`` never crosses '/', as a local glob)."""
    parts = [re.compile(fnmatch.translate(part)) for part in pattern.split("/")]

    def matches(key: str) -> bool:
        segments = key.split("/")
        return len(segments) == len(parts) and all(
            part.match(segment) for part, segment in zip(parts, segments, strict=True)
        )

    return matches


def _open(
    opener: Opener,
    path: Path,
    source: FileSource,
    spec: DatasetSpec,
    name: str,
    expected: _Expected,
) -> Extract:
    """The reader of ``source.format`` over the file ``opener`` opens (``path`` gives its
    suffixes; ``name`` is what messages call it), verified against ``expected``: CSV and
    JSON lines are hashed as they are read (the bytes parsed are the bytes hashed), Parquet
    and xlsx, read at random, by a pass over the same open file before they are read."""
    digest = _Digest() if expected.digests else None
    main = opener if digest is None else lambda: digest.reading(opener())
    try:
        opened = _read(opener, main, path, source, spec, name, digest)
    except BaseException:
        if digest is not None:
            digest.close()
        raise
    if expected.digests or expected.rows is not None:
        batches = _verified(opened.batches, expected, digest, spec.dataset_id, name)
        return Extract(opened.schema, batches, opened.description)
    return opened


def _read(
    opener: Opener,
    main: Opener,
    path: Path,
    source: FileSource,
    spec: DatasetSpec,
    name: str,
    digest: _Digest | None,
) -> Extract:
    """The format's reader: ``opener`` opens the file, ``main`` opens it for the rows (the
    digest's reading, when there is one)."""
    if source.format == "csv":
        opened = _csv(opener, source, name, main)
    elif source.format == "jsonl":
        opened = _jsonl(main, path, source, spec, name)
    else:
        handle = opener()
        try:
            if digest is not None:
                digest.whole(handle)
            if source.format == "parquet":
                opened = _parquet(handle, source, name)
            else:
                opened = read_xlsx(
                    handle, source.sheet, source.null_values, source.batch_size, name=name
                )
        except BaseException:
            handle.close()
            raise
        opened = Extract(opened.schema, _closing(opened.batches, handle), opened.description)
    return opened


def _closing(batches: Iterator[pa.RecordBatch], handle: IO[bytes]) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    finally:
        handle.close()


def _jsonl(opener: Opener, path: Path, source: FileSource, spec: DatasetSpec, name: str) -> Extract:
    """One JSON object per line (blank lines skipped; gzip when the name ends in ``.gz``),
    read line by line into batches of ``batch_size`` records. Lines are split on ``\n``
    before decoding, so an error names its exact line (``encoding`` must keep ``\n`` one
    byte, as UTF-8, which JSON lines use, and Latin-1 do)."""
    import gzip
    import zlib

    from wharf.extract.json_records import RecordBatcher

    batcher = RecordBatcher(spec, source.column_paths, source.batch_size)

    def records() -> Iterator[Any]:
        number = 0
        with opener() as file:
            handle: Any = gzip.GzipFile(fileobj=file) if path.name.endswith(".gz") else file
            try:
                for number, raw in enumerate(handle, 1):
                    try:
                        line = raw.decode(source.encoding)
                    except UnicodeDecodeError as err:
                        raise ValueError(
                            f"{name}, line {number}: not {source.encoding} text ({err.reason} "
                            f"at byte {err.start + 1})"
                        ) from None
                    if line.strip():
                        yield _json_object(line, name, number)
            except (gzip.BadGzipFile, EOFError, zlib.error) as err:
                # gzip's own message quotes the file's first bytes: say what, not those.
                raise ValueError(
                    f"{name}, after line {number}: not a gzip file, or a truncated one "
                    f"({type(err).__name__})"
                ) from None

    def batches() -> Iterator[pa.RecordBatch]:
        yield from batcher.add(records())
        yield from batcher.flush()

    return Extract(batcher.schema, batches(), f"JSON-lines file {name}")


def _json_object(line: str, name: str, number: int) -> Any:
    """The line's JSON object. An error names the line and the problem, never the line's
    text (a file can hold a secret on a line that is not JSON)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{name}, line {number}: not valid JSON ({err.msg} at column {err.pos + 1})"
        ) from None
    except RecursionError:
        raise ValueError(f"{name}, line {number}: JSON nested too deep") from None
    if not isinstance(record, dict):
        raise ValueError(
            f"{name}, line {number}: expected a JSON object, found {type(record).__name__}"
        )
    return record


def _csv(opener: Opener, source: FileSource, name: str, main: Opener | None = None) -> Extract:
    """``opener`` reads the header (and the line of an error); ``main`` (default
    ``opener``) the rows."""
    parse = pacsv.ParseOptions(
        delimiter=source.delimiter,
        quote_char=source.quotechar,
        escape_char=source.escapechar or False,
        double_quote=source.doublequote,
    )

    def read(block_size: int) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(
            block_size=block_size, encoding=source.encoding, skip_rows=source.skip_rows
        )

    handle = None
    try:
        with opener() as first:
            header = pacsv.open_csv(first, read_options=read(1 << 16), parse_options=parse)
        handle = (main or opener)()
        reader = pacsv.open_csv(
            handle,
            read_options=read(_BLOCK_BYTES),
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header.schema.names},
                null_values=list(source.null_values),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as err:
        if handle is not None:
            handle.close()
        raise _malformed(opener, source, err, name) from None
    except BaseException:
        if handle is not None:
            handle.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        with handle, reader:
            try:
                yield from reader
            except pa.ArrowInvalid as err:
                raise _malformed(opener, source, err, name) from None

    return Extract(reader.schema, batches(), f"CSV file {name}")


# pyarrow's CSV errors that quote nothing of the file (others quote the row: see _malformed).
_ARROW_CSV_SAFE = re.compile(
    r"(CSV parse error: )?(Row #\d+: )?Expected \d+ columns, got \d+"
    r"|(CSV parse error: )?Empty CSV file( or block: cannot infer number of columns)?"
    r"|straddling object straddles two block boundaries"
    r"|(In CSV column #\d+: )?(Row #\d+: )?CSV conversion error to string: invalid UTF8 data"
)


def _malformed(opener: Opener, source: FileSource, err: pa.ArrowInvalid, name: str) -> Exception:
    """pyarrow's parse error with the line it happened on: pyarrow does not know the line
    when reading in blocks, so the file is scanned again (on this error path only). The
    message names the line and the problem, never the row's text (pyarrow's own quotes it)."""
    import csv
    import io

    try:
        with (
            opener() as raw,
            io.TextIOWrapper(raw, newline="", encoding=source.encoding, errors="replace") as handle,
        ):
            for _ in range(source.skip_rows):
                handle.readline()
            rows = csv.reader(
                handle,
                delimiter=source.delimiter,
                quotechar=source.quotechar,
                escapechar=source.escapechar,
                doublequote=source.doublequote,
            )
            width = len(next(rows, []))
            for row in rows:
                if len(row) != width:
                    line = rows.line_num + source.skip_rows
                    return ValueError(
                        f"{name}, line {line}: expected {width} fields, found {len(row)}: the "
                        "file is truncated or the row is malformed"
                    )
    except csv.Error as scan:
        return ValueError(f"{name}: not CSV that Wharf can read ({scan})")
    first = str(err).splitlines()[0] if str(err).strip() else ""
    safe = _ARROW_CSV_SAFE.match(first)  # from the start; what follows may quote the row
    said = safe.group(0) if safe else "pyarrow could not parse it"
    return ValueError(f"{name}: malformed CSV ({said})")


def _parquet(handle: IO[bytes], source: FileSource, name: str) -> Extract:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(handle, pre_buffer=False)

    def batches() -> Iterator[pa.RecordBatch]:
        with parquet:
            yield from parquet.iter_batches(batch_size=source.batch_size, use_threads=False)

    return Extract(parquet.schema_arrow, batches(), f"Parquet file {name}")


def read_xlsx(
    path: Path | IO[bytes],
    sheet_name: str | None,
    null_values: tuple[str, ...],
    batch_size: int,
    name: str | None = None,
) -> Extract:
    """A sheet (the first by default) streamed by openpyxl in read-only mode: its first row
    is the header; cells land as text, dates as ISO 8601: a cell whose number format shows a
    date only (``yyyy-mm-dd``, ``d-mmm-yy``) as the date (``2000-01-01``, which a ``date``
    column reads), one that shows a time too as the datetime (``2000-01-01T12:30:00``). Raises
    ``KeyError`` naming a missing sheet. ``path`` is a file name or an open binary file (left
    open); ``name`` is what messages call the file (default: ``path``)."""
    from datetime import datetime

    import openpyxl
    from openpyxl.styles.numbers import is_datetime

    date_only: dict[str, bool] = {}  # number format -> shows a date and no time

    def value_of(cell: Any) -> object:
        value = cell.value
        if isinstance(value, datetime):  # an Excel date: a date when its format shows no time
            shown = cell.number_format
            if shown not in date_only:
                date_only[shown] = is_datetime(shown) == "date"
            if date_only[shown]:
                return value.date()
        return value

    name = name or str(path)
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    if sheet_name is not None and sheet_name not in book.sheetnames:
        book.close()
        raise KeyError(f"{name} has no sheet {sheet_name!r} (sheets: {', '.join(book.sheetnames)})")
    sheet = book[sheet_name] if sheet_name else book.worksheets[0]
    rows = (tuple(value_of(cell) for cell in row) for row in sheet.iter_rows())
    header = [str(h) if h is not None else "" for h in next(rows, ())]
    schema = pa.schema([pa.field(name, pa.string()) for name in header])
    nulls = set(null_values)

    def text(value: object) -> str | None:
        if value is None:
            return None
        shown = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return None if shown in nulls else shown

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            chunk: list[tuple[object, ...]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= batch_size:
                    yield _text_batch(chunk, schema, text)
                    chunk = []
            if chunk:
                yield _text_batch(chunk, schema, text)
        finally:
            book.close()

    return Extract(schema, batches(), f"xlsx file {name}, sheet {sheet.title!r}")


def _text_batch(
    rows: list[tuple[object, ...]], schema: pa.Schema, text: Callable[[object], str | None]
) -> pa.RecordBatch:
    columns = [
        pa.array([text(row[i]) if i < len(row) else None for row in rows], pa.string())
        for i in range(len(schema))
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
