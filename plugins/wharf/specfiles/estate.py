"""Rules between dataset YAMLs: a data cut's inputs are other datasets, so whether it may be
published depends on their files too (``load_specs`` has them all; ``wharf check`` and the
refresh task look each input up by id)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wharf.contract.dataset import DatasetSpec
from wharf.contract.reference import history_name, history_of
from wharf.contract.sensitivity import cut_row_access_problem, cut_sensitivity_problem
from wharf.contract.sql_rules import check_cut
from wharf.specfiles.errors import SpecIssue
from wharf.specfiles.sql_files import cut_sql
from wharf.specfiles.yaml_lines import load_with_lines

# A dataset's spec by id, None when no valid YAML describes it.
Lookup = Callable[[str], DatasetSpec | None]


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
    found = {i: spec.metadata for i in ids if (spec := lookup(i)) is not None}
    return cut_sensitivity_problem(cut.metadata, found)


def row_access_problem(
    cut: DatasetSpec, lookup: Lookup, inputs: list[str] | None = None
) -> tuple[str, str] | None:
    """``cut_row_access_problem`` over the ``inputs`` (default ``cut_inputs``) that
    ``lookup`` knows: (the input's id, why), or None."""
    ids = cut_inputs(cut) if inputs is None else inputs
    return cut_row_access_problem({i: spec for i in ids if (spec := lookup(i)) is not None})


def cut_issues(file: Path, cut: DatasetSpec, lookup: Lookup) -> list[SpecIssue]:
    """Every rule between a data cut and its inputs' YAMLs, as issues at the cut's lines:
    ``sensitivity_issues`` and ``row_access_issues``."""
    return sensitivity_issues(file, cut, lookup) + row_access_issues(file, cut, lookup)


def sensitivity_issues(file: Path, cut: DatasetSpec, lookup: Lookup) -> list[SpecIssue]:
    """The cut's sensitivity problem as an issue at its ``metadata.sensitivity`` line."""
    problem = sensitivity_problem(cut, lookup)
    if problem is None:
        return []
    _, lines = load_with_lines(file)
    line = lines.get(("metadata", "sensitivity"), lines.get(("metadata",), 1))
    return [SpecIssue(file, line, "metadata.sensitivity", problem)]


def row_access_issues(file: Path, cut: DatasetSpec, lookup: Lookup) -> list[SpecIssue]:
    """An input with ``row_access`` as an issue at its ``depends_on`` entry, or at the
    cut's ``sql`` line when its inputs come from the SQL."""
    found = row_access_problem(cut, lookup)
    if found is None:
        return []
    dataset_id, problem = found
    _, lines = load_with_lines(file)
    if dataset_id in cut.depends_on:
        index = cut.depends_on.index(dataset_id)
        line = lines.get(("depends_on", index), lines.get(("depends_on",), 1))
        return [SpecIssue(file, line, f"depends_on[{index}]", problem)]
    return [SpecIssue(file, lines.get(("sql",), 1), "sql", problem)]


def history_clash_issues(file: Path, spec: DatasetSpec, lookup: Lookup) -> list[SpecIssue]:
    """A reference dataset's history table (``<dataset>_history``, beside it) and another
    dataset of that name in the same domain would be one table: an issue at the
    ``metadata.dataset`` line of whichever of the two ``file`` is."""
    meta, problem = spec.metadata, None
    if meta.kind == "reference":
        other = lookup(f"{meta.domain}.{history_name(meta.dataset)}")
        if other is not None:
            problem = (
                f"the history table of this reference dataset is {other.dataset_id}, which "
                "another YAML defines as a dataset: rename one of them"
            )
    elif (base := history_of(meta.dataset)) is not None:
        found = lookup(f"{meta.domain}.{base}")
        if found is not None and found.metadata.kind == "reference":
            problem = (
                f"{spec.dataset_id} is the history table of the reference dataset "
                f"{found.dataset_id}: choose another name"
            )
    if not problem:
        return []
    _, lines = load_with_lines(file)
    line = lines.get(("metadata", "dataset"), lines.get(("metadata",), 1))
    return [SpecIssue(file, line, "metadata.dataset", problem)]
