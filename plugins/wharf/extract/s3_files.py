"""A file source's ``s3://`` objects, through the Amazon provider's ``S3Hook``
(``connections.s3_hook``: the connection holds the credentials, region and endpoint), in an
allowed bucket (``WHARF_S3_BUCKETS``). Each object is downloaded, streamed, to a temporary
file, checked against the object's size and MD5, read by the same readers as a local file,
and deleted once its batches are read. A glob in the key matches keys as a local glob does
(``glob_matcher``)."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path, PurePosixPath

import pyarrow as pa

from wharf import connections, settings
from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.errors import TransientError, UnsafeSpecError
from wharf.extract import Extract, Modified
from wharf.extract.completeness import Expected, read_at_most
from wharf.extract.file_formats import open_file

# boto3's managed download buffers up to max_concurrency x multipart_chunksize in flight
# (10 x 8 MiB by default): 2,000,000 CSV rows from S3 peaked at 315 MB with the defaults.
_S3_TRANSFER = {"max_concurrency": 2, "multipart_chunksize": 8 << 20, "max_io_queue": 16}


class S3Files:
    """Objects of an ``s3://bucket/key`` URL, or of a glob in its key: the keys under the
    pattern's literal prefix that match it whole, ``*`` and ``?`` not crossing '/'."""

    def __init__(self, spec: DatasetSpec, source: FileSource):
        self.spec, self.source = spec, source
        self.where = source.path
        self.bucket, pattern = source.s3_bucket_key()
        problem = settings.s3_bucket_problem(self.bucket)
        if problem is not None:
            raise UnsafeSpecError(f"{spec.dataset_id}: source.path {problem}")
        if source.conn_id is not None:  # aws_default may be undefined: boto3's own chain
            connections.yaml_connection(source.conn_id, "file", spec.dataset_id)
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
            return read_at_most(body, limit, self.spec.dataset_id, self.side_name(index, name))

    def open(self, index: int, expected: Expected) -> Extract:
        key, name = self.keys[index], self.names[index]
        folder = Path(tempfile.mkdtemp(prefix="wharf-s3-"))
        modified = Modified()
        try:
            path = self._download(key, name, folder, modified)
            opened = open_file(
                lambda: open(path, "rb"),  # noqa: SIM115 - the reader closes it when done
                path,
                self.source,
                self.spec,
                name,
                expected,
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        batches = _deleting(opened.batches, folder)
        # Also when the batches are never read: delete the file once they are dropped.
        weakref.finalize(batches, shutil.rmtree, folder, True)
        return Extract(opened.schema, batches, opened.description, modified)

    def _download(self, key: str, name: str, folder: Path, modified: Modified) -> Path:
        """The object streamed to a file in ``folder`` (never whole in memory), named with
        the key's suffixes so the readers know it (``.xlsx``, ``.gz``), then checked against
        the object: its size against the ``ContentLength``, and its MD5 against the ETag
        when that is one (a single-part upload without KMS or customer keys). A mismatch is
        a ``TransientError``: the bytes are not the object's, and a retry downloads again.
        The object's ``LastModified`` goes to ``modified``."""
        suffix = re.sub(r"[^A-Za-z0-9.]", "", "".join(PurePosixPath(key).suffixes[-2:]))
        path = folder / f"object{suffix}"
        try:
            obj = self.hook.get_key(key, self.bucket)  # HEAD: the size and ETag to expect
            modified.seen(obj.last_modified)  # of the version downloaded (VersionId below)
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
