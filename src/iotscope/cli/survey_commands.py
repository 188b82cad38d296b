"""Survey commands: ``survey run`` (sweep, probe, keep evidence), ``survey report``, ``census``, ``compact``."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from iotscope.cli.common import console, fail, printable, stdout_console, warn
from iotscope.survey.probes.limits import DEFAULT_PROBE_CONCURRENCY, ProbeLimits
from iotscope.survey.sweep import DEFAULT_CONCURRENCY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORTS, DEFAULT_RATE

if TYPE_CHECKING:
    from iotscope.survey.run import SurveyProgress, SurveySummary

# The survey engine and the report (asyncssh, DuckDB, Arrow) are imported by the commands that
# use them: every other ``iotscope`` command, and ``--help``, starts without paying for them.

survey_app = typer.Typer(
    help="Survey authorized address space for IoT devices with default or no credentials.",
    no_args_is_help=True,
)

_DEFAULT_LIMITS = ProbeLimits()

StoreOption = Annotated[Path, typer.Option("--store", help="Store directory (created if missing).")]
#: Commands that only read a store: they never create or change it.
ReadStoreOption = Annotated[
    Path, typer.Option("--store", help="Store directory that `survey run` wrote (read, never changed)."),
]


@survey_app.command("run")
def run(
    scope_file: Annotated[Path, typer.Option("--scope", help="Scope file (TOML): authorized ranges, owners, blocklist.")],
    store: StoreOption,
    ports: Annotated[str, typer.Option(help="TCP ports and ranges, as nmap and zmap take them: 1-1024,2323,8000-8100.")] = ",".join(map(str, DEFAULT_PORTS)),
    rate: Annotated[float, typer.Option(help="Connection attempts per second, all targets together.")] = DEFAULT_RATE,
    credentials: Annotated[Path | None, typer.Option(help="Extra credential file (TOML), tried before the built-in corpus (after the device maker's defaults).")] = None,
    shard: Annotated[str, typer.Option(help="This machine's shard i/N of the scope (disjoint, together complete).")] = "1/1",
    seed: Annotated[int | None, typer.Option(help="Sweep order: one seed for all shards of a survey (default: derived from the scope's ranges and the ports).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the unfinished survey of the same scope, port set and shard; refused if there is none.")] = False,
    import_file: Annotated[Path | None, typer.Option("--import", help="Open ports from zmap CSV or masscan -oL/-oJ instead of sweeping.")] = None,
    concurrency: Annotated[int, typer.Option(help="Connection attempts in flight at most.")] = DEFAULT_CONCURRENCY,
    workers: Annotated[int, typer.Option(help="Sweep processes sharing --rate and --concurrency (default: one per CPU core).")] = os.cpu_count() or 1,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one TCP connect in the sweep.")] = DEFAULT_CONNECT_TIMEOUT,
    probe_concurrency: Annotated[int, typer.Option(help="Devices probed at the same time (each one service at a time).")] = DEFAULT_PROBE_CONCURRENCY,
    max_attempts: Annotated[int, typer.Option(help="Login attempts per service on one device at most; lower it where devices lock accounts.")] = _DEFAULT_LIMITS.max_attempts,
    attempt_delay: Annotated[float, typer.Option(help="Seconds between two login attempts on one service; raise it where devices lock accounts after quick failures.")] = _DEFAULT_LIMITS.attempt_delay,
    service_deadline: Annotated[float, typer.Option(help="Seconds of login attempts per service; one cut short is incomplete and --resume continues it.")] = _DEFAULT_LIMITS.service_deadline,
    device_deadline: Annotated[float, typer.Option(help="Seconds for all services of one device together (protects the device).")] = _DEFAULT_LIMITS.deadline,
    per_device_connections: Annotated[int, typer.Option(help="Connections logging in to one device at once (telnet, SSH, FTP), sharing its pace; devices lock up: 1 or 2.")] = _DEFAULT_LIMITS.per_device_connections,
) -> None:
    """Sweep the scope, identify services by handshake, try default credentials, store evidence."""
    if workers > 1 and import_file is None:
        from iotscope.survey.sweep_workers import start_worker_server

        start_worker_server()  # starts while the survey engine below is imported
    from iotscope.survey.credentials import CredentialsError, load_builtin, load_credentials, merge
    from iotscope.survey.journal import JournalError
    from iotscope.survey.l4import import L4ImportError
    from iotscope.survey.permutation import Shard
    from iotscope.survey.run import run_survey
    from iotscope.survey.scope import OutOfScopeError, Scope, ScopeError

    try:
        scope = Scope.load(scope_file)
        scope.require_targets()
        port_list = _parse_ports(ports)
        shard_value = Shard.parse(shard)
        if not rate > 0:
            raise ValueError("--rate must be positive")
        if concurrency < 1 or probe_concurrency < 1 or not timeout > 0:
            raise ValueError("--concurrency and --probe-concurrency must be at least 1, --timeout positive")
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, not {workers}")
        if seed is not None and not 0 <= seed < 2**64:
            raise ValueError(f"--seed must be between 0 and 2**64 - 1, not {seed}")
        if max_attempts < 1:
            raise ValueError(f"--max-attempts must be at least 1, not {max_attempts}")
        if not attempt_delay >= 0:  # NaN included
            raise ValueError(f"--attempt-delay must be 0 or more seconds, not {attempt_delay:g}")
        for name, value in (("--service-deadline", service_deadline), ("--device-deadline", device_deadline)):
            if not value > 0:  # NaN included
                raise ValueError(f"{name} must be a positive number of seconds, not {value:g}")
        if per_device_connections < 1:
            raise ValueError(f"--per-device-connections must be at least 1, not {per_device_connections}")
        limits = ProbeLimits(
            max_attempts=max_attempts, attempt_delay=attempt_delay, service_deadline=service_deadline, deadline=device_deadline,
            per_device_connections=per_device_connections,
        )
        # Yours first: the built-in corpus (~680 pairs) is longer than the attempt cap.
        credential_list = merge(load_credentials(credentials) if credentials else [], load_builtin())
    except (ScopeError, CredentialsError, ValueError) as exc:
        fail(str(exc))
    for warning in scope.warnings:
        warn(warning)
    shown_ports = ",".join(map(str, port_list)) if len(port_list) <= 32 else f"{ports} ({len(port_list):,} ports)"
    console.print(
        f"scope {printable(scope.source)}: {scope.target_count:,} addresses of {len(scope.authorized)} authorized "
        f"range(s), {len(scope.blocklist)} blocklist entr{'y' if len(scope.blocklist) == 1 else 'ies'}; "
        f"ports {shown_ports}; shard {shard_value}; {rate:,.0f} attempts/s; "
        f"at most {max_attempts} logins per service, {attempt_delay:g} s apart, in {service_deadline:g} s "
        f"({device_deadline:g} s per device)",
        highlight=False,
    )
    _raise_file_limit(concurrency)
    with _progress() as progress:
        bars: dict[str, TaskID] = {}

        def on_progress(p: SurveyProgress) -> None:
            if p.phase not in bars:
                bars[p.phase] = progress.add_task(p.phase, total=p.total, count="", note="")
            if p.phase == "sweep":
                # The bar moves along the sweep's permutation (its ETA), which has more positions than
                # targets; the count is the connection attempts made, as the summary counts them.
                count, note = f"{p.attempts:,} attempts", f"{p.open_ports:,} open"
            else:
                count, note = f"{p.done:,}/{p.total:,}", f"{p.vulnerable:,} vulnerable, {p.errors:,} errors"
            progress.update(bars[p.phase], completed=p.done, total=p.total, count=count, note=note)

        try:
            summary = asyncio.run(_stoppable(run_survey(
                scope, store=store, credentials=credential_list, ports=port_list, rate=rate,
                shard=shard_value, resume=resume, progress=on_progress, concurrency=concurrency,
                connect_timeout=timeout, probe_concurrency=probe_concurrency, l4_file=import_file, limits=limits,
                workers=workers, seed=seed,
            )))
        except (L4ImportError, OutOfScopeError, JournalError, ValueError) as exc:
            fail(str(exc))
        except OSError as exc:  # e.g. the disk filled up while writing findings
            fail(f"{store}: {exc.strerror or exc}; progress up to the last checkpoint is saved, fix it and use --resume")
        except (KeyboardInterrupt, asyncio.CancelledError) as exc:
            console.print("interrupted: progress is saved; run the same command with --resume to continue")
            raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 143) from None
    _print_summary(summary)


@survey_app.command("report")
def report(
    store: ReadStoreOption,
    out: Annotated[Path, typer.Option("--out", help="Directory for the per-owner files.")],
    survey: Annotated[str | None, typer.Option("--survey", help="Survey id (default: latest state over all surveys).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
) -> None:
    """Shadowserver-style reports: one file per authorized owner, plus errors."""
    from iotscope.survey.report import FORMATS, ReportError, export_report

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        result = export_report(store, out, survey_id=survey, fmt=fmt)
    except ReportError as exc:
        fail(str(exc))
    table = Table("owner", "file", "vulnerable services", title=f"report ({result.services:,} services)")
    for owner, (path, rows) in result.owners.items():
        table.add_row(printable(owner), printable(path), f"{rows:,}")
    console.print(table)
    severities = ", ".join(f"{k}={v:,}" for k, v in result.severities.items()) or "no vulnerable services"
    unfinished = f" ({result.incomplete:,} incomplete: credential list not exhausted)" if result.incomplete else ""
    console.print(f"{severities}; {result.errors:,} errors{unfinished} in {printable(result.errors_file)}", highlight=False)


@survey_app.command("census")
def census(
    store: ReadStoreOption,
    by: Annotated[str, typer.Option("--by", help="Group by protocol, port, device or owner.")] = "protocol",
    survey: Annotated[
        str | None, typer.Option("--survey", help="Survey id (default: latest state over all surveys)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the rows as CSV on stdout.")] = False,
) -> None:
    """Exposure census: every identified service, vulnerable or not, counted by protocol, port, device or owner."""
    from iotscope.survey.census import COUNT_FIELDS, GROUPINGS, exposure_census
    from iotscope.survey.report import ReportError

    if by not in GROUPINGS:
        fail(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    if as_json and as_csv:
        fail("--json and --csv exclude each other: choose one")
    try:
        result = exposure_census(store, by=by, survey_id=survey)
    except ReportError as exc:
        fail(str(exc))
    if as_json or as_csv:
        sys.stdout.write(result.render("json" if as_json else "csv"))
        return
    table = Table(by, title=f"exposed services by {by}")
    for name in COUNT_FIELDS:
        table.add_column(name.replace("_", " "), justify="right")
    for row in result.rows:
        table.add_row(printable(row[by]), *(f"{row[f]:,}" for f in COUNT_FIELDS))
    stdout_console.print(table)
    console.print(
        f"{result.services:,} identified services exposed; {result.unidentified:,} open ports unidentified, "
        f"{result.closed:,} services closed since an earlier survey (not counted)", highlight=False,
    )


@survey_app.command("compact")
def compact(
    store: Annotated[Path, typer.Option("--store", help="Store directory that `survey run` wrote.")],
    survey: Annotated[
        str | None, typer.Option("--survey", help="Survey id (default: every survey not running now)."),
    ] = None,
) -> None:
    """Rewrite each survey's findings as one file per day (runs do it when they finish); readers are never disturbed."""
    from iotscope.survey.compact import compact_findings
    from iotscope.survey.journal import JournalError

    try:
        result = compact_findings(store, survey)
    except JournalError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{store}: {exc.strerror or exc}; the findings are unchanged (old files still count)")
    console.print(
        f"{len(result.surveys):,} survey(s): {result.files_before:,} findings files -> {result.files_after:,}"
        + (f"; {result.orphans_removed:,} uncommitted file(s) removed" if result.orphans_removed else ""),
        highlight=False,
    )
    if result.busy:
        console.print(f"[yellow]note:[/] running, left alone: {printable(', '.join(result.busy))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``survey`` command group to the main app."""
    app.add_typer(survey_app, name="survey")


async def _stoppable(survey: Coroutine[Any, Any, SurveySummary]) -> SurveySummary:
    """Run ``survey`` so that SIGTERM (``systemctl stop``, ``kill``) stops it like Ctrl-C does:
    cancelled, with a last checkpoint, ready for ``--resume``."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    return await survey


def _parse_ports(text: str) -> list[int]:
    from iotscope.survey.portspec import PortSpecError, parse_ports

    try:
        return parse_ports(text)
    except PortSpecError as exc:
        raise ValueError(f"--ports {text[:60]!r}: {exc}") from None


def _raise_file_limit(concurrency: int) -> None:
    """Let the sweep keep ``concurrency`` sockets open, as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = concurrency + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>5}"), BarColumn(), TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=console,
    )


def _print_summary(summary: SurveySummary) -> None:
    head = f"survey [bold]{printable(summary.survey_id)}[/]" + (" (resumed)" if summary.resumed else "")
    if summary.sweep is not None:
        s = summary.sweep
        head += (
            f": {s.attempted:,} connection attempts in {s.seconds:.1f} s ({s.attempts_per_second:,.0f}/s), "
            f"{s.timeouts:,} timeouts, {s.errors:,} errors"
        )
        if s.skipped:
            why = "blocklisted, or swept before the interruption" if summary.resumed else "blocklisted"
            head += f", {s.skipped:,} skipped ({why})"
    elif summary.imported is not None:
        head += f": imported {len(summary.imported.open_ports):,} open ports ({summary.imported.blocklisted:,} blocklisted dropped)"
    console.print(head, highlight=False)
    statuses = ("vulnerable", "not_vulnerable", "incomplete", "error")
    table = Table("protocol", *(s.replace("_", " ") for s in statuses), title=f"{summary.open_ports:,} open ports, {summary.probed:,} probed")
    protocols = sorted({f.protocol for f in summary.findings})
    for protocol in protocols:
        rows = [f for f in summary.findings if f.protocol == protocol]
        table.add_row(protocol, *(f"{sum(1 for f in rows if f.status == status):,}" for status in statuses))
    console.print(table)
    if summary.closed:
        console.print(f"{summary.closed:,} services of earlier surveys found closed: no longer reported", highlight=False)
    if summary.skipped:
        console.print(f"{summary.skipped:,} open ports skipped: blocklisted since they were found", highlight=False)
    if summary.compaction_error:
        console.print(
            f"[yellow]note:[/] findings kept in their small files ({printable(summary.compaction_error)}); "
            "run `iotscope survey compact` later", highlight=False,
        )
    if summary.incomplete:
        console.print(
            f"[yellow]note:[/] {summary.incomplete:,} services incomplete (credential list not exhausted: service or "
            "device deadline, or --max-attempts): run the same command with --resume to try the pairs not tried yet",
            highlight=False,
        )
    if summary.unfinished:
        console.print(
            f"[yellow]note:[/] unfinished survey(s) of the same job left as they were: {printable(', '.join(summary.unfinished))} "
            "(use --resume to continue the newest)", highlight=False,
        )
