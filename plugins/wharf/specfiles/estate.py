"""Rules between dataset YAMLs: a data cut's inputs are other datasets, so whether it may be
published depends on their files too (``load_specs`` has them all; ``wharf check`` and the
refresh task look each input up by id)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wharf.contract.dataset import DatasetSpec
from wharf.contract.metadata import Metadata
from wharf.contract.sensitivity import cut_sensitivity_problem
from wharf.contract.sql_rules import check_cut
from wharf.specfiles.errors import SpecIssue
from wharf.specfiles.sql_files import cut_sql
from wharf.specfiles.yaml_lines import load_with_lines

Lookup = Callable[[str], Metadata | None]


def cut_inputs(cut: DatasetSpec) -> list[str]:
    """The dataset ids a data cut reads: its ``depends_on``, else the tables of its SQL.
    Raises ``UnsafeSpecError`` or ``FileNotFoundError`` for SQL that cannot be read."""
    return list(cut.depends_on) or check_cut(cut_sql(cut))


def sensitivity_problem(
    cut: DatasetSpec, lookup: Lookup, inputs: list[str] | None = None
) -> str | None:
    """``cut_sensitivity_problem`` over the ``inputs`` (default ``cut_inputs``) that
    ``lookup`` knows: a table no YAML describes has no sensitivity to compare."""
    ids = cut_inputs(cut) if inputs is None else inputs
    found = {i: meta for i in ids if (meta := lookup(i)) is not None}
    return cut_sensitivity_problem(cut.metadata, found)


def sensitivity_issues(file: Path, cut: DatasetSpec, lookup: Lookup) -> list[SpecIssue]:
    """The cut's sensitivity problem as an issue at its ``metadata.sensitivity`` line."""
    problem = sensitivity_problem(cut, lookup)
    if problem is None:
        return []
    _, lines = load_with_lines(file)
    line = lines.get(("metadata", "sensitivity"), lines.get(("metadata",), 1))
    return [SpecIssue(file, line, "metadata.sensitivity", problem)]
