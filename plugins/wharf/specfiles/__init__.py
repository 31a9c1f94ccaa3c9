"""YAML files -> contract models: every dataset YAML under the schemas folder, with
file:line errors and a cache."""

from __future__ import annotations

from pathlib import Path

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.errors import one_line
from wharf.specfiles.cache import load_spec_cached
from wharf.specfiles.errors import SpecError, SpecIssue
from wharf.specfiles.estate import Lookup, cut_issues, file_ids
from wharf.specfiles.reader import load_spec, spec_files

__all__ = [
    "SpecError",
    "SpecIssue",
    "get_spec",
    "known_spec",
    "load_spec",
    "load_spec_cached",
    "load_specs",
    "spec_files",
]


def load_specs(root: Path | None = None) -> tuple[list[DatasetSpec], list[SpecError]]:
    """Load every dataset YAML; a broken file never hides the others.

    Returns the valid specs and one ``SpecError`` per broken file. A dataset id used by two
    files is an error on the second; a data cut less sensitive than an input is an error on
    the cut (``wharf.specfiles.estate``), and so is a cut reading a table no YAML describes
    or reading itself through other cuts.
    """
    specs: dict[str, DatasetSpec] = {}
    files: dict[str, Path] = {}
    errors: list[SpecError] = []
    every_file = spec_files(root)
    for file in every_file:
        try:
            spec = load_spec_cached(file)
        except SpecError as err:
            errors.append(err)
            continue
        if spec.dataset_id in specs:
            errors.append(
                SpecError([SpecIssue(file, 1, "metadata", f"{spec.dataset_id} is defined twice")])
            )
            continue
        specs[spec.dataset_id] = spec
        files[spec.dataset_id] = file
    refused = []
    known = file_ids(every_file)  # once, not per cut: 200 cuts over 2,000 files cost 1 s
    for cut in [s for s in specs.values() if s.metadata.kind == "data_cut"]:
        try:
            issues = cut_issues(files[cut.dataset_id], cut, _known(specs), known)
        except Exception as err:  # its SQL changed since it was read: never hide the others
            issues = [SpecIssue(files[cut.dataset_id], 1, "sql", one_line(err))]
        if issues:
            errors.append(SpecError(issues))
            refused.append(cut.dataset_id)
    for dataset_id in refused:  # after every cut is judged on the same YAMLs: a cycle's each
        del specs[dataset_id]
    return list(specs.values()), errors


def _known(specs: dict[str, DatasetSpec]) -> Lookup:
    return specs.get


def known_spec(dataset_id: str) -> DatasetSpec | None:
    """The spec of a dataset by id, or None when it has no valid YAML (a ``Lookup``)."""
    try:
        return get_spec(dataset_id)
    except (SpecError, FileNotFoundError):
        return None


def get_spec(dataset_id: str) -> DatasetSpec:
    """Load the spec of one dataset by id (``domain.dataset``), reading only its own file.

    Raises ``SpecError`` if the file is broken and ``FileNotFoundError`` if it is gone.
    """
    domain, _, dataset = dataset_id.partition(".")
    for suffix in (".yaml", ".yml"):
        file = settings.schemas_dir() / domain / f"{dataset}{suffix}"
        if file.is_file():
            return load_spec(file)
    raise FileNotFoundError(f"no YAML for dataset {dataset_id} under {settings.schemas_dir()}")
