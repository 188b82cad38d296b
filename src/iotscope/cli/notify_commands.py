"""Act commands: ``iotscope alerts run`` (DAEDALUS), ``iotscope notify isp|subscribers|status``
(NOTICE) and ``iotscope check ADDRESS`` (was this address seen?). Thin: parse, call
:mod:`iotscope.notify`, print."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from iotscope.cli.common import console, fail, printable, stdout_console

if TYPE_CHECKING:
    from iotscope.notify.mail import SmtpSettings

alerts_app = typer.Typer(help="Alert organizations whose hosts show up in the darknet (DAEDALUS-style).",
                         no_args_is_help=True)
notify_app = typer.Typer(help="NOTICE: survey findings to ISPs, notices to subscribers, and whether they were fixed.",
                         no_args_is_help=True)

OrgsOption = Annotated[Path, typer.Option("--orgs", help="orgs.toml: organizations, networks, contacts, language.")]
StoreOption = Annotated[Path, typer.Option("--store", help="Store directory (notify.sqlite is kept there).")]
OutboxOption = Annotated[Path | None, typer.Option("--outbox", help="Where every message is kept (default: STORE/outbox).")]
SmtpOption = Annotated[str | None, typer.Option("--smtp", help="SMTP server HOST[:PORT] (STARTTLS); without it messages only go to the outbox.")]
SmtpUserOption = Annotated[str | None, typer.Option("--smtp-user", help="SMTP AUTH user; the password is read from $IOTSCOPE_SMTP_PASSWORD.")]
SmtpCaOption = Annotated[Path | None, typer.Option("--smtp-cafile", help="CA certificate(s) that sign the server's TLS certificate (default: the system's).")]
SmtpAttemptsOption = Annotated[int, typer.Option("--smtp-attempts", help="Tries per message when the server is unreachable or says try later.")]
SmtpBackoffOption = Annotated[float, typer.Option("--smtp-backoff", help="Seconds before the second try; doubled before each further one.")]


@alerts_app.command("run")
def alerts_run(
    orgs: OrgsOption,
    store: StoreOption,
    outbox: OutboxOption = None,
    smtp: SmtpOption = None,
    smtp_user: SmtpUserOption = None,
    smtp_cafile: SmtpCaOption = None,
    smtp_attempts: SmtpAttemptsOption = 4,
    smtp_backoff: SmtpBackoffOption = 2.0,
    since: Annotated[str | None, typer.Option(help="Only packets from this UTC time on (ISO 8601, e.g. 2026-11-30).")] = None,
    quiet_days: Annotated[float, typer.Option(help="Days before a host without new ports or tool is alerted again.")] = 7.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be sent; send and record nothing.")] = False,
) -> None:
    """Alert each organization about its hosts seen scanning the darknet or under attack."""
    from iotscope.errors import IotscopeError
    from iotscope.notify.alerts import run_alerts
    from iotscope.notify.orgs import OrgCatalog

    try:
        catalog = OrgCatalog.load(orgs)
        settings = _smtp(smtp, smtp_user, smtp_cafile, smtp_attempts, smtp_backoff)
        if not quiet_days >= 0:
            raise ValueError(f"--quiet-days must be 0 or more, not {quiet_days}")
        run = run_alerts(store, catalog, outbox=outbox or store / "outbox", smtp=None if dry_run else settings,
                         dry_run=dry_run, since=_time(since, "--since"), quiet=timedelta(days=quiet_days))
    except (IotscopeError, ValueError) as exc:
        fail(str(exc))
    verb = "would alert" if dry_run else "alert"
    for alert in run.alerts:  # one line per organization: what is (or would be) sent to whom about which hosts
        hosts = ", ".join(f"{h.host} ({h.role}{' ' + h.tool if h.tool else ''})" for h in alert.hosts)
        status = "" if dry_run else f" [{alert.status}]"
        stdout_console.print(printable(f"{verb} {alert.org} <{', '.join(alert.recipients)}>{status}: {hosts}"),
                             highlight=False, soft_wrap=True)
    if dry_run:
        console.print("dry run: nothing sent, nothing recorded", highlight=False)
    console.print(f"{len(run.alerts)} organization(s) alerted about {sum(len(a.hosts) for a in run.alerts)} host(s); "
                  f"{len(run.held_back)} held back (already alerted or in their quiet period)", highlight=False)
    if run.failed:
        first = run.failed[0]
        fail(f"{len(run.failed)} message(s) not delivered, kept in the outbox and due again next run: "
             f"{first.org}: {first.error}")


def _smtp(server: str | None, user: str | None, cafile: Path | None, attempts: int, backoff: float) -> SmtpSettings | None:
    from iotscope.notify.mail import SmtpSettings

    if server is None:
        if user or cafile:
            raise ValueError("--smtp-user and --smtp-cafile need --smtp HOST[:PORT]")
        return None
    return SmtpSettings.parse(server, username=user, cafile=str(cafile) if cafile else None, attempts=attempts,
                              backoff=backoff)


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected an ISO 8601 time, e.g. 2026-11-30 or 2026-11-30T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    """Add ``alerts``, ``notify`` and ``check`` to the main app."""
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(notify_app, name="notify")
