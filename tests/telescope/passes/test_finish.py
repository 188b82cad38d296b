"""The whole-store step of ``analyze``: surge alerts, categories (default, user TOML, kept), bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.datasets import SUMMARIES_KEY, AnalysisCatalog
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.categories import load_categories
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.finish import finish, resolve_profile_inputs
from iotscope.telescope.passes.runner import analyze, resolve_settings
from tests.telescope.passes.captures import iotscope

BUCKET_US = 600_000_000


def _sql(store: Path, query: str) -> list[dict]:
    with PacketStore(store, read_only=True) as s:
        return connect(s).sql(query).to_arrow_table().to_pylist()


def _tree(store: Path) -> dict[str, str]:
    """Every file of the store with a hash of its bytes: 'untouched' means this is unchanged."""
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file()}


def test_outbreak_alert_on_2323_within_two_buckets_and_none_on_steady_ports(tmp_path: Path) -> None:
    config = DarknetConfig(packets=1_500_000, hours=12, seed=1, outbreak=True, outbreak_start=0.5)
    result = simulate_darknet(config, tmp_path / "o.pcap")
    ingest([tmp_path / "o.pcap"], tmp_path / "store")
    analyze(tmp_path / "store")
    onset_us = int(pq.read_schema(result.truth_path).metadata[b"outbreak_start_us"])
    alerts = _sql(tmp_path / "store", "SELECT * FROM alerts")
    first_2323 = min((a for a in alerts if (a["proto"], a["port"]) == (6, 2323)), key=lambda a: a["start"])
    assert abs(first_2323["start"].timestamp() * 1e6 - onset_us) / BUCKET_US <= 2, first_2323
    assert {(a["proto"], a["port"]) for a in alerts} <= {(6, 23), (6, 2323)}, alerts


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cat")
    simulate_darknet(DarknetConfig(packets=60_000, hours=1, seed=9), d / "s.pcap")
    return d / "s.pcap"


def test_category_column_and_shares_match_the_table(small: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([small], store)
    analyze(store)
    table = load_categories()
    with PacketStore(store, read_only=True) as s:
        packets = connect(s).sql("SELECT proto, dport, traffic_class, category FROM packets").to_arrow_table()
    scan = np.asarray(packets["traffic_class"].to_pylist()) == "scan"
    expected = np.array(table.names, dtype=object)[table.category_codes(packets["proto"], packets["dport"])]
    got = np.array(packets["category"].to_pylist(), dtype=object)
    assert (got[scan] == expected[scan]).all()
    assert all(c is None for c in got[~scan])
    shares = {r["category"]: r for r in _sql(store, "SELECT category, count(*) AS n FROM packets "
                                                    "WHERE category IS NOT NULL GROUP BY 1")}
    out = iotscope("report", "--store", str(store), "--by", "category", "--json")
    report = {r["category"]: r for r in json.loads(out.stdout)}
    assert {k: r["packets"] for k, r in report.items()} == {k: r["n"] for k, r in shares.items()}
    assert abs(sum(r["share"] for r in report.values()) - 1) < 1e-9
    assert report["iot"]["share"] > 0.5  # Mirai and IoT worms: the seed's "IoT 64%" shape


def test_user_category_file_is_used_and_kept_then_bad_files_leave_the_store_untouched(small: Path,
                                                                                        tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([small], store)
    user = tmp_path / "cats.toml"
    user.write_text("[web]\ntcp = [8080]\n[camera]\ntcp = [7547]\n")
    analyze(store, profile=resolve_profile_inputs(store, categories=user))
    analyze(store)  # no --categories: the stored table stays
    rows = _sql(store, "SELECT DISTINCT dport, category FROM packets WHERE proto = 6 AND dport IN (8080, 7547, 23) "
                       "AND traffic_class = 'scan' ORDER BY dport")
    assert {r["dport"]: r["category"] for r in rows} == {23: "iot", 7547: "camera", 8080: "web"}
    before = _tree(store)
    bad = tmp_path / "bad.toml"
    bad.write_text("[iot]\ntcp = [70000]\n")
    garbage = tmp_path / "city.mmdb"
    garbage.write_bytes(b"not a maxmind db" * 100)
    for args in (["--categories", str(bad)], ["--categories", str(tmp_path / "missing.toml")],
                 ["--geo-city", str(garbage)], ["--geo-asn", str(tmp_path / "missing.mmdb")]):
        result = iotscope("analyze", "--store", str(store), *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert _tree(store) == before, args


def test_unchanged_inputs_are_not_recomputed(small: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([small], store)
    analyze(store)
    before = _tree(store)
    report = analyze(store)
    assert report.hours_analysed == 0 and "sources" not in report.rows
    assert {k: v for k, v in _tree(store).items() if k != "state.sqlite"} == {
        k: v for k, v in before.items() if k != "state.sqlite"}


def test_whole_store_step_overlaps_the_newest_commit_and_equals_it_from_the_files(tmp_path: Path) -> None:
    """alerts/sources computed while the newest hour is committed (its rows from memory) are the
    rows the same step computes afterwards from the committed files alone."""
    config = DarknetConfig(packets=300_000, hours=4, seed=3, outbreak=True, outbreak_start=0.4)
    simulate_darknet(config, tmp_path / "o.pcap")
    store = tmp_path / "store"
    ingest([tmp_path / "o.pcap"], store)
    report = analyze(store)
    assert report.whole_store_overlapped and report.hours_analysed == 4
    views = {"alerts": "SELECT * FROM alerts ORDER BY ALL", "sources": "SELECT * FROM sources ORDER BY src_ip"}
    early = {name: _sql(store, q) for name, q in views.items()}
    assert early["alerts"] and len(early["sources"]) > 100
    catalog = AnalysisCatalog(store)
    try:
        catalog.set_setting(SUMMARIES_KEY, {})  # forget them: finish recomputes both from the files
        rows = finish(store, catalog, resolve_settings(store, {}), resolve_profile_inputs(store))
    finally:
        catalog.close()
    assert rows == {"alerts": len(early["alerts"]), "sources": len(early["sources"])}
    assert {name: _sql(store, q) for name, q in views.items()} == early
