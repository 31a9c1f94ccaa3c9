"""Sources: one module per ``source.type``, each exposing ``extract(spec, window) -> Extract``.

The protocol is small on purpose: a source yields Arrow record batches of bounded size and
says which schema they share. Adding a source type means one module here and one model in
``wharf.contract``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from wharf.contract.dataset import DatasetSpec


@dataclass(frozen=True)
class Window:
    """The run's place in time, which a source may use to read only its slice of data.

    ``data_interval_start``/``_end`` bound a scheduled or backfill run's interval (None for
    a manual run without a logical date). Times are timezone-aware.
    """

    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    # Incremental sources: the published watermark (None before the first load), and whether
    # this is a backfill run, which re-reads its data interval whatever the watermark. A
    # stream source: its committed offset (None before the first load).
    watermark: Any = None
    backfill: bool = False

    def params(self) -> dict[str, datetime | None]:
        return {
            "logical_date": self.logical_date,
            "data_interval_start": self.data_interval_start,
            "data_interval_end": self.data_interval_end,
        }

    def values_for(
        self, names: Iterable[str], dataset_id: str, spell: Callable[[str], str]
    ) -> dict[str, datetime]:
        """This run's values of the parameters a source uses (``spell`` writes a name as the
        source's syntax does, e.g. ``:logical_date``). Raises ``ValueError`` for a name Wharf
        does not provide, or one this run has no value for (a manual run without a logical
        date)."""
        provided, used = self.params(), sorted(set(names))
        unknown = [n for n in used if n not in provided]
        if unknown:
            raise ValueError(
                f"{dataset_id}: unknown parameter(s) {', '.join(map(spell, unknown))}; Wharf "
                f"provides {', '.join(map(spell, provided))}"
            )
        values = {n: provided[n] for n in used}
        missing = [n for n, value in values.items() if value is None]
        if missing:
            raise ValueError(
                f"{dataset_id}: the source uses {spell(missing[0])}, but this run has none (a "
                "manual run without a logical date); trigger it with a logical date, or backfill"
            )
        return {n: v for n, v in values.items() if v is not None}


class Modified:
    """When a source last changed, as the source itself says while it is read: the newest of
    the times it was ``seen`` with (a local file's mtime, an S3 object's ``LastModified``, an
    HTTP response's ``Last-Modified``) and of the ``Modified`` it ``include``s (a glob's later
    files, opened only as the batches reach them). ``at`` is final once the batches are read;
    None when the source said nothing (SQL, Google Sheets)."""

    def __init__(self) -> None:
        self._newest: datetime | None = None
        self._parts: list[Modified] = []

    def seen(self, at: datetime | None) -> None:
        """Note a time the source gave (a naive one is taken as UTC)."""
        if at is None:
            return
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        if self._newest is None or at > self._newest:
            self._newest = at

    def include(self, other: Modified) -> None:
        """Count ``other``'s times too, as they are when ``at`` is asked."""
        self._parts.append(other)

    @property
    def at(self) -> datetime | None:
        """The newest time seen, timezone-aware (UTC), or None."""
        found = [t for t in (self._newest, *(p.at for p in self._parts)) if t is not None]
        return max(found, default=None)


@dataclass(frozen=True)
class Extract:
    """What a source yields: the landing schema, the batches, a description for logs, when
    the source last changed (``modified.at``, known once the batches are read) and, for a
    stream, the range of events read (``read``, filled once the batches are read: the
    ``StreamRange`` the load commits with the rows, as JSON)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    description: str
    modified: Modified = field(default_factory=Modified)
    read: dict[str, Any] = field(default_factory=dict)


def read(spec: DatasetSpec, window: Window | None = None) -> Extract:
    """Open the dataset's source for the run's ``window``; the batches are read lazily as
    the caller iterates."""
    assert spec.source is not None, f"{spec.dataset_id} has no source"
    module = importlib.import_module(f"wharf.extract.{spec.source.type}")
    result: Extract = module.extract(spec, window or Window())
    return result
