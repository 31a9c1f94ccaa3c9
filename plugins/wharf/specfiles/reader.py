"""Reading one dataset YAML into a ``DatasetSpec``, with file:line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import (
    ValidationError,
)

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.errors import UnsafeSpecError
from wharf.specfiles.errors import SpecError, SpecIssue, issues_of
from wharf.specfiles.yaml_lines import YamlSyntaxError, load_with_lines


def load_spec(file: Path) -> DatasetSpec:
    """Load and check one dataset YAML.

    Raises ``SpecError`` listing every problem with file, line and field: YAML syntax or a
    limit of ``wharf.specfiles.yaml_lines``, unknown or missing keys, bad values, a file whose path does
    not match its ``<domain>/<dataset>.yaml``, or a data cut whose SQL file is missing. Any
    other failure to read the file is a ``SpecError`` too: a YAML never hides other DAGs.
    """
    try:
        return _load_spec(file)
    except SpecError:
        raise
    except Exception as err:  # the last line of defence of invariant 5
        raise SpecError(
            [SpecIssue(file, 1, "", f"the file could not be read: {type(err).__name__}")]
        ) from None


def _load_spec(file: Path) -> DatasetSpec:
    try:
        data, lines = load_with_lines(file)
    except YamlSyntaxError as err:
        raise SpecError([SpecIssue(file, err.line, "", err.message)]) from None
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(issues_of(file, err, data, lines)) from None
    problems = list(_placement_issues(file, spec, lines))
    if problems:
        raise SpecError(problems)
    return spec


def _placement_issues(file: Path, spec: DatasetSpec, lines: dict) -> Iterator[SpecIssue]:
    meta = spec.metadata
    expected = f"{meta.domain}/{meta.dataset}.yaml"
    if file.parent.name != meta.domain or file.stem != meta.dataset:
        yield SpecIssue(
            file,
            lines.get(("metadata",), 1),
            "metadata",
            f"the file must be include/schemas/{expected} to match its domain and dataset",
        )
    if spec.sql is not None:
        yield from _cut_sql_issues(file, spec, lines)


def _cut_sql_issues(file: Path, spec: DatasetSpec, lines: dict) -> Iterator[SpecIssue]:
    """A data cut's SQL file: below include/sql/ once resolved, one read-only SELECT of
    datasets (each in ``depends_on`` when given). ``wharf.publish.data_cuts`` checks it again."""
    from wharf.contract.sql_rules import check_cut
    from wharf.specfiles.sql_files import read_cut_sql

    assert spec.sql is not None
    line = lines.get(("sql",), 1)
    try:
        check_cut(read_cut_sql(spec.sql, settings.sql_dir()), spec.depends_on)
    except FileNotFoundError:
        yield SpecIssue(file, line, "sql", f"no file include/sql/{spec.sql}")
    except UnsafeSpecError as err:
        yield SpecIssue(file, line, "sql", f"include/sql/{spec.sql}: {err}")


def spec_files(root: Path | None = None, within: Path | None = None) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under the schemas folder (``root``), sorted, but those
    that resolve outside ``within`` (default ``root``; see ``inside``)."""
    root = root or settings.schemas_dir()
    found = (p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return sorted(p for p in found if inside(p, within or root))


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (below ``root`` as written) is there once symlinks are followed. A
    YAML-only pull request can commit a symlink: a domain folder to ``/`` made each DAG
    file walk the whole disk and build DAGs of YAMLs found anywhere. ``rglob`` follows no
    symlinked folder below its start, so only the path itself needs resolving."""
    return not path.is_symlink() or path.resolve().is_relative_to(root.resolve())


def escaping_links(root: Path) -> list[Path]:
    """The symlinks under ``root`` that ``spec_files`` and ``domains`` pass over: a domain
    folder or a YAML that resolves outside it (``wharf check`` names each)."""
    links = (p for p in root.rglob("*") if p.is_symlink() and not inside(p, root))
    return sorted(p for p in links if p.is_dir() or p.suffix in (".yaml", ".yml"))
