"""Data-cut SQL files: read below ``include/sql/`` only, bounded, UTF-8."""

from __future__ import annotations

from pathlib import Path

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.contract.sql_rules import MAX_SQL_CHARS, cut_sql_name_problem
from wharf.errors import UnsafeSpecError


def resolve_cut_sql(name: str, root: Path) -> Path:
    """The real path of data-cut SQL file ``name`` below ``root`` (symlinks followed).

    Raises ``UnsafeSpecError`` for a name that breaks the lexical rule or a file that lies
    outside ``root`` once resolved."""
    problem = cut_sql_name_problem(name)
    if problem:
        raise UnsafeSpecError(problem)
    real = (root / name).resolve(strict=False)
    if not real.is_relative_to(root.resolve()):
        raise UnsafeSpecError(f"{name!r} resolves outside include/sql/ (a symlink out of it)")
    return real


def read_cut_sql(name: str, root: Path) -> str:
    """The text of data-cut SQL file ``name`` below ``root``: ``resolve_cut_sql``, at most
    ``MAX_SQL_CHARS`` bytes, UTF-8. Raises ``UnsafeSpecError`` or ``FileNotFoundError``."""
    real = resolve_cut_sql(name, root)
    if not real.is_file():
        raise FileNotFoundError(f"no file include/sql/{name}")
    if real.stat().st_size > MAX_SQL_CHARS:
        raise UnsafeSpecError(f"include/sql/{name} is larger than {MAX_SQL_CHARS:,} bytes")
    try:
        return real.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UnsafeSpecError(f"include/sql/{name} is not UTF-8 text") from None


def cut_sql(cut: DatasetSpec) -> str:
    """The data cut's SQL, read from ``include/sql/<sql>`` (``read_cut_sql``)."""
    assert cut.sql is not None, f"{cut.dataset_id} is not a data cut"
    return read_cut_sql(cut.sql, settings.sql_dir())
