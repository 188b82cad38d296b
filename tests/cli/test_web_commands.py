"""``iotscope serve``: loopback by default, a warning for other addresses, one line for a bad store."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
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
    assert "warning: binding 0.0.0.0" in server.banner


def test_serve_a_missing_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "iotscope", "serve", "--store", str(tmp_path / "nope"),
                             "--port", str(free_port())], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "no such store directory" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nope").exists()


def test_ctrl_c_stops_the_server_promptly_even_with_a_page_listening(tmp_path: Path) -> None:
    """An open /api/live stream must not hold shutdown until uvicorn cancels it (and logs a traceback).

    curl is the listener: like a browser's EventSource it just keeps reading (an httpx stream in this
    process did not reproduce the hang).
    """
    server = start_server(build_store(tmp_path, SMALL))
    listener = subprocess.Popen(["curl", "-sN", server.url + "/api/live"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "event: hello"
        server.process.send_signal(signal.SIGINT)
        started = time.monotonic()
        server.process.wait(10)
        stopped = time.monotonic() - started
    finally:
        listener.kill()
        listener.wait()
        stop_server(server)
    assert server.process.returncode in (0, 130)  # 130: ended by SIGINT, the shell convention
    assert stopped < 1.5
    errors = server.process.stderr.read()
    assert "Traceback" not in errors and "ERROR" not in errors, errors


def test_a_port_in_use_or_an_unknown_host_is_one_line_and_exit_2(tmp_path: Path) -> None:
    store = build_store(tmp_path, SMALL)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for host, message in (("127.0.0.1", "Address already in use"), ("999.1.1.1", "not an IP address")):
            result = subprocess.run([sys.executable, "-m", "iotscope", "serve", "--store", str(store),
                                     "--host", host, "--port", str(port)],
                                    capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 2, result.stderr
            assert message in result.stderr and "Traceback" not in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
