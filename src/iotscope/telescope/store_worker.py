"""A store used from one low-priority thread, so the work on it yields the CPU to the capture.

Why: on a small sensor the capture (dumpcap, its own process) and the ingest (decode, Parquet
encoding: several CPU-seconds per million packets) share the cores. When they compete, a lost
packet is gone for good while a late ingest only waits in the spool. Linux keeps a nice value per
thread, and threads created by a thread inherit it; so the thread that opens the store lowers its
own priority (``INGEST_NICE``) and every ingest, compaction and retention step runs on it (the
store's SQLite connection stays on the thread that opened it). Lowering needs no privilege.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from iotscope.store.packets import PacketStore

#: Nice increment of the ingest thread (CFS gives a nice-10 thread ~1/10 of a nice-0 one's share
#: when both want the CPU, and all of it when the capture is idle).
INGEST_NICE = 10

T = TypeVar("T")


class StoreWorker:
    """Opens ``PacketStore(root)`` on its own thread; :meth:`run` calls ``fn(store, *args)`` there."""

    def __init__(self, root: Path, nice: int = INGEST_NICE) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="store-worker")
        self._store: PacketStore | None = None
        try:
            self._pool.submit(self._open, root, nice).result()
        except BaseException:
            self._pool.shutdown()
            raise

    def _open(self, root: Path, nice: int) -> None:
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError:
            pass  # no per-thread priority here: the ingest just runs at normal priority
        self._store = PacketStore(root)

    def run(self, fn: Callable[..., T], *args: object) -> T:
        return self._pool.submit(lambda: fn(self._store, *args)).result()

    def close(self) -> None:
        if self._store is not None:
            self._pool.submit(self._store.close).result()
            self._store = None
        self._pool.shutdown()

    def __enter__(self) -> StoreWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
