"""Telescope commands: ``ingest`` captures into a store, ``stats`` about it, ad-hoc ``sql``, ``store check|info``.

The engine (numba kernels, pyarrow, DuckDB) is imported inside the commands, so that every other
command, and ``--help``, starts without paying for it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from iotscope.cli.common import console, fail, printable, require_store, stdout_console, warn
from iotscope.store.state import StoreError

if TYPE_CHECKING:
    from iotscope.store.packets import PacketStore
    from iotscope.telescope.ingest import FileReport
    from iotscope.telescope.passes.ahead import AnalysisAhead

StoreOption = Annotated[Path, typer.Option("--store", help="Store directory (created if missing).")]


def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="pcap / pcapng files (optionally gzip-compressed), or directories of them."),
    ] = None,
    store: StoreOption = ...,  # type: ignore[assignment]
    no_analyze: Annotated[bool, typer.Option("--no-analyze", help="Skip `iotscope analyze` at the end.")] = False,
    watch: Annotated[
        Path | None, typer.Option("--watch", help="Keep ingesting closed captures that other tools write into DIR.")
    ] = None,
    settle: Annotated[float, typer.Option("--settle", help="--watch: seconds a file must stay unchanged.")] = 5.0,
) -> None:
    """Decode darknet captures into the store's Parquet dataset (idempotent, crash-safe), then analyse."""
    if watch is not None:
        from iotscope.cli.sensor_commands import watch_directory

        watch_directory(watch, store, settle)
        return
    paths = paths or []
    from iotscope.capture import CaptureError
    from iotscope.store.packets import PacketStore
    from iotscope.telescope.ingest import capture_files, check_captures, ingest_file

    ahead = None
    try:
        try:
            paths = capture_files(paths)
            if not paths:
                fail("no capture files found (a directory is searched for *.pcap, *.pcapng, *.cap, optionally .gz)")
            check_captures(paths)
            with PacketStore(store) as packet_store, _progress() as progress:
                ahead = None if no_analyze else _analysis_ahead(packet_store, len(paths))
                tasks = {p: progress.add_task(printable(p.name), total=p.stat().st_size) for p in paths}
                reports = [
                    ingest_file(p, packet_store, lambda path, done: progress.update(tasks[path], completed=done), ahead)
                    for p in paths
                ]
                for p in paths:
                    progress.update(tasks[p], completed=p.stat().st_size)
        except (CaptureError, StoreError) as exc:
            fail(str(exc))
        _print_ingest_summary(reports)
        if not no_analyze:
            from iotscope.cli.analysis_commands import run_analysis

            if ahead is not None:
                ahead.input_done()
            run_analysis(store, ahead=ahead)
    finally:
        # Whatever ends the command (an error, Ctrl-C, or an analysis that takes none of the hours
        # computed ahead because all are up to date), the thread computing them ends first: left
        # running, the interpreter tears it down inside DuckDB/numba at exit and the process aborts.
        if ahead is not None:
            ahead.close()


def _analysis_ahead(store: PacketStore, captures: int) -> AnalysisAhead | None:
    """The analysis that runs while the captures are stored (None: the stored settings are bad, and
    the analysis at the end says so in one line)."""
    from iotscope.errors import IotscopeError
    from iotscope.telescope.passes.ahead import AnalysisAhead

    try:
        return AnalysisAhead(store, captures=captures)
    except IotscopeError:
        return None


def stats(store: StoreOption, as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Totals, time range, distinct sources, counts by class and top destination ports."""
    from iotscope.store.packets import PacketStore
    from iotscope.store.query import store_stats

    require_store(store)
    with PacketStore(store, read_only=True) as packet_store:
        summary = store_stats(packet_store)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    _print_stats(summary)


def sql(
    query: Annotated[str, typer.Argument(
        help="DuckDB SQL that reads (SELECT, WITH, DESCRIBE, SUMMARIZE, EXPLAIN); the table is `packets`.")],
    store: StoreOption,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON records on stdout.")] = False,
) -> None:
    """Run a read-only SQL query over the store (view `packets`, with Hive columns `date` and `hour`).

    The query can read the store's packets and nothing else: no other file, URL or extension, and
    no statement that writes (COPY, ATTACH, INSTALL, LOAD, SET, ...). Export with --csv or --json.
    """
    from iotscope.store.packets import PacketStore
    from iotscope.store.query import run_query

    require_store(store)
    with PacketStore(store, read_only=True) as packet_store:
        result = run_query(packet_store, query)
    if as_csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(result, sys.stdout.buffer)
    elif as_json:
        sys.stdout.write(json.dumps(result.to_pylist(), default=str, indent=1) + "\n")
    else:
        shown = f"{result.num_rows:,} rows" + (" (first 1,000 shown)" if result.num_rows > 1000 else "")
        table = Table(*map(printable, result.column_names), caption=shown)
        for row in result.slice(0, 1000).to_pylist():
            table.add_row(*(printable(v) for v in row.values()))
        stdout_console.print(table)


store_app = typer.Typer(help="Look after a store: list its datasets, find and repair damaged files.",
                        no_args_is_help=True)


@store_app.command("check")
def store_check(
    store: Annotated[Path, typer.Option("--store", help="Store directory.")],
    repair: Annotated[bool, typer.Option(
        "--repair", help="Drop damaged captures from the catalog; re-ingest those whose file is intact.")] = False,
) -> None:
    """List captures whose committed Parquet files are missing or corrupt (reads every file); exit 1 if any.

    --repair drops each from the catalog (see docs/schema.md) and re-ingests it when its capture file is intact.
    """
    from iotscope.store.check import captures_to_drop, find_damage, find_damaged_hours
    from iotscope.store.packets import PacketStore
    from iotscope.telescope.repair import rebuild_hours, reingest_dropped

    require_store(store)
    with PacketStore(store, read_only=not repair) as packet_store:
        damaged = find_damage(packet_store)
        hours = find_damaged_hours(packet_store)
        for problem in [p for d in damaged for p in d.problems] + [p for h in hours for p in h.problems]:
            console.print(f"damaged: {printable(problem)}", highlight=False)
        if not damaged and not hours:
            captures = len(packet_store.state.all_ingested())
            console.print(f"{printable(store)}: {captures} captures, all files readable", highlight=False)
            return
        if not repair:
            console.print(f"{len(damaged)} damaged captures, {len(hours)} damaged compacted hours; to repair: "
                          f"iotscope store check --store {printable(store)} --repair", highlight=False)
            raise typer.Exit(1)
        dropped = captures_to_drop(packet_store, damaged)
        packet_store.drop_captures([c.content_hash for c in dropped])
        outcomes = reingest_dropped(dropped, packet_store)
        outcomes += rebuild_hours(find_damaged_hours(packet_store), packet_store)
        for outcome in outcomes:
            console.print(printable(outcome), highlight=False)
        if find_damage(packet_store) or find_damaged_hours(packet_store):
            raise typer.Exit(1)


@store_app.command("info")
def store_info(
    store: Annotated[Path, typer.Option("--store", help="Store directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
) -> None:
    """List every dataset of the store: writer, format version, files, DuckDB view (read-only; see docs/schema.md)."""
    from iotscope.store.catalog import store_catalog

    datasets = store_catalog(store)
    if as_json:
        sys.stdout.write(json.dumps([d.to_json() for d in datasets], indent=1) + "\n")
        return
    table = Table(caption="where each is listed, and by what it is written: --json")
    table.add_column("dataset", no_wrap=True)
    for column in ("format", "stored", "files", "view", "where"):
        table.add_column(column)
    for d in datasets:
        stored = ", ".join(map(str, d.stored_formats)) or "-"
        table.add_row(d.name, str(d.format), stored, f"{d.files:,}", d.view or "-", printable(d.location))
    stdout_console.print(table)


def register(app: typer.Typer) -> None:
    """Add the telescope commands to the main app."""
    app.command()(ingest)
    app.command()(stats)
    app.command()(sql)
    app.add_typer(store_app, name="store")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )


def _print_ingest_summary(reports: list[FileReport]) -> None:
    for r in reports:
        anomalies = ", ".join(f"{k}={v:,}" for k, v in sorted(r.skipped.items())) or "none"
        if r.status == "already":
            console.print(f"{printable(r.path)}: already ingested ({r.packets:,} rows), nothing added", highlight=False)
            continue
        grown = "" if r.grown_from is None else f" (grew since its ingest at {r.grown_from:,} bytes: new records only)"
        console.print(
            f"{printable(r.path)}: {r.records:,} records{grown} ({r.bytes_read / 1e6:,.1f} MB) -> {r.packets:,} rows "
            f"in {r.seconds:.2f} s ({r.packets_per_second:,.0f} packets/s); skipped/anomalies: {anomalies}",
            highlight=False,
        )
        for warning in r.warnings:
            warn(warning)


def _print_stats(s: dict) -> None:
    console.print(
        f"[bold]{s['packets']:,}[/] packets from [bold]{s['distinct_sources']:,}[/] sources, "
        f"{s['first_ts']} .. {s['last_ts']} ({s['captures']} captures)", highlight=False,
    )
    classes = Table("flag_class", "packets", title="by flag class (NICTER legend)")
    for name, n in s["flag_class"].items():
        classes.add_row(name, f"{n:,}")
    traffic = Table("traffic_class", "packets", title="by traffic class")
    for name, n in s["traffic_class"].items():
        traffic.add_row(name, f"{n:,}")
    ports = Table("dport", "proto", "packets", "sources", title="top destination ports")
    for p in s["top_dports"]:
        ports.add_row(str(p["dport"]), p["proto"], f"{p['packets']:,}", f"{p['sources']:,}")
    console.print(classes, traffic, ports)
    if s["skipped"]:
        console.print("skipped: " + ", ".join(f"{k}={v:,}" for k, v in sorted(s["skipped"].items())))

