"""Live commands: ``sensor`` (capture an interface continuously), ``compact`` (small files, retention),
and the ``--watch`` mode of ``ingest`` (``watch_directory``, called from the ingest command).

Each runs until SIGTERM or SIGINT, which only set an event: the library then closes the current
capture file and ingests it before returning, so stopping never loses a spooled packet.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from iotscope.cli.common import console, fail
from iotscope.errors import IotscopeError


def _log(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def sensor(
    interface: Annotated[str, typer.Option("--interface", "-i", help="Interface that receives the darknet's traffic.")],
    store: Annotated[Path, typer.Option("--store", help="Store directory (created if missing).")],
    bpf: Annotated[str, typer.Option("--bpf", help="Capture filter (BPF / pcap-filter syntax).")] = "",
    snaplen: Annotated[
        int | None, typer.Option("--snaplen", help="Bytes kept per packet (default 160: IPv6 + TCP headers).")
    ] = None,
    rotate: Annotated[int, typer.Option("--rotate", help="Seconds per spool file (ingest lag ~ this).")] = 60,
    spool: Annotated[
        Path | None, typer.Option("--spool", help="Directory of closed capture files (default STORE/spool).")
    ] = None,
    keep: Annotated[str | None, typer.Option("--keep", help="Retention, e.g. 400d or 36h (default: keep all).")] = None,
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Serve Prometheus metrics at HOST:PORT, e.g. 127.0.0.1:9108.")
    ] = None,
    buffer_mib: Annotated[int | None, typer.Option("--buffer-mib", help="Kernel capture buffer (default 64).")] = None,
    analyze_every: Annotated[float | None, typer.Option(
        "--analyze-every", help="Seconds between runs of the analytics passes while data arrives (default 60).")] = None,
) -> None:
    """Capture an interface continuously into the store: spool -> ingest as each file closes.

    Needs CAP_NET_RAW and CAP_NET_ADMIN (see docs/sensor.md). Stop with SIGTERM or Ctrl-C: the current
    file is closed and ingested first.
    """
    from iotscope.capture.live import CaptureSettings
    from iotscope.store.retention import parse_keep
    from iotscope.telescope.metrics import SensorMetrics
    from iotscope.telescope.sensor import Sensor, SensorConfig

    stop = _stop_on_signals()
    try:
        given = {k: v for k, v in (("snaplen", snaplen), ("buffer_mib", buffer_mib)) if v is not None}
        settings = CaptureSettings(interface, (spool or store / "spool").absolute(), bpf, rotate_seconds=rotate, **given)
        later = {"analyze_every": analyze_every} if analyze_every is not None else {}
        config = SensorConfig(settings, store, parse_keep(keep) if keep else None, **later)
        sensor_metrics = SensorMetrics(interface)
        if metrics:
            sensor_metrics.serve(metrics)
        summary = Sensor(config, sensor_metrics, _log).run(stop)
    except IotscopeError as exc:
        fail(str(exc))
    drops = f"{summary.kernel_drops:,} dropped by the kernel"
    if summary.drops_unknown:
        drops += f" (+ {summary.drops_unknown} session(s) without a drop report)"
    _log(f"sensor stopped: {summary.captured:,} packets captured, {drops}; "
         f"{summary.files:,} files -> {summary.packets:,} rows stored, analysed {summary.analyses:,} time(s)")


def watch_directory(directory: Path, store: Path, settle: float) -> None:
    """``iotscope ingest --watch DIR``: ingest closed captures appearing in DIR until stopped."""
    from iotscope.store.packets import PacketStore
    from iotscope.telescope.watch import DirectoryWatch

    if not directory.is_dir():
        fail(f"--watch {directory}: not a directory")
    stop = _stop_on_signals()
    try:
        with PacketStore(store) as packet_store:
            packet_store.lock_for_writing()
            _log(f"watching {directory} (a file is taken once closed and unchanged for {settle:g} s)")
            DirectoryWatch(directory, packet_store, settle, log=_log).run(
                stop, lambda r: _log(f"{r.path}: {r.status}, {r.packets:,} rows"))
    except IotscopeError as exc:
        fail(str(exc))


def compact(
    store: Annotated[Path, typer.Option("--store", help="Store directory.")],
    keep: Annotated[str | None, typer.Option("--keep", help="Also remove hours older than this, e.g. 400d.")] = None,
) -> None:
    """Compact finished hours into one Parquet file each; with --keep, remove old hours (logged in the catalog)."""
    from datetime import datetime

    from iotscope.store.compaction import compact_hours, delete_retired
    from iotscope.store.packets import PacketStore
    from iotscope.store.retention import apply_retention, parse_keep

    if not (store / "state.sqlite").is_file():
        fail(f"{store}: not an iotscope store")
    try:
        keep_for = parse_keep(keep) if keep else None
        with PacketStore(store) as packet_store:
            now = datetime.now(UTC)
            removed = apply_retention(packet_store, keep_for, now) if keep_for else 0
            compacted = compact_hours(packet_store, before=now)
            deleted = delete_retired(packet_store)
    except IotscopeError as exc:
        fail(str(exc))
    _log(f"{compacted} hour(s) compacted, {removed} hour(s) removed by retention, {deleted} retired file(s) deleted")


def register(app: typer.Typer) -> None:
    """Add the live commands to the main app."""
    app.command()(sensor)
    app.command()(compact)
