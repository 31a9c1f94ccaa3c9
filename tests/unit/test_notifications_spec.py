"""The ``notifications:`` block of a dataset YAML: addresses and a connection id only, each
mistake named by file:line as ``wharf check`` prints it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from test_spec import GOOD, errors_of, write

from wharf.contract.notifications import Notifications
from wharf.specfiles import load_spec


def test_notifications_load_with_defaults(schemas: Path) -> None:
    spec = load_spec(write(schemas, GOOD + "notifications: {emails: [ops@example.org]}\n"))
    assert spec.notifications == Notifications(emails=("ops@example.org",))
    assert spec.alerts_on("failure") and spec.alerts_on("stale")
    assert not spec.alerts_on("quarantine")
    assert spec.stale_after == timedelta(hours=1)


def test_no_notifications_means_no_alerts(schemas: Path) -> None:
    spec = load_spec(write(schemas, GOOD))
    assert spec.notifications is None and not spec.alerts_on("failure")
    assert spec.stale_after == timedelta(hours=1)  # the Datasets page still shows staleness


def test_every_field(schemas: Path) -> None:
    text = GOOD + (
        "notifications:\n"
        "  emails: [ops@example.org, a.b+wharf@data.example.org]\n"
        "  slack_webhook_conn_id: slack_ops\n"
        "  on: [failure, quarantine, schema_change, stale]\n"
        "  stale_after: PT3H\n"
    )
    notifications = load_spec(write(schemas, text)).notifications
    assert notifications is not None
    assert notifications.slack_webhook_conn_id == "slack_ops"
    assert notifications.on == ("failure", "quarantine", "schema_change", "stale")
    assert notifications.stale_after == timedelta(hours=3)


def test_model_is_frozen() -> None:
    notifications = Notifications(emails=("ops@example.org",))
    with pytest.raises(Exception, match="frozen"):
        notifications.emails = ()  # type: ignore[misc]


# GOOD has 13 lines: the notifications block starts on line 14.
BAD = {
    "notifications: {emails: [not-an-address]}": "14: notifications.emails[0]: "
    "'not-an-address' is not an email address",
    "notifications: {emails: ['{{ conn.smtp_default.password }}@x.org']}": "14: "
    "notifications.emails[0]: '{{ conn.smtp_default.password }}@x.org' is not an email",
    "notifications: {slack_webhook_conn_id: 'https://hooks.slack.com/services/T/B/x'}": "14: "
    "notifications.slack_webhook_conn_id: 'https://hooks.slack.com/services/T/B/x' is not "
    "an Airflow connection id",
    "notifications: {emails: [a@example.org], on: [sometimes]}": "14: notifications.on[0]: "
    "'sometimes' is not allowed; expected one of: 'failure', 'quarantine', 'schema_change' "
    "or 'stale'",
    "notifications: {emails: [a@example.org], on: [stale, stale]}": "14: notifications.on: "
    "'on' repeats stale",
    "notifications: {emails: [a@example.org], on: []}": "14: notifications.on: 'on' names "
    "nothing: list at least one of failure, quarantine, schema_change, stale",
    "notifications: {on: [failure]}": "14: notifications: notifications need 'emails' or a "
    "'slack_webhook_conn_id'",
    "notifications: {emails: [a@example.org], smtp_password: hunter2}": "14: "
    "notifications.smtp_password: ",
    "notifications: {emails: [a@example.org], stale_after: 5}": "14: notifications.stale_after: ",
}


@pytest.mark.parametrize(("line", "expected"), BAD.items(), ids=list(range(len(BAD))))
def test_bad_notifications_name_the_line(schemas: Path, line: str, expected: str) -> None:
    errors = errors_of(write(schemas, GOOD + line + "\n"))
    assert len(errors) == 1 and errors[0].startswith(expected), errors
    assert "hunter2" not in errors[0]


def test_a_yes_or_no_key_is_text_not_a_boolean(schemas: Path) -> None:
    # YAML 1.1 reads a plain yes/on as true; as keys they are the words written.
    assert errors_of(write(schemas, GOOD + "yes: 1\n")) == ["14: yes: unknown key 'yes'"]


def test_run_alerts_follow_on() -> None:
    from test_freshness import ORDERS, spec

    from wharf.ledger.alerts import RunOutcome
    from wharf.orchestration.alerts import run_alerts

    outcome = RunOutcome("validate: 2 contract violation(s)", 3, ("1.1: added column 'x'",))
    only_failure = spec(ORDERS, notifications={"emails": ["a@example.org"], "on": ["failure"]})
    [alert] = run_alerts(only_failure, "run_1", outcome)
    assert (alert.event, alert.run_id) == ("failure", "run_1")
    assert alert.subject == (
        "[wharf] failure: shop.orders: run failed: validate: 2 contract violation(s)"
    )
    every = spec(
        ORDERS,
        notifications={"emails": ["a@example.org"], "on": ["schema_change", "quarantine"]},
    )
    assert [(a.event, a.cause) for a in run_alerts(every, "run_1", outcome)] == [
        ("quarantine", "3 row(s) quarantined (wharf.quarantine, run run_1)"),
        ("schema_change", "schema version 1.1: added column 'x'"),
    ]
    assert run_alerts(spec(ORDERS), "run_1", outcome) == []
