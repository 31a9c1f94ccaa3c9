"""Wharf's one error model (after dlt's terminal/transient split).

A ``TerminalError`` is one a retry cannot help (bad data, a guard, a breaking schema change,
a YAML or configuration mistake, an HTTP 4xx): its task fails at once, without retrying, with
the cause as the first line of the log. A ``TransientError`` may heal (a dropped connection,
a timeout, a 5xx or 429 after the last in-request retry, a lock timeout): Airflow retries the
task with exponential backoff.

Errors from libraries are classified by ``is_terminal``: Python's value and lookup errors (a
value that does not parse, a key that is missing) cannot heal; anything else is treated as
transient, since a retry is cheap next to a lost nightly run.
"""

from __future__ import annotations

# Audit rows and XCom keep at most this many characters of an error: an error text built
# from a hostile value must not become a 100 MB row (the task log keeps the full text).
MAX_ERROR_CHARS = 4_000


class WharfError(Exception):
    """Base of every error Wharf raises on purpose."""


class TerminalError(WharfError):
    """A retry cannot help: bad data, a guard, a breaking schema change, bad configuration."""


class TransientError(WharfError):
    """The world may heal: connection reset, timeout, 5xx, 429, lock timeout."""


class UnsafeSpecError(TerminalError):
    """A dataset YAML asks Wharf to do something its threat model forbids (README, "Threat
    model"): read outside the allowed roots, send credentials to another host, write to a
    source, run code. Raised at run time too: a file can change between check and run."""


_TERMINAL_BUILTINS: tuple[type[BaseException], ...] = (
    ValueError,  # includes UnicodeError, json.JSONDecodeError, pyarrow.ArrowInvalid
    LookupError,
    TypeError,
    NotImplementedError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileNotFoundError,  # a missing source file or lake zone: a retry does not create it
)


def is_terminal(err: BaseException) -> bool:
    """Whether a retry of the failed task cannot help.

    Wharf's own errors say so by their class; an unknown Airflow connection is terminal.
    psycopg's data and integrity errors (a value
    PostgreSQL refuses) and SQL errors are terminal; its operational errors (connection lost,
    lock timeout) are not.
    """
    if isinstance(err, TransientError):
        return False
    if isinstance(err, (TerminalError, *_TERMINAL_BUILTINS)):
        return True
    import psycopg
    from airflow.sdk.exceptions import AirflowNotFoundException

    if isinstance(err, AirflowNotFoundException):  # an unknown conn_id
        return True
    return isinstance(
        err, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError
    ) and not isinstance(err, psycopg.OperationalError)


def one_line(err: BaseException) -> str:
    """The error's first line, capped, for audit rows and the operator's summary."""
    text = str(err) or type(err).__name__
    first = text.splitlines()[0] if text.strip() else type(err).__name__
    return first[:MAX_ERROR_CHARS]


def capped(text: str) -> str:
    """``text`` cut to ``MAX_ERROR_CHARS`` characters, saying how much was cut."""
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[:MAX_ERROR_CHARS] + f"... [{len(text) - MAX_ERROR_CHARS} more characters]"
