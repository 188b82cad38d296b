"""Which hosts deserve an alert now: de-duplication against the alert history, with a quiet period.

An organization that gets the same host every day stops reading; one that never hears again about
a host that went on scanning believes it is fixed. So, per (organization, host, role):

* never alerted (no *sent* message names it): alert;
* no packets after the ones already alerted (``last_seen`` not later): never again;
* new evidence (a port or a tool fingerprint the last alert did not show): alert now;
* only more of the same: alert again once the quiet period since the last alert has passed
  (a reminder that it is still active), not before.

Only messages the mail server accepted count (``status = 'sent'``), and messages written to the
outbox without SMTP (``'outbox'``): a message that could not be delivered leaves its hosts due.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from iotscope.notify.daedalus import HostEvidence
from iotscope.notify.database import NotifyDatabase

#: Default quiet period between two alerts about the same host without new evidence.
DEFAULT_QUIET = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether ``host`` is alerted in this run, and why (shown by ``--dry-run``)."""

    host: HostEvidence
    alert: bool
    reason: str


def decide(db: NotifyDatabase, hosts: list[HostEvidence], *, now: datetime,
           quiet: timedelta = DEFAULT_QUIET) -> list[Decision]:
    """One :class:`Decision` per host of ``hosts`` (same order)."""
    previous = _last_alerts(db)
    decisions = []
    for host in hosts:
        last = previous.get((host.org, host.host, host.role))
        if last is None:
            decisions.append(Decision(host, True, "new"))
            continue
        sent_at, last_seen, ports, tool = last
        if host.last_seen <= last_seen:
            decisions.append(Decision(host, False, "already alerted, nothing new since"))
        elif set(host.port_numbers) - set(ports) or (host.tool is not None and host.tool != tool):
            decisions.append(Decision(host, True, "new evidence (port or tool)"))
        elif now - sent_at >= quiet:
            decisions.append(Decision(host, True, "still active after the quiet period"))
        else:
            decisions.append(Decision(host, False, f"quiet period until {(sent_at + quiet).isoformat()}"))
    return decisions


def record_alerted(db: NotifyDatabase, message_id: str, hosts: list[HostEvidence]) -> None:
    """Add the history rows of one message (call inside the transaction that adds the message)."""
    db.db.executemany(
        "INSERT INTO alert_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(message_id, h.org, h.host, h.role, h.first_seen.isoformat(), h.last_seen.isoformat(), h.packets,
          json.dumps(h.port_numbers), h.tool) for h in hosts],
    )


def _last_alerts(db: NotifyDatabase) -> dict[tuple[str, str, str], tuple[datetime, datetime, list[int], str | None]]:
    """(org, host, role) -> (sent at, last seen, ports, tool) of its newest delivered alert."""
    rows = db.db.execute(
        "SELECT h.org, h.host, h.role, coalesce(m.sent_at, m.created_at), h.last_seen, h.ports, h.tool "
        "FROM alert_history h JOIN messages m USING (message_id) WHERE m.status IN ('sent', 'outbox') "
        "ORDER BY coalesce(m.sent_at, m.created_at)"
    ).fetchall()
    return {
        (org, host, role): (datetime.fromisoformat(sent), datetime.fromisoformat(last), json.loads(ports), tool)
        for org, host, role, sent, last, ports, tool in rows  # newest last: it wins
    }
