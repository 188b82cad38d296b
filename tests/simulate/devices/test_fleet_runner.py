"""Running fleets: clean start and stop (no leaked task, socket or connection), clear start errors."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from iotscope.simulate.devices import FleetError, FleetThread, default_fleet, run_fleet
from tests.simulate.devices.conftest import random_loopback_prefix


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _listening(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=1).close()
    except ConnectionRefusedError:
        return False
    return True


def test_default_fleet_starts_fast_and_stops_without_leaks():
    spec = default_fleet(random_loopback_prefix() + "0/24", count=40, seed=11, idle_timeout=5)
    services = [(d.ip, s.port, s.behaviour) for d in spec.devices for s in d.services]
    # One held connection per behaviour (login services of every protocol, tarpits, hostiles).
    one_each = {(behaviour, port): (ip, port) for ip, port, behaviour in services}
    to_hold = list(one_each.values())
    assert len({behaviour for behaviour, _ in one_each}) >= 6

    async def scenario() -> tuple[float, int]:
        fds_before = _open_fds()
        began = time.perf_counter()
        async with run_fleet(spec):
            started = time.perf_counter() - began
            # Hold connections open across the stop, including tarpits that never end by themselves.
            held = [await asyncio.open_connection(ip, port) for ip, port in to_hold]
            await asyncio.sleep(0.1)
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftover == []
        return started, _open_fds() - fds_before

    started, fd_growth = asyncio.run(scenario())
    assert started < 2.0
    assert fd_growth <= 0
    assert not any(_listening(ip, port) for ip, port, _ in services[:20])


def test_port_clash_is_a_one_line_error_and_nothing_stays_open():
    prefix = random_loopback_prefix()
    spec = default_fleet(prefix + "0/24", count=5, seed=1)
    first = spec.devices[0]
    blocker = socket.socket()
    blocker.bind((spec.devices[-1].ip, spec.devices[-1].services[-1].port))
    blocker.listen()
    try:
        with pytest.raises(FleetError, match=r"cannot listen on 127\.\S+:\d+: "):
            FleetThread(spec).start()
        assert not _listening(first.ip, first.services[0].port)
    finally:
        blocker.close()


def test_fleet_thread_serves_from_a_background_loop():
    spec = default_fleet(random_loopback_prefix() + "0/24", count=3, seed=4)
    device = spec.devices[0]
    with FleetThread(spec) as fleet:
        assert _listening(device.ip, device.services[0].port)
        assert {row["ip"] for row in fleet.stats()} == {d.ip for d in spec.devices}
        assert fleet.ground_truth() == spec.ground_truth()
    assert not _listening(device.ip, device.services[0].port)
