"""De-duplication: when a host already alerted is alerted again (new evidence, quiet period), and
that only delivered messages count."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from iotscope.notify.daedalus import HostEvidence
from iotscope.notify.database import NotifyDatabase
from iotscope.notify.history import decide, record_alerted
from iotscope.notify.orgs import OrgCatalog
from tests.notify.conftest import org_entry, write_orgs

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOST = HostEvidence(org="A", host="192.0.2.7", role="scan", first_seen=T0, last_seen=T0 + timedelta(hours=1),
                    packets=100, targets=90, ports=((23, 90), (2323, 10)), protocols=("tcp",), tool="mirai", samples=())


def alerted(tmp_path: Path, *, sent: bool) -> NotifyDatabase:
    db = NotifyDatabase(tmp_path / "store")
    catalog = OrgCatalog.load(write_orgs(tmp_path / "orgs.toml", [org_entry("A", ["a@a.example"], ["192.0.2.0/24"])]))
    version = db.record_catalog(catalog)
    with db.transaction():
        db.add_message("m1", "alert", "A", version, ["a@a.example"], "outbox/a/m1.eml", "pending")
        record_alerted(db, "m1", [HOST])
    db.mark_message("m1", sent=sent, attempts=1)
    return db


def reasons(db: NotifyDatabase, host: HostEvidence, now: datetime) -> tuple[bool, str]:
    (decision,) = decide(db, [host], now=now, quiet=timedelta(days=7))
    return decision.alert, decision.reason


def test_the_rules(tmp_path: Path) -> None:
    db = alerted(tmp_path, sent=True)
    sent_at = datetime.fromisoformat(db.messages("sent")[0]["sent_at"])
    later = HOST.last_seen + timedelta(hours=5)
    # nothing after the alerted packets: never again, whatever the time
    assert reasons(db, HOST, sent_at + timedelta(days=100)) == (False, "already alerted, nothing new since")
    # more of the same: only after the quiet period
    more = replace(HOST, last_seen=later, packets=200)
    assert reasons(db, more, sent_at + timedelta(days=1))[0] is False
    assert "quiet period until" in reasons(db, more, sent_at + timedelta(days=1))[1]
    assert reasons(db, more, sent_at + timedelta(days=8)) == (True, "still active after the quiet period")
    # new evidence: a port or a tool not alerted before, at once
    new_port = replace(more, ports=((23, 150), (5555, 50)))
    assert reasons(db, new_port, sent_at + timedelta(minutes=1)) == (True, "new evidence (port or tool)")
    new_tool = replace(more, tool="zmap")
    assert reasons(db, new_tool, sent_at + timedelta(minutes=1)) == (True, "new evidence (port or tool)")
    # another role or another host is a new case
    assert reasons(db, replace(HOST, role="backscatter"), sent_at)[1] == "new"
    assert reasons(db, replace(HOST, host="192.0.2.8"), sent_at)[1] == "new"
    db.close()


def test_a_message_not_delivered_does_not_count(tmp_path: Path) -> None:
    db = alerted(tmp_path, sent=False)
    assert reasons(db, HOST, T0 + timedelta(days=1)) == (True, "new")
    assert db.messages("pending")[0]["error"] is None and db.messages("sent") == []
    db.close()
