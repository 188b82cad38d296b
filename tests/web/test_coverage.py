"""Answers read from the analysis datasets equal the packets' answers, and stale hours are read from packets.

Two analysed stores: the session's (every hour current) and one that got a late capture in its
second hour after ``analyze`` (that hour's analysis is stale until the next ``analyze``). Every
number of summary, series, top and categories is compared with DuckDB over the ``packets`` view.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.schema import TOOLS, TRAFFIC_CLASSES
from iotscope.telescope.ingest import ingest
from iotscope.web import queries
from iotscope.web.coverage import coverage
from iotscope.web.store_reader import StoreReader
from iotscope.web.time_range import US_PER_HOUR, TimeRange, epoch_us
from tests.web.conftest import build_store, views

T0 = datetime(2016, 9, 1, tzinfo=UTC)
HOUR0 = epoch_us(T0) // US_PER_HOUR
SOURCES = "count(DISTINCT src) + count(DISTINCT src6)"
#: (from, to) of the ranges asked: the default (the whole 3 h), whole hours, and edges inside hours.
RANGES = [(None, None), (datetime(2016, 9, 1, 1, tzinfo=UTC), datetime(2016, 9, 1, 3, tzinfo=UTC)),
          (datetime(2016, 9, 1, 0, 30, tzinfo=UTC), datetime(2016, 9, 1, 2, 15, 30, tzinfo=UTC))]


@pytest.fixture(scope="module")
def stale_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outbreak, analysed, then 20,000 more packets ingested into its second hour (not analysed)."""
    from iotscope.telescope.passes.runner import analyze

    root = tmp_path_factory.mktemp("stale")
    store = build_store(root)
    analyze(store)
    late = simulate_darknet(DarknetConfig(packets=20_000, hours=0.25, outbreak=True, seed=11,
                                          start=datetime(2016, 9, 1, 1, 20)), root / "late.pcap")
    ingest([late.path], store)
    return store


@pytest.fixture(scope="module", params=["current", "stale"])
def store(request: pytest.FixtureRequest, analysed_store: Path, stale_store: Path) -> Path:
    return analysed_store if request.param == "current" else stale_store


@pytest.fixture(scope="module")
def reader(store: Path) -> StoreReader:
    return StoreReader(store)


def _analysed_hours(store: Path, start: datetime | None) -> int:
    """Hours of each range read from the analysis: the stale store's second hour never is."""
    whole = {None: 3, RANGES[1][0]: 2, RANGES[2][0]: 1}[start]
    return whole if store.parent.name.startswith("analysed") else whole - 1


def _where(start: datetime | None, end: datetime | None) -> tuple[str, list]:
    if start is None:
        return "true", []
    return "ts >= ? AND ts < ?", [start, end]


def test_whole_current_hours_come_from_the_analysis_and_the_rest_from_packets(analysed_store: Path,
                                                                              stale_store: Path) -> None:
    whole = TimeRange(HOUR0 * US_PER_HOUR, (HOUR0 + 3) * US_PER_HOUR)
    current = coverage(StoreReader(analysed_store).cursor(), whole)
    assert current.analysed == ((HOUR0, HOUR0 + 3),) and current.rest == ()
    stale = coverage(StoreReader(stale_store).cursor(), whole)
    assert stale.analysed == ((HOUR0, HOUR0 + 1), (HOUR0 + 2, HOUR0 + 3))
    assert stale.rest == (TimeRange((HOUR0 + 1) * US_PER_HOUR, (HOUR0 + 2) * US_PER_HOUR),)
    # a range starting and ending inside hours: those hours' parts are read from packets
    inside = TimeRange(epoch_us(RANGES[2][0]), epoch_us(RANGES[2][1]))
    split = coverage(StoreReader(analysed_store).cursor(), inside)
    assert split.analysed == ((HOUR0 + 1, HOUR0 + 2),)
    assert split.rest == (TimeRange(inside.start_us, (HOUR0 + 1) * US_PER_HOUR),
                          TimeRange((HOUR0 + 2) * US_PER_HOUR, inside.end_us))


def test_summary_equals_the_packets(reader: StoreReader, store: Path) -> None:
    got = queries.summary(reader.cursor())
    packets, sources = views(store, f"SELECT count(*), {SOURCES} FROM packets")[0]
    assert (got["packets"], got["sources"]) == (packets, sources)
    by_traffic = dict(views(store, "SELECT traffic_class, count(*) FROM packets GROUP BY 1"))
    assert got["traffic_class"] == {k: by_traffic.get(k, 0) for k in TRAFFIC_CLASSES}
    by_tool = dict(views(store, "SELECT tool, count(*) FROM packets WHERE tool IS NOT NULL GROUP BY 1"))
    assert got["tool"] == {k: by_tool.get(k, 0) for k in TOOLS} and all(got["tool"].values())
    assert got["analysed_hours"] == _analysed_hours(store, None)


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_top_ports_tools_and_categories_equal_the_packets(reader: StoreReader, store: Path,
                                                          start: datetime | None, end: datetime | None) -> None:
    where, params = _where(start, end)
    ports = queries.top(reader.cursor(), "port", 40, start, end)
    expected = views(store, f"SELECT dport, proto, count(*) AS n, {SOURCES} FROM packets WHERE dport IS NOT NULL "
                            f"AND {where} GROUP BY 1, 2 ORDER BY n DESC, dport, proto LIMIT 40", params)
    assert [(r["port"], r["packets"], r["sources"]) for r in ports["rows"]] == [(d, n, s) for d, _, n, s in expected]
    assert ports["analysed_hours"] == _analysed_hours(store, start)
    tools = queries.top(reader.cursor(), "tool", 10, start, end)
    expected = views(store, f"SELECT tool, count(*) AS n, {SOURCES} FROM packets WHERE tool IS NOT NULL AND {where} "
                            "GROUP BY 1 ORDER BY n DESC, tool", params)
    assert [(r["tool"], r["packets"], r["sources"]) for r in tools["rows"]] == expected
    got = queries.categories(reader.cursor(), start, end)
    expected = views(store, f"SELECT category, count(*) AS n, {SOURCES} FROM packets WHERE category IS NOT NULL "
                            f"AND {where} GROUP BY 1 ORDER BY n DESC, 1", params)
    assert [(r["category"], r["packets"], r["sources"]) for r in got["rows"]] == expected and len(expected) >= 3
    assert got["analysed_hours"] == _analysed_hours(store, start)


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize(("proto", "port", "bucket"), [("tcp", 2323, 600), ("tcp", 23, 3600), ("tcp", None, 3600),
                                                        ("udp", None, 7200), ("tcp", 2323, 900)])
def test_series_equals_the_packets(reader: StoreReader, store: Path, start: datetime | None, end: datetime | None,
                                   proto: str, port: int | None, bucket: int) -> None:
    where, params = _where(start, end)
    got = queries.series(reader.cursor(), proto, port, bucket, start, end)
    scans = "" if port is None else f" AND dport = {port} AND traffic_class = 'scan'"
    expected = views(store, f"SELECT epoch(time_bucket(INTERVAL {bucket} SECOND, ts))::BIGINT, count(*), {SOURCES} "
                            f"FROM packets WHERE proto = {queries.PROTOCOLS[proto]}{scans} AND {where} "
                            "GROUP BY 1 ORDER BY 1", params)
    assert [(t, p, s) for t, p, s in zip(got["t"], got["packets"], got["sources"], strict=True) if p] == expected
    assert len(expected) >= 2
    # sub-hour buckets other than port_series' cannot come from the analysis; the others do
    from_analysis = bucket % 3600 == 0 or (port is not None and bucket == 600)
    assert got["analysed_hours"] == (_analysed_hours(store, start) if from_analysis else 0)
