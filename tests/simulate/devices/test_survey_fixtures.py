"""The survey's fleet fixtures (tests/survey/conftest.py): a started fleet, and a scope file that
the survey's own scope loader accepts for exactly the fleet's addresses."""

from __future__ import annotations

import socket
import time

from iotscope.survey.scope import Scope
from tests.survey.conftest import start_fleet, write_scope


def test_started_fleet_listens_and_scope_covers_it(tmp_path):
    running = start_fleet(count=5, seed=2)
    try:
        row = next(r for r in running.truth if r["expected"] == "finding")
        socket.create_connection((row["ip"], row["port"]), timeout=2).close()
        assert (row["ip"], row["port"], row["protocol"], row["credential_id"]) in running.expected_findings()
        blocked = running.spec.devices[-1].ip
        scope = Scope.load(write_scope(tmp_path / "scope.toml", [running.network], blocklist=[blocked]))
        assert all(scope.is_allowed(d.ip) for d in running.spec.devices[:-1])
        assert not scope.is_allowed(blocked)
        assert not scope.is_allowed("127.0.0.1")
        assert not scope.is_allowed("192.0.2.1")
        deadline = time.monotonic() + 5  # the server counts the connection on its own loop
        while not sum(s["connections"] for s in running.stats()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sum(s["connections"] for s in running.stats()) == 1
    finally:
        running.thread.stop()
