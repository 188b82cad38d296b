"""Surge alerts: hand-built series (noise, step, spike, gaps) and the simulator's dated outbreak."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iotscope.errors import IotscopeError
from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.surge import ALERT_SCHEMA, METHOD, SurgeConfig, SurgeError, detect_surges

T0 = 1_472_688_000_000_000  # 2016-09-01T00:00Z in µs
BUCKET = 600_000_000
TS = pa.timestamp("us", tz="UTC")


def series(ports: dict[tuple[int, int], np.ndarray], buckets: np.ndarray | None = None) -> pa.Table:
    """A port_series table; ``buckets`` (bucket indexes) defaults to 0..len-1 for every port."""
    cols: dict[str, list] = {"proto": [], "port": [], "bucket": [], "packets": [], "sources": []}
    for (proto, port), x in ports.items():
        idx = np.arange(len(x)) if buckets is None else buckets
        cols["proto"] += [proto] * len(x)
        cols["port"] += [port] * len(x)
        cols["bucket"] += (T0 + idx * BUCKET).tolist()
        cols["packets"] += (np.asarray(x) * 4).tolist()
        cols["sources"] += np.asarray(x).tolist()
    return pa.table({
        "proto": pa.array(cols["proto"], pa.uint8()), "port": pa.array(cols["port"], pa.uint16()),
        "bucket": pa.array(np.array(cols["bucket"], dtype=np.int64)).cast(TS),
        "packets": pa.array(cols["packets"], pa.int64()), "sources": pa.array(cols["sources"], pa.int64()),
    })


def bucket_index(ts: object) -> int:
    return round((ts.timestamp() * 1e6 - T0) / BUCKET)


def test_steady_poisson_noise_never_alerts() -> None:
    rng = np.random.default_rng(2016)
    levels = [1, 3, 10, 30, 100, 300, 1000, 5000]
    ports = {(6, 1000 + i): rng.poisson(levels[i % len(levels)], 144) for i in range(8 * 60)}  # 60 seeds a level
    alerts = detect_surges(series(ports))
    assert alerts.num_rows == 0, alerts.to_pylist()[:3]


@pytest.mark.parametrize("base, factor", [(40, 2.0), (300, 1.6), (0, 0)])
def test_step_detected_within_two_buckets_and_dated(base: int, factor: float) -> None:
    rng = np.random.default_rng(7)
    x = rng.poisson(base, 144)
    after = 40 if base == 0 else base * factor  # from nothing to 40 sources
    x[72:] = rng.poisson(after, 72)
    alerts = detect_surges(series({(6, 2323): x}))
    assert alerts.num_rows == 1, alerts.to_pylist()
    a = alerts.to_pylist()[0]
    assert bucket_index(a["start"]) == 72 and 72 < bucket_index(a["detected"]) <= 74, a
    assert a["baseline_sources"] == pytest.approx(base, rel=0.1, abs=1)
    assert a["magnitude"] > 1.5 and a["method"] == METHOD
    assert a["packets"] == int(x[72:bucket_index(a["detected"]) + 1].sum() * 4)


def test_single_spike_is_not_a_surge_unless_confirm_is_1() -> None:
    rng = np.random.default_rng(3)
    x = rng.poisson(50, 144)
    x[80] = 250  # one 10-minute burst, five times the level
    assert detect_surges(series({(17, 5060): x})).num_rows == 0
    alerts = detect_surges(series({(17, 5060): x}), SurgeConfig(confirm=1)).to_pylist()
    assert [(bucket_index(a["start"]), bucket_index(a["detected"])) for a in alerts] == [(80, 80)]


def test_missing_buckets_count_as_zero_sources() -> None:
    rng = np.random.default_rng(5)
    # Port 23 is always there and steady; port 5555 appears only from bucket 100, with 60 sources.
    idx = np.arange(100, 144)
    table = pa.concat_tables([series({(6, 23): rng.poisson(80, 144)}),
                              series({(6, 5555): rng.poisson(60, len(idx))}, buckets=idx)])
    alerts = detect_surges(table).to_pylist()
    assert [(a["port"], bucket_index(a["start"])) for a in alerts] == [(5555, 100)]
    assert alerts[0]["baseline_sources"] == 0


def test_steady_drift_of_a_population_does_not_alert() -> None:
    rng = np.random.default_rng(9)
    x = rng.poisson(np.linspace(100, 135, 144))  # +35% over a day, slowly
    assert detect_surges(series({(6, 445): x})).num_rows == 0


def test_bad_input() -> None:
    with pytest.raises(SurgeError, match="lacks column"):
        detect_surges(pa.table({"proto": pa.array([6], pa.uint8())}))
    off_grid = series({(6, 23): np.array([1, 2, 3])}).set_column(
        2, "bucket", pa.array(np.array([T0, T0 + BUCKET, T0 + BUCKET + 1], dtype=np.int64)).cast(TS))
    with pytest.raises(SurgeError, match="600 s grid"):
        detect_surges(off_grid)
    assert detect_surges(series({})).schema == ALERT_SCHEMA


@pytest.mark.parametrize("kwargs", [
    {"k": -1.0}, {"h": float("nan")}, {"min_ratio": 0.9}, {"confirm": 0}, {"guard": -1},
    {"min_history": 40, "baseline_buckets": 36}, {"bucket_seconds": 0},
])
def test_config_validated(kwargs: dict) -> None:
    with pytest.raises(SurgeError) as info:
        SurgeConfig(**kwargs)
    assert isinstance(info.value, IotscopeError) and "\n" not in str(info.value)


def port_series(store_dir: Path) -> pa.Table:
    """The port_series dataset's definition, in DuckDB, over the ingested store."""
    with PacketStore(store_dir) as s:
        return connect(s).sql("""
            SELECT proto, dport AS port, time_bucket(INTERVAL 10 MINUTE, ts) AS bucket,
                   count(*)::BIGINT AS packets, count(DISTINCT src)::BIGINT AS sources
            FROM packets WHERE traffic_class = 'scan' AND dport IS NOT NULL GROUP BY ALL""").to_arrow_table()


@pytest.mark.parametrize("seed", [1, 6])
def test_outbreak_2323_alert_dated_within_two_buckets_and_no_alert_on_steady_ports(tmp_path: Path,
                                                                                   seed: int) -> None:
    config = DarknetConfig(packets=1_500_000, hours=12, seed=seed, outbreak=True, outbreak_start=0.5)
    result = simulate_darknet(config, tmp_path / "o.pcap")
    ingest([tmp_path / "o.pcap"], tmp_path / "store")
    onset_us = int(pq.read_schema(result.truth_path).metadata[b"outbreak_start_us"])
    alerts = detect_surges(port_series(tmp_path / "store")).to_pylist()
    first_2323 = min((a for a in alerts if (a["proto"], a["port"]) == (6, 2323)), key=lambda a: a["start"])
    delay = (first_2323["start"].timestamp() * 1e6 - onset_us) / BUCKET
    assert abs(delay) <= 2, (delay, first_2323)
    assert first_2323["detected"] - first_2323["start"] <= timedelta(hours=2)
    # Only the outbreak's ports alert: Telnet on 23 and 2323; every other port's rate is steady.
    assert {(a["proto"], a["port"]) for a in alerts} <= {(6, 23), (6, 2323)}, alerts
