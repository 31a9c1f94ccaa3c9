"""rAPId's sensitivity levels, as rules between datasets: PRIVATE includes PUBLIC, and
PROTECTED data is isolated per domain (rAPId: a PROTECTED dataset needs its domain's grant)."""

from __future__ import annotations

from collections.abc import Mapping

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
