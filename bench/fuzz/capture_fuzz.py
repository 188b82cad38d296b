"""Long fuzzing run of the capture readers: the target of ``tests/capture/test_fuzz.py`` for minutes.

    .venv/bin/python bench/fuzz/capture_fuzz.py --seconds 600            # atheris (pip install -e '.[fuzz]')
    .venv/bin/python bench/fuzz/capture_fuzz.py --seconds 600 --engine random

With atheris (libFuzzer's coverage-guided mutations, on top of the structure-aware ones) the input
is split into a seed choice, the mutation operations and raw bytes spliced in; without it, the same
mutations are drawn at random. Either way every input goes through ``check_capture``; the first
broken promise stops the run with its input saved under ``bench/out/fuzz-crash-*``. The summary
(inputs tried, refused, records read, crashes) is printed and written to ``bench/out/``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from iotscope.simulate.capture_fuzzing import build_seeds, check_capture, mutate

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"


class Tally:
    def __init__(self) -> None:
        self.inputs = self.refused = self.records = self.kept = self.with_warnings = 0
        self.slowest = 0.0
        self.started = time.perf_counter()

    def add(self, outcome) -> None:
        self.inputs += 1
        self.refused += outcome.refused
        self.records += outcome.records
        self.kept += outcome.kept
        self.with_warnings += outcome.warnings > 0
        self.slowest = max(self.slowest, outcome.seconds)

    def summary(self, engine: str, crashes: int) -> dict:
        return {"engine": engine, "inputs": self.inputs, "refused_at_open": self.refused,
                "read_with_warnings": self.with_warnings, "records_seen": self.records, "records_kept": self.kept,
                "slowest_input_s": round(self.slowest, 3), "seconds": round(time.perf_counter() - self.started, 1),
                "crashes": crashes}


def one_input(seeds: list, pick: int, operations: list[tuple[int, int, int, int]], work: Path,
              block_bytes: int, tally: Tally, patch: tuple[int, bytes] = (0, b"")) -> None:
    """Mutate a seed, overwrite it with ``patch`` (position, raw fuzzer bytes) and check the result."""
    seed = seeds[pick % len(seeds)]
    data, compress = mutate(seed, operations)
    if patch[1] and data:
        where = patch[0] % len(data)
        data = data[:where] + patch[1] + data[where + len(patch[1]) :]
    try:
        tally.add(check_capture(data, work / "input.cap", compress=compress, block_bytes=block_bytes))
    except BaseException:
        OUT.mkdir(exist_ok=True)
        crash = OUT / f"fuzz-crash-{int(time.time())}.cap"
        crash.write_bytes(data)
        print(f"broken promise on {seed.name}, ops {operations}, compress {compress}; input saved: {crash}",
              file=sys.stderr)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--engine", choices=["atheris", "random"], default="atheris")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="capture-fuzz-"))
    if args.engine == "atheris":
        import atheris

        # Coverage of the readers' Python functions; the numba kernels cannot be traced (atheris's
        # bytecode hooks do not compile in nopython mode), so instrument_imports is not used.
        from iotscope.capture import pcap, pcapng, reader, source

        for func in (pcapng._section_header, pcapng._check_section, pcapng._interface, pcapng.InterfaceTable.add,
                     pcapng.PcapngWalker.walk, pcapng.PcapngWalker._special_block, pcapng.PcapngWalker.from_header,
                     pcap.PcapWalker.from_header, pcap.PcapWalker.walk, reader.CaptureReader.blocks,
                     reader.CaptureReader._recognise, reader.CaptureReader._fill, reader.CaptureReader._finish,
                     reader._in_time_range, source.ByteSource.readinto):
            atheris.instrument_func(func)
    seeds = build_seeds(work)
    tally = Tally()
    deadline = time.perf_counter() + args.seconds
    sizes = (64, 4096, 1 << 20)

    def report() -> None:
        summary = tally.summary(args.engine, 0)
        OUT.mkdir(exist_ok=True)
        (OUT / f"fuzz-captures-{args.engine}.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))

    if args.engine == "random":
        rng = random.Random(1)
        while time.perf_counter() < deadline:
            ops = [(rng.randrange(9), rng.randrange(1 << 20), rng.randrange(1 << 16), rng.randrange(1 << 20))
                   for _ in range(rng.randint(1, 6))]
            one_input(seeds, rng.randrange(len(seeds)), ops, work, rng.choice(sizes), tally)
        report()
        return

    def target(raw: bytes) -> None:
        if time.perf_counter() > deadline:
            report()
            sys.stdout.flush()
            os._exit(0)  # libFuzzer takes SystemExit for a crash
        fdp = atheris.FuzzedDataProvider(raw)
        pick = fdp.ConsumeIntInRange(0, 255)
        block_bytes = sizes[fdp.ConsumeIntInRange(0, 2)]
        ops = [(fdp.ConsumeIntInRange(0, 8), fdp.ConsumeIntInRange(0, 1 << 20), fdp.ConsumeIntInRange(0, 1 << 16),
                fdp.ConsumeIntInRange(0, 1 << 20)) for _ in range(fdp.ConsumeIntInRange(1, 6))]
        where = fdp.ConsumeIntInRange(0, 1 << 20)
        one_input(seeds, pick, ops, work, block_bytes, tally, (where, fdp.ConsumeBytes(fdp.remaining_bytes())))

    atheris.Setup([sys.argv[0], "-rss_limit_mb=4096", "-max_len=512"], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
