"""``source.completeness``: the proofs that a file source's files are whole before anything
of them is published. A marker file beside the data (the drop is finished once it exists), a
``<file>.sha256`` beside each file (``sha256sum``'s output), and a folder's JSON manifest
(each file's rows and/or sha256). Markers and manifests are checked before any data file is
opened; digests and row counts as each file's last batch is read (``verified``). Errors are
``IncompleteSourceError``s naming the files and what was expected and found, never their
contents; completeness files are read bounded (``read_at_most``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import pyarrow as pa

from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.errors import TerminalError

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
class Expected:
    """What one file must be: sha256 digests (each with the phrase naming where it was
    declared) and a row count, or nothing to check."""

    digests: list[tuple[str, str]] = field(default_factory=list)
    rows: int | None = None
    rows_from: str = ""


class Beside(Protocol):
    """A source's files with the completeness files beside each: ``names`` (each file as
    messages show it), ``folder`` (the folder a file lies in), ``base_name`` (its name in
    that folder), ``side_name`` (a file beside it, as messages show it) and ``read_side`` (at
    most ``limit`` bytes of it, none when ``limit`` is None; None when there is no such
    file)."""

    names: list[str]

    def folder(self, index: int) -> str: ...

    def base_name(self, index: int) -> str: ...

    def side_name(self, index: int, name: str) -> str: ...

    def read_side(self, index: int, name: str, limit: int | None) -> bytes | None: ...


def expectations(spec: DatasetSpec, source: FileSource, files: Beside) -> list[Expected]:
    """Each file's expectations, from the completeness files beside it; markers and
    manifests are checked here, before any data file is opened."""
    expected = [Expected() for _ in files.names]
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


def _manifest_json(raw: bytes, ds: str, where: str) -> Any:
    """The manifest parsed as JSON; ``IncompleteSourceError`` (never quoting it) if it is not."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise IncompleteSourceError(f"{ds}: {where} is not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as err:
        raise IncompleteSourceError(
            f"{ds}: {where} is not JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from None
    except (ValueError, RecursionError):
        raise IncompleteSourceError(f"{ds}: {where} is not JSON Wharf can read") from None


def _from_manifest(
    ds: str,
    source: FileSource,
    files: Beside,
    indices: list[int],
    name: str,
    expected: list[Expected],
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
    document = _manifest_json(raw, ds, where)
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


def read_at_most(handle: Any, limit: int | None, ds: str, shown: str) -> bytes:
    """A completeness file's bytes (``limit`` None: none, only that it is there)."""
    if limit is None:
        return b""
    data: bytes = handle.read(limit + 1)
    if len(data) > limit:
        raise IncompleteSourceError(
            f"{ds}: {shown!r} is larger than {limit:,} bytes, more than a completeness file holds"
        )
    return data


class Digest:
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

    def __init__(self, raw: IO[bytes], digest: Digest) -> None:
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


def verified(
    batches: Iterator[pa.RecordBatch],
    expected: Expected,
    digest: Digest | None,
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
