"""Alerts the YAML's ``notifications`` ask for, sent through Airflow's own notifiers (the SMTP
provider's ``SmtpNotifier``, the Slack provider's ``SlackWebhookNotifier``).

- A run's ``failure``, ``quarantine`` and ``schema_change`` are raised by its ``record`` step
  (``raise_run_alerts``), which runs whatever happened upstream: Airflow's DAG-level
  notifiers fail under ``dag.test()``, which ``wharf run`` uses. Each is claimed once per
  run in ``wharf.alerts``, so a retried ``record`` does not send it again.
- ``stale`` is raised by the ``wharf.freshness`` DAG (``check_freshness``), once until the
  dataset is fresh again.

Each message is one line of cause, the dataset, the run id and a link to the dataset's page.
The notifiers' fields are set here and sent with ``notify()``, which renders none of them
as a Jinja template: an error quoting a source value such as ``{{ conn.x.password }}`` is
sent as written. A channel that refuses an alert is logged and recorded in
``wharf.alerts.error``; it does not fail the step (the run's own outcome stands).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wharf import connections, errors, settings
from wharf.contract.dataset import DatasetSpec
from wharf.ledger import alerts as ledger
from wharf.orchestration import freshness as fresh

log = logging.getLogger(__name__)

# The operator pages' path of a dataset (the Wharf plugin of the Airflow UI serves it).
DATASET_PAGE = "/wharf/datasets/{dataset_id}"
DEFAULT_BASE_URL = "http://localhost:8080"
_SUBJECT_CHARS = 200


def dataset_page_url(dataset_id: str) -> str:
    """The dataset's page in the Airflow UI: Airflow's ``[api] base_url`` (default
    ``http://localhost:8080``) + ``DATASET_PAGE``."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL
    return base.rstrip("/") + DATASET_PAGE.format(dataset_id=dataset_id)


@dataclass(frozen=True)
class Alert:
    """One alert: ``event`` (failure, quarantine, schema_change, stale), the dataset, the run
    (None for stale), the one-line ``cause`` and the lines after it (a failed step's error
    names each broken rule on a line of its own)."""

    event: str
    dataset_id: str
    run_id: str | None
    cause: str
    detail: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        """``[wharf] failure: shop.orders: validate: column 'x', row 4: ...`` (capped)."""
        text = f"[wharf] {self.event}: {self.dataset_id}: {self.cause}"
        return text if len(text) <= _SUBJECT_CHARS else text[: _SUBJECT_CHARS - 1] + "…"

    def lines(self) -> list[str]:
        """The message: the cause, the dataset, the run and the page's link, one a line."""
        return [
            f"{self.event}: {self.cause}",
            f"dataset: {self.dataset_id}",
            f"run: {self.run_id or '-'}",
            f"page: {dataset_page_url(self.dataset_id)}",
            *(["", *self.detail] if self.detail else []),
        ]

    @property
    def text(self) -> str:
        return "\n".join(self.lines())

    @property
    def html(self) -> str:
        return "<br>\n".join(html.escape(line) for line in self.lines())


def run_alerts(spec: DatasetSpec, run_id: str, outcome: ledger.RunOutcome) -> list[Alert]:
    """The alerts of one run that its YAML's ``on`` asks for, in order failure, quarantine,
    schema_change."""
    found = []
    if outcome.failure is not None and spec.alerts_on("failure"):
        cause = f"run failed: {outcome.failure}"
        found.append(Alert("failure", spec.dataset_id, run_id, cause, outcome.failure_detail))
    if outcome.quarantined and spec.alerts_on("quarantine"):
        found.append(
            Alert(
                "quarantine",
                spec.dataset_id,
                run_id,
                f"{outcome.quarantined} row(s) quarantined (wharf.quarantine, run {run_id})",
            )
        )
    if outcome.schema_changes and spec.alerts_on("schema_change"):
        found.append(
            Alert(
                "schema_change",
                spec.dataset_id,
                run_id,
                "schema version " + " | ".join(outcome.schema_changes),
            )
        )
    return found


def channels(spec: DatasetSpec) -> list[str]:
    """Where the spec's alerts go: its email addresses, then ``slack:<conn_id>``."""
    notifications = spec.notifications
    if notifications is None:
        return []
    slack = notifications.slack_webhook_conn_id
    return [*notifications.emails, *([f"slack:{slack}"] if slack else [])]


@dataclass(frozen=True)
class Delivery:
    """How sending went: ``delivered`` channels took it; ``problem``, one line per channel
    that refused it (its connection id, the error's class and first line, the connection's
    password written as ``***``: a client's error may quote it), None when none did."""

    delivered: int
    problem: str | None


def send(spec: DatasetSpec, alert: Alert) -> Delivery:
    """Send ``alert`` to every channel of the spec (its emails through one SMTP message, its
    Slack webhook); a refusal is logged, never raised."""
    notifications = spec.notifications
    if notifications is None:
        return Delivery(0, None)
    senders: list[tuple[str, Callable[[], None]]] = []
    if notifications.emails:
        senders.append((settings.smtp_conn_id(), lambda: _mail(list(notifications.emails), alert)))
    slack = notifications.slack_webhook_conn_id
    if slack:
        senders.append((slack, lambda: _slack(slack, alert)))
    problems = []
    for conn_id, sender in senders:
        try:
            sender()
        except Exception as err:  # a refused alert must not change the run's outcome
            # A client's error can quote the URL it was given, a webhook's token in it.
            said = connections.scrubbed(
                errors.one_line(err), connections.connection_secrets(conn_id)
            )
            problem = f"{conn_id}: {type(err).__name__}: {said}"
            log.error("%s: the %s alert was not sent: %s", alert.dataset_id, alert.event, problem)
            problems.append(problem)
    return Delivery(len(senders) - len(problems), "\n".join(problems) or None)


def _mail(to: list[str], alert: Alert) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    SmtpNotifier(
        to=to,
        from_email=settings.alert_from_email(),
        subject=alert.subject,
        html_content=alert.html,
        smtp_conn_id=settings.smtp_conn_id(),
    ).notify(_NO_CONTEXT)


def _slack(conn_id: str, alert: Alert) -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    connections.yaml_connection(conn_id, "slack", alert.dataset_id)
    SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=alert.text).notify(_NO_CONTEXT)


# notify() reads the context only to render fields left unset (the sender, when the SMTP
# connection names it): nothing of the run's.
_NO_CONTEXT: Any = {}


def raise_alert(conn: connections.Connection, spec: DatasetSpec, alert: Alert) -> Delivery | None:
    """Claim ``alert`` in ``wharf.alerts`` and send it; None when this run had already
    raised it (nothing is sent)."""
    alert_id = ledger.claim_alert(
        conn, alert.dataset_id, alert.run_id, alert.event, alert.cause, channels(spec)
    )
    if alert_id is None:
        return None
    delivery = send(spec, alert)
    ledger.finish_alert(conn, alert_id, delivery.problem)
    if delivery.problem is None:
        log.info("%s: %s alert sent to %s", alert.dataset_id, alert.event, channels(spec))
    return delivery


def raise_run_alerts(conn: connections.Connection, spec: DatasetSpec, run_id: str) -> list[str]:
    """``record``'s alerts: those of the run's outcome that the YAML asks for, each raised
    once per run. Returns the events raised now."""
    if spec.notifications is None:
        return []
    outcome = ledger.run_outcome(conn, spec.dataset_id, run_id)
    return [
        a.event for a in run_alerts(spec, run_id, outcome) if raise_alert(conn, spec, a) is not None
    ]


def check_freshness(now: datetime | None = None) -> dict[str, Any]:
    """The ``wharf.freshness`` DAG's body: every dataset's freshness as of ``now`` (default
    the wall clock: staleness is about the present) saved in ``wharf.freshness``, and one
    ``stale`` alert for each stale dataset that asks for it and was not alerted since it
    was last fresh (an alert no channel took is tried again by the next check). Returns
    ``{"stale": [ids], "alerted": [ids]}``."""
    from wharf.specfiles import load_specs

    now = now or datetime.now(UTC)
    specs = {s.dataset_id: s for s in load_specs()[0]}
    stale, alerted = [], []
    with connections.connect() as conn:
        rows, updated = ledger.freshness_rows(conn), ledger.last_updated(conn)
        verdicts = verdicts_of(specs, updated, rows, now)
        for dataset_id, verdict in sorted(verdicts.items()):
            row = ledger.save_freshness(conn, dataset_id, now, verdict.stale_since, verdict.reason)
            conn.commit()
            if not verdict.stale:
                continue
            stale.append(dataset_id)
            spec = specs[dataset_id]
            if row.alerted_at is None and spec.alerts_on("stale"):
                assert verdict.reason is not None
                delivery = raise_alert(conn, spec, Alert("stale", dataset_id, None, verdict.reason))
                if delivery is None or not delivery.delivered:
                    continue  # no channel took it: the next check tries again
                ledger.mark_stale_alerted(conn, dataset_id, now)
                conn.commit()
                alerted.append(dataset_id)
    log.info("freshness at %s: stale %s; alerted %s", f"{now:%Y-%m-%d %H:%M}", stale, alerted)
    return {"stale": stale, "alerted": alerted}


def verdicts_of(
    specs: dict[str, DatasetSpec],
    updated: dict[str, datetime],
    rows: dict[str, ledger.FreshnessRow],
    now: datetime,
) -> dict[str, fresh.Freshness]:
    """Each spec's ``Freshness``: inputs before the cuts that read them (an input with no
    YAML counts as fresh; its update time still counts for the cuts reading it)."""
    from wharf.publish import data_cuts

    verdicts: dict[str, fresh.Freshness] = {}

    def judge(dataset_id: str, path: tuple[str, ...] = ()) -> fresh.Freshness:
        if dataset_id in verdicts:
            return verdicts[dataset_id]
        spec = specs.get(dataset_id)
        if spec is None or dataset_id in path:  # not a YAML, or a cycle wharf check refuses
            return fresh.FRESH
        inputs = None
        if spec.metadata.kind == "data_cut":
            names = data_cuts.known_inputs(spec) or []  # none known: judged by its schedule
            inputs = {i: (updated.get(i), judge(i, (*path, dataset_id))) for i in names}
        seen = rows[dataset_id].first_seen_at if dataset_id in rows else now
        verdicts[dataset_id] = fresh.freshness(spec, updated.get(dataset_id), seen, now, inputs)
        return verdicts[dataset_id]

    for dataset_id in specs:
        judge(dataset_id)
    return verdicts
