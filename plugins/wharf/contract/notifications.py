"""``notifications``: who is told when a dataset's run fails, quarantines rows, changes its
table's schema, or the dataset goes stale (after the MoJ platform's ``notifications:``).

Only addresses and a connection id live in the YAML: the SMTP server (the ``smtp_default``
connection) and the Slack webhook (the named connection) are Airflow connections."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from wharf.contract.base import ContractModel, duration_or_seconds, spec_error
from wharf.contract.names import ConnId

# What an alert is about: ``failure`` (a run failed), ``quarantine`` (a run set rows aside),
# ``schema_change`` (a load gave the table a new schema version), ``stale`` (not loaded
# within its schedule plus ``stale_after``).
ALERT_EVENTS = ("failure", "quarantine", "schema_change", "stale")
AlertEvent = Literal["failure", "quarantine", "schema_change", "stale"]

# A plain address: no quotes, comments, spaces or braces (a notifier renders its fields as
# Jinja templates), a dotted domain. 254 characters at most (RFC 5321's path limit).
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
MAX_EMAIL_CHARS = 254
DEFAULT_STALE_AFTER = timedelta(hours=1)


def _email(value: str) -> str:
    if len(value) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(value):
        raise PydanticCustomError(
            "wharf_email",
            "{value} is not an email address: expected name@example.org (letters, digits, "
            "'.', '_', '%', '+', '-' before the '@', a dotted domain after it)",
            {"value": repr(value[:100])},
        )
    return value


Email = Annotated[str, AfterValidator(_email)]


class Notifications(ContractModel):
    """Who hears about a dataset, and about what. At least one of ``emails`` and
    ``slack_webhook_conn_id``."""

    emails: tuple[Email, ...] = Field(
        default=(),
        max_length=50,
        description="Addresses to mail, through the SMTP server of the Airflow connection "
        "`smtp_default` (or `WHARF_SMTP_CONN_ID`); its extra's `from_email` (or "
        "`WHARF_ALERT_FROM_EMAIL`) is the sender.",
    )
    slack_webhook_conn_id: ConnId | None = Field(
        default=None,
        description="An Airflow connection of type `slackwebhook` (the webhook's token in its "
        "password): the webhook never lives in YAML.",
    )
    on: tuple[AlertEvent, ...] = Field(
        default=("failure", "stale"),
        description="What raises an alert: `failure` (a run failed), `quarantine` (a run "
        "set rows aside), `schema_change` (a load gave the table a new schema version), "
        "`stale` (not loaded within its schedule plus `stale_after`; one alert until it is "
        "fresh again).",
    )
    stale_after: timedelta = Field(
        default=DEFAULT_STALE_AFTER,
        ge=timedelta(minutes=1),
        le=timedelta(days=31),
        json_schema_extra=duration_or_seconds,
        description="The grace period (seconds or an ISO 8601 duration) past a scheduled "
        "run's time before the dataset counts as stale: long enough for the run and its "
        "retries to finish.",
    )

    @model_validator(mode="after")
    def _someone(self) -> Notifications:
        if not self.emails and self.slack_webhook_conn_id is None:
            raise spec_error("notifications need 'emails' or a 'slack_webhook_conn_id' to send to")
        if not self.on:
            raise spec_error(
                "'on' names nothing: list at least one of " + ", ".join(ALERT_EVENTS), "on"
            )
        repeated = sorted({e for e in self.on if self.on.count(e) > 1})
        if repeated:
            raise spec_error(f"'on' repeats {', '.join(repeated)}", "on")
        return self
