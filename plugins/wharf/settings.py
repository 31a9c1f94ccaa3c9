"""Where Wharf finds its project folders, its lake and its datasets database.

Every location can be overridden by an environment variable so the same code runs in the
embedded demo, in tests and in production:

- ``WHARF_HOME``: the project root (default: two folders above this package).
- ``WHARF_SCHEMAS_DIR``: dataset YAML (default ``<home>/include/schemas``).
- ``WHARF_LAKE_ROOT``: ``file:///...`` or ``s3://bucket/prefix`` (default ``<home>/.wharf/lake``):
  the lake root of every domain that ``WHARF_LAKE_ROOTS`` does not list.
- ``WHARF_LAKE_CONN_ID``: the Airflow AWS connection of an ``s3://`` lake (default
  ``aws_default``), for every domain that ``WHARF_LAKE_CONN_IDS`` does not list.
- ``WHARF_LAKE_ROOTS``: a lake root per domain, comma-separated ``domain=uri`` pairs, e.g.
  ``parking=s3://parking-lake/,council_tax=s3://shared-lake/council_tax`` (default none). A
  domain's zones then live only below its root (``<root>/<zone>/<domain>/...``), so a bucket
  policy can give its service group that bucket or prefix alone.
- ``WHARF_LAKE_CONN_IDS``: the AWS connection of a domain's lake, comma-separated
  ``domain=conn_id`` pairs, e.g. ``parking=aws_parking`` (default none).

A lake root is ``file:///absolute/path`` or ``s3://bucket[/prefix]`` with no user info, query
or fragment (keys belong in the connection), and lies below no other root (it would be
readable through the outer root's bucket policy); domains may share a root. A domain is
named as in the YAML (lowercase letters, digits, ``_``). A bad lake setting raises
``TerminalError`` naming the variable and the entry (never a root holding ``@``) at every
lake access, so no run writes anywhere while one entry is wrong.
- ``WHARF_DATASETS_CONN_ID``: the Airflow connection of the datasets PostgreSQL database
  (default ``wharf_datasets``): tasks log in through it as the loader role.
- ``WHARF_DATASETS_ADMIN_CONN_ID``: the connection ``wharf db upgrade`` and ``wharf access
  apply`` use, as an admin who may create roles (default ``wharf_datasets_admin``; when it is
  not defined, the ``wharf_datasets`` connection).
- ``WHARF_SMTP_CONN_ID``: the Airflow SMTP connection alert mails go through (default
  ``smtp_default``); ``WHARF_ALERT_FROM_EMAIL``: their sender (default: the connection's
  extra ``from_email``). README, "Alerts".
- ``WHARF_ROLE_PREFIX``: the prefix of Wharf's PostgreSQL roles (default ``wharf``), so several
  deployments can share a server (README, "Access control").
- ``WHARF_FILE_ROOTS``: folders (absolute, ``os.pathsep``-separated) a ``file`` source may read
  below besides ``include/reference/``, which is always allowed. ``/proc``, ``/sys`` and
  ``/dev`` never are: a root that is, lies in or holds one of them (``/``) is ignored.
- ``WHARF_S3_BUCKETS``: comma-separated buckets an ``s3://`` file source may read (default
  none: every ``s3://`` source is refused until an operator lists its bucket).
- ``WHARF_NATS_URL``: the NATS server the demo's sensor stream uses (default
  ``nats://127.0.0.1:4222``); when none answers there, the demo starts an embedded one
  (``wharf.demo.broker``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import urlsplit

from wharf.errors import TerminalError, UnsafeSpecError

log = logging.getLogger(__name__)

DATASETS_CONN_ID_DEFAULT = "wharf_datasets"
DATASETS_ADMIN_CONN_ID_DEFAULT = "wharf_datasets_admin"
ROLE_PREFIX_DEFAULT = "wharf"
LAKE_CONN_ID_DEFAULT = "aws_default"
SMTP_CONN_ID_DEFAULT = "smtp_default"


def project_home() -> Path:
    """The project root: ``WHARF_HOME`` or the folder holding ``plugins/``."""
    return Path(os.environ.get("WHARF_HOME") or Path(__file__).resolve().parents[2])


def schemas_dir() -> Path:
    """Folder of dataset YAML files, one sub-folder per domain."""
    return Path(os.environ.get("WHARF_SCHEMAS_DIR") or project_home() / "include" / "schemas")


def migrations_dir() -> Path:
    """Wharf's own DDL (``include/sql/wharf/NNNN_*.sql``) beside this code, whatever
    ``WHARF_HOME`` says: the code needs exactly the migrations it was written with."""
    return Path(__file__).resolve().parents[2] / "include" / "sql" / "wharf"


def sql_dir() -> Path:
    """Folder of data-cut SQL files and Wharf's own DDL."""
    return project_home() / "include" / "sql"


def reference_dir() -> Path:
    """Folder of reference data files versioned with the code."""
    return project_home() / "include" / "reference"


DEMO_NATS_URL_DEFAULT = "nats://127.0.0.1:4222"


def demo_nats_url() -> str:
    """``WHARF_NATS_URL``, else ``nats://127.0.0.1:4222``: the demo's NATS server."""
    return os.environ.get("WHARF_NATS_URL") or DEMO_NATS_URL_DEFAULT


def state_dir() -> Path:
    """Wharf's local working folder (embedded database, lake, Airflow home): ``<home>/.wharf``."""
    return project_home() / ".wharf"


def lake_root(domain: str | None = None) -> str:
    """Root URI of ``domain``'s lake, without a trailing ``/``: its ``WHARF_LAKE_ROOTS``
    entry, else ``WHARF_LAKE_ROOT``, else a local folder under ``.wharf/lake`` (the default
    root for None). Raises ``TerminalError`` when any lake setting is bad."""
    lakes = _lakes(*_lake_settings())
    return lakes.roots.get(domain or "", lakes.root)


def lake_conn_id(domain: str | None = None) -> str:
    """Airflow AWS connection id through which ``domain``'s ``s3://`` root is reached: its
    ``WHARF_LAKE_CONN_IDS`` entry, else ``WHARF_LAKE_CONN_ID``, else ``aws_default``. Raises
    ``TerminalError`` when any lake setting is bad."""
    lakes = _lakes(*_lake_settings())
    return lakes.conn_ids.get(domain or "", lakes.conn_id)


# --- the lake's settings, parsed and checked once per value ---------------------------------
# Copies of contract.names' rules for domains, connection ids and buckets (settings is the
# lowest layer and cannot import them; tests/unit/test_lake_settings.py keeps them equal).
DOMAIN_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
CONN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,250}")
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class _Lakes:
    root: str
    conn_id: str
    roots: dict[str, str]  # domain -> root
    conn_ids: dict[str, str]  # domain -> connection id


def _lake_settings() -> tuple[str, str, str, str]:
    return (
        os.environ.get("WHARF_LAKE_ROOT") or (state_dir() / "lake").as_uri(),
        os.environ.get("WHARF_LAKE_CONN_ID") or LAKE_CONN_ID_DEFAULT,
        os.environ.get("WHARF_LAKE_ROOTS", ""),
        os.environ.get("WHARF_LAKE_CONN_IDS", ""),
    )


@functools.lru_cache(maxsize=16)
def _lakes(root: str, conn_id: str, roots_setting: str, conn_ids_setting: str) -> _Lakes:
    conn_id = _checked_conn_id(conn_id, f"WHARF_LAKE_CONN_ID {_shown(conn_id, '')}")
    conn_ids = {
        d: _checked_conn_id(c, f"WHARF_LAKE_CONN_IDS: entry {_shown(f'{d}={c}', d)}")
        for d, c in _pairs("WHARF_LAKE_CONN_IDS", conn_ids_setting).items()
    }
    roots = {
        d: _checked_root(u, d, conn_ids.get(d, conn_id))
        for d, u in _pairs("WHARF_LAKE_ROOTS", roots_setting).items()
    }
    lakes = _Lakes(_checked_root(root, None, conn_id), conn_id, roots, conn_ids)
    _refuse_nested(lakes)
    return lakes


def _pairs(variable: str, setting: str) -> dict[str, str]:
    """The ``domain=value`` pairs of a comma-separated setting (blank entries skipped)."""
    pairs: dict[str, str] = {}
    for number, entry in enumerate((e.strip() for e in setting.split(",")), start=1):
        if not entry:
            continue
        domain, _, value = (part.strip() for part in entry.partition("="))
        shown = f"{variable}: entry {number} {_shown(entry, domain)}"
        if not value:
            raise TerminalError(f"{shown} is not domain=value (comma-separated pairs)")
        if not DOMAIN_PATTERN.fullmatch(domain):
            raise TerminalError(
                f"{shown}: the domain is not a name of lowercase letters, digits and '_' "
                "starting with a letter (at most 63), as the YAML's metadata.domain"
            )
        if domain in pairs:
            raise TerminalError(f"{shown}: domain {domain!r} is listed twice")
        pairs[domain] = value
    return pairs


def _shown(entry: str, domain: str) -> str:
    """An entry as messages quote it: one holding '@' may hold a key (s3://key:secret@bucket)
    and is never echoed beyond its domain."""
    if "@" not in entry:
        return repr(entry)
    if DOMAIN_PATTERN.fullmatch(domain):
        return repr(f"{domain}=…")
    return "(not shown: it holds '@')"


def _checked_conn_id(conn_id: str, where: str) -> str:
    if not CONN_ID_PATTERN.fullmatch(conn_id):
        raise TerminalError(
            f"{where}: not an Airflow connection id (letters, digits, '_', '.' and '-')"
        )
    return conn_id


def _checked_root(uri: str, domain: str | None, conn_id: str) -> str:
    """``uri`` as a lake root without a trailing ``/``, or ``TerminalError``: it must be
    ``file:///absolute`` or ``s3://bucket[/prefix]``; one holding user info, a query or a
    fragment is refused without echoing it (pyarrow would take keys and options from it, and
    roots are written in logs and the audit)."""
    variable = "WHARF_LAKE_ROOT" if domain is None else "WHARF_LAKE_ROOTS"
    parts = urlsplit(uri)
    if "@" in parts.netloc or parts.query or parts.fragment or "#" in uri:
        whose = "" if domain is None else f": the root of domain {domain!r}"
        raise TerminalError(
            f"{variable}{whose} holds user info or a query: write s3://bucket/prefix and put "
            f"the keys, region and endpoint in the Airflow connection {conn_id!r} "
            f"({variable.replace('ROOT', 'CONN_ID')})"
        )
    path = parts.path.rstrip("/")
    local = parts.scheme == "file" and not parts.netloc and path.startswith("/")
    if not (local or (parts.scheme == "s3" and BUCKET_PATTERN.fullmatch(parts.netloc))):
        shown = _shown(uri if domain is None else f"{domain}={uri}", domain or "")
        raise TerminalError(
            f"{variable}: {shown} is not a lake root: write file:///absolute/path or "
            "s3://bucket/prefix"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def _refuse_nested(lakes: _Lakes) -> None:
    """A root below another root would be readable through the outer one's policies."""
    named = {"WHARF_LAKE_ROOT": lakes.root}
    named |= {f"WHARF_LAKE_ROOTS entry {d!r}": u for d, u in lakes.roots.items()}
    for (outer_name, outer), (inner_name, inner) in itertools.permutations(named.items(), 2):
        if inner.startswith(f"{outer}/"):
            raise TerminalError(
                f"{inner_name} ({inner}) lies below {outer_name} ({outer}): whoever may read "
                "that root could read this one; give each domain its own bucket or a sibling "
                "prefix"
            )


def datasets_conn_id() -> str:
    """Airflow connection id of the datasets PostgreSQL database."""
    return os.environ.get("WHARF_DATASETS_CONN_ID", DATASETS_CONN_ID_DEFAULT)


def datasets_admin_conn_id() -> str:
    """Airflow connection id of an admin of the datasets database (creates roles)."""
    return os.environ.get("WHARF_DATASETS_ADMIN_CONN_ID", DATASETS_ADMIN_CONN_ID_DEFAULT)


def smtp_conn_id() -> str:
    """Airflow connection id of the SMTP server alert mails go through."""
    return os.environ.get("WHARF_SMTP_CONN_ID") or SMTP_CONN_ID_DEFAULT


def own_connection(conn_id: str) -> str | None:
    """What ``conn_id`` reaches when it is one of Wharf's own connections, which no
    dataset's YAML may name (a source on the datasets database would read every domain's
    tables past their sensitivity, as the loader, and republish them; an alert through one
    would send its credentials elsewhere); else None. Compared without case: Airflow finds
    ``Wharf_Datasets`` in ``AIRFLOW_CONN_WHARF_DATASETS`` too."""
    # The lakes' connections write every zone of their domains; aws_default, which every
    # s3:// source falls back to, stays a source's. Read without the lake's checks: a bad
    # lake setting fails every lake access, never a YAML's validation.
    lakes = [os.environ.get("WHARF_LAKE_CONN_ID", "")] + [
        entry.partition("=")[2] for entry in os.environ.get("WHARF_LAKE_CONN_IDS", "").split(",")
    ]
    own = {
        lake.strip().lower(): "a lake's connection"
        for lake in lakes
        if lake.strip() and lake.strip().lower() != LAKE_CONN_ID_DEFAULT
    }
    own |= {
        datasets_conn_id().lower(): "the datasets database",
        datasets_admin_conn_id().lower(): "the datasets database's administrator",
        smtp_conn_id().lower(): "the alert mail server",
    }
    return own.get(conn_id.lower())


def alert_from_email() -> str | None:
    """The sender of alert mails; None: the SMTP connection's extra ``from_email``."""
    return os.environ.get("WHARF_ALERT_FROM_EMAIL") or None


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


def queues() -> tuple[str, ...]:
    """The Celery queues a dataset YAML's ``queue:`` may name (``WHARF_QUEUES``), sorted;
    none by default. A queue picks the workers that run a dataset's tasks, and a worker may
    hold what others do not (credentials, network, memory): the operator says which exist."""
    setting = os.environ.get("WHARF_QUEUES", "")
    return tuple(sorted({q.strip() for q in setting.split(",") if q.strip()}))


def queue_problem(queue: str) -> str | None:
    """Why a YAML may not send its tasks to ``queue``, or None when an operator allows it."""
    allowed = queues()
    if queue in allowed:
        return None
    return (
        f"queue {queue!r} is not allowed: an operator lists the queues a YAML may name in "
        f"WHARF_QUEUES (allowed: {', '.join(allowed) or 'none'})"
    )


def load_pool() -> str | None:
    """The Airflow pool of every step that writes to the datasets database (``load``, a
    cut's ``refresh``): ``WHARF_LOAD_POOL``, unset by default (Airflow's ``default_pool``).
    ``wharf stack`` sets it to a pool it creates; the pool must exist, or those steps wait
    in ``scheduled`` (Airflow 3 runs no task of a missing pool)."""
    return os.environ.get("WHARF_LOAD_POOL", "").strip() or None


def file_settings() -> list[str]:
    """The settings the contract's checks depend on (file sources' roots and buckets, the
    queues), for caches of checked YAML."""
    return [
        os.environ.get("WHARF_FILE_ROOTS", ""),
        ",".join(s3_buckets()),
        str(reference_dir()),
        ",".join(queues()),
    ]
