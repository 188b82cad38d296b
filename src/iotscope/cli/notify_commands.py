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


@notify_app.command("isp")
def notify_isp(
    orgs: OrgsOption,
    store: StoreOption,
    outbox: OutboxOption = None,
    smtp: SmtpOption = None,
    smtp_user: SmtpUserOption = None,
    smtp_cafile: SmtpCaOption = None,
    smtp_attempts: SmtpAttemptsOption = 4,
    smtp_backoff: SmtpBackoffOption = 2.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be sent; send and record nothing.")] = False,
) -> None:
    """Send each ISP the vulnerable services the surveys found in its networks (CSV, tracking ids)."""
    from iotscope.errors import IotscopeError
    from iotscope.notify.notices import notify_isps
    from iotscope.notify.orgs import OrgCatalog

    try:
        catalog = OrgCatalog.load(orgs)
        settings = _smtp(smtp, smtp_user, smtp_cafile, smtp_attempts, smtp_backoff)
        run = notify_isps(store, catalog, outbox=outbox or store / "outbox", smtp=None if dry_run else settings,
                          dry_run=dry_run)
    except (IotscopeError, ValueError) as exc:
        fail(str(exc))
    verb = "would notify" if dry_run else "notify"
    for notice in run.notices:
        listed = ", ".join(f"{f['ip']}:{f['port']}/{f['protocol']} {f['tracking_id']}" for f in notice.findings)
        status = "" if dry_run else f" [{notice.status}]"
        stdout_console.print(printable(f"{verb} {notice.org} <{', '.join(notice.recipients)}>{status}: {listed}"),
                             highlight=False, soft_wrap=True)
    console.print(f"{sum(len(n.findings) for n in run.notices)} finding(s) to {len(run.notices)} organization(s); "
                  f"{run.already} told before; {len(run.unowned)} in no organization's networks", highlight=False)
    if run.failed:
        fail(f"{len(run.failed)} message(s) not delivered, kept in the outbox and due again next run: "
             f"{run.failed[0].org}: {run.failed[0].error}")


@notify_app.command("subscribers")
def notify_subscribers(
    findings: Annotated[Path, typer.Option("--findings", help="The findings CSV `notify isp` sent (findings.csv).")],
    assignments: Annotated[Path, typer.Option("--assignments", help="Sessions CSV: address,start,stop,subscriber[,language].")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the notices (created private).")],
    isp: Annotated[str, typer.Option("--isp", help="The ISP's name, as the notices sign it.")] = "Your Internet provider",
    language: Annotated[str, typer.Option("--language", help="Notice language when the session names none: ja or en.")] = "ja",
) -> None:
    """One notice per subscriber (HTML + text, ja/en, tracking id) from findings and RADIUS-like sessions."""
    from iotscope.errors import IotscopeError
    from iotscope.notify.orgs import LANGUAGES
    from iotscope.notify.subscribers import subscriber_notices

    if language not in LANGUAGES:
        fail(f"--language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    try:
        run = subscriber_notices(findings, assignments, out, isp=isp, language=language)
    except IotscopeError as exc:
        fail(str(exc))
    for notice in run.notices:
        stdout_console.print(printable(f"{notice.notice_id} {notice.subscriber} ({notice.language}): "
                                       f"{len(notice.findings)} finding(s) -> {notice.html.name}, {notice.text.name}"),
                             highlight=False, soft_wrap=True)
    for row in run.unmatched:
        stdout_console.print(printable(f"unmatched {row['tracking_id']} {row['ip']} at {row['timestamp']}: {row['reason']}"),
                             highlight=False, soft_wrap=True)
    console.print(f"{len(run.notices)} notice(s), {len(run.unmatched)} unmatched finding(s) in {printable(out)}",
                  highlight=False)


@notify_app.command("status")
def notify_status(
    store: StoreOption,
    as_json: Annotated[bool, typer.Option("--json", help="Per-notice states as JSON on stdout.")] = False,
) -> None:
    """Per notified finding: not delivered, notified, still vulnerable, or fixed (closes fixed ones)."""
    import json
    from dataclasses import asdict

    from iotscope.errors import IotscopeError
    from iotscope.notify.status import STATES, notice_status

    try:
        report = notice_status(store)
    except IotscopeError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps({"notices": [asdict(n) for n in report.notices], "counts": report.counts}, indent=1))
        return
    for n in report.notices:
        stdout_console.print(printable(f"{n.notice_id} {n.org} {n.ip}:{n.port}/{n.protocol}: {n.state} "
                                       f"(survey {n.survey_id}, {n.observed})"), highlight=False, soft_wrap=True)
    for org, counts in report.counts.items():
        console.print(printable(f"{org}: " + ", ".join(f"{counts[s]} {s}" for s in STATES)), highlight=False)
    if report.closed_now:
        console.print(f"{report.closed_now} notice(s) closed as fixed by a later survey", highlight=False)


def check(
    address: Annotated[str, typer.Argument(help="The IPv4 or IPv6 address to look up.")],
    store: Annotated[Path, typer.Option("--store", help="Store directory (darknet packets and/or surveys).")],
    days: Annotated[float | None, typer.Option("--days", help="Only darknet packets of the last N days (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The result as JSON on stdout.")] = False,
) -> None:
    """Was ADDRESS seen scanning the darknet or found with a default password? And what to do."""
    import json

    from iotscope.errors import IotscopeError
    from iotscope.notify.check import check_address

    try:
        result = check_address(store, address, days=days)
    except IotscopeError as exc:
        fail(str(exc))
    darknet = [{"role": h.role, "first_seen": h.first_seen.isoformat(), "last_seen": h.last_seen.isoformat(),
                "packets": h.packets, "ports": h.port_numbers, "tool": h.tool} for h in result.darknet]
    found = [{"port": r["port"], "protocol": r["protocol"], "tag": r["tag"], "credential_id": r["credential_id"],
              "device": r["device"], "seen": r["ts"].isoformat(), "survey_id": r["survey_id"]} for r in result.vulnerable]
    if as_json:
        print(json.dumps({"address": result.address, "darknet": darknet, "vulnerable": found,
                          "surveyed": result.surveyed, "advice": result.advice}, indent=1))
        return
    lines = [f"{result.address}:"]
    if not darknet:
        lines.append("  darknet: not seen" + (f" in the last {days:g} days" if days is not None else ""))
    for d in darknet:
        what = "scanning (likely infected)" if d["role"] == "scan" else "under attack (backscatter)"
        lines.append(f"  darknet: {what}, {d['packets']} packets, {d['first_seen']} .. {d['last_seen']}, "
                     f"ports {', '.join(map(str, d['ports'])) or '-'}" + (f", tool {d['tool']}" if d["tool"] else ""))
    if not result.surveyed:
        lines.append("  survey: no survey in this store")
    elif not found:
        lines.append("  survey: no service with a default password")
    for f in found:
        lines.append(f"  survey: {f['protocol']} port {f['port']} {f['tag']} (credential id {f['credential_id'] or '-'}, "
                     f"device {f['device'] or '?'}), {f['seen']}")
    lines += [f"  advice: {line}" for line in result.advice] or ["  advice: nothing to do"]
    for line in lines:
        stdout_console.print(printable(line), highlight=False, soft_wrap=True)


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
    app.command("check")(check)
