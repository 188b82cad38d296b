"""``iotscope serve``: loopback by default, a warning for other addresses, one line for a bad store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from iotscope.simulate.darknet import DarknetConfig
from tests.web.conftest import Server, build_store, free_port, start_server, stop_server

SMALL = DarknetConfig(packets=2_000, hours=0.1, seed=3)


def test_serve_binds_loopback_by_default(tmp_path: Path) -> None:
    server: Server = start_server(build_store(tmp_path, SMALL))
    try:
        assert httpx.get(server.url + "/api/summary").json()["packets"] == 2_000
        listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    finally:
        stop_server(server)
    mine = [line for line in listening.splitlines() if f"pid={server.process.pid}," in line]
    assert mine and all("127.0.0.1:" in line for line in mine), mine


def test_serve_warns_when_binding_every_address(tmp_path: Path) -> None:
    server = start_server(build_store(tmp_path, SMALL), host="0.0.0.0")
    stop_server(server)
    assert "warning" in server.process.stderr.read()


def test_serve_a_missing_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "iotscope", "serve", "--store", str(tmp_path / "nope"),
                             "--port", str(free_port())], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "no such store directory" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nope").exists()
