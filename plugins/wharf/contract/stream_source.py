"""The ``stream`` source: a NATS JetStream stream or a Redis stream, read in micro-batches.

Each run reads the events after the offset its last load committed (``wharf.stream_offsets``,
advanced in the load's own transaction) up to the stream's last event at the run's start, at
most ``max_messages_per_run`` of them. Events are JSON documents mapped to columns by
``column_paths`` (JSONPath, as the ``http`` source's); each row keeps its message id in
``_wharf_message_id``.

The names a YAML gives here reach a broker as a stream name, a subject or a consumer name:
each is checked whole by ``wharf check`` and again by the reader at run time
(``stream_name_problem``, ``subject_problem``, ``consumer_problem``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from wharf.contract.base import ContractModel, jsonpath_problem, spec_error
from wharf.contract.names import ColumnName, ConnId

# A JetStream stream name may not hold '.', '*', '>', whitespace or path separators (the
# server keeps each stream in a folder of its name); a Redis key may hold anything, but a
# YAML's key is held to the same few characters, plus '.'.
_STREAM = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_NATS_STREAM = re.compile(r"[A-Za-z0-9_-]{1,128}")
# A durable consumer (NATS) or consumer group (Redis): no '.', '*' or '>' (NATS builds API
# subjects from it), bounded.
_CONSUMER = re.compile(r"[A-Za-z0-9_-]{1,160}")
# A subject's token: letters, digits, '_' and '-'; '*' (one token) and '>' (the rest, last
# only) are the only wildcards.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SUBJECT_CHARS = 255
DEFAULT_MAX_MESSAGES = 1_000_000


def stream_name_problem(broker: str, name: str) -> str | None:
    """Why ``name`` is not an allowed stream name for ``broker``, or None if it is one."""
    if broker == "nats" and not _NATS_STREAM.fullmatch(name):
        return f"{name[:140]!r} is not a JetStream stream name: 1-128 letters, digits, '_' and '-'"
    if not _STREAM.fullmatch(name):
        return f"{name[:140]!r} is not a stream name: 1-128 letters, digits, '_', '.' and '-'"
    return None


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` is not an allowed NATS filter subject, or None if it is one:
    dot-separated tokens of letters, digits, '_' and '-', or the wildcards ``*`` (one
    token) and ``>`` (the rest: last token only)."""
    if len(subject) > MAX_SUBJECT_CHARS:
        return f"the subject is {len(subject)} characters long; at most {MAX_SUBJECT_CHARS}"
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if token == ">" and index == len(tokens) - 1:
            continue
        if token != "*" and not _TOKEN.fullmatch(token):
            return (
                f"{subject[:80]!r} is not a subject: dot-separated tokens of letters, digits, "
                "'_' and '-', or the wildcards '*' (one token) and '>' (the last token only)"
            )
    return None


def consumer_problem(name: str) -> str | None:
    """Why ``name`` is not an allowed durable consumer or consumer group name, or None."""
    if not _CONSUMER.fullmatch(name):
        return f"{name[:170]!r} is not a consumer name: 1-160 letters, digits, '_' and '-'"
    return None


def default_consumer(dataset_id: str) -> str:
    """The consumer name a dataset uses when its YAML names none: ``wharf_<domain>_<dataset>``
    (a dataset id's two names are lowercase letters, digits and '_', so it always passes
    ``consumer_problem``)."""
    return "wharf_" + dataset_id.replace(".", "_")


class StreamSource(ContractModel):
    """A topic read in bounded micro-batches: NATS JetStream (a stream, optionally one
    subject of it, and a durable consumer) or Redis Streams (a stream key and a consumer
    group). The broker's address and credentials live in the Airflow connection."""

    type: Literal["stream"] = Field(description="A NATS JetStream or Redis stream.")
    broker: Literal["nats", "redis"] = Field(
        description="`nats` (JetStream) or `redis` (Redis Streams)."
    )
    conn_id: ConnId = Field(
        description="The Airflow connection of the broker (`nats://host:4222`, "
        "`redis://host:6379/0`): its login and password live there, never in YAML."
    )
    stream: str = Field(
        description="The JetStream stream name (1-128 letters, digits, `_`, `-`) or the Redis "
        "stream key (also `.`).",
    )
    subject: str | None = Field(
        default=None,
        description="NATS only: read only this subject of the stream (`sensors.readings`; "
        "the wildcards `*` and a last `>` are allowed); none: every subject.",
    )
    consumer: str | None = Field(
        default=None,
        description="The durable consumer (NATS) or consumer group (Redis) Wharf acknowledges "
        "on after each load commits, so the broker shows how far Wharf has loaded; none: "
        "`wharf_<domain>_<dataset>`. The offset Wharf reads from is its own "
        "(`wharf.stream_offsets`), never the consumer's.",
    )
    column_paths: dict[ColumnName, str] = Field(
        default_factory=dict,
        description="JSONPath per column into each event (`room: $.location.room`); other "
        "columns read the event's key `source_name` or `name`.",
    )
    max_messages_per_run: int = Field(
        default=DEFAULT_MAX_MESSAGES,
        ge=1,
        le=100_000_000,
        description="The most events one run reads (the rest wait for the next run).",
    )
    batch_size: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Events per Arrow record batch (and per broker fetch): bounds memory.",
    )

    @property
    def origin(self) -> str:
        """Where the data comes from, for lineage records."""
        subject = f"/{self.subject}" if self.subject else ""
        return f"stream:{self.broker}:{self.conn_id}/{self.stream}{subject}"

    @model_validator(mode="after")
    def _names_allowed(self) -> StreamSource:
        problem = stream_name_problem(self.broker, self.stream)
        if problem:
            raise spec_error(problem, "stream")
        if self.subject is not None:
            if self.broker != "nats":
                raise spec_error(
                    "subject is for broker nats only (a Redis stream has no subjects)", "subject"
                )
            problem = subject_problem(self.subject)
            if problem:
                raise spec_error(problem, "subject")
        if self.consumer is not None:
            problem = consumer_problem(self.consumer)
            if problem:
                raise spec_error(problem, "consumer")
        for column, path in self.column_paths.items():
            problem = jsonpath_problem(path)
            if problem:
                raise spec_error(f"{path!r} is not a JSONPath ({problem})", "column_paths", column)
        return self
