"""A hand-made fleet with one service per behaviour, on a random loopback /24 (parallel test runs
on the same machine must not collide), short timeouts so tarpits are quick to observe."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from iotscope.simulate.devices import (
    DeviceSpec,
    FleetError,
    FleetSpec,
    FleetThread,
    ServiceSpec,
)

STRONG = "Vq3!x9@LmZ#72pRt"


def random_loopback_prefix() -> str:
    """``127.A.B.`` with A, B random: 127.0.0.0/16 stays free for daemons on 127.0.0.1."""
    rng = random.SystemRandom()
    return f"127.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}."


def behaviour_spec(prefix: str) -> FleetSpec:
    S = ServiceSpec
    return FleetSpec(
        devices=(
            DeviceSpec(prefix + "10", "default-credential", "xiongmai-dvr", (
                S(23, "telnet", username="root", password="xc3511", credential_id="mirai-01"),
                S(2222, "ssh", username="root", password="xc3511", credential_id="mirai-01"),
                S(80, "http", username="admin", password="admin", credential_id="mirai-04"),
                S(8080, "http", username="admin", password="12345", credential_id="mirai-54",
                  http_auth="digest"),
                S(21, "ftp", username="admin", password=STRONG, anonymous=True),
            )),
            DeviceSpec(prefix + "11", "hardened", "huawei-hg532", (
                S(2323, "telnet", username="telecomadmin", password=STRONG, lockout_after=3),
                S(22, "ssh", username="root", password=STRONG),
                S(81, "http", username="admin", password=STRONG),
                S(21, "ftp", username="admin", password=STRONG, anonymous=False),
            )),
            DeviceSpec(prefix + "12", "no-password", "openwrt-router", (
                S(23, "telnet"), S(22, "ssh"), S(80, "http"),
            )),
            DeviceSpec(prefix + "13", "tarpit", "dahua-dvr", (
                S(23, "telnet", behaviour="drip"), S(2323, "telnet", behaviour="stall"),
                S(22, "ssh", behaviour="drip"),
            )),
            DeviceSpec(prefix + "14", "hostile", "goahead-camera", (
                S(23, "telnet", behaviour="huge-banner"), S(2323, "telnet", behaviour="garbage"),
                S(8023, "telnet", behaviour="endless-iac"), S(22, "ssh", behaviour="reset"),
                S(80, "http", behaviour="huge-banner"),
            )),
        ),
        seed=7,
        idle_timeout=5.0,
        drip_interval=0.05,
    )


@dataclass
class BehaviourFleet:
    prefix: str
    thread: FleetThread

    def ip(self, last_octet: int) -> str:
        return f"{self.prefix}{last_octet}"

    def stats(self, last_octet: int, port: int) -> dict:
        ip = self.ip(last_octet)
        return next(row for row in self.thread.stats() if (row["ip"], row["port"]) == (ip, port))


@pytest.fixture(scope="module")
def behaviours():
    """The running hand-made fleet (devices at prefix + 10 .. 14)."""
    for _ in range(5):
        prefix = random_loopback_prefix()
        thread = FleetThread(behaviour_spec(prefix))
        try:
            thread.start()
        except FleetError:  # address clash with a parallel run: try another /24
            continue
        try:
            yield BehaviourFleet(prefix, thread)
        finally:
            thread.stop()
        return
    pytest.fail("could not start the behaviour fleet on five random loopback /24s")
