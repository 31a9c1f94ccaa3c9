"""Sources: one module per ``source.type``, each exposing ``extract(spec) -> Extract``.

The protocol is small on purpose: a source yields Arrow record batches of bounded size and
says which schema they share. Adding a source type means one module here and one model in
``wharf.spec``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from wharf.spec import DatasetSpec


@dataclass(frozen=True)
class Extract:
    """What a source yields: the landing schema, the batches, and a description for logs."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    description: str


def extract(spec: DatasetSpec) -> Extract:
    """Open the dataset's source; the batches are read lazily as the caller iterates."""
    assert spec.source is not None, f"{spec.dataset_id} has no source"
    module = importlib.import_module(f"wharf.sources.{spec.source.type}")
    result: Extract = module.extract(spec)
    return result
