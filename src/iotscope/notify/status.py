"""``iotscope notify status``: for every finding told to an ISP, was it fixed?

The loop closes only when a later survey looks again (NOTICE re-surveyed the same devices). Per
notice, by the newest *conclusive* observation of its service (address, port) in the store, the
rule ``survey report`` uses (:func:`iotscope.survey.findings.latest_per_service`):

* ``not delivered``: its message never reached the ISP (still ``pending``);
* ``notified``: no survey looked at the service since the notified observation;
* ``still vulnerable``: a later survey found it vulnerable again;
* ``fixed``: a later survey found the default password refused, or the port closed.

Fixed notices are closed in ``notify.sqlite`` (``closed_at``, ``closed_by`` = the survey that
showed it), the first time this runs after that survey: a re-survey closes them without anyone
ticking a box. A timeout or an incomplete probe is not conclusive and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iotscope.notify.database import FILENAME, NotifyDatabase, now_text
from iotscope.notify.errors import NotifyError
from iotscope.survey.findings import CONCLUSIVE, latest_per_service
from iotscope.survey.report import REPORT_TIME_FORMAT, store_findings

STATES = ("not delivered", "notified", "still vulnerable", "fixed")


@dataclass(frozen=True, slots=True)
class NoticeState:
    notice_id: str
    org: str
    ip: str
    port: int
    protocol: str
    notified_at: str
    state: str
    #: The survey and time of the observation that decided ``state`` (the notified one for ``notified``).
    survey_id: str
    observed: str


@dataclass
class StatusReport:
    notices: list[NoticeState] = field(default_factory=list)
    #: org -> state -> count
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    closed_now: int = 0


def notice_status(store_dir: Path) -> StatusReport:
    """The state of every ISP notice of ``store_dir``, closing the ones a later survey shows fixed."""
    if not (store_dir / FILENAME).is_file():
        raise NotifyError(f"{store_dir}: nothing notified yet (run `iotscope notify isp` first)")
    latest = {(r["ip"], r["port"]): r for r in latest_per_service(store_findings(store_dir), CONCLUSIVE).to_pylist()}
    report = StatusReport()
    with NotifyDatabase(store_dir) as db:
        rows = db.db.execute(
            "SELECT n.notice_id, n.org, n.ip, n.port, n.protocol, n.notified_at, n.survey_id, n.finding_ts, "
            "n.closed_at, m.status FROM notices n JOIN messages m USING (message_id) ORDER BY n.org, n.ip, n.port"
        ).fetchall()
        closing = []
        for notice_id, org, ip, port, protocol, notified_at, survey_id, finding_ts, closed_at, status in rows:
            newest = latest.get((ip, port))
            state, by, seen = "notified", survey_id, finding_ts
            if status == "pending":
                state = "not delivered"
            elif newest is not None and newest["survey_id"] != survey_id:  # newest then, so a later survey
                by, seen = newest["survey_id"], newest["ts"].strftime(REPORT_TIME_FORMAT)
                state = "still vulnerable" if newest["status"] == "vulnerable" else "fixed"
                if state == "fixed" and closed_at is None:
                    closing.append((now_text(), by, notice_id))
            report.notices.append(NoticeState(notice_id, org, ip, port, protocol, notified_at, state, by, seen))
            counts = report.counts.setdefault(org, dict.fromkeys(STATES, 0))
            counts[state] += 1
        if closing:
            with db.transaction():
                db.db.executemany("UPDATE notices SET closed_at = ?, closed_by = ? WHERE notice_id = ?", closing)
        report.closed_now = len(closing)
    return report
