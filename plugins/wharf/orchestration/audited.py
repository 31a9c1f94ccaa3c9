"""Each step's audit rows (a start row, then an end row with its status, error and counts),
and the cause line of a failure, ending with the way out when the data broke the contract."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

from wharf import connections, errors
from wharf.ledger.audit import AuditRow, write_audit
from wharf.ledger.migrations import SchemaVersionError, require_head
from wharf.orchestration.run_context import Run
from wharf.publish import access
from wharf.validate import contract_checks, expectations

log = logging.getLogger(__name__)


@contextmanager
def audited(run: Run, step: str) -> Iterator[AuditRow]:
    """Append the step's start row now and its end row when it ends, with ``status`` failed
    and the error if it raised (the error is re-raised: a failed step must fail its task).
    Both rows carry one attempt id: a start row that never gets its end row is an attempt
    that was killed (SIGKILL, a lost worker, a timeout that killed the process)."""
    row = AuditRow(
        dataset_id=run.dataset_id,
        run_id=run.run_id,
        step=step,
        status="running",
        run_type=run.run_type,
        logical_date=run.logical_date,
        try_number=run.try_number,
        started_at=datetime.now(UTC),
        attempt=str(uuid.uuid4()),
    )
    started = time.monotonic()
    _write_audit(row, "start", check=True)
    try:
        yield row
        row.status = "success"
    except BaseException as err:
        row.status, row.error = "failed", errors.capped(_cause(step, err))
        row.detail["terminal"] = errors.is_terminal(err)
        if step == "validate":  # the data broke the contract: refused again if cleared
            row.detail["landing_failed"] = isinstance(err, _DATA_FAILURES)
        raise
    finally:
        row.detail["seconds"] = round(time.monotonic() - started, 3)
        _write_audit(row, "end")


def _write_audit(row: AuditRow, event: Literal["start", "end"], check: bool = False) -> None:
    """Append one audit row, or log that it could not be written: the step's own outcome
    matters more than its audit row. With ``check``, first ``require_head`` (one SELECT on
    the same connection) and ``access.require_loader``, whose ``SchemaVersionError`` and
    ``AccessError`` are raised: no step may write Wharf's
    tables in a shape this code does not know."""
    try:
        with connections.connect() as conn:
            if check:
                require_head(conn)
                with conn.cursor() as cur:
                    access.require_loader(cur, access.deployment_roles())
            write_audit(conn, row, event)
    except (SchemaVersionError, access.AccessError):
        raise
    except Exception:
        log.exception("%s %s: could not write the audit %s row", row.dataset_id, row.step, event)


# The end of a terminal validate failure's cause line: a cleared validate would only
# re-validate the landing that failed (issue #11).
RECOVERY = "fix the source, then clear `extract` with its downstream tasks"


class LandingAlreadyFailed(errors.TerminalError):
    """A cleared ``validate`` found the landing that already failed contract_checks."""


# The landed data broke the contract: validating the same landing under the same contract
# again can only fail the same way.
_DATA_FAILURES = (
    contract_checks.ContractError,
    contract_checks.MissingColumnsError,
    expectations.ChecksFailed,
    LandingAlreadyFailed,
)


def recovery(step: str, err: BaseException) -> str:
    """What ends the cause line of a validate that failed on the data: the way out."""
    return f" — {RECOVERY}" if step == "validate" and isinstance(err, _DATA_FAILURES) else ""


def _cause(step: str, err: BaseException) -> str:
    """The error's text for the audit row, its first line ending with the recovery."""
    first, newline, rest = (str(err) or type(err).__name__).partition("\n")
    return f"{first}{recovery(step, err)}{newline}{rest}"
