"""Every probe against the emulated fleet: identify each service by handshake, probe it, and
compare with the fleet's ground truth (found with the right credential id, hardened never
reported, tarpits and hostile services errors within the deadline, no hardened account locked)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from iotscope.simulate.devices import default_fleet, run_fleet
from iotscope.survey.credentials import load_builtin
from iotscope.survey.probes import identify_service
from iotscope.survey.probes.registry import probes

from .fake_devices import FAST, loopback_scope

#: Hardened devices lock after 10 failures within 0.3 s here; 0.04 s between attempts stays under
#: (nine gaps of at least 0.04 s), which is the pacing rule: attempt_delay > window / (lockouts - 1).
LIMITS = dataclasses.replace(FAST, attempt_delay=0.04, deadline=20.0)


def test_probes_find_exactly_the_vulnerable_services_of_the_fleet():
    spec = default_fleet(
        "127.0.90.0/24", count=20, seed=3, drip_interval=0.3, idle_timeout=5.0, lockout_window=0.3
    )
    credentials = load_builtin()
    scope = loopback_scope()

    async def survey_one(ip: str, port: int):
        protocol = await identify_service(scope, ip, port, LIMITS)
        if protocol is None:
            return None, None
        return protocol, await probes()[protocol](scope, ip, port, credentials, LIMITS)

    async def main():
        async with run_fleet(spec) as fleet:
            truth = fleet.ground_truth()
            results = await asyncio.gather(*(survey_one(row["ip"], row["port"]) for row in truth))
            return truth, results, fleet.stats()

    started = time.monotonic()
    truth, results, stats = asyncio.run(main())
    elapsed = time.monotonic() - started
    mismatches = []
    for row, (protocol, result) in zip(truth, results):
        where = f"{row['ip']}:{row['port']} {row['protocol']} {row['kind']}/{row['behaviour']}"
        if row["expected"] == "finding":
            if protocol != row["protocol"] or result.status != "vulnerable" or result.credential_id != row["credential_id"]:
                mismatches.append(f"{where}: expected {row['credential_id']}, got {protocol} {result}")
        elif row["expected"] == "none":
            # The corpus is longer than the attempt cap: a hardened service refuses the capped
            # pairs and stays incomplete (pairs left for --resume), never "not vulnerable".
            capped = (result.status, result.attempts) == ("incomplete", LIMITS.max_attempts) and result.remaining > 0
            if protocol != row["protocol"] or not capped:
                mismatches.append(f"{where}: expected incomplete at the attempt cap, got {protocol} {result}")
        elif result is not None and result.status == "vulnerable":
            mismatches.append(f"{where}: misbehaving service reported vulnerable: {result}")
    assert not mismatches, "\n".join(mismatches)
    assert sum(row["expected"] == "finding" for row in truth) >= 10
    assert not [s for s in stats if s.get("lockouts")], stats
    assert elapsed < 45
