"""``iotscope notify subscribers``: from the ISP's findings file to one notice per subscriber.

Run by the ISP, on its side: the findings CSV it received (``notify isp``) and its own
assignments (:mod:`.assignments`) never leave it. Each finding goes to the subscriber whose
session covered its address at its time, or to ``unmatched.csv`` with the reason (no session for
the address, or none at that time). Each subscriber gets one notice, HTML and plain text, in the
session's language (else the default), saying which device, why it matters and what to do,
with a tracking id (``N-`` + 12 hex, the same for the same subscriber and findings). Files are
named by tracking id, not by subscriber id (which may be personal data or unsafe as a file
name); ``notices.csv`` maps one to the other. Everything written is private (0600, 0700).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from iotscope.notify.assignments import Assignments
from iotscope.notify.errors import NotifyError
from iotscope.notify.outbox import write_file
from iotscope.notify.templates import render
from iotscope.spreadsheet import csv_text
from iotscope.textfile import read_text_file

FINDINGS_MAX_BYTES = 64 << 20
_NEEDED = ("tracking_id", "timestamp", "ip", "port", "protocol")
UNMATCHED_FIELDS = ("tracking_id", "timestamp", "ip", "port", "protocol", "reason")
INDEX_FIELDS = ("notice_id", "subscriber", "language", "findings", "html", "text")


@dataclass
class SubscriberNotice:
    notice_id: str
    subscriber: str
    language: str
    findings: list[dict]
    html: Path
    text: Path


@dataclass
class SubscriberRun:
    notices: list[SubscriberNotice] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)
    unmatched_file: Path | None = None
    index_file: Path | None = None


def read_findings(path: Path) -> list[dict]:
    """The rows of a findings CSV from ``notify isp`` (one line per problem otherwise)."""
    text = read_text_file(path, "findings file", NotifyError, max_bytes=FINDINGS_MAX_BYTES)
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _NEEDED if c not in (reader.fieldnames or [])]
    if missing:
        raise NotifyError(f"{path}:1: missing column(s) {', '.join(missing)} (expected the CSV `notify isp` sends)")
    rows = []
    for number, row in enumerate(reader, 2):
        try:
            row["_ts"] = datetime.fromisoformat(row["timestamp"])
            if row["_ts"].tzinfo is None:
                row["_ts"] = row["_ts"].replace(tzinfo=UTC)
        except ValueError:
            raise NotifyError(f"{path}:{number}: timestamp {row['timestamp']!r} is not an ISO 8601 time") from None
        rows.append(row)
    return rows


def subscriber_notices(findings_file: Path, assignments_file: Path, out: Path, *, isp: str,
                       language: str = "ja") -> SubscriberRun:
    """Map the findings to subscribers and write their notices into ``out``."""
    findings = read_findings(findings_file)
    assignments = Assignments.load(assignments_file)
    run = SubscriberRun()
    matched: dict[str, list[dict]] = {}
    languages: dict[str, str] = {}
    for row in findings:
        session, reason = assignments.session_at(row["ip"], row["_ts"])
        if session is None:
            run.unmatched.append({**row, "reason": reason})
            continue
        matched.setdefault(session.subscriber, []).append(row)
        languages.setdefault(session.subscriber, session.language or language)
    for subscriber, rows in sorted(matched.items()):
        key = subscriber + "|" + "|".join(sorted(r["tracking_id"] for r in rows))
        notice_id = "N-" + hashlib.sha256(key.encode()).hexdigest()[:12].upper()
        context = {"isp": isp, "subscriber": subscriber, "findings": rows, "tracking_id": notice_id}
        lang = languages[subscriber]
        html = write_file(out, f"{notice_id}.html", render("notice", lang, "html", **context).body.encode())
        text_notice = render("notice", lang, "txt", **context)
        text = write_file(out, f"{notice_id}.txt", f"Subject: {text_notice.subject}\n\n{text_notice.body}".encode())
        run.notices.append(SubscriberNotice(notice_id, subscriber, lang, rows, html, text))
    run.unmatched_file = write_file(out, "unmatched.csv", csv_text(run.unmatched, UNMATCHED_FIELDS).encode())
    index = [{"notice_id": n.notice_id, "subscriber": n.subscriber, "language": n.language,
              "findings": " ".join(r["tracking_id"] for r in n.findings), "html": n.html.name, "text": n.text.name}
             for n in run.notices]
    run.index_file = write_file(out, "notices.csv", csv_text(index, INDEX_FIELDS).encode())
    return run

