"""A per-file cache of checked specs."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.specfiles.errors import SpecError, SpecIssue
from wharf.specfiles.reader import load_spec

# --- a per-file cache of checked specs ------------------------------------------------------
# The DAG processor re-parses the dags folder every 30 s and two DAG files each read every
# YAML; libyaml alone costs ~0.9 ms a file. A file whose mtime, size and Wharf's model code are
# unchanged is taken from its JSON cache entry and re-validated by pydantic (JSON, not pickle:
# nothing executable is read back). WHARF_SPEC_CACHE=off disables it; WHARF_SPEC_CACHE_DIR
# moves it (default .wharf/cache/specs).
# The code a cached spec depends on: every module of the contract and of this package, so a
# new or changed model module never serves a stale spec.
_CODE_FOLDERS = (Path(__file__).parents[1] / "contract", Path(__file__).parent)


@functools.cache
def _code_stamp() -> tuple[Any, ...]:
    """Names, mtimes and sizes of the code this process loaded: read once per process (the
    modules in memory do not change while it runs; a deploy restarts it)."""
    files = sorted(f for folder in _CODE_FOLDERS for f in folder.glob("*.py"))
    return tuple(v for file in files for v in (file.name, *_stat(file)))


def _stat(file: Path) -> list[int]:
    info = file.stat()
    return [info.st_mtime_ns, info.st_size]


def _cache_file(file: Path) -> Path | None:
    if os.environ.get("WHARF_SPEC_CACHE", "on").lower() in ("off", "0", "false"):
        return None
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()
    folder = os.environ.get("WHARF_SPEC_CACHE_DIR") or settings.state_dir() / "cache" / "specs"
    return Path(folder) / f"{digest}.json"


def load_spec_cached(file: Path) -> DatasetSpec:
    """``load_spec`` through the cache; same result, same errors."""
    cache = _cache_file(file)
    if cache is None:
        return load_spec(file)
    stamp: list[Any] = [*_stat(file), *_code_stamp(), *settings.file_settings()]
    try:
        entry = json.loads(cache.read_text())
    except (OSError, ValueError):
        entry = None
    if entry and entry.get("stamp") == stamp:
        if entry["issues"]:
            raise SpecError([SpecIssue(Path(i[0]), i[1], i[2], i[3]) for i in entry["issues"]])
        try:
            return DatasetSpec.model_validate(entry["spec"])
        except (ValidationError, TypeError, KeyError):  # a damaged entry: read the YAML again
            pass
    try:
        spec = load_spec(file)
    except SpecError as err:
        _store(cache, stamp, None, [[str(i.file), i.line, i.field, i.message] for i in err.issues])
        raise
    if spec.metadata.kind != "data_cut":  # its SQL file may change without the YAML
        _store(cache, stamp, spec.model_dump(mode="json"), [])
    return spec


def _store(cache: Path, stamp: list[int], spec: Any, issues: list[Any]) -> None:
    try:  # best effort: a read-only project folder only loses the speed-up
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"stamp": stamp, "spec": spec, "issues": issues}))
        os.replace(partial, cache)
    except OSError:
        pass
