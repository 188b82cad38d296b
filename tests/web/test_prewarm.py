"""The dashboard's default questions are answered in the background after every commit, exactly."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
from iotscope.web.access import OPERATOR
from iotscope.web.app import create_app
from iotscope.web.prewarm import Prewarmer, PublishedView, default_questions
from iotscope.web.store_reader import StoreReader
from tests.web.conftest import views


def _wait_for_round(app, rounds: int) -> None:
    deadline = time.monotonic() + 120
    while app.state.prewarmer.rounds < rounds:
        assert time.monotonic() < deadline, "the prewarm did not run"
        time.sleep(0.05)


def _kept(app) -> dict[tuple, dict]:
    """The answers kept for the generation committed now, by question key (None: not answered)."""
    generation = app.state.reader.generation()
    out = {}
    for key, _ in default_questions(app, OPERATOR):
        body = app.state.results.peek(generation, key)
        out[key] = None if body is None else json.loads(body)
    return out


def test_answers_are_ready_before_anyone_asks_and_follow_each_commit(analysed_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(analysed_store, store)
    app = create_app(StoreReader(store), live_poll_seconds=0.1)
    with TestClient(app):  # runs the application's lifespan: the prewarm thread
        _wait_for_round(app, 1)
        kept = _kept(app)
        assert all(answer is not None for answer in kept.values()), [k for k, a in kept.items() if a is None]
        packets = views(store, "SELECT count(*) FROM packets")[0][0]
        assert kept[("summary",)]["packets"] == packets
        assert len([k for k in kept if k[0] == "top"]) == 4 and any(k[0] == "map" for k in kept)

        more = simulate_darknet(DarknetConfig(packets=5_000, hours=0.5, seed=21, start=datetime(2016, 9, 1, 3)),
                                tmp_path / "more.pcap")
        ingest([more.path], store)  # a commit: a new generation, nothing asked yet
        _wait_for_round(app, 2)
        assert app.state.view.generation() == app.state.prewarmer.warmed == app.state.reader.generation()
        kept = _kept(app)
        assert kept[("summary",)] is not None and kept[("summary",)]["packets"] == packets + 5_000
        # exact for the new commit: what a request computes from nothing is the same answer
        fresh = TestClient(create_app(StoreReader(store), prewarm=False))
        for key, answer in kept.items():
            if key[0] in ("summary", "top", "categories", "series"):
                path = {"summary": "/api/summary", "categories": "/api/categories"}.get(key[0]) or (
                    f"/api/top/{key[1]}?limit={key[2]}" if key[0] == "top"
                    else f"/api/series?proto={key[1]}&port={key[2]}&bucket={key[3]}")
                assert fresh.get(path).json() == answer, key


def test_the_published_generation_is_served_until_the_next_is_published(outbreak_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(outbreak_store, store)
    reader = StoreReader(store)
    view = PublishedView(reader)
    assert view.generation() == reader.generation()  # nothing published yet: the newest
    first, con = reader.snapshot()
    view.publish(first, con)
    before = views(store, "SELECT count(*) FROM packets")[0][0]
    more = simulate_darknet(DarknetConfig(packets=3_000, hours=0.2, seed=22, start=datetime(2016, 9, 1, 3)),
                            tmp_path / "more.pcap")
    ingest([more.path], store)
    assert reader.generation() != first
    generation, cursor = view.snapshot()  # still the published one, whole and exact
    assert generation == view.generation() == first
    assert cursor.execute("SELECT count(*) FROM packets").fetchone() == (before,)
    view.publish(*reader.snapshot())
    generation, cursor = view.snapshot()
    assert generation == reader.generation() and cursor.execute("SELECT count(*) FROM packets").fetchone() == (
        before + 3_000,)


def test_a_commit_is_published_at_the_deadline_and_its_other_answers_follow_exactly(
        analysed_store: Path, tmp_path: Path) -> None:
    """A zero deadline: the generation is served before its questions are all answered; they are
    still all answered for it, and equal what a server computing from nothing answers."""
    store = tmp_path / "store"
    shutil.copytree(analysed_store, store)
    app = create_app(StoreReader(store), prewarm=False)
    app.state.view = PublishedView(app.state.reader)
    warmer = Prewarmer(app, app.state.view, poll_seconds=0.05, deadline_seconds=0.0)
    app.state.prewarmer = warmer
    warmer.start()
    try:
        _wait_for_round(app, 1)
    finally:
        warmer.stop()
    assert warmer.published_at_deadline == 1 and app.state.view.generation() == app.state.reader.generation()
    kept = _kept(app)
    assert all(answer is not None for answer in kept.values()), [k for k, a in kept.items() if a is None]
    fresh = TestClient(create_app(StoreReader(store), prewarm=False))
    assert fresh.get("/api/summary").json() == kept[("summary",)]
    for by in ("tool", "country", "asn", "port"):
        assert fresh.get(f"/api/top/{by}?limit=10").json() == kept[("top", by, 10, None, None)], by
