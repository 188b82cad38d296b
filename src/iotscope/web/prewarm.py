"""After every commit, the dashboard's default questions are answered in the background.

Why: answers are kept per generation of the store (``result_cache``), so the first viewer after a
commit would pay for computing each panel (tens to a few hundred ms each on 10M packets). A thread
of the server watches the generation, as ``/api/live`` does, and asks the questions the page asks
when it opens or hears of a commit, for the caller who opens it without a token. Each answer is
computed from the cursor of the generation it is kept under, so it is exact for that commit; a
viewer who asks while it is being computed waits for it (single flight), never computes it twice.

Until they are, the server keeps answering from the previous generation (:class:`PublishedView`).

The questions mirror ``web/frontend`` (``main.js``, ``index.html``): change them together.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime

import duckdb
from fastapi import FastAPI

from iotscope.errors import IotscopeError
from iotscope.web.access import OPERATOR, PUBLIC, Caller
from iotscope.web.routes_tables import (
    alerts_question,
    attacks_question,
    events_question,
)
from iotscope.web.routes_traffic import (
    Question,
    answer_body,
    categories_question,
    map_question,
    series_question,
    summary_question,
    top_question,
)
from iotscope.web.store_reader import Generation, StoreReader

log = logging.getLogger(__name__)

#: What the dashboard asks by default (``main.js`` and the selected options of ``index.html``).
TOP_LIMIT = 10
MAP_WINDOW_S, MAP_LIMIT = 600, 5000
SERIES_PORTS = (("tcp", 23), ("tcp", 2323))
SERIES_BUCKET_S = 600
LISTING_PAGE = 25
ALERTS_LIMIT = 1000
#: How often the prewarm looks for a new generation (two small SQLite reads, ~1 ms): a commit waits
#: this, then its questions, then ``/api/live``'s own poll before pages hear of it.
PREWARM_POLL_SECONDS = 0.2


def default_questions(app: FastAPI, caller: Caller) -> Iterator[Question]:
    """The dashboard's questions on opening, in the order it asks them."""
    yield summary_question()
    for by in ("port", "tool", "country", "asn"):
        yield top_question(by, TOP_LIMIT)
    yield categories_question()
    yield map_question(caller, MAP_WINDOW_S, MAP_LIMIT)
    for proto, port in SERIES_PORTS:
        yield series_question(proto, port, SERIES_BUCKET_S)
    if caller.sees_addresses:
        yield events_question(app, caller, limit=LISTING_PAGE)
        yield attacks_question(app, caller, limit=LISTING_PAGE)
    yield alerts_question(app, caller, limit=LISTING_PAGE)


def warm(app: FastAPI, generation: Generation, con: duckdb.DuckDBPyConnection) -> int:
    """Answer every default question for ``generation`` (``con`` a cursor of it); returns how many."""
    caller = OPERATOR if app.state.orgs is None else PUBLIC
    answered = 0
    for key, compute in default_questions(app, caller):
        body = answer_body(app, key, compute, (generation, con.cursor()))
        answered += 1
        if key[0] == "series" and key[1:3] == SERIES_PORTS[0]:
            # the chart's alert spans: asked over the first series' range, as the page does
            window = json.loads(body)
            start, end = datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"])
            answer_body(app, *alerts_question(app, caller, start=start, end=end, limit=ALERTS_LIMIT),
                        (generation, con.cursor()))
            answered += 1
    return answered


class PublishedView:
    """The generation the server answers from: the newest whose default answers are computed.

    Why not simply the newest committed: its answers are not computed yet, and every viewer who
    asks in the meantime would wait for a cold query, all of them at once right after each commit
    (measured: p95 ~1 s on 10M packets while the ingest that committed is still analysing). The
    previous generation is a complete, exact answer for the store as it was one commit ago; it is
    served (and ``/api/live`` tells of the commit) until the new one is ready, usually in well under
    a second. Same interface as :class:`~iotscope.web.store_reader.StoreReader`'s ``snapshot`` and
    ``generation``; before the first publication, the reader's newest.
    """

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader
        self._published: tuple[Generation, duckdb.DuckDBPyConnection] | None = None

    def publish(self, generation: Generation, con: duckdb.DuckDBPyConnection) -> None:
        self._published = (generation, con)

    def generation(self) -> Generation:
        published = self._published
        return published[0] if published else self._reader.generation()

    def snapshot(self) -> tuple[Generation, duckdb.DuckDBPyConnection]:
        published = self._published
        if published is None:
            return self._reader.snapshot()
        return published[0], published[1].cursor()


class Prewarmer:
    """A daemon thread that, whenever the store's generation changes (and at start), answers the
    default questions for it and then publishes it (:class:`PublishedView`)."""

    def __init__(self, app: FastAPI, view: PublishedView, poll_seconds: float) -> None:
        self._app = app
        self._view = view
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="iotscope-prewarm", daemon=True)
        #: The generation last warmed, and how many times a generation was warmed (for tests).
        self.warmed: Generation | None = None
        self.rounds = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        reader = self._app.state.reader
        while not self._stop.is_set():
            try:
                if reader.generation() != self.warmed:
                    generation, con = reader.snapshot()
                    warm(self._app, generation, con)
                    self._view.publish(generation, con)
                    self.warmed = generation
                    self.rounds += 1
            except (IotscopeError, duckdb.Error) as exc:  # the next request reports it; keep watching
                log.warning("prewarm: %s", (str(exc).splitlines() or [type(exc).__name__])[0])
            except Exception:  # a bug: logged with its traceback, and the thread keeps watching
                log.exception("prewarm failed")
            self._stop.wait(self._poll)
