"""YAML files -> contract models: every dataset YAML under the schemas folder, with
file:line errors and a cache."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from pathlib import Path

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.contract.names import NAME_PATTERN
from wharf.errors import one_line
from wharf.specfiles.cache import load_spec_cached
from wharf.specfiles.errors import SpecError, SpecIssue
from wharf.specfiles.estate import Lookup, YamlIds, cut_issues, file_ids, yaml_files
from wharf.specfiles.reader import inside, load_spec, spec_files

__all__ = [
    "SpecError",
    "SpecIssue",
    "dag_specs",
    "domains",
    "get_spec",
    "known_spec",
    "load_domain_specs",
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
    every_file = spec_files(root)
    # The ids once, not per cut: 200 cuts over 2,000 files cost 1 s.
    return _load(every_file, lambda specs: specs.get, file_ids(every_file))


def load_domain_specs(
    domain: str, root: Path | None = None
) -> tuple[list[DatasetSpec], list[SpecError]]:
    """``load_specs`` of one domain's folder: the same specs and errors as ``load_specs``
    gives for that domain, reading only what they depend on.

    The domain's YAMLs are read and checked whole; another domain's YAML only when one of
    this domain's data cuts reads its dataset (through the spec cache, re-validated), and the
    other ids a cut may name are looked up by file name. Used by the per-domain DAG files
    (``dags/wharf_domain_<domain>.py``), each parsed on its own by Airflow's DAG processor.
    """
    root = root or settings.schemas_dir()
    folder = root / domain
    named = NAME_PATTERN.fullmatch(domain) and folder.is_dir() and inside(folder, root)
    files = spec_files(folder, within=root) if named else []
    outside = functools.cache(lambda dataset_id: _valid_spec(root, dataset_id))  # once a parse

    def lookup(specs: dict[str, DatasetSpec]) -> Lookup:
        def either(dataset_id: str) -> DatasetSpec | None:
            if dataset_id.partition(".")[0] == domain:
                return specs.get(dataset_id)
            return outside(dataset_id)

        return either

    return _load(files, lookup, YamlIds(root))


def _load(
    files: list[Path],
    lookup_for: Callable[[dict[str, DatasetSpec]], Lookup],
    known: Collection[str],
) -> tuple[list[DatasetSpec], list[SpecError]]:
    """The specs of ``files`` and their errors; each cut judged by ``cut_issues`` with the
    lookup ``lookup_for`` makes of the valid specs and the ids ``known``."""
    specs: dict[str, DatasetSpec] = {}
    where: dict[str, Path] = {}
    errors: list[SpecError] = []
    for file in files:
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
        where[spec.dataset_id] = file
    refused = []
    lookup = lookup_for(specs)
    for cut in [s for s in specs.values() if s.metadata.kind == "data_cut"]:
        try:
            issues = cut_issues(where[cut.dataset_id], cut, lookup, known)
        except Exception as err:  # its SQL changed since it was read: never hide the others
            issues = [SpecIssue(where[cut.dataset_id], 1, "sql", one_line(err))]
        if issues:
            errors.append(SpecError(issues))
            refused.append(cut.dataset_id)
    for dataset_id in refused:  # after every cut is judged on the same YAMLs: a cycle's each
        del specs[dataset_id]
    return list(specs.values()), errors


def _valid_spec(root: Path, dataset_id: str) -> DatasetSpec | None:
    """The spec of the first valid YAML of ``dataset_id`` under ``root`` (``.yaml``, then
    ``.yml``, as ``load_specs`` takes them in order), or None."""
    for file in yaml_files(root, dataset_id):
        try:
            return load_spec_cached(file)
        except SpecError:
            continue
    return None


def domains(root: Path | None = None) -> list[str]:
    """The domain folders under the schemas folder (``root``), sorted: each is the domain
    of the YAMLs in it."""
    root = root or settings.schemas_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and inside(p, root))


def dag_specs(of_domains: Collection[str], only: str | None) -> list[DatasetSpec]:
    """The specs a DAG file that builds ``of_domains`` builds DAGs of: each valid one
    (``load_domain_specs``), or, at a task start (``only``: the parsing context's DAG id),
    only that dataset's, read from its own file (``get_spec``), when it is of those domains.
    Raises what ``get_spec`` raises, for the task's own YAML only."""
    if only is not None:
        return [get_spec(only)] if only.partition(".")[0] in of_domains else []
    return [spec for domain in sorted(of_domains) for spec in load_domain_specs(domain)[0]]


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
    for file in yaml_files(settings.schemas_dir(), dataset_id):
        return load_spec(file)
    raise FileNotFoundError(f"no YAML for dataset {dataset_id} under {settings.schemas_dir()}")
