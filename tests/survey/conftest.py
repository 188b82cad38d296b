"""Shared survey fixtures: an emulated IoT fleet on loopback and a scope file that authorizes it.

Each fleet gets a random 127.A.B.0/24 (A >= 1, so 127.0.0.1 and its neighbours stay free), and a
clash with a fleet of a parallel test run just moves to another /24. 127.0.0.0/8 is special-purpose
space (RFC 6890), so the scope written here sets ``special_purpose = true`` explicitly.

    def test_something(fleet, fleet_scope):      # module-scoped fleet, scope file in tmp_path
        truth = fleet.truth                      # rows: ip, port, protocol, kind, credential_id, expected
        ...

    def test_custom(fleet_factory):
        running = fleet_factory(count=6, seed=9, lockout_after=None)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iotscope.simulate.devices import FleetError, FleetSpec, FleetThread, default_fleet

#: Timings for survey tests: services give up on idle clients after 5 s, tarpits drip 2 bytes/s.
FAST_FLEET = {"idle_timeout": 5.0, "drip_interval": 0.5}
_START_TRIES = 5


@dataclass
class RunningFleet:
    """A started fleet: its /24, its spec, ground truth rows, and live per-service counters."""

    network: str
    spec: FleetSpec
    thread: FleetThread

    @property
    def truth(self) -> list[dict[str, Any]]:
        return self.spec.ground_truth()

    def expected_findings(self) -> set[tuple[str, int, str, str | None]]:
        """(ip, port, protocol, credential_id) of every service a correct survey reports."""
        return {
            (row["ip"], row["port"], row["protocol"], row["credential_id"])
            for row in self.truth
            if row["expected"] == "finding"
        }

    def ports(self) -> list[int]:
        return sorted({row["port"] for row in self.truth})

    def stats(self) -> list[dict[str, Any]]:
        """Per service: connections, attempts, successes, lockouts (a polite survey locks none)."""
        return self.thread.stats()


def start_fleet(count: int = 20, seed: int = 1, **options: Any) -> RunningFleet:
    """Start ``default_fleet`` on a free random loopback /24 (``options`` go to ``default_fleet``)."""
    rng = random.SystemRandom()
    last_error: FleetError | None = None
    for _ in range(_START_TRIES):
        network = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.0/24"
        spec = default_fleet(network, count=count, seed=seed, **{**FAST_FLEET, **options})
        thread = FleetThread(spec)
        try:
            thread.start()
        except FleetError as exc:  # taken by a parallel run: another /24
            last_error = exc
            continue
        return RunningFleet(network, spec, thread)
    raise RuntimeError(f"no free loopback /24 for a fleet after {_START_TRIES} tries: {last_error}")


def write_scope(
    path: Path,
    cidrs: Sequence[str],
    *,
    owner: str = "iotscope test fleet",
    blocklist: Sequence[str] = (),
) -> Path:
    """A scope TOML authorizing ``cidrs`` (loopback: flagged special-purpose) and, if given, a
    blocklist file next to it."""
    lines = []
    if blocklist:
        blocklist_file = path.with_name(path.stem + "-blocklist.txt")
        blocklist_file.write_text("# opted out\n" + "".join(f"{entry}\n" for entry in blocklist))
        lines.append(f'blocklist = "{blocklist_file.name}"\n')
    for cidr in cidrs:
        lines.append(
            f'\n[[authorized]]\ncidr = "{cidr}"\nowner = "{owner}"\n'
            f'authorization = "emulated fleet started by the test itself"\nspecial_purpose = true\n'
        )
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fleet() -> Iterator[RunningFleet]:
    """A 20-device default fleet (seed 1), running for the whole test module."""
    running = start_fleet()
    try:
        yield running
    finally:
        running.thread.stop()


@pytest.fixture
def fleet_scope(fleet: RunningFleet, tmp_path: Path) -> Path:
    """A scope file authorizing exactly the module fleet's /24."""
    return write_scope(tmp_path / "scope.toml", [fleet.network])


@pytest.fixture
def fleet_factory() -> Iterator[Callable[..., RunningFleet]]:
    """Start custom fleets (``fleet_factory(count=6, seed=9, lockout_after=None)``); all stop at
    the end of the test."""
    started: list[RunningFleet] = []

    def factory(**options: Any) -> RunningFleet:
        running = start_fleet(**options)
        started.append(running)
        return running

    try:
        yield factory
    finally:
        for running in started:
            running.thread.stop()
