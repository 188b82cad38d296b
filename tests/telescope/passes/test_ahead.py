"""Analysis computed during ingest (``passes.ahead``): the same datasets as an analysis after it, whatever comes.

Every test compares with the reference: the same captures ingested, then analysed from the
committed Parquet files (``analyze`` without ``ahead``).
"""

from __future__ import annotations

import time
from pathlib import Path

from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest, ingest_file
from iotscope.telescope.passes.ahead import MAX_RESULT_BYTES, MAX_ROWS, AnalysisAhead
from iotscope.telescope.passes.runner import AnalyzeReport, analyze
from tests.telescope.passes.captures import (
    at,
    darknet_address,
    iotscope,
    seconds,
    syn,
    synack,
    write_capture,
)
from tests.telescope.passes.test_runner import _views


def _ingest_ahead(paths: list[Path], store: Path, max_rows: int = MAX_ROWS,
                  max_result_bytes: int = MAX_RESULT_BYTES) -> AnalyzeReport:
    """What ``iotscope ingest`` does: the hours are computed while the captures are stored."""
    with PacketStore(store) as packets:
        ahead = AnalysisAhead(packets, max_rows=max_rows, max_result_bytes=max_result_bytes)
        try:
            for path in paths:
                ingest_file(path, packets, observer=ahead)
        except BaseException:
            ahead.close()
            raise
        ahead.input_done()
    return analyze(store, ahead=ahead)


def _reference(paths: list[list[Path]], store: Path) -> dict[str, list[tuple]]:
    for run in paths:
        ingest(run, store)
        analyze(store)
    return _views(store)


def test_hours_computed_during_ingest_are_committed_as_an_analysis_after_it(tmp_path: Path,
                                                                            captures: list[Path]) -> None:
    report = _ingest_ahead(captures[:1], tmp_path / "ahead")
    assert (report.hours_analysed, report.hours_ahead) == (3, 3)
    assert _views(tmp_path / "ahead") == _reference([captures[:1]], tmp_path / "ref")
    assert analyze(tmp_path / "ahead").hours_analysed == 0


def test_rows_for_an_hour_already_computed_fall_back_to_the_committed_files(tmp_path: Path) -> None:
    """Captures of hour 10, then 11, then 10 again (late): hour 10 was computed without the late
    rows, so neither it nor any later hour computed ahead may be used."""
    src = "203.0.113.9"
    parts = {name: write_capture(tmp_path / f"{name}.pcap", [
        (at(start) + seconds(60 * i), syn(src, darknet_address(offset + i), 23)) for i in range(20)])
        for name, start, offset in (("a", "2016-09-01T10:20:00", 0), ("b", "2016-09-01T11:00:00", 100),
                                    ("c", "2016-09-01T10:40:00", 200))}
    with PacketStore(tmp_path / "ahead") as packets:
        ahead = AnalysisAhead(packets)
        ingest_file(parts["a"], packets, observer=ahead)
        ingest_file(parts["b"], packets, observer=ahead)  # the capture moved past hour 10
        deadline = time.monotonic() + 60
        while ahead.hours_computed < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ahead.hours_computed == 1
        ingest_file(parts["c"], packets, observer=ahead)
        ahead.input_done()
    report = analyze(tmp_path / "ahead", ahead=ahead)
    assert (report.hours_analysed, report.hours_ahead) == (2, 0)
    views = _views(tmp_path / "ahead")
    assert views == _reference([[parts["a"], parts["b"], parts["c"]]], tmp_path / "ref")
    with PacketStore(tmp_path / "ahead") as s:
        assert connect(s).sql("SELECT packets, destinations FROM events").fetchall() == [(60, 60)]  # one event


def test_a_capture_continuing_the_last_analysed_hour_restarts_where_analyze_would(tmp_path: Path) -> None:
    """Run 1 analyses hours 10-11; run 2 continues hour 11's event and attack into hour 12."""
    src, victim = "203.0.113.9", "192.0.2.80"
    first = [(at("2016-09-01T10:40:00") + seconds(60 * i), syn(src, darknet_address(i), 23)) for i in range(30)]
    first += [(at("2016-09-01T11:00:00") + seconds(2 * i), synack(victim, darknet_address(i), 80)) for i in range(600)]
    second = [(at("2016-09-01T11:10:00") + seconds(60 * i), syn(src, darknet_address(500 + i), 23)) for i in range(70)]
    second += [(at("2016-09-01T11:20:00") + seconds(2 * i), synack(victim, darknet_address(i), 80)) for i in range(2400)]
    runs = [[write_capture(tmp_path / "one.pcap", first)], [write_capture(tmp_path / "two.pcap", second)]]
    assert _ingest_ahead(runs[0], tmp_path / "ahead").hours_ahead == 2
    report = _ingest_ahead(runs[1], tmp_path / "ahead")
    assert report.reanalysed_from is not None and report.hours_ahead == report.hours_analysed == 3
    views = _views(tmp_path / "ahead")
    assert views == _reference(runs, tmp_path / "ref")
    assert len(views["events"]) == 1 and len(views["attacks"]) == 1


def test_memory_cap_stops_computing_ahead_not_the_analysis(tmp_path: Path, captures: list[Path]) -> None:
    report = _ingest_ahead(captures[:1], tmp_path / "ahead", max_rows=1_000)
    assert report.hours_analysed == 3 and report.hours_ahead < 3
    assert _views(tmp_path / "ahead") == _reference([captures[:1]], tmp_path / "ref")


def test_held_results_cap_stops_computing_ahead_after_the_first_hour(tmp_path: Path, captures: list[Path]) -> None:
    """The runner commits the one hour computed ahead and goes on from its carried state, reading Parquet."""
    report = _ingest_ahead(captures[:1], tmp_path / "ahead", max_result_bytes=1)
    assert (report.hours_analysed, report.hours_ahead) == (3, 1)
    assert _views(tmp_path / "ahead") == _reference([captures[:1]], tmp_path / "ref")


def test_cli_ingest_analyses_while_storing(tmp_path: Path, captures: list[Path]) -> None:
    result = iotscope("ingest", str(captures[0]), "--store", str(tmp_path / "cli"))
    assert "analysis: 3 of 3 hours (3 while ingesting)" in result.stderr
    assert _views(tmp_path / "cli") == _reference([captures[:1]], tmp_path / "ref")


def test_the_last_hour_starts_once_every_capture_is_shown_before_input_done(tmp_path: Path,
                                                                            captures: list[Path]) -> None:
    """Told how many captures come, the worker computes the last hour as soon as the last one's rows
    are all shown (while its files are encoded and committed), not after ``input_done``."""
    with PacketStore(tmp_path / "ahead") as packets:
        ahead = AnalysisAhead(packets, captures=2)
        try:
            ingest_file(captures[0], packets, observer=ahead)
            time.sleep(0.5)
            assert ahead.hours_computed < 3  # the first capture's last hour may continue in the second
            ingest_file(captures[1], packets, observer=ahead)
            deadline = time.monotonic() + 60
            while ahead.hours_computed < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ahead.hours_computed == 3
        except BaseException:
            ahead.close()
            raise
        ahead.input_done()
    report = analyze(tmp_path / "ahead", ahead=ahead)
    assert (report.hours_analysed, report.hours_ahead) == (3, 3)
    assert _views(tmp_path / "ahead") == _reference([captures], tmp_path / "ref")
