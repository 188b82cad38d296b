"""``iotscope alerts run``: one DAEDALUS round, from the store to each organization's mailbox.

For each organization with hosts due (:mod:`.history`), one message in its language: the hosts
with their evidence in the text, one X-ARF v4 JSON report per host and a Shadowserver-style CSV
attached; written, recorded and delivered by :func:`~iotscope.notify.dispatch.dispatch` (nothing
is claimed sent that the server did not accept; a message not delivered leaves its hosts due).

``dry_run`` computes the same plan and writes nothing at all (no outbox file, no history, not
even ``notify.sqlite``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from iotscope.notify.daedalus import ROLES, HostEvidence, find_org_hosts
from iotscope.notify.database import FILENAME, NotifyDatabase
from iotscope.notify.dispatch import OrgMessage, dispatch
from iotscope.notify.history import DEFAULT_QUIET, Decision, decide, record_alerted
from iotscope.notify.mail import Attachment, SmtpSettings, build_message, new_message_id
from iotscope.notify.orgs import Org, OrgCatalog
from iotscope.notify.shadowserver import ALERT_FIELDS, alert_rows
from iotscope.notify.templates import render
from iotscope.notify.xarf import xarf_report
from iotscope.spreadsheet import csv_text
from iotscope.store.packets import PacketStore


@dataclass
class OrgAlert(OrgMessage):
    """The alert of one organization in one run: its hosts."""

    hosts: list[HostEvidence] = field(default_factory=list)


@dataclass
class AlertRun:
    alerts: list[OrgAlert] = field(default_factory=list)
    #: Hosts seen but not alerted this time, with the reason (history, quiet period).
    held_back: list[Decision] = field(default_factory=list)
    org_version: int | None = None

    @property
    def failed(self) -> list[OrgAlert]:
        return [a for a in self.alerts if a.status == "pending"]


def run_alerts(store_dir: Path, catalog: OrgCatalog, *, outbox: Path, smtp: SmtpSettings | None = None,
               dry_run: bool = False, since: datetime | None = None, until: datetime | None = None,
               quiet: timedelta = DEFAULT_QUIET, now: datetime | None = None) -> AlertRun:
    """Alert every organization of ``catalog`` about its hosts in the store ``store_dir``."""
    now = now or datetime.now(UTC)
    store = PacketStore(store_dir, read_only=True)
    try:
        hosts = find_org_hosts(store, catalog, since=since, until=until)
    finally:
        store.close()
    if dry_run and not (store_dir / FILENAME).is_file():
        return _plan(catalog, [Decision(h, True, "new") for h in hosts])
    with NotifyDatabase(store_dir, read_only=dry_run) as db:
        decisions = decide(db, hosts, now=now, quiet=quiet)
        run = _plan(catalog, decisions)
        if dry_run:
            return run
        run.org_version = db.record_catalog(catalog)
        for alert in run.alerts:
            _send(db, catalog, catalog.by_name(alert.org), alert, run.org_version, outbox, smtp)
    return run


def _plan(catalog: OrgCatalog, decisions: list[Decision]) -> AlertRun:
    run = AlertRun(held_back=[d for d in decisions if not d.alert])
    for org in catalog.orgs:
        due = [d.host for d in decisions if d.alert and d.host.org == org.name]
        if due:
            run.alerts.append(OrgAlert(org.name, list(org.emails), hosts=due))
    return run


def _send(db: NotifyDatabase, catalog: OrgCatalog, org: Org, alert: OrgAlert, org_version: int, outbox: Path,
          smtp: SmtpSettings | None) -> None:
    message_id = new_message_id("alert")
    alert.delivered(dispatch(
        db, message=compose(catalog, org, alert.hosts, message_id), message_id=message_id,
        purpose="alert", org=org.name, org_version=org_version, recipients=alert.recipients, outbox=outbox,
        smtp=smtp, record=lambda: record_alerted(db, message_id, alert.hosts),
    ))


def compose(catalog: OrgCatalog, org: Org, hosts: list[HostEvidence], message_id: str):
    """The alert mail of ``org`` about ``hosts`` (text in its language, X-ARF + CSV attached)."""
    rendered = render(
        "alert", org.language, org=org, sender=catalog.sender, hosts=hosts, roles=ROLES, message_id=message_id,
        first_seen=min(h.first_seen for h in hosts).strftime("%Y-%m-%d %H:%M"),
        last_seen=max(h.last_seen for h in hosts).strftime("%Y-%m-%d %H:%M"),
    )
    attachments = [
        Attachment(f"xarf-{index:03d}-{h.host.replace(':', '-')}.json", "application/json",
                   (json.dumps(xarf_report(h, catalog.sender), indent=1, ensure_ascii=False) + "\n").encode())
        for index, h in enumerate(hosts, 1)
    ]
    attachments.append(Attachment("hosts.csv", "text/csv", csv_text(alert_rows(hosts), ALERT_FIELDS).encode()))
    return build_message(catalog.sender, list(org.emails), rendered.subject, rendered.body, attachments=attachments)
