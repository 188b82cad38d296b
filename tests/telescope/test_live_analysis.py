"""When the live paths run the analytics passes: on a schedule, not after every commit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.telescope.ingest import ingest_file
from iotscope.telescope.live_analysis import AnalysisSchedule
from iotscope.telescope.metrics import SensorMetrics
from iotscope.telescope.passes.runner import analyze


class Clock:
    """A monotonic clock the test moves; each reading also advances it by ``tick`` (a slow run)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.tick = 0.0

    def __call__(self) -> float:
        value = self.now
        self.now += self.tick
        return value


def test_nothing_committed_is_never_due() -> None:
    schedule = AnalysisSchedule(every=10, clock=Clock())
    assert not schedule.pending and not schedule.due(backlog=False)


def test_at_most_once_per_interval_and_backlog_defers_but_cannot_starve(tmp_path: Path) -> None:
    clock = Clock()
    schedule = AnalysisSchedule(every=10, clock=clock)
    schedule.committed()
    assert schedule.due(backlog=False)  # nothing ran yet: analyse the first commit at once
    with PacketStore(tmp_path / "store") as store:
        schedule.run(store, print)  # an empty store analyses fine
    assert not schedule.pending
    for _ in range(9):  # a commit a second: none of them is analysed before the interval is over
        clock.now += 1
        schedule.committed()
        assert not schedule.due(backlog=False)
    clock.now += 1
    assert schedule.due(backlog=False)
    assert not schedule.due(backlog=True)  # files wait to be ingested: ingest first...
    clock.now += 10
    assert not schedule.due(backlog=True)
    clock.now += 1  # ...but not longer than twice the interval after the oldest commit not analysed
    assert schedule.due(backlog=True)


def test_a_long_run_spaces_the_next_one_by_ten_times_its_duration(tmp_path: Path) -> None:
    """A run re-reads the current hour, so runs grow longer as it fills: analysis must not take
    over the CPU however short ``every`` is."""
    clock = Clock()
    schedule = AnalysisSchedule(every=10, clock=clock)
    schedule.committed()
    with PacketStore(tmp_path / "store") as store:
        clock.tick = 5.0  # the run's two clock readings are 5 s apart: it took 5 s
        schedule.run(store, print)
        clock.tick, clock.now = 0.0, 1005.0  # it ended at 1005
    schedule.committed()
    clock.now += 49
    assert not schedule.due(backlog=False)  # 10 s would be due, 10 x 5 s is not over yet
    clock.now += 1
    assert schedule.due(backlog=False)


def test_run_brings_the_store_up_to_date_and_sets_the_passes_lag(tmp_path: Path) -> None:
    capture = tmp_path / "c.pcap"
    simulate_darknet(DarknetConfig(packets=3_000, hours=0.05, seed=3), capture)
    metrics = SensorMetrics()
    schedule = AnalysisSchedule(every=0)
    with PacketStore(tmp_path / "store") as store:
        ingest_file(capture, store)
        schedule.committed()
        assert schedule.run_if_due(store, backlog=False, log=print, metrics=metrics)
        assert not schedule.pending and schedule.runs == 1
        assert not schedule.run_if_due(store, backlog=False, log=print, metrics=metrics)  # nothing new
    assert analyze(tmp_path / "store").hours_analysed == 0
    assert not math.isnan(metrics.registry.get_sample_value("iotscope_sensor_passes_lag_seconds"))


def test_interval_is_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 86400"):
        AnalysisSchedule(every=-1)
