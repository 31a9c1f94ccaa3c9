"""rAPId's sensitivity levels, as rules between datasets: PRIVATE includes PUBLIC, and
PROTECTED data is isolated per domain (rAPId: a PROTECTED dataset needs its domain's grant);
and a data cut never reads a dataset with row-level security (``row_access``)."""

from __future__ import annotations

from collections.abc import Mapping

from wharf.contract.dataset import DatasetSpec
from wharf.contract.metadata import Metadata

LEVELS = {"PUBLIC": 0, "PRIVATE": 1, "PROTECTED": 2}


def cut_sensitivity_problem(cut: Metadata, inputs: Mapping[str, Metadata]) -> str | None:
    """Why the data cut ``cut`` would show its ``inputs`` (dataset id -> metadata) to readers
    who may not read them, or None: a cut is at least as sensitive as every input, and a
    PROTECTED input keeps the cut PROTECTED in the input's own domain."""
    for dataset_id, given in sorted(inputs.items()):
        if LEVELS[given.sensitivity] > LEVELS[cut.sensitivity]:
            return (
                f"the cut is {cut.sensitivity} but reads {dataset_id}, which is "
                f"{given.sensitivity}: a data cut is at least as sensitive as every input"
            )
        if given.sensitivity == "PROTECTED" and given.domain != cut.domain:
            return (
                f"the cut reads {dataset_id}, PROTECTED in domain {given.domain}: PROTECTED "
                f"data is shown only within its own domain, not in {cut.domain}"
            )
    return None


def cut_row_access_problem(inputs: Mapping[str, DatasetSpec]) -> tuple[str, str] | None:
    """(input id, why) for the first of the data cut's ``inputs`` (dataset id -> spec) that
    declares ``row_access``, or None. A view reads its tables with its owner's rights, the
    cut's role: a materialized view would hold the rows that role may see, for every reader
    of the cut, whose readers are chosen by its own sensitivity, not by row."""
    for dataset_id, given in sorted(inputs.items()):
        if given.row_access is not None:
            return dataset_id, (
                f"the cut reads {dataset_id}, which declares row_access: a data cut reads its "
                "inputs with its own role's rights (a materialized view would hold the rows "
                "that role may see, for every reader of the cut); read such a dataset directly"
            )
    return None
