"""Answers are kept exactly as long as the store's generation, and computed once under concurrency."""

from __future__ import annotations

import threading
import time

import pytest

from iotscope.web.result_cache import ResultCache
from iotscope.web.store_reader import Generation

G1, G2, G3 = Generation(1, 100), Generation(2, 250), Generation(3, 400)


def test_an_answer_is_kept_within_a_generation_and_dropped_after() -> None:
    cache, calls = ResultCache(), []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get(G1, ("summary",), compute) == 1
    assert cache.get(G1, ("summary",), compute) == 1
    assert cache.get(G1, ("top", "port"), compute) == 2
    assert cache.get(G2, ("summary",), compute) == 3  # a commit: recomputed
    assert cache.get(G2, ("summary",), compute) == 3
    # the previous generation is still answered (the server serves it while the next one is prepared) ...
    assert cache.get(G1, ("summary",), compute) == 1
    # ... until a third comes: only the two newest are kept
    assert cache.get(G3, ("summary",), compute) == 4
    assert cache.get(G1, ("summary",), compute) == 5


def test_concurrent_requests_for_one_key_compute_once() -> None:
    cache, calls = ResultCache(), []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.3)
        return "answer"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(G1, ("k",), slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["answer"] * 8 and len(calls) == 1


def test_an_error_is_not_kept() -> None:
    cache = ResultCache()

    def bad() -> None:
        raise ValueError("bad parameter")

    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get(G1, ("k",), bad)
    assert cache.get(G1, ("k",), lambda: 7) == 7


def test_capacity_bounds_the_kept_answers() -> None:
    cache, calls = ResultCache(capacity=2), []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    for key in ("a", "b", "c"):
        cache.get(G1, (key,), compute)
    assert cache.get(G1, ("c",), compute) == 3 and cache.get(G1, ("b",), compute) == 2
    assert cache.get(G1, ("a",), compute) == 4  # the least recently used went first
