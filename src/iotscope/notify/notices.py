"""``iotscope notify isp``: each ISP gets the survey's findings inside its own networks (NOTICE step 2).

A finding is reported by the survey's own rule (:func:`iotscope.survey.findings.latest_per_service`
over the conclusive observations, as ``survey report`` does): a service is vulnerable when its
newest conclusive observation says so. Each vulnerable service goes to the one organization whose
network holds its address, with its evidence (address, port, protocol, time, survey, credential
*id*, device guess; never a password, which the findings do not hold) and a tracking id that
follows it to the subscriber's notice and to ``notify status``. A finding already told (its
notice in a delivered or outbox message) is not sent again; a finding whose message could not be
delivered is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from iotscope.notify.database import FILENAME, NotifyDatabase, now_text
from iotscope.notify.dispatch import OrgMessage, dispatch
from iotscope.notify.mail import Attachment, SmtpSettings, build_message, new_message_id
from iotscope.notify.orgs import Org, OrgCatalog
from iotscope.notify.templates import render
from iotscope.spreadsheet import csv_text
from iotscope.survey.findings import CONCLUSIVE, latest_per_service
from iotscope.survey.report import REPORT_FIELDS, REPORT_TIME_FORMAT, store_findings

#: The CSV an ISP receives: Shadowserver's columns as ``survey report`` writes them, plus the tracking id.
FINDING_FIELDS = (*REPORT_FIELDS, "tracking_id")


@dataclass
class IspNotice(OrgMessage):
    """The findings message of one organization in one run."""

    findings: list[dict] = field(default_factory=list)


@dataclass
class IspRun:
    notices: list[IspNotice] = field(default_factory=list)
    #: Vulnerable services already told in an earlier run.
    already: int = 0
    #: Vulnerable services inside no organization's networks (nobody to tell).
    unowned: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[IspNotice]:
        return [n for n in self.notices if n.status == "pending"]


def tracking_id(row: dict) -> str:
    """The finding's tracking id: the same for the same observation in every run (``F-`` + 12 hex)."""
    key = f"{row['ip']}|{row['port']}|{row['survey_id']}|{row['timestamp']}"
    return "F-" + hashlib.sha256(key.encode()).hexdigest()[:12].upper()


def vulnerable_findings(store_dir: Path) -> list[dict]:
    """Every service whose newest conclusive observation is vulnerable, as report rows with tracking ids."""
    latest = latest_per_service(store_findings(store_dir), CONCLUSIVE)
    rows = []
    for row in latest.to_pylist():
        if row["status"] != "vulnerable":
            continue
        out = {name: row.get(name) for name in REPORT_FIELDS}
        out["timestamp"] = row["ts"].strftime(REPORT_TIME_FORMAT)
        out["tracking_id"] = tracking_id(out)
        rows.append(out)
    return sorted(rows, key=lambda r: (r["ip"], r["port"]))


def notify_isps(store_dir: Path, catalog: OrgCatalog, *, outbox: Path, smtp: SmtpSettings | None = None,
                dry_run: bool = False) -> IspRun:
    """Send each organization its new vulnerable services (see the module docstring)."""
    findings = vulnerable_findings(store_dir)
    run = IspRun()
    if dry_run and not (store_dir / FILENAME).is_file():
        _plan(run, catalog, findings, told=set())
        return run
    with NotifyDatabase(store_dir, read_only=dry_run) as db:
        told = {row[0] for row in db.db.execute(
            "SELECT n.notice_id FROM notices n JOIN messages m USING (message_id) WHERE m.status IN ('sent', 'outbox')")}
        _plan(run, catalog, findings, told)
        if dry_run:
            return run
        version = db.record_catalog(catalog)
        for notice in run.notices:
            _send(db, catalog, catalog.by_name(notice.org), notice, version, outbox, smtp)
    return run


def _plan(run: IspRun, catalog: OrgCatalog, findings: list[dict], told: set[str]) -> None:
    by_org: dict[str, list[dict]] = {}
    for row in findings:
        owner = catalog.owner_of(row["ip"])
        if owner is None:
            run.unowned.append(row)
        elif row["tracking_id"] in told:
            run.already += 1
        else:
            by_org.setdefault(owner.name, []).append(row)
    run.notices = [IspNotice(org.name, list(org.emails), findings=by_org[org.name])
                   for org in catalog.orgs if org.name in by_org]


def _send(db: NotifyDatabase, catalog: OrgCatalog, org: Org, notice: IspNotice, version: int, outbox: Path,
          smtp: SmtpSettings | None) -> None:
    message_id = new_message_id("isp")
    rendered = render("isp", org.language, org=org, sender=catalog.sender, findings=notice.findings,
                      message_id=message_id)
    attachment = Attachment("findings.csv", "text/csv", csv_text(notice.findings, FINDING_FIELDS).encode())
    message = build_message(catalog.sender, notice.recipients, rendered.subject, rendered.body, attachments=[attachment])

    def record() -> None:
        notified = now_text()
        db.db.executemany(
            "INSERT OR REPLACE INTO notices (notice_id, message_id, org, ip, port, protocol, survey_id, finding_ts, "
            "notified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(f["tracking_id"], message_id, org.name, f["ip"], f["port"], f["protocol"], f["survey_id"],
              f["timestamp"], notified) for f in notice.findings],
        )

    notice.delivered(dispatch(db, message=message, message_id=message_id, purpose="isp", org=org.name,
                              org_version=version, recipients=notice.recipients, outbox=outbox, smtp=smtp,
                              record=record))
