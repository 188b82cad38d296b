"""Mail: build a MIME message with its attachments, and deliver it over SMTP (STARTTLS + AUTH).

Delivery is the one step that talks to the outside, so its rules are strict:

* the connection is upgraded with STARTTLS before anything else (the certificate is verified,
  against ``cafile`` when the server's CA is a private one), and credentials are never sent
  over a connection that is not encrypted: without STARTTLS, AUTH is refused here;
* a server that cannot be reached, drops the connection or answers 4xx (try later) is tried
  again ``attempts`` times in all, waiting ``backoff`` seconds, then twice that, and so on;
  then :class:`~iotscope.notify.errors.DeliveryError` says so in one line;
* a permanent refusal (5xx, authentication failed, STARTTLS unsupported) is not retried;
* :func:`deliver` returns only once the server accepted the message (``250`` after DATA): that,
  and only that, is what callers record as sent.

The password comes from the environment (``IOTSCOPE_SMTP_PASSWORD`` by default), never from a
command line (visible to every local user in ``ps``) or a file in the store.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from iotscope.notify.errors import DeliveryError, NotifyError
from iotscope.notify.orgs import Sender

PASSWORD_VARIABLE = "IOTSCOPE_SMTP_PASSWORD"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # "application/json"
    data: bytes


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to deliver. ``attempts`` counts the first try; delays are ``backoff`` * 2**n."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    cafile: str | None = None
    timeout: float = 10.0
    attempts: int = 4
    backoff: float = 2.0

    def __post_init__(self) -> None:
        if not self.host:
            raise NotifyError("SMTP server: no host given")
        if not 0 < self.port < 65536:
            raise NotifyError(f"SMTP server: port {self.port} is not a TCP port")
        if self.username and not self.starttls:
            raise NotifyError("SMTP server: AUTH without STARTTLS would send the password in clear; refused")
        if self.username and self.password is None:
            raise NotifyError(f"SMTP server: user {self.username!r} given but no password (set {PASSWORD_VARIABLE})")
        if self.attempts < 1 or not self.timeout > 0 or self.backoff < 0:
            raise NotifyError("SMTP server: attempts must be at least 1, timeout positive, backoff not negative")
        if self.cafile is not None and not os.path.isfile(self.cafile):
            raise NotifyError(f"{self.cafile}: SMTP CA file not found")

    @classmethod
    def parse(cls, server: str, **options: object) -> SmtpSettings:
        """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6), password from :data:`PASSWORD_VARIABLE`."""
        host, port = server, 587
        if server.startswith("["):
            host, _, rest = server[1:].partition("]")
            if rest.startswith(":"):
                port = _port(rest[1:], server)
        elif server.count(":") == 1:
            host, text = server.split(":")
            port = _port(text, server)
        password = os.environ.get(PASSWORD_VARIABLE) if options.get("username") else None
        return cls(host=host, port=port, password=password, **options)  # type: ignore[arg-type]


def new_message_id(purpose: str) -> str:
    """A unique, sortable id for a message of ``purpose`` (``alert-20261130T120000Z-1a2b3c4d``)."""
    return f"{purpose}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _port(text: str, server: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise NotifyError(f"SMTP server {server!r}: port {text!r} is not a number") from None


def build_message(sender: Sender, recipients: list[str], subject: str, text: str, *, html: str | None = None,
                  attachments: list[Attachment] = ()) -> EmailMessage:  # type: ignore[assignment]
    """A complete message: plain text (and HTML alternative), attachments, a fresh Message-ID."""
    message = EmailMessage()
    message["From"] = Address(sender.org, addr_spec=sender.email)
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.domain)
    message.set_content(text, charset="utf-8")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8")
    for attachment in attachments:
        maintype, subtype = attachment.content_type.split("/", 1)
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message


def deliver(message: EmailMessage, settings: SmtpSettings, *, sleep=time.sleep) -> int:
    """Send ``message`` to its ``To`` recipients; the number of attempts it took.

    Raises :class:`DeliveryError` when it was not accepted (see the module docstring)."""
    recipients = [a.strip() for a in str(message["To"]).split(",") if a.strip()]
    where = f"SMTP server {settings.host}:{settings.port}"
    last = ""
    for attempt in range(1, settings.attempts + 1):
        try:
            refused = _send_once(message, recipients, settings)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where}: authentication failed ({exc.smtp_code})") from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(f"{where}: does not offer STARTTLS; not sending in clear") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"{where}: TLS failed ({exc.reason or exc})") from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise DeliveryError(f"{where}: refused the message ({exc.smtp_code} {_text(exc.smtp_error)})") from None
            last = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where}: refused every recipient ({', '.join(exc.recipients)})") from None
        except (OSError, smtplib.SMTPException) as exc:  # unreachable, reset, timeout, disconnected
            last = str(exc) or type(exc).__name__
        else:
            if refused:
                raise DeliveryError(f"{where}: refused recipient(s) {', '.join(sorted(refused))}")
            return attempt
        if attempt < settings.attempts:
            sleep(settings.backoff * 2 ** (attempt - 1))
    raise DeliveryError(f"{where}: not delivered after {settings.attempts} attempt(s) ({last})")


def _send_once(message: EmailMessage, recipients: list[str], settings: SmtpSettings) -> dict:
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        smtp.ehlo()
        if settings.starttls:
            context = ssl.create_default_context(cafile=settings.cafile)
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        return smtp.send_message(message, to_addrs=recipients)


def _text(error: bytes | str) -> str:
    text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
    return " ".join(text.split())[:200]
