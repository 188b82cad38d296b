"""Answers kept until the store changes: the dashboard's many viewers cost one query per commit.

Why this is exact, not approximate: every answer of the API is a function of the request's
parameters and the committed content of the store, which changes only when a capture commits
(the reader's :class:`~iotscope.web.store_reader.Generation`). So an answer is kept under its
parameters until the generation moves on, and then all are dropped. Scans of a large store take
seconds (measured in BENCHMARKS.md); a page refresh by a hundred viewers after a commit still runs
each distinct query once: concurrent requests for the same key wait for the first (single flight).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from iotscope.web.store_reader import Generation


class ResultCache:
    """A bounded LRU of answers for one generation of the store; thread-safe, single-flight per key."""

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._generation: Generation | None = None
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def _entry(self, generation: Generation, key: Hashable) -> tuple[bool, Any, threading.Lock]:
        with self._lock:
            if generation != self._generation:
                self._generation = generation
                self._answers.clear()
                self._key_locks.clear()
            if key in self._answers:
                self._answers.move_to_end(key)
                return True, self._answers[key], self._key_locks.get(key) or threading.Lock()
            return False, None, self._key_locks.setdefault(key, threading.Lock())

    def get(self, generation: Generation, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The answer for ``key`` in ``generation``, computing it (once) if it is not kept yet.

        An exception from ``compute`` (a bad parameter, say) is raised and nothing is kept.
        """
        found, answer, key_lock = self._entry(generation, key)
        if found:
            return answer
        with key_lock:
            found, answer, _ = self._entry(generation, key)
            if found:
                return answer
            answer = compute()
            with self._lock:
                if generation == self._generation:
                    self._answers[key] = answer
                    while len(self._answers) > self._capacity:
                        old, _ = self._answers.popitem(last=False)
                        self._key_locks.pop(old, None)
            return answer

    def peek(self, generation: Generation, key: Hashable) -> Any | None:
        """The answer kept for ``key`` in ``generation``, or None; never computes (the prewarm's tests ask)."""
        with self._lock:
            return self._answers.get(key) if generation == self._generation else None
