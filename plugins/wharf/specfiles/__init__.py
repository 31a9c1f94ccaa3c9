"""YAML files -> contract models: every dataset YAML under the schemas folder, with
file:line errors and a cache."""

from __future__ import annotations

from pathlib import Path

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.specfiles.cache import load_spec_cached
from wharf.specfiles.errors import SpecError, SpecIssue
from wharf.specfiles.reader import load_spec, spec_files

__all__ = [
    "SpecError",
    "SpecIssue",
    "get_spec",
    "load_spec",
    "load_spec_cached",
    "load_specs",
    "spec_files",
]


def load_specs(root: Path | None = None) -> tuple[list[DatasetSpec], list[SpecError]]:
    """Load every dataset YAML; a broken file never hides the others.

    Returns the valid specs and one ``SpecError`` per broken file. A dataset id used by two
    files is an error on the second.
    """
    specs: dict[str, DatasetSpec] = {}
    errors: list[SpecError] = []
    for file in spec_files(root):
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
    return list(specs.values()), errors


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
