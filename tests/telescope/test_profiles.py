"""Source profiles (``sources`` view): simulator ground truth, research scanners, user .mmdb files, merges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from iotscope.enrich import Enricher
from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.finish import resolve_profile_inputs
from iotscope.telescope.passes.runner import analyze
from iotscope.telescope.report import source_profile
from tests.enrich.mmdb_files import write_asn_mmdb, write_city_mmdb
from tests.telescope.passes.captures import (
    at,
    seconds,
    syn,
    syn6,
    synack,
    write_capture,
)


def _sql(store: Path, query: str) -> list[dict]:
    with PacketStore(store, read_only=True) as s:
        return connect(s).sql(query).to_arrow_table().to_pylist()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sim")
    result = simulate_darknet(DarknetConfig(packets=80_000, hours=2, seed=5), d / "s.pcap")
    ingest([d / "s.pcap"], d / "store")
    analyze(d / "store")
    return d / "store", result.truth_path


def test_sources_match_the_simulators_truth(simulated: tuple[Path, Path]) -> None:
    store, truth_path = simulated
    truth = {r["src"]: r for r in pq.read_table(truth_path).to_pylist()}
    sources = {r["src"]: r for r in _sql(store, "SELECT * FROM sources")}
    assert set(sources) == set(truth)
    for src, t in truth.items():
        s = sources[src]
        assert s["packets"] == t["packets"], (src, t["kind"])
        assert (s["first_ts"], s["last_ts"]) == (t["first_ts"], t["last_ts"])
        assert s["src_ip"] == ".".join(str(src >> k & 255) for k in (24, 16, 8, 0))
        if t["tool"] is not None:  # every SYN of the source carries the tool's fingerprint
            assert s["tools"] == [t["tool"]], (src, t)
        if t["kind"] == "mirai":
            assert s["classification"] == "malicious" and "iot" in s["tags"]
            assert s["ports"] and set(s["ports"]) <= {23, 2323}
        elif s["scanner_org"] is None:
            assert s["classification"] == "unknown", (src, t["kind"])
        if t["kind"] == "backscatter_victim":
            assert "dos_victim" in s["tags"] and s["backscatter_packets"] == t["packets"]
            assert s["ports"] == [] and s["distinct_ports"] == 0
    kinds = {t["kind"] for t in truth.values()}
    assert {"mirai", "zmap", "masscan", "backscatter_victim"} <= kinds


def test_sources_geo_and_as_are_the_enrichers_answers(simulated: tuple[Path, Path]) -> None:
    store, _ = simulated
    rows = _sql(store, "SELECT src, country, asn, as_name, lat, lon FROM sources ORDER BY src")
    expected = Enricher.default().lookup_ipv4(np.array([r["src"] for r in rows], dtype=np.uint32))
    assert [r["country"] for r in rows] == pc.cast(expected["country"], "string").to_pylist()
    assert [r["asn"] for r in rows] == expected["asn"].to_pylist()
    assert [r["lat"] for r in rows] == expected["lat"].to_pylist()
    assert sum(r["country"] is not None for r in rows) > 0.9 * len(rows)
    provenance = _sql(store, "SELECT * FROM enrichment_sources ORDER BY provides")
    assert [p["provides"] for p in provenance] == ["asn", "geo"] and all(p["date"] for p in provenance)
    # events carry their source's country and AS through the view
    mismatched = _sql(store, "SELECT count(*) AS n FROM events e JOIN sources s USING (src_ip) "
                             "WHERE e.country IS DISTINCT FROM s.country OR e.asn IS DISTINCT FROM s.asn")
    assert mismatched[0]["n"] == 0
    assert _sql(store, "SELECT count(*) AS n FROM events WHERE country IS NOT NULL")[0]["n"] > 0


CENSYS = "162.142.125.10"  # in Censys' published 162.142.125.0/24 (data/research_scanners.toml)


def _hand_built(d: Path) -> tuple[Path, Path]:
    """Two captures, hours 10 and 11: a Mirai-like Censys scanner, a Mirai bot, a plain scanner in both
    files, an IPv6 scanner and a DoS victim's backscatter."""
    first = [
        *[(at("2016-09-01T10:00:00") + seconds(i), syn(CENSYS, f"198.18.0.{i}", 23, seq=0xC6120000 + i))
          for i in range(5)],
        *[(at("2016-09-01T10:05:00") + seconds(i), syn("8.8.8.8", f"198.18.1.{i}", 2323, seq=0xC6120100 + i))
          for i in range(4)],
        *[(at("2016-09-01T10:10:00") + seconds(i), syn("203.0.113.7", f"198.18.2.{i}", 445)) for i in range(3)],
        (at("2016-09-01T10:20:00"), syn6("2001:db8::1", "2001:db8:ffff::1", 22)),
        *[(at("2016-09-01T10:30:00") + seconds(i), synack("1.0.0.9", f"198.18.3.{i}", 80, 40000 + i))
          for i in range(6)],
    ]
    second = [(at("2016-09-01T11:15:00") + seconds(i), syn("203.0.113.7", f"198.18.4.{i}", 139)) for i in range(2)]
    return write_capture(d / "a.pcap", first), write_capture(d / "b.pcap", second)


def test_classification_research_scanner_mirai_and_a_source_over_two_ingests(tmp_path: Path) -> None:
    a, b = _hand_built(tmp_path)
    store = tmp_path / "store"
    ingest([a], store)
    analyze(store)
    ingest([b], store)  # a separate ingest and analysis: the profile must merge both
    analyze(store)
    rows = {r["src_ip"]: r for r in _sql(store, "SELECT * FROM sources")}
    assert set(rows) == {CENSYS, "8.8.8.8", "203.0.113.7", "2001:db8::1", "1.0.0.9"}
    censys = rows[CENSYS]
    assert censys["classification"] == "benign" and censys["scanner_org"] == "Censys"
    assert censys["tools"] == ["mirai"] and censys["tags"] == ["mirai", "iot", "research_scanner"]  # in that order
    assert rows["8.8.8.8"]["classification"] == "malicious" and rows["8.8.8.8"]["ports"] == [2323]
    plain = rows["203.0.113.7"]
    assert plain["classification"] == "unknown" and plain["tools"] == []
    assert plain["packets"] == 5 and plain["distinct_ports"] == 2 and plain["ports"] == [445, 139]
    assert str(plain["first_ts"]).startswith("2016-09-01 10:10:00") and str(plain["last_ts"]).startswith(
        "2016-09-01 11:15:01")
    assert plain["tags"] == ["pc"]
    v6 = rows["2001:db8::1"]
    assert v6["src"] is None and v6["country"] is None and v6["tags"] == ["remote_login"]
    assert rows["1.0.0.9"]["tags"] == ["dos_victim"] and rows["1.0.0.9"]["backscatter_packets"] == 6
    with PacketStore(store, read_only=True) as s:  # any spelling of an address finds its profile
        found = source_profile(s, " 2001:0DB8:0000::0001 ")
    assert found["address"] == "2001:db8::1" and found["profile"]["tags"] == ["remote_login"]
    assert [(e["dport"], e["packets"]) for e in found["events"]] == [(22, 1)]


def test_user_mmdb_files_answer_and_are_kept_by_later_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    city, asn = write_city_mmdb(tmp_path / "city.mmdb"), write_asn_mmdb(tmp_path / "asn.mmdb")
    a, b = _hand_built(tmp_path)
    store = tmp_path / "store"
    ingest([a], store)
    analyze(store, profile=resolve_profile_inputs(store, geo_city=city, geo_asn=asn))
    ingest([b], store)
    analyze(store)  # no files given: the stored ones are used again
    rows = {r["src_ip"]: r for r in _sql(store, "SELECT * FROM sources")}
    assert (rows["8.8.8.8"]["country"], rows["8.8.8.8"]["asn"], rows["8.8.8.8"]["as_name"]) == ("US", 15169,
                                                                                                 "Google LLC")
    assert (rows["203.0.113.7"]["country"], rows["203.0.113.7"]["asn"]) == ("JP", None)
    assert rows["1.0.0.9"]["as_name"] == "Cloudflare, Inc."
    origins = {p["origin"] for p in _sql(store, "SELECT origin FROM enrichment_sources")}
    assert origins == {str(city), str(asn)}
