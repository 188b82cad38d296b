"""Prometheus metrics of a running sensor or directory watch (``--metrics HOST:PORT``).

Why these: an operator who leaves a sensor running for months must see, without reading logs,
whether it still captures (packets captured), whether the kernel drops (the capture's
``pcap_stats`` drop counter, reported when a capture session ends, and the interface's own
``rx_dropped``), whether ingest keeps up (ingested packets, lag from a file's close to its commit,
bytes waiting in the spool) and whether the analytics keep up (passes' lag). Drops are exported
as counters so an alert on ``increase(...) > 0`` fires; nothing is hidden or averaged away.

Each sensor has its own registry, so tests (and two sensors in one process) never share counts.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from iotscope.errors import IotscopeError


class MetricsError(IotscopeError):
    """``--metrics`` is not a usable HOST:PORT (bad syntax, or the port cannot be bound)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``'127.0.0.1:9108'`` -> ``('127.0.0.1', 9108)``; ``[::1]:9108`` for IPv6."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MetricsError(f"--metrics {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9108")
    return host, int(port)


class SensorMetrics:
    """The sensor's counters and gauges; ``serve`` exposes them in the Prometheus text format."""

    def __init__(self, interface: str = "") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.captured = Counter("iotscope_sensor_packets_captured", "Packets the capture wrote to the spool.", registry=r)
        self.kernel_dropped = Counter(
            "iotscope_sensor_kernel_dropped_packets",
            "Packets the kernel dropped for the capture socket (pcap_stats ps_drop), added when a capture session ends.",
            registry=r)
        self.interface_dropped = Gauge(
            "iotscope_sensor_interface_rx_dropped", "The interface's rx_dropped counter (/sys/class/net/IF/statistics).",
            registry=r)
        self.ingested = Counter("iotscope_sensor_packets_ingested", "Rows committed to the store.", registry=r)
        self.files = Counter("iotscope_sensor_files_ingested", "Capture files committed to the store.", registry=r)
        self.ingest_lag = Gauge(
            "iotscope_sensor_ingest_lag_seconds", "Seconds from the last file's close to its commit.", registry=r)
        self.spool_bytes = Gauge("iotscope_sensor_spool_bytes", "Bytes of capture files waiting in the spool.", registry=r)
        self.passes_lag = Gauge(
            "iotscope_sensor_passes_lag_seconds",
            "Last analysis: seconds from the oldest commit it had not seen to its end (NaN: passes not run).",
            registry=r)
        self.passes_lag.set(float("nan"))
        self.paused = Gauge("iotscope_sensor_capture_paused", "1 while capture is paused (full spool, capture error).",
                            registry=r)
        self._interface = interface

    def serve(self, listen: str) -> None:
        """Serve ``/metrics`` on ``HOST:PORT`` from a daemon thread (ends with the process)."""
        host, port = parse_listen(listen)
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"--metrics {listen}: cannot listen ({exc.strerror})") from None

    def refresh_interface(self) -> None:
        """Copy the interface's own drop counter (NIC/driver drops, before any capture socket)."""
        if not self._interface:
            return
        try:
            text = Path("/sys/class/net", self._interface, "statistics", "rx_dropped").read_text()
            self.interface_dropped.set(int(text))
        except (OSError, ValueError):
            pass
