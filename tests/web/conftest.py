"""Stores built by the simulator, and ``iotscope serve`` as a real subprocess on loopback."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest

#: Debian's chromium, driven by Playwright (never a downloaded browser).
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"]

#: Three hours of the Mirai outbreak scenario: 23/2323 surge, ZMap, masscan, backscatter, noise.
OUTBREAK = DarknetConfig(packets=120_000, hours=3, outbreak=True, seed=7, start=datetime(2016, 9, 1))


def build_store(root: Path, config: DarknetConfig = OUTBREAK, name: str = "capture.pcap") -> Path:
    """Simulate ``config`` into a capture under ``root`` and ingest it into ``root/store``."""
    root.mkdir(parents=True, exist_ok=True)
    result = simulate_darknet(config, root / name)
    ingest([result.path], root / "store")
    return root / "store"


@pytest.fixture(scope="session")
def outbreak_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("outbreak"))


@pytest.fixture(scope="session")
def analysed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outbreak, ingested and analysed: ``events``, ``attacks`` and ``port_series`` have rows."""
    from iotscope.telescope.passes.runner import analyze

    store = build_store(tmp_path_factory.mktemp("analysed"))
    analyze(store)
    return store


@pytest.fixture(scope="session")
def alerting_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight hours, the outbreak starting half-way, analysed: ``alerts`` holds the 23 and 2323 surges."""
    from iotscope.telescope.passes.runner import analyze

    config = DarknetConfig(packets=300_000, hours=8, outbreak=True, outbreak_start=0.5, seed=7,
                           start=datetime(2016, 9, 1))
    store = build_store(tmp_path_factory.mktemp("alerting"), config)
    analyze(store)
    return store


@pytest.fixture(scope="session")
def geo_data() -> None:
    """Skip a test of located sources where ``make geo-data`` has not built the embedded geo/ASN table."""
    from iotscope.enrich.enricher import Enricher
    from iotscope.enrich.errors import EnrichDataError

    try:
        Enricher.default()
    except EnrichDataError:
        pytest.skip("geo/ASN data not built (make geo-data)")


def views(store: Path, sql: str, params: list | None = None) -> list[tuple]:
    """The reference for analysis tables: the store's own views (``iotscope sql``), queried directly."""
    from iotscope.store.packets import PacketStore
    from iotscope.store.query import connect

    with PacketStore(store, read_only=True) as opened:
        con = connect(opened)
    return con.execute(sql, params or []).fetchall()


def map_rows(points: dict[str, list]) -> list[dict]:
    """``/api/map``'s columnar ``points`` as one dict per point (the columns must all be as long)."""
    lengths = {len(column) for column in points.values()}
    assert len(lengths) <= 1, f"map columns of different lengths: {lengths}"
    return [dict(zip(points, values, strict=True)) for values in zip(*points.values(), strict=True)]


def raw(store: Path, sql: str, params: list | None = None) -> list[tuple]:
    """The reference: DuckDB straight over the store's Parquet files, not through iotscope's views."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"CREATE VIEW p AS SELECT * FROM read_parquet('{store}/packets/*/*/*.parquet')")
    return con.execute(sql, params or []).fetchall()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    banner: str  # what it printed on stderr before serving


def start_server(store: Path, host: str = "127.0.0.1", extra: tuple[str, ...] = ()) -> Server:
    """``iotscope serve --port 0`` in a subprocess that dies with this process (even on kill -9).

    util-linux's ``setpriv --pdeathsig`` sets the kernel's parent-death signal before exec'ing the
    server (no ``preexec_fn`` in a process with threads); the fixtures terminate it otherwise.
    The server picks a free port and prints its URL, so no two tests can race for a port.
    """
    process = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", "--", sys.executable, "-m", "iotscope", "serve", "--store", str(store),
         "--host", host, "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = []
    for line in process.stderr:
        printed.append(line)
        found = re.search(r"dashboard: http://\S+?:(\d+)/", line)
        if found:
            break
    else:
        process.wait()
        raise RuntimeError(f"server exited {process.returncode}: {''.join(printed)}")
    url = f"http://127.0.0.1:{found.group(1)}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/openapi.json", timeout=5).status_code == 200:
                return Server(url, process, "".join(printed))
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not answer within 60 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def serve() -> Iterator:
    """Start servers with ``serve(store)``; every one is stopped when the test ends."""
    started: list[Server] = []

    def start(store: Path, host: str = "127.0.0.1", extra: tuple[str, ...] = ()) -> Server:
        server = start_server(store, host, extra)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Debian chromium for the browser tests of a module."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make system-deps)")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        yield browser
        browser.close()
