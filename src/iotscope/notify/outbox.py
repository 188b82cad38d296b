"""The outbox: a private copy of every message, written before it is sent.

What an operator told whom must be provable afterwards, also when the mail server lost it, and
a message that could not be delivered must not vanish: it stays here (and ``pending`` in the
history) for a later look. Layout: ``OUTBOX/<organization>/<message id>.eml`` (RFC 5322, readable
by any mail client), directories 0700 and files 0600 whatever the umask: they name infected or
vulnerable hosts. Files are written whole and renamed into place, so a crash leaves none half-written.
"""

from __future__ import annotations

import hashlib
import os
import re
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from iotscope.notify.errors import NotifyError
from iotscope.store.durable import move_into_place
from iotscope.survey.private import open_private, private_directory


def folder_name(org: str) -> str:
    """A safe directory name for an organization ("City of Example" -> "city-of-example"; a name
    with no ASCII letters, e.g. in Japanese, -> "org-" and a digest of it)."""
    return re.sub(r"[^a-z0-9]+", "-", org.lower()).strip("-")[:60] or "org-" + hashlib.sha256(org.encode()).hexdigest()[:10]


def write_message(outbox: Path, org: str, message_id: str, message: EmailMessage) -> Path:
    """Write ``message`` as ``OUTBOX/<org>/<message_id>.eml``; its path."""
    return write_file(outbox / folder_name(org), f"{message_id}.eml", message.as_bytes(policy=SMTP))


def write_file(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` privately and atomically (replacing an older file)."""
    try:
        private_directory(directory)
        staged = directory / f".{name}.{os.getpid()}.tmp"
        staged.unlink(missing_ok=True)
        with os.fdopen(open_private(staged), "wb") as handle:
            handle.write(data)
        move_into_place(staged, directory / name)
    except OSError as exc:
        raise NotifyError(f"{directory}: cannot write {name} ({exc.strerror or exc})") from None
    return directory / name
