"""Telescope commands: ``ingest`` captures into a store, ``stats`` about it, ad-hoc ``sql``.

The engine (numba kernels, pyarrow, DuckDB) is imported inside the commands, so that every other
command, and ``--help``, starts without paying for it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from iotscope.cli.common import console, fail
from iotscope.store.state import StoreError

if TYPE_CHECKING:
    from iotscope.telescope.ingest import FileReport

StoreOption = Annotated[Path, typer.Option("--store", help="Store directory (created if missing).")]


def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="pcap / pcapng files (optionally gzip-compressed), or directories of them."),
    ] = None,
    store: StoreOption = ...,  # type: ignore[assignment]
    watch: Annotated[
        Path | None, typer.Option("--watch", help="Keep ingesting closed captures that other tools write into DIR.")
    ] = None,
    settle: Annotated[float, typer.Option("--settle", help="--watch: seconds a file must stay unchanged.")] = 5.0,
) -> None:
    """Decode darknet captures into the store's Parquet dataset (idempotent, crash-safe)."""
    if watch is not None:
        from iotscope.cli.sensor_commands import watch_directory

        watch_directory(watch, store, settle)
        return
    paths = paths or []
    from iotscope.capture import CaptureError
    from iotscope.store.packets import PacketStore
    from iotscope.telescope.ingest import capture_files, check_captures, ingest_file

    try:
        paths = capture_files(paths)
        if not paths:
            fail("no capture files found (a directory is searched for *.pcap, *.pcapng, *.cap, optionally .gz)")
        check_captures(paths)
        with PacketStore(store) as packet_store, _progress() as progress:
            tasks = {p: progress.add_task(p.name, total=p.stat().st_size) for p in paths}
            reports = [
                ingest_file(p, packet_store, lambda path, done: progress.update(tasks[path], completed=done))
                for p in paths
            ]
            for p in paths:
                progress.update(tasks[p], completed=p.stat().st_size)
    except (CaptureError, StoreError) as exc:
        fail(str(exc))
    _print_ingest_summary(reports)


def stats(store: StoreOption, as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Totals, time range, distinct sources, counts by class and top destination ports."""
    from iotscope.store.packets import PacketStore
    from iotscope.store.query import store_stats

    _require_store(store)
    try:
        with PacketStore(store) as packet_store:
            summary = store_stats(packet_store)
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    _print_stats(summary)


def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL; the table is `packets`.")],
    store: StoreOption,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON records on stdout.")] = False,
) -> None:
    """Run a SQL query over the store (view `packets`, with Hive columns `date` and `hour`)."""
    import duckdb

    from iotscope.store.packets import PacketStore
    from iotscope.store.query import connect

    _require_store(store)
    try:
        with PacketStore(store) as packet_store:
            result = connect(packet_store).sql(query).to_arrow_table()
    except duckdb.Error as exc:
        fail(f"SQL: {str(exc).splitlines()[0]}")
    except StoreError as exc:
        fail(str(exc))
    if as_csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(result, sys.stdout.buffer)
    elif as_json:
        sys.stdout.write(json.dumps(result.to_pylist(), default=str, indent=1) + "\n")
    else:
        table = Table(*result.column_names, caption=f"{result.num_rows:,} rows" + (" (first 1,000 shown)" if result.num_rows > 1000 else ""))
        for row in result.slice(0, 1000).to_pylist():
            table.add_row(*(str(v) for v in row.values()))
        Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the telescope commands to the main app."""
    app.command()(ingest)
    app.command()(stats)
    app.command()(sql)


def _require_store(store: Path) -> None:
    if not (store / "state.sqlite").is_file():
        fail(f"{store}: not an iotscope store (run `iotscope ingest ... --store {store}` first)")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )


def _print_ingest_summary(reports: list[FileReport]) -> None:
    for r in reports:
        anomalies = ", ".join(f"{k}={v:,}" for k, v in sorted(r.skipped.items())) or "none"
        if r.status == "already":
            console.print(f"{r.path}: already ingested ({r.packets:,} rows), nothing added", highlight=False)
            continue
        console.print(
            f"{r.path}: {r.records:,} records ({r.bytes_read / 1e6:,.1f} MB) -> {r.packets:,} rows "
            f"in {r.seconds:.2f} s ({r.packets_per_second:,.0f} packets/s); skipped/anomalies: {anomalies}",
            highlight=False,
        )
        for warning in r.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)


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

