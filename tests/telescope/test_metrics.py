"""Sensor metrics: the names operators alert on, served in the Prometheus text format."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request

import pytest

from iotscope.telescope.metrics import MetricsError, SensorMetrics, parse_listen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_text_has_every_metric() -> None:
    metrics = SensorMetrics("lo")
    port = free_port()
    metrics.serve(f"127.0.0.1:{port}")
    metrics.captured.inc(5)
    metrics.kernel_dropped.inc(2)
    metrics.refresh_interface()
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "iotscope_sensor_packets_captured_total 5.0" in text
    assert "iotscope_sensor_kernel_dropped_packets_total 2.0" in text
    assert "iotscope_sensor_passes_lag_seconds NaN" in text
    for name in ("packets_ingested_total", "ingest_lag_seconds", "spool_bytes", "capture_paused",
                 "interface_rx_dropped"):
        assert f"iotscope_sensor_{name}" in text


def test_listen_address_is_checked() -> None:
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    for bad in ("9108", "localhost:", "127.0.0.1:99999", ":9108"):
        with pytest.raises(MetricsError):
            parse_listen(bad)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(MetricsError, match="cannot listen"):
            SensorMetrics().serve(f"127.0.0.1:{taken.getsockname()[1]}")


def test_bad_metrics_option_is_one_line(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "iotscope", "sensor", "--interface", "lo", "--store",
                             str(tmp_path / "s"), "--metrics", "nonsense"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--metrics 'nonsense'" in result.stderr
