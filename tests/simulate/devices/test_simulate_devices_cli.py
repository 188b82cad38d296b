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


def test_fleet_stops_when_the_process_that_started_it_is_killed(tmp_path):
    """A script that started the fleet in the background dies by SIGKILL (no trap runs): the fleet
    stops too, and its addresses are free again (issue 6, item 16)."""
    bind = random_loopback_prefix() + "0/24"
    truth_file = tmp_path / "truth.json"
    script = (
        f'"{sys.executable}" -m iotscope simulate-devices --bind {bind} --count 3 --seed 3 '
        f'--truth "{truth_file}" 2>"{tmp_path / "fleet.log"}" & echo $!; wait'
    )
    parent = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    fleet_pid = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while "emulated devices" not in _read(tmp_path / "fleet.log") and time.monotonic() < deadline:
            time.sleep(0.05)
        first = json.loads(truth_file.read_text())[0]
        socket.create_connection((first["ip"], first["port"]), timeout=1).close()  # listening
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(fleet_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(fleet_pid), "the fleet outlived the process that started it"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((first["ip"], first["port"]), timeout=1)
    finally:
        if _alive(fleet_pid):
            os.kill(fleet_pid, signal.SIGKILL)
        parent.kill()


def _read(path):
    return path.read_text() if path.exists() else ""


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for init to reap it."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
