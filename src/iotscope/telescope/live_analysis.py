"""When the live paths (``iotscope sensor``, ``ingest --watch``) run the analytics passes.

Why not after every commit: the passes re-analyse every hour whose files changed, so each run
re-reads the whole current hour. After every file of a ``--rotate 1`` sensor that is thousands of
re-analyses of a growing hour per hour, and it was most of the sensor's CPU (BENCHMARKS.md "Live
sensor"). The passes' rows for an hour are the same whether they ran after each file or once after
the last one (``iotscope.telescope.passes.runner`` recomputes stale hours from carried state), so
running them less often costs only freshness of the analysed views:

* at most once every ``every`` seconds while files keep being committed, and no sooner than
  ``SPACING`` times the last run's duration after it ended: a run re-reads the current hour, so it
  grows longer as the hour fills; spacing the runs by their own duration keeps analysis at most
  ~1/``SPACING`` of the wall time however busy the link (measured: 4.6 CPU-s per million packets
  for one run of every pass, against 0.4 for their ingest; BENCHMARKS.md "Live sensor");
* preferably when no closed file waits to be ingested (a late analysis costs freshness, a spool
  that fills up costs packets), but never later than twice that gap after the oldest commit it
  has not analysed, so a steady backlog cannot starve it;
* always after the last ingest when stopping (SIGTERM), and once when starting (whatever a
  ``kill -9`` left unanalysed: the runner finds those hours itself).

The dashboard's live feed (``/api/live``) is unaffected: it fires on each committed capture, which
is a catalog row, not an analysis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from iotscope.errors import IotscopeError
from iotscope.store.packets import PacketStore
from iotscope.telescope.metrics import SensorMetrics
from iotscope.telescope.passes.runner import analyze

#: Default seconds between analyses while data arrives (``--analyze-every``).
ANALYZE_EVERY_SECONDS = 60.0
#: A run starts no sooner than this many times the previous run's duration after it ended.
SPACING = 10.0

Log = Callable[[str], None]


def analyze_committed(store: PacketStore, log: Log) -> bool:
    """Run the analytics passes (``iotscope analyze``) over what the commits changed; True when they
    ran. A failure (a full disk) is a warning: capture and ingest go on, and the next analysis picks
    up every hour still stale, since the runner tracks analysed hours itself."""
    try:
        analyze(store.root)
    except IotscopeError as exc:
        log(f"warning: analysis after ingest failed: {exc}")
        return False
    return True


@dataclass
class AnalysisSchedule:
    """Decides when to analyse and runs it; ``clock`` is ``time.monotonic`` (a parameter for tests)."""

    every: float = ANALYZE_EVERY_SECONDS
    clock: Callable[[], float] = time.monotonic
    runs: int = 0
    _pending_since: float | None = None  # clock() of the oldest commit not analysed yet
    _pending_wall: float | None = None  # the same moment as time.time(), for the passes-lag gauge
    _last_end: float = field(default=float("-inf"))  # clock() when the last run ended
    _last_duration: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.every <= 86400:
            raise ValueError(f"analysis interval must be between 0 and 86400 seconds, got {self.every}")

    @property
    def pending(self) -> bool:
        return self._pending_since is not None

    def committed(self) -> None:
        """Note one commit that the passes have not seen yet."""
        if self._pending_since is None:
            self._pending_since, self._pending_wall = self.clock(), time.time()

    def due(self, backlog: bool) -> bool:
        """Whether to analyse now; ``backlog``: closed files are waiting to be ingested."""
        if self._pending_since is None:
            return False
        now = self.clock()
        gap = max(self.every, SPACING * self._last_duration)
        if now - self._last_end < gap:
            return False
        return not backlog or now - self._pending_since >= 2 * gap

    def run(self, store: PacketStore, log: Log, metrics: SensorMetrics | None = None) -> bool:
        """Analyse now (on the caller's thread); True when the passes ran. A failed run stays pending,
        so it is tried again ``every`` seconds later."""
        pending = self._pending_since, self._pending_wall
        self._pending_since = self._pending_wall = None
        self.runs += 1
        started = self.clock()
        ran = analyze_committed(store, log)
        self._last_end = self.clock()
        self._last_duration = self._last_end - started
        if not ran:
            self._pending_since, self._pending_wall = pending if pending[0] is not None else (self.clock(), time.time())
            return False
        pending_wall = pending[1]
        if metrics is not None and pending_wall is not None:
            metrics.passes_lag.set(time.time() - pending_wall)
        return True

    def run_if_due(self, store: PacketStore, backlog: bool, log: Log, metrics: SensorMetrics | None = None) -> bool:
        return self.run(store, log, metrics) if self.due(backlog) else False
