"""Answers kept until the store changes: the dashboard's many viewers cost one query per commit.

Why this is exact, not approximate: every answer of the API is a function of the request's
parameters and the committed content of the store, which changes only when a capture or an
analysis commits (the reader's :class:`~iotscope.web.store_reader.Generation`). So an answer is
kept under its generation and parameters, and never served for another generation. Scans of a
large store take tens to hundreds of ms (measured in BENCHMARKS.md); a page refresh by a hundred
viewers after a commit still runs each distinct query once: concurrent requests for the same key
wait for the first (single flight).

The two newest generations are kept: the one the server answers from while the next one's
answers are computed in the background (:mod:`iotscope.web.prewarm`); older ones are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from iotscope.web.store_reader import Generation

#: Generations whose answers are kept at once: the published one and the one being prepared.
GENERATIONS_KEPT = 2


class ResultCache:
    """Bounded LRUs of answers, one per kept generation; thread-safe, single-flight per key."""

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._answers: OrderedDict[Generation, OrderedDict[Hashable, Any]] = OrderedDict()
        self._key_locks: dict[tuple[Generation, Hashable], threading.Lock] = {}

    def _kept(self, generation: Generation) -> OrderedDict[Hashable, Any]:
        """The answers of ``generation`` (call with ``_lock`` held); a new generation drops the oldest."""
        if generation not in self._answers:
            self._answers[generation] = OrderedDict()
            while len(self._answers) > GENERATIONS_KEPT:
                old, _ = self._answers.popitem(last=False)
                self._key_locks = {k: v for k, v in self._key_locks.items() if k[0] != old}
        return self._answers[generation]

    def _entry(self, generation: Generation, key: Hashable) -> tuple[bool, Any, threading.Lock]:
        with self._lock:
            answers = self._kept(generation)
            if key in answers:
                answers.move_to_end(key)
                return True, answers[key], threading.Lock()
            return False, None, self._key_locks.setdefault((generation, key), threading.Lock())

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
                answers = self._answers.get(generation)
                if answers is not None:  # not dropped meanwhile
                    answers[key] = answer
                    while len(answers) > self._capacity:
                        old, _ = answers.popitem(last=False)
                        self._key_locks.pop((generation, old), None)
            return answer

    def peek(self, generation: Generation, key: Hashable) -> Any | None:
        """The answer kept for ``key`` in ``generation``, or None; never computes (the prewarm's tests ask)."""
        with self._lock:
            return self._answers.get(generation, {}).get(key)
