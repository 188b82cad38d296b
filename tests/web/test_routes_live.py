"""``/api/live`` over a real server: a capture ingested while a page listens is announced within 5 s."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import uvicorn

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
from iotscope.web.app import create_app
from iotscope.web.server import listen
from iotscope.web.store_reader import StoreReader
from tests.web.conftest import build_store, raw

FIRST = DarknetConfig(packets=5_000, hours=0.5, seed=1, start=datetime(2016, 9, 1))
SECOND = DarknetConfig(packets=7_000, hours=0.5, seed=2, start=datetime(2016, 9, 1, 0, 30))


def _events(response: httpx.Response, into: list[tuple[float, str, dict]]) -> None:
    name = None
    try:
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: ") and name:
                into.append((time.monotonic(), name, json.loads(line[len("data: "):])))
    except (httpx.ReadError, httpx.StreamClosed):
        pass  # the test closed the stream


def test_a_new_ingest_is_announced_within_5_seconds(tmp_path: Path, serve) -> None:
    store = build_store(tmp_path, FIRST)
    server = serve(store)
    second = simulate_darknet(SECOND, tmp_path / "second.pcap")
    received: list[tuple[float, str, dict]] = []
    with httpx.Client(timeout=30) as client, client.stream("GET", server.url + "/api/live") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        listener = threading.Thread(target=_events, args=(response, received), daemon=True)
        listener.start()
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received[0][1] == "hello"
        assert received[0][2] == {"captures": 1, "packets": 5_000, "analysed_hours": 0, "analysis_fingerprint": ""}
        ingest([second.path], store)
        committed = time.monotonic()
        while len(received) < 2 and time.monotonic() < committed + 10:
            time.sleep(0.05)
        response.close()
    assert len(received) >= 2, "no commit event within 10 s"
    at, name, data = received[1]
    assert name == "commit" and (data["captures"], data["packets"]) == (2, 12_000)
    assert at - committed < 5.0
    summary = httpx.get(server.url + "/api/summary").json()
    assert summary["packets"] == raw(store, "SELECT count(*) FROM p")[0][0] == 12_000


def test_the_switch_to_a_commit_is_told_at_once_not_at_the_next_store_poll(tmp_path: Path) -> None:
    """Behind the prewarm, ``/api/live`` looks at the served generation (in memory) every 0.1 s: a page
    hears of the switch within a fraction of a second even when the store itself is polled rarely."""
    store = build_store(tmp_path, FIRST)
    app = create_app(StoreReader(store), live_poll_seconds=30.0)  # the SQLite poll: far longer than the test
    sock = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    second = simulate_darknet(SECOND, tmp_path / "second.pcap")
    received: list[tuple[float, str, dict]] = []
    switched: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while (getattr(app.state, "prewarmer", None) is None or app.state.prewarmer.rounds < 1):
            assert time.monotonic() < deadline, "the server did not warm its first generation"
            time.sleep(0.05)
        with httpx.Client(timeout=30) as client, client.stream("GET", url + "/api/live") as response:
            threading.Thread(target=_events, args=(response, received), daemon=True).start()
            ingest([second.path], store)
            first = app.state.view.generation()
            while app.state.view.generation() == first and time.monotonic() < deadline:
                time.sleep(0.01)
            switched.append(time.monotonic())
            while len(received) < 2 and time.monotonic() < switched[0] + 10:
                time.sleep(0.02)
            response.close()
    finally:
        app.state.stopping = True
        server.should_exit = True
        thread.join(30)
    assert [name for _, name, _ in received[:2]] == ["hello", "commit"], received
    assert received[1][2]["packets"] == 12_000
    assert received[1][0] - switched[0] < 1.0
