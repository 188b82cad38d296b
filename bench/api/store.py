"""The bench/api store: 10M simulated packets over 24 h, ingested and analysed, plus later captures.

Why analysed: the server answers from the analysis datasets (``source_hours``, ``port_series``) for
hours an analysis covers, as a real deployment does (``iotscope ingest`` analyses at its end). The
later captures (one hour each, after the base day) are what the commits-during-load run ingests.
Building takes minutes and needs no lock; only the timing in ``run.py`` is measured.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze

START = datetime(2016, 9, 1)


def build_store(out: Path, packets: int, hours: float) -> Path:
    """``out/store``, simulated, ingested and analysed (reused when it exists)."""
    store = out / "store"
    if (store / "state.sqlite").exists():
        return store
    out.mkdir(parents=True, exist_ok=True)
    capture = simulate_darknet(DarknetConfig(packets=packets, hours=hours, outbreak=True, seed=9, start=START),
                               out / "darknet.pcap")
    ingest([capture.path], store)
    capture.path.unlink()
    analyze(store)
    return store


def later_captures(out: Path, count: int, packets: int, after_hours: float) -> list[Path]:
    """``count`` one-hour captures starting ``after_hours`` after the base day's start (reused when present)."""
    paths = []
    for n in range(count):
        path = out / f"later-{n}.pcap"
        if not path.exists():
            simulate_darknet(DarknetConfig(packets=packets, hours=1, outbreak=True, seed=100 + n,
                                           start=START + timedelta(hours=after_hours + n)), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=10_000_000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--out", type=Path, default=Path("bench/out/api"))
    args = parser.parse_args()
    print(build_store(args.out, args.packets, args.hours))
    print(later_captures(args.out, 4, 100_000, args.hours))
