"""After every commit, the dashboard's default questions are answered in the background.

Why: answers are kept per generation of the store (``result_cache``), so the first viewer after a
commit would pay for computing each panel (tens to a few hundred ms each on 10M packets). A thread
of the server watches the generation, as ``/api/live`` does, and asks the questions the page asks
when it opens or hears of a commit, for the caller who opens it without a token. Each answer is
computed from the cursor of the generation it is kept under, so it is exact for that commit; a
viewer who asks while it is being computed waits for it (single flight), never computes it twice.

Until they are, or for at most :data:`WARM_DEADLINE_SECONDS`, the server keeps answering from the
previous generation (:class:`PublishedView`).

The questions mirror ``web/frontend`` (``main.js``, ``index.html``): change them together.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
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
#: Questions answered at once. DuckDB releases the GIL and parallelises each query, but a query also
#: has single-threaded stretches (planning, the Parquet footers of every hour, Python over result
#: rows); two at a time fill them.
WARM_THREADS = 2
#: The longest a commit waits for its default answers before the server switches to it. What is not
#: answered by then goes on being computed for the new generation (exact, like the rest); a viewer
#: who asks for it meanwhile waits for that computation (single flight), never for the old answer.
WARM_DEADLINE_SECONDS = 2.0


def default_questions(app: FastAPI, caller: Caller) -> Iterator[Question]:
    """The dashboard's questions on opening, the slowest first (floors on 10M packets, BENCHMARKS.md:
    ``top port`` ~230 ms, the summary, categories and events ~120 ms, the rest 40-70 ms).

    Why slowest first: they are answered two at a time, and starting the long ones first ends the
    whole set soonest; and what a deadline leaves unanswered is then a cheap question, which a
    viewer asking for it waits least for.
    """
    yield top_question("port", TOP_LIMIT)
    yield summary_question()
    yield categories_question()
    if caller.sees_addresses:
        yield events_question(app, caller, limit=LISTING_PAGE)
    for proto, port in SERIES_PORTS:
        yield series_question(proto, port, SERIES_BUCKET_S)
    yield map_question(caller, MAP_WINDOW_S, MAP_LIMIT)
    for by in ("tool", "asn", "country"):
        yield top_question(by, TOP_LIMIT)
    if caller.sees_addresses:
        yield attacks_question(app, caller, limit=LISTING_PAGE)
    yield alerts_question(app, caller, limit=LISTING_PAGE)


def _answer(app: FastAPI, question: Question, generation: Generation, cursor: duckdb.DuckDBPyConnection) -> int:
    """One default question for ``generation`` over ``cursor`` (its own: a cursor serves one thread);
    after the first series, the chart's alert spans, asked over its range as the page does."""
    key, compute = question
    body = answer_body(app, key, compute, (generation, cursor))
    if key[0] != "series" or key[1:3] != SERIES_PORTS[0]:
        return 1
    window = json.loads(body)
    start, end = datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"])
    answer_body(app, *alerts_question(app, default_caller(app), start=start, end=end, limit=ALERTS_LIMIT),
                (generation, cursor))
    return 2


def default_caller(app: FastAPI) -> Caller:
    """Whom the default answers are for: the caller who opens the page without a token."""
    return OPERATOR if app.state.orgs is None else PUBLIC


def start_warming(app: FastAPI, pool: ThreadPoolExecutor, generation: Generation,
                  con: duckdb.DuckDBPyConnection) -> list[Future[int]]:
    """Every default question for ``generation`` (``con`` a cursor of it), submitted to ``pool`` in order."""
    return [pool.submit(_answer, app, question, generation, con.cursor())
            for question in default_questions(app, default_caller(app))]


class PublishedView:
    """The generation the server answers from: the newest whose default answers are computed.

    Why not simply the newest committed: its answers are not computed yet, and every viewer who
    asks in the meantime would wait for a cold query, all of them at once right after each commit
    (measured: p95 ~1 s on 10M packets while the ingest that committed is still analysing). The
    previous generation is a complete, exact answer for the store as it was one commit ago; it is
    served until the new one is ready or the warm's deadline has passed (then ``/api/live`` tells of
    the commit). Same interface as :class:`~iotscope.web.store_reader.StoreReader`'s ``snapshot`` and
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
    default questions for it (:data:`WARM_THREADS` at a time) and publishes it (:class:`PublishedView`)
    once they are answered or :data:`WARM_DEADLINE_SECONDS` have passed, whichever is first."""

    def __init__(self, app: FastAPI, view: PublishedView, poll_seconds: float,
                 deadline_seconds: float = WARM_DEADLINE_SECONDS) -> None:
        self._app = app
        self._view = view
        self._poll = poll_seconds
        self._deadline = deadline_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="iotscope-prewarm", daemon=True)
        #: The generation last warmed (every default answer kept), how many times a generation was
        #: warmed, and how many were published before all their answers were (for tests and benches).
        self.warmed: Generation | None = None
        self.rounds = 0
        self.published_at_deadline = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _warm_and_publish(self, pool: ThreadPoolExecutor) -> None:
        generation, con = self._app.state.reader.snapshot()
        futures = start_warming(self._app, pool, generation, con)
        done, pending = wait(futures, timeout=self._deadline, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if not failed:  # all answered, or the deadline: the rest are being computed for this generation
            self._view.publish(generation, con)
            self.published_at_deadline += bool(pending)
        wait(pending)
        for future in futures:
            future.result()  # the first failure is raised (and logged by the caller): warmed again next poll
        self.warmed = generation
        self.rounds += 1

    def _run(self) -> None:
        reader = self._app.state.reader
        with ThreadPoolExecutor(WARM_THREADS, thread_name_prefix="iotscope-warm") as pool:
            while not self._stop.is_set():
                try:
                    if reader.generation() != self.warmed:
                        self._warm_and_publish(pool)
                except (IotscopeError, duckdb.Error) as exc:  # the next request reports it; keep watching
                    log.warning("prewarm: %s", (str(exc).splitlines() or [type(exc).__name__])[0])
                except Exception:  # a bug: logged with its traceback, and the thread keeps watching
                    log.exception("prewarm failed")
                self._stop.wait(self._poll)
