"""Sending a recorded message: outbox first, then the history, then delivery, then the outcome.

Alerts and ISP notices follow the same order, so that a crash or an unreachable server can never
leave a message claimed as sent, nor sent without a trace: (1) the message is written to the
outbox; (2) it enters ``notify.sqlite`` (``pending``, or ``outbox`` when no SMTP server is
configured) in one transaction with the rows it is about (alert history, notices), added by
``record``; (3) delivery; (4) ``sent`` only once the server accepted it, else ``pending`` with the
error. Rows of a ``pending`` message do not count as told: the next run tells them again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from iotscope.notify.database import NotifyDatabase
from iotscope.notify.errors import DeliveryError
from iotscope.notify.mail import SmtpSettings, deliver
from iotscope.notify.outbox import write_message


@dataclass
class Dispatched:
    message_id: str
    outbox_path: Path
    #: 'outbox' (no SMTP), 'sent', or 'pending' (not delivered: see ``error``).
    status: str
    attempts: int = 0
    error: str | None = None


@dataclass
class OrgMessage:
    """One organization's message of a run: planned (dry run), then what :func:`dispatch` made of it."""

    org: str
    recipients: list[str]
    message_id: str | None = None
    outbox_path: Path | None = None
    #: 'planned' (dry run), 'outbox' (no SMTP), 'sent', or 'pending' (delivery failed: see ``error``).
    status: str = "planned"
    error: str | None = None
    attempts: int = 0

    def delivered(self, done: Dispatched) -> None:
        self.message_id, self.outbox_path, self.status = done.message_id, done.outbox_path, done.status
        self.attempts, self.error = done.attempts, done.error


def dispatch(db: NotifyDatabase, *, message: EmailMessage, message_id: str, purpose: str, org: str,
             org_version: int, recipients: list[str], outbox: Path, smtp: SmtpSettings | None,
             record: Callable[[], None]) -> Dispatched:
    """Write, record (``record()`` runs inside the message's transaction), deliver, mark."""
    path = write_message(outbox, org, message_id, message)
    with db.transaction():
        db.add_message(message_id, purpose, org, org_version, recipients, str(path), "pending" if smtp else "outbox")
        record()
    if smtp is None:
        return Dispatched(message_id, path, "outbox")
    try:
        attempts = deliver(message, smtp)
    except DeliveryError as exc:
        db.mark_message(message_id, sent=False, attempts=smtp.attempts, error=str(exc))
        return Dispatched(message_id, path, "pending", smtp.attempts, str(exc))
    db.mark_message(message_id, sent=True, attempts=attempts)
    return Dispatched(message_id, path, "sent", attempts)
