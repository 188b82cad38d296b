"""One deadline per device, shared by all its services: the deadline exists to protect the device.

A device with three telnet ports that each answer a failed login after 3 s would otherwise keep
the survey logging in for three full deadlines (the 361 s of issue 6 item 13). The survey probes
a device's services one after another (never in parallel), and each one gets at most
``limits.service_deadline`` and never more than what is left of the device's ``limits.deadline``;
a service that either deadline ends early is recorded ``incomplete``, with the credential pairs it
tried and those it did not, never ``not_vulnerable``, and ``--resume`` continues it.
"""

from __future__ import annotations

import asyncio

from iotscope.survey.credentials import Credential, attempt_order
from iotscope.survey.probes.identify import identify_service
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import ProbeResult
from iotscope.survey.probes.registry import probes
from iotscope.survey.scope import Scope


def device_deadline(limits: ProbeLimits) -> float:
    """The event-loop time at which probing a device whose first service starts now must end."""
    return asyncio.get_running_loop().time() + limits.deadline


async def probe_service(
    scope: Scope, ip: str, port: int, credentials: list[Credential], limits: ProbeLimits, until: float,
) -> ProbeResult | None:
    """Identify and probe ``ip:port`` within the device's deadline ``until`` (from
    :func:`device_deadline`); None when no known service answered (no telnet, SSH, HTTP or FTP)."""
    scope.check(ip)
    pairs = len(attempt_order(credentials))
    loop = asyncio.get_running_loop()
    if loop.time() >= until:
        return ProbeResult(
            "unknown", "incomplete", detail=f"not probed: device deadline {limits.deadline:g}s used by its other services",
            remaining=pairs,
        )
    try:
        async with asyncio.timeout_at(until):
            protocol = await identify_service(scope, ip, port, limits)
    except TimeoutError:
        return ProbeResult(
            "unknown", "incomplete", detail=f"device deadline {limits.deadline:g}s reached while identifying the service",
            remaining=pairs,
        )
    if protocol is None:
        return None
    return await probes()[protocol](scope, ip, port, credentials, limits, until=until)
