"""``iotscope simulate-devices``: refuses non-loopback ranges in one line, runs until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from iotscope.cli import app
from tests.simulate.devices.conftest import random_loopback_prefix


@pytest.mark.parametrize("bind", ["192.168.1.0/24", "0.0.0.0/0", "127.0.0.0/7"])
def test_bind_outside_loopback_is_a_one_line_error(bind):
    result = CliRunner().invoke(app, ["simulate-devices", "--bind", bind, "--count", "2"])
    assert result.exit_code == 2
    assert "127.0.0.0/8" in result.output and "Traceback" not in result.output


def test_runs_until_sigterm_with_table_and_ground_truth(tmp_path):
    bind = random_loopback_prefix() + "0/24"
    truth_file = tmp_path / "truth.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "iotscope", "simulate-devices", "--bind", bind, "--count", "5",
         "--seed", "3", "--truth", str(truth_file)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "120"},
    )
    try:
        deadline = time.monotonic() + 20
        while not truth_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        truth = json.loads(truth_file.read_text())
        first = truth[0]
        while time.monotonic() < deadline:
            try:
                socket.create_connection((first["ip"], first["port"]), timeout=1).close()
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            pytest.fail("fleet never listened")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "5 emulated devices" in stderr and first["ip"] in stderr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((first["ip"], first["port"]), timeout=1)
