"""Rules between dataset YAMLs: a data cut's inputs are other datasets, so whether it may be
published depends on their files too (``load_specs`` has them all; ``load_domain_specs``,
``wharf check`` and the refresh task look each input up by id)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from wharf.contract.dataset import DatasetSpec
from wharf.contract.names import NAME_PATTERN
from wharf.contract.reference import history_name, history_of
from wharf.contract.sensitivity import cut_row_access_problem, cut_sensitivity_problem
from wharf.contract.sql_rules import check_cut
from wharf.errors import UnsafeSpecError
from wharf.specfiles.errors import SpecIssue
from wharf.specfiles.reader import inside, spec_files
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


def cut_issues(
    file: Path, cut: DatasetSpec, lookup: Lookup, known: Collection[str]
) -> list[SpecIssue]:
    """Every rule between a data cut and its inputs' YAMLs, as issues at the cut's lines:
    ``input_issues`` (``known``: the ids of every dataset YAML, valid or not),
    ``cycle_issues``, ``sensitivity_issues`` and ``row_access_issues``."""
    unknown = input_issues(file, cut, known)
    if unknown:
        return unknown
    return (
        cycle_issues(file, cut, lookup)
        + sensitivity_issues(file, cut, lookup)
        + row_access_issues(file, cut, lookup)
    )


def input_issues(file: Path, cut: DatasetSpec, known: Collection[str]) -> list[SpecIssue]:
    """Each input of the cut that no dataset YAML describes, at its ``depends_on`` entry or
    the ``sql`` line: ``unknown table shop.ordrs (did you mean shop.orders?)``. A view over a
    table Wharf does not load would have no Asset to schedule it, no sensitivity to compare
    and no owner to grant it."""
    issues = []
    for dataset_id in cut_inputs(cut):
        if dataset_id in known:
            continue
        close = difflib.get_close_matches(dataset_id, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        message = (
            f"unknown table {dataset_id}{hint}: a data cut reads datasets that have a YAML "
            "under include/schemas/"
        )
        issues.append(_input_issue(file, cut, dataset_id, message))
    return issues


def cycle_issues(file: Path, cut: DatasetSpec, lookup: Lookup) -> list[SpecIssue]:
    """The cut reads itself through other data cuts: ``a -> b -> a``, at its ``sql`` line
    (no order of refreshes exists, and each would wait for the other's Asset for ever)."""
    path = _cycle_through(cut, lookup)
    if path is None:
        return []
    _, lines = load_with_lines(file)
    message = f"data cuts read each other in a cycle: {' -> '.join(path)}"
    field = "depends_on" if cut.depends_on else "sql"
    return [SpecIssue(file, lines.get((field,), 1), field, message)]


def _cycle_through(cut: DatasetSpec, lookup: Lookup) -> list[str] | None:
    """A path of input edges from the cut back to itself, or None (depth-first, each cut
    visited once)."""
    seen: set[str] = set()

    def walk(spec: DatasetSpec, path: list[str]) -> list[str] | None:
        for dataset_id in _readable_inputs(spec):
            if dataset_id == cut.dataset_id:
                return [*path, dataset_id]
            found = lookup(dataset_id)
            if found is None or found.metadata.kind != "data_cut" or dataset_id in seen:
                continue
            seen.add(dataset_id)
            cycle = walk(found, [*path, dataset_id])
            if cycle:
                return cycle
        return None

    return walk(cut, [cut.dataset_id])


def _readable_inputs(cut: DatasetSpec) -> list[str]:
    try:
        return cut_inputs(cut)
    except (UnsafeSpecError, FileNotFoundError):
        return []  # refused SQL is an issue of that cut's own


def _input_issue(file: Path, cut: DatasetSpec, dataset_id: str, message: str) -> SpecIssue:
    _, lines = load_with_lines(file)
    if dataset_id in cut.depends_on:
        index = cut.depends_on.index(dataset_id)
        line = lines.get(("depends_on", index), lines.get(("depends_on",), 1))
        return SpecIssue(file, line, f"depends_on[{index}]", message)
    return SpecIssue(file, lines.get(("sql",), 1), "sql", message)


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
    return [_input_issue(file, cut, dataset_id, problem)]


def file_ids(files: Collection[Path]) -> set[str]:
    """The dataset ids of YAML files, ``<domain folder>.<file stem>`` (``load_spec``
    refuses a file placed otherwise)."""
    return {f"{file.parent.name}.{file.stem}" for file in files}


def history_clash_issues(file: Path, spec: DatasetSpec, lookup: Lookup) -> list[SpecIssue]:
    """A reference dataset's history table (``<dataset>_history``, beside it) and another
    dataset of that name in the same domain would be one table: an issue at the
    ``metadata.dataset`` line of whichever of the two ``file`` is. So would a dataset
    ``<keyed>_pkey`` and the primary key's index PostgreSQL names so (an issue at the
    ``_pkey`` one: in the other order PostgreSQL picks another name)."""
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
    if not problem and meta.dataset.endswith("_pkey"):
        keyed = lookup(f"{meta.domain}.{meta.dataset.removesuffix('_pkey')}")
        if keyed is not None and keyed.key_columns and keyed.metadata.kind != "data_cut":
            problem = (
                f"{spec.dataset_id} is the name PostgreSQL gives the primary key of "
                f"{keyed.dataset_id}: choose another name"
            )
    if not problem:
        return []
    _, lines = load_with_lines(file)
    line = lines.get(("metadata", "dataset"), lines.get(("metadata",), 1))
    return [SpecIssue(file, line, "metadata.dataset", problem)]


def yaml_files(root: Path, dataset_id: str) -> list[Path]:
    """The YAML files of ``dataset_id`` (``<domain>.<dataset>``) under ``root`` that exist:
    ``<domain>/<dataset>.yaml``, then ``.yml``. An id from a YAML or a cut's SQL may be any
    string: one that is not two names gives none, so it never reaches a path."""
    domain, _, dataset = dataset_id.partition(".")
    if not (NAME_PATTERN.fullmatch(domain) and NAME_PATTERN.fullmatch(dataset)):
        return []
    files = (root / domain / f"{dataset}{suffix}" for suffix in (".yaml", ".yml"))
    return [f for f in files if f.is_file() and inside(f.parent, root) and inside(f, root)]


class YamlIds(Collection[str]):
    """``file_ids`` of every YAML under ``root``, asked one id at a time: a domain's DAG file
    checks its cuts' inputs without listing the other domains' folders (which it does only
    to suggest a name for an unknown one)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def __contains__(self, dataset_id: object) -> bool:
        return isinstance(dataset_id, str) and bool(yaml_files(self._root, dataset_id))

    def _all(self) -> set[str]:
        return file_ids(spec_files(self._root))

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
