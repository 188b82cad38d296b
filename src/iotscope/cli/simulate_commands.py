"""CLI commands of the simulate half: synthetic darknet traffic (and, later, the emulated device fleet)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotscope.cli.common import console, fail, printable


def _parse_start(text: str | None) -> datetime | None:
    """An ISO 8601 time; without a zone it means UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--start is not an ISO 8601 time: {text!r} (example: 2016-09-01T00:00:00Z)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_fraction(text: str | None) -> float | None:
    """``--outbreak-start``: a fraction of the run in [0, 1), checked here so a bad value is one line."""
    if text is None:
        return None
    try:
        fraction = float(text)
    except ValueError:
        fraction = float("nan")
    if not 0 <= fraction < 1:  # also rejects nan
        fail(f"--outbreak-start must be a fraction of the run in [0, 1) (example: 0.5), got {text!r}")
    return fraction


def simulate(
    out: Path = typer.Option(..., "--out", help="Capture to write: .pcap or .pcapng, optionally .gz."),
    packets: int = typer.Option(1_000_000, "--packets", help="Total packets in the capture."),
    hours: float = typer.Option(1.0, "--hours", help="Time span of the capture."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same settings give the same file."),
    darknet: str = typer.Option("198.18.0.0/15", "--darknet", help="Darknet prefix the traffic is sent to."),
    outbreak: bool = typer.Option(False, "--outbreak/--no-outbreak",
                                  help="Mirai infections grow during the run (2323/TCP sources rise)."),
    start: str | None = typer.Option(None, "--start", help="Start time, ISO 8601 (default 2016-09-01T00:00Z)."),
    outbreak_start: str | None = typer.Option(
        None, "--outbreak-start", metavar="FRACTION",
        help="Date the outbreak: the first infection comes this fraction of the run in (0 <= x < 1; implies "
             "--outbreak). Before it, bots scan 23/TCP only, so 2323/TCP surges at that time (the alerts pass "
             "finds it)."),
) -> None:
    """Write realistic darknet traffic (Mirai, scanners, worms, backscatter, probes, noise) and its ground truth."""
    from iotscope.simulate.darknet import simulate_darknet
    from iotscope.simulate.darknet_config import DEFAULT_START, DarknetConfig, SimulationError

    onset = _parse_fraction(outbreak_start)
    config = DarknetConfig(packets=packets, hours=hours, seed=seed, darknet=darknet,
                           outbreak=outbreak or onset is not None, outbreak_start=onset,
                           start=_parse_start(start) or DEFAULT_START)
    try:
        config.validate()
        with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("simulate", total=max(packets, 1))
            result = simulate_darknet(config, out, progress=lambda done: bar.update(task, completed=done))
    except (SimulationError, OSError) as exc:
        fail(str(exc))
    table = Table(title=f"{printable(result.path)} ({result.file_bytes / 1e6:,.1f} MB)", title_justify="left")
    for column in ("kind", "sources", "packets", "share"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, count in result.packets_by_kind.items():
        table.add_row(kind, f"{result.sources_by_kind.get(kind, 0):,}", f"{count:,}",
                      f"{count / max(result.packets, 1):.1%}")
    table.add_row("total", f"{sum(result.sources_by_kind.values()):,}", f"{result.packets:,}", "100.0%")
    console.print(table)
    console.print(f"{result.packets:,} packets in {result.seconds:.2f} s "
                  f"({result.packets / max(result.seconds, 1e-9):,.0f} packets/s); "
                  f"ground truth: {printable(result.truth_path)}")


def simulate_devices(
    bind: str = typer.Option("127.0.0.0/24", "--bind", help="Range the devices listen in; must be inside 127.0.0.0/8."),
    count: int = typer.Option(20, "--count", help="Number of emulated devices."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same settings give the same fleet."),
    truth: Path | None = typer.Option(None, "--truth", help="Write the ground truth here (.json or .parquet)."),
) -> None:
    """Run an emulated IoT device fleet (telnet/SSH/HTTP/FTP; default, hardened, open, tarpit, hostile)
    until Ctrl-C, SIGTERM or the end of the process that started it."""
    from iotscope.simulate.devices import FleetError, default_fleet, serve_fleet, write_ground_truth

    try:
        spec = default_fleet(bind, count=count, seed=seed)
        if truth is not None:
            write_ground_truth(spec.ground_truth(), truth)
        table = Table(title=f"{count} emulated devices in {printable(bind)} (Ctrl-C to stop)", title_justify="left",
                      box=box.SIMPLE)
        for column in ("ip", "service", "kind", "vendor", "credential"):
            table.add_column(column, no_wrap=True)
        for row in spec.ground_truth():
            kind = row["kind"] if row["behaviour"] == "login" else f"{row['kind']} ({row['behaviour']})"
            table.add_row(row["ip"], f"{row['protocol']}/{row['port']}", kind, row["vendor"],
                          row["credential_id"] or ("none needed" if row["vulnerable"] else "-"))
        serve_fleet(spec, on_ready=lambda fleet: console.print(table, width=max(console.width, 100)))
    except (FleetError, OSError) as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("simulate")(simulate)
    app.command("simulate-devices")(simulate_devices)
