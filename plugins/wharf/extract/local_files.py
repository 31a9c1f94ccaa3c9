"""A file source's local files: each opened only below the allowed roots, without following
a symlink, and only if it is a regular file (``open_below``), checked right before the open
and again on the opened descriptor, so a symlink swapped in after ``wharf check`` (or after
the check before the open) is refused too."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.errors import UnsafeSpecError
from wharf.extract import Extract, Modified, local_paths
from wharf.extract.completeness import Expected, read_at_most
from wharf.extract.file_formats import open_file


class LocalFiles:
    """The local file, or a glob's matches in name order, that a source names, each
    opened through ``open_below``; the completeness files beside them likewise."""

    def __init__(self, spec: DatasetSpec, source: FileSource):
        self.spec, self.source = spec, source
        self.where = str(local_paths.resolved_path(source))
        self.prefix = f"{spec.dataset_id}: source.path "
        # Checked before anything is said about existence: no oracle for files outside.
        self.paths = local_paths.checked_paths(source, self.prefix)
        if len(self.paths) == 1 and not self.paths[0].is_file():
            raise FileNotFoundError(f"{spec.dataset_id}: no source file {self.where}")
        self.names = [str(p) for p in self.paths]

    def open(self, index: int, expected: Expected) -> Extract:
        path = self.paths[index]
        described = self.source.described(path)
        modified = Modified()

        def opener() -> IO[bytes]:
            handle = open_below(path, described, self.prefix)
            # The mtime of the very file read (its descriptor), not of a path looked up again.
            modified.seen(datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, UTC))
            return handle

        opened = open_file(opener, path, self.source, self.spec, self.names[index], expected)
        return replace(opened, modified=modified)

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
                return read_at_most(handle, limit, self.spec.dataset_id, str(side))
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
