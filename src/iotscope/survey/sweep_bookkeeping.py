"""What a sweep counts and where it stands: counters, progress, totals, and the watermark behind
its checkpoints.

One module for the one-process sweep, its connect engine and the multi-process merge
(:mod:`iotscope.survey.sweep_workers`), so that all three count and checkpoint the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

from iotscope.survey.journal import OpenPort
from iotscope.survey.permutation import CyclicPermutation, Shard
from iotscope.survey.scope import Scope


@dataclass
class SweepCounts:
    """What became of the connection attempts so far: the counters progress and totals share."""

    attempted: int = 0
    open: int = 0
    closed: int = 0
    timeouts: int = 0
    errors: int = 0
    #: Blocklisted since the permutation was fixed (or already done before a resume).
    skipped: int = 0


@dataclass(kw_only=True)
class SweepProgress(SweepCounts):
    """Counters a progress bar shows; ``positions_*`` drive the bar and its ETA."""

    positions_done: int
    positions_total: int


@dataclass
class SweepStats(SweepCounts):
    """A finished sweep's totals: the counters, how long it took, and every open port it found."""

    seconds: float = 0.0
    concurrency: int = 0
    open_ports: list[OpenPort] = field(default_factory=list)

    @property
    def attempts_per_second(self) -> float:
        return self.attempted / self.seconds if self.seconds > 0 else 0.0


#: Called with (watermark position, positions done above it, open ports found since last call, finished).
Checkpoint = Callable[[int, list[int], list[OpenPort], bool], None]


class SweepRun:
    """The bookkeeping of one sweep: positions in flight, the watermark, counters, open ports."""

    def __init__(
        self, scope: Scope, permutation: CyclicPermutation, lane: Shard, start: int, done_before_resume: set[int],
        concurrency: int,
    ) -> None:
        self.scope = scope
        self.permutation = permutation
        self.lane = lane
        self.done_before_resume = done_before_resume
        self.stats = SweepStats(concurrency=concurrency)
        self.stats.skipped = len(done_before_resume)
        self._next = start  # one past the highest position dispatched or skipped
        self._in_flight: set[int] = set()
        self._finished_ahead: set[int] = set(done_before_resume)
        self._unsaved: list[OpenPort] = []

    def start(self, position: int) -> None:
        self._next = position + 1
        self._in_flight.add(position)
        self.stats.attempted += 1

    def skip(self, position: int) -> None:
        self.stats.skipped += 1
        self._next = position + 1
        self._finished_ahead.add(position)

    def done(self, position: int, outcome: str) -> None:
        """``outcome``: "closed", "timeouts" or "errors" (a counter of :class:`SweepStats`)."""
        if outcome == "closed":  # most attempts: spared the getattr/setattr
            self.stats.closed += 1
        else:
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        self._in_flight.discard(position)
        self._finished_ahead.add(position)

    def found(self, position: int, open_port: OpenPort) -> None:
        self.stats.open += 1
        self.stats.open_ports.append(open_port)
        self._unsaved.append(open_port)
        self._in_flight.discard(position)
        self._finished_ahead.add(position)

    def walked_all(self) -> None:
        self._next = self.permutation.positions

    def watermark(self) -> int:
        return min(self._in_flight) if self._in_flight else self._next

    def checkpoint(self) -> tuple[int, list[int], list[OpenPort]]:
        mark = self.watermark()
        self._finished_ahead = {p for p in self._finished_ahead if p >= mark}
        found, self._unsaved = self._unsaved, []
        return mark, sorted(self._finished_ahead), found

    def progress(self) -> SweepProgress:
        counts = {f.name: getattr(self.stats, f.name) for f in fields(SweepCounts)}
        return SweepProgress(
            positions_done=self.watermark(), positions_total=self.permutation.positions, **counts
        )
