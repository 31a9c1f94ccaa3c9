"""Where Wharf finds its project folders, its lake and its datasets database.

Every location can be overridden by an environment variable so the same code runs in the
embedded demo, in tests and in production:

- ``WHARF_HOME``: the project root (default: two folders above this package).
- ``WHARF_SCHEMAS_DIR``: dataset YAML (default ``<home>/include/schemas``).
- ``WHARF_LAKE_ROOT``: ``file:///...`` or ``s3://bucket/prefix`` (default ``<home>/.wharf/lake``).
- ``WHARF_LAKE_CONN_ID``: the Airflow AWS connection of an ``s3://`` lake (default
  ``aws_default``).
- ``WHARF_DATASETS_CONN_ID``: the Airflow connection of the datasets PostgreSQL database
  (default ``wharf_datasets``): tasks log in through it as the loader role.
- ``WHARF_DATASETS_ADMIN_CONN_ID``: the connection ``wharf db upgrade`` and ``wharf access
  apply`` use, as an admin who may create roles (default ``wharf_datasets_admin``; when it is
  not defined, the ``wharf_datasets`` connection).
- ``WHARF_ROLE_PREFIX``: the prefix of Wharf's PostgreSQL roles (default ``wharf``), so several
  deployments can share a server (README, "Access control").
- ``WHARF_FILE_ROOTS``: folders (absolute, ``os.pathsep``-separated) a ``file`` source may read
  below besides ``include/reference/``, which is always allowed. ``/proc``, ``/sys`` and
  ``/dev`` never are: a root that is, lies in or holds one of them (``/``) is ignored.
- ``WHARF_S3_BUCKETS``: comma-separated buckets an ``s3://`` file source may read (default
  none: every ``s3://`` source is refused until an operator lists its bucket).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path, PurePath

from wharf.errors import UnsafeSpecError

log = logging.getLogger(__name__)

DATASETS_CONN_ID_DEFAULT = "wharf_datasets"
DATASETS_ADMIN_CONN_ID_DEFAULT = "wharf_datasets_admin"
ROLE_PREFIX_DEFAULT = "wharf"
LAKE_CONN_ID_DEFAULT = "aws_default"


def project_home() -> Path:
    """The project root: ``WHARF_HOME`` or the folder holding ``plugins/``."""
    return Path(os.environ.get("WHARF_HOME") or Path(__file__).resolve().parents[2])


def schemas_dir() -> Path:
    """Folder of dataset YAML files, one sub-folder per domain."""
    return Path(os.environ.get("WHARF_SCHEMAS_DIR") or project_home() / "include" / "schemas")


def sql_dir() -> Path:
    """Folder of data-cut SQL files and Wharf's own DDL."""
    return project_home() / "include" / "sql"


def reference_dir() -> Path:
    """Folder of reference data files versioned with the code."""
    return project_home() / "include" / "reference"


def state_dir() -> Path:
    """Wharf's local working folder (embedded database, lake, Airflow home): ``<home>/.wharf``."""
    return project_home() / ".wharf"


def lake_root() -> str:
    """Root URI of the lake: ``WHARF_LAKE_ROOT`` or a local folder under ``.wharf/lake``."""
    return os.environ.get("WHARF_LAKE_ROOT") or (state_dir() / "lake").as_uri()


def lake_conn_id() -> str:
    """Airflow AWS connection id through which an ``s3://`` lake root is reached."""
    return os.environ.get("WHARF_LAKE_CONN_ID") or LAKE_CONN_ID_DEFAULT


def datasets_conn_id() -> str:
    """Airflow connection id of the datasets PostgreSQL database."""
    return os.environ.get("WHARF_DATASETS_CONN_ID", DATASETS_CONN_ID_DEFAULT)


def datasets_admin_conn_id() -> str:
    """Airflow connection id of an admin of the datasets database (creates roles)."""
    return os.environ.get("WHARF_DATASETS_ADMIN_CONN_ID", DATASETS_ADMIN_CONN_ID_DEFAULT)


def role_prefix() -> str:
    """The prefix of Wharf's PostgreSQL role names (``wharf.contract.roles``)."""
    return os.environ.get("WHARF_ROLE_PREFIX") or ROLE_PREFIX_DEFAULT


# --- where a file source may read (README, "Threat model") ----------------------------------
# Never read, whatever an operator allows: process state, kernel state and devices.
FORBIDDEN_ROOTS = (PurePath("/proc"), PurePath("/sys"), PurePath("/dev"))


def forbidden_root(path: PurePath) -> PurePath | None:
    """The one of ``/proc``, ``/sys``, ``/dev`` that ``path`` lies below (or is), else None."""
    return next((f for f in FORBIDDEN_ROOTS if path.is_relative_to(f)), None)


def _holds_forbidden(root: PurePath) -> bool:
    return forbidden_root(root) is not None or any(f.is_relative_to(root) for f in FORBIDDEN_ROOTS)


def file_roots() -> tuple[Path, ...]:
    """The folders a local ``file`` source may read below, as written (normalised, not
    resolved): ``include/reference/`` first, then each usable ``WHARF_FILE_ROOTS`` entry."""
    reference = Path(os.path.normpath(os.path.abspath(reference_dir())))
    return (reference, *_extra_roots(os.environ.get("WHARF_FILE_ROOTS", "")))


@functools.lru_cache(maxsize=16)
def _extra_roots(setting: str) -> tuple[Path, ...]:
    """``WHARF_FILE_ROOTS`` parsed; an entry that is not absolute, or is, lies in or holds
    /proc, /sys or /dev, is ignored with a warning (once per value of the setting)."""
    roots: list[Path] = []
    for entry in (e.strip() for e in setting.split(os.pathsep)):
        if not entry:
            continue
        root = Path(os.path.normpath(entry))
        if not root.is_absolute():
            log.warning("WHARF_FILE_ROOTS: %r is not an absolute path; ignored", entry)
        elif _holds_forbidden(root):
            log.warning(
                "WHARF_FILE_ROOTS: %r is or holds /proc, /sys or /dev, which Wharf never reads; "
                "ignored",
                entry,
            )
        else:
            roots.append(root)
    return tuple(roots)


def roots_text(roots: Sequence[PurePath] | None = None) -> str:
    """The allowed roots as messages name them."""
    return ", ".join(str(r) for r in (file_roots() if roots is None else roots))


def real_roots(roots: Sequence[PurePath] | None = None) -> list[Path]:
    """The allowed roots with symlinks resolved; one that resolves into (or onto a folder
    holding) /proc, /sys or /dev is dropped."""
    found = [Path(os.path.realpath(r)) for r in (file_roots() if roots is None else roots)]
    return [r for r in found if not _holds_forbidden(r)]


def below_real_roots(real: PurePath, roots: Sequence[Path]) -> bool:
    """Whether the real (resolved) path ``real`` lies below one of ``roots`` (real paths too)
    and not below /proc, /sys or /dev."""
    return forbidden_root(real) is None and any(real.is_relative_to(r) for r in roots)


def resolve_under(path: PurePath, described: str, prefix: str = "") -> Path:
    """The real path of ``path`` (symlinks followed) if it lies below one of the allowed
    roots. Raises ``UnsafeSpecError`` (``prefix`` first, then ``described``: the path as the
    YAML writes it) naming the allowed roots, never the file's contents."""
    try:
        real = Path(os.path.realpath(path))
    except OSError as err:  # a link swapped while realpath read it: the path is in motion
        raise UnsafeSpecError(
            f"{prefix}{described} changed while it was being resolved ({err.strerror}); not read"
        ) from None
    if below_real_roots(real, real_roots()):
        return real
    if real == Path(os.path.normpath(os.path.abspath(path))):
        where = "is outside"
    else:
        where = f"resolves to {str(real)!r}, outside"
    raise UnsafeSpecError(f"{prefix}{described} {where} the allowed file roots ({roots_text()})")


def s3_buckets() -> tuple[str, ...]:
    """The buckets an ``s3://`` file source may read (``WHARF_S3_BUCKETS``), sorted."""
    setting = os.environ.get("WHARF_S3_BUCKETS", "")
    return tuple(sorted({b.strip() for b in setting.split(",") if b.strip()}))


def s3_bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` may not be read, or None when an operator allows it."""
    allowed = s3_buckets()
    if bucket in allowed:
        return None
    return (
        f"bucket {bucket!r} is not allowed: an operator lists the buckets file sources may read "
        f"in WHARF_S3_BUCKETS (allowed: {', '.join(allowed) or 'none'})"
    )


def file_settings() -> list[str]:
    """The settings file-source checks depend on, for caches of checked YAML."""
    return [os.environ.get("WHARF_FILE_ROOTS", ""), ",".join(s3_buckets()), str(reference_dir())]
