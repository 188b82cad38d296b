"""One emulated device on a random loopback address, for tests that change a device between runs."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from iotscope.simulate.devices import FleetError, FleetSpec, FleetThread
from iotscope.simulate.devices.fleet import DeviceSpec, ServiceSpec

_TRIES = 5


def start_device(services: Sequence[ServiceSpec], ip: str | None = None, **timings: Any) -> tuple[str, FleetThread]:
    """Start a device with ``services`` at ``ip`` (a random free 127.A.B.C when None); stop the
    returned thread when done."""
    rng = random.SystemRandom()
    last: FleetError | None = None
    for _ in range(1 if ip else _TRIES):
        address = ip or f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(2, 255)}"
        spec = FleetSpec(
            devices=(DeviceSpec(address, "default-credential", "openwrt-router", tuple(services)),),
            **{"idle_timeout": 5.0, "drip_interval": 0.5, **timings},
        )
        thread = FleetThread(spec)
        try:
            thread.start()
        except FleetError as exc:
            last = exc
            continue
        return address, thread
    raise RuntimeError(f"no free loopback address for a device: {last}")
