"""``/api/live`` over a real server: a capture ingested while a page listens is announced within 5 s."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
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
