"""Fuzzing the capture readers: mutated real captures never raise past CaptureError, hang, or hand out
a record outside its buffer (the oracle and the mutations are in :mod:`iotscope.simulate.capture_fuzzing`).

The number of inputs is ``IOTSCOPE_FUZZ_EXAMPLES`` (default 2,500: about 25 s here); the longer
runs are in BENCHMARKS.md. A hang is caught by the thread timeout, which kills the run with stacks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotscope.simulate.capture_fuzzing import Seed, build_seeds, check_capture, mutate

EXAMPLES = int(os.environ.get("IOTSCOPE_FUZZ_EXAMPLES", "2500"))
OPERATION = st.tuples(st.integers(0, 8), st.integers(0, 1 << 20), st.integers(0, 1 << 16), st.integers(0, 1 << 20))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Seed]:
    return build_seeds(tmp_path_factory.mktemp("seeds"))


def test_seeds_read_cleanly(seeds: list[Seed], tmp_path: Path) -> None:
    """The unmutated seeds are whole captures: the oracle passes and nothing is skipped or warned."""
    for seed in seeds:
        outcome = check_capture(seed.data, tmp_path / seed.name)
        assert not outcome.refused and outcome.records == outcome.kept > 0 and outcome.warnings == 0, seed.name
        assert len(seed.fields) > 10, seed.name


@pytest.mark.timeout(600, method="thread")
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), operations=st.lists(OPERATION, min_size=1, max_size=6),
       block_bytes=st.sampled_from([64, 4096, 1 << 20]))
def test_mutated_captures_keep_the_readers_promises(seeds: list[Seed], tmp_path: Path, data: st.DataObject,
                                                    operations: list[tuple[int, int, int, int]], block_bytes: int) -> None:
    seed = data.draw(st.sampled_from(seeds), label="seed")
    mutated, compress = mutate(seed, operations)
    check_capture(mutated, tmp_path / "fuzzed.cap", compress=compress, block_bytes=block_bytes)
