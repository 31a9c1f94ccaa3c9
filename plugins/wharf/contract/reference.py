"""What a ``kind: reference`` dataset must be, and the names of its history table's columns.

A reference dataset is small lookup data versioned with the code (a file below
``include/reference/``), versioned as DBT's Data Workspace versions its reference datasets: a
row added, changed or removed bumps the minor version, a column added, removed, renamed or
retyped the major one (``wharf.publish.reference``). Rows are told apart by the primary key, so
one is required; each load replaces the whole table (``OVERWRITE``), and every version's rows
are kept in ``<dataset>_history`` beside the table, with the columns below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wharf.contract.base import spec_error
from wharf.contract.names import NAME_PATTERN

if TYPE_CHECKING:
    from wharf.contract.dataset import DatasetSpec

HISTORY_SUFFIX = "_history"
# PostgreSQL's 63-byte identifiers, less the suffix: the history table's name must fit too.
MAX_DATASET_NAME = 63 - len(HISTORY_SUFFIX)
VALID_FROM, VALID_TO = "valid_from", "valid_to"
VERSION_FROM, VERSION_TO = "version_from", "version_to"
# The history table's own columns, after the dataset's: a dataset column of one of these
# names would collide with them.
HISTORY_COLUMNS = (VALID_FROM, VALID_TO, VERSION_FROM, VERSION_TO)


def history_name(dataset: str) -> str:
    """The history table of the reference dataset ``dataset`` (in the same schema)."""
    return dataset + HISTORY_SUFFIX


def history_spec(spec: DatasetSpec) -> DatasetSpec:
    """``spec`` renamed to its history table, for the code that owns and grants relations by
    spec (same domain, sensitivity and readers)."""
    meta = spec.metadata.model_copy(update={"dataset": history_name(spec.metadata.dataset)})
    return spec.model_copy(update={"metadata": meta})


def history_of(dataset: str) -> str | None:
    """The reference dataset whose history table ``dataset`` would be, by its name alone
    (``countries_history`` -> ``countries``), or None."""
    base = dataset.removesuffix(HISTORY_SUFFIX)
    return base if base != dataset and NAME_PATTERN.fullmatch(base) else None


def check_reference(spec: DatasetSpec) -> None:
    """Raise a contract error (at the key it is about) unless ``spec``, a reference dataset,
    reads one local file below ``include/reference/`` (a relative path, no glob, not S3), has
    a ``primary_key`` and ``update_behaviour: OVERWRITE``, no ``row_access``, no column named
    like the history table's own, and a name short enough for its history table."""
    meta, source = spec.metadata, spec.source
    path = getattr(source, "path", "")
    if source is None or source.type != "file" or not path:
        raise spec_error(
            "a reference dataset's source must be a file in include/reference/", "source"
        )
    if path.startswith(("/", "s3://")) or getattr(source, "is_glob", False):
        raise spec_error(
            f"a reference dataset reads one file below include/reference/, versioned with the "
            f"code: {path!r} is {'a glob' if getattr(source, 'is_glob', False) else 'elsewhere'}"
            "; write a path relative to include/reference/",
            "source",
            "path",
        )
    if not meta.primary_key:
        raise spec_error(
            "a reference dataset needs a primary_key: its versions tell a changed row from a "
            "removed and an added one by it",
            "metadata",
            "primary_key",
        )
    if meta.update_behaviour != "OVERWRITE":
        raise spec_error(
            f"a reference dataset has update_behaviour: OVERWRITE (not {meta.update_behaviour}): "
            "each version is the whole file",
            "metadata",
            "update_behaviour",
        )
    if spec.row_access is not None:
        raise spec_error(
            "a reference dataset has no 'row_access': it is lookup data every reader of its "
            "sensitivity sees whole",
            "row_access",
        )
    if len(meta.dataset) > MAX_DATASET_NAME:
        raise spec_error(
            f"a reference dataset's name is at most {MAX_DATASET_NAME} characters: its history "
            f"table {history_name(meta.dataset)!r} must fit PostgreSQL's 63",
            "metadata",
            "dataset",
        )
    for index, column in enumerate(spec.columns):
        if column.name in HISTORY_COLUMNS:
            raise spec_error(
                f"column name {column.name!r} is taken in a reference dataset: its history "
                f"table adds {', '.join(HISTORY_COLUMNS)} (use another name with source_name)",
                "columns",
                index,
                "name",
            )
