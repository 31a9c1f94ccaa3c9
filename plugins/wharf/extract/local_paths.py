"""The local files a file source names: relative paths below ``include/reference/``, a
glob's matches in name order, each resolved (symlinks followed) and held below the allowed
roots (``WHARF_FILE_ROOTS``). The one place a file source's path meets the disk."""

from __future__ import annotations

import os
from pathlib import Path

from wharf import settings
from wharf.contract.file_source import FileSource
from wharf.errors import UnsafeSpecError


def resolved_path(source: FileSource) -> Path:
    """The local path (relative paths are under ``include/reference/``); not for s3://."""
    if source.is_s3:
        raise ValueError(f"{source.path} is an S3 URL, not a local path")
    path = Path(source.path)
    return path if path.is_absolute() else settings.reference_dir() / path


def resolved_paths(source: FileSource) -> list[Path]:
    """The local file, or the glob's matches in name order (empty if none)."""
    path = resolved_path(source)
    if not source.is_glob:
        return [path]
    anchor = Path(path.anchor)
    return sorted(
        p
        for p in anchor.glob(str(path.relative_to(anchor)))
        if p.is_file() and not source.is_completeness_file(p.name)
    )


def checked_paths(source: FileSource, prefix: str = "") -> list[Path]:
    """``resolved_paths(source)``, each resolved (symlinks followed) and checked below the
    allowed roots, and not something other than a file. Raises ``UnsafeSpecError`` naming
    the path as written (after ``prefix``) and the roots, never the file's contents."""
    checked = []
    for path in resolved_paths(source):
        real = settings.resolve_under(path, source.described(path), prefix)
        if real.exists() and not real.is_file():
            raise UnsafeSpecError(f"{prefix}{source.described(path)} is not a regular file")
        for side in source.completeness_files(path):
            if os.path.lexists(side):  # a missing one is the reader's error, not a refusal
                settings.resolve_under(side, f"completeness file {str(side)!r}", prefix)
        checked.append(path)
    return checked
