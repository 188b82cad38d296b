"""The survey benchmark's targets: an emulated device fleet on a free loopback range, its scope
file, and what a correct sweep of it finds (the kernel's own table of listening sockets).
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from pathlib import Path

from iotscope.simulate.devices import FleetError, FleetThread, default_fleet


def start_fleet(count: int, seed: int, sweep_prefix: int) -> tuple[str, str, FleetThread]:
    """(sweep range, fleet /22, running fleet): a random 127.X.Y.0/``sweep_prefix`` in which
    nothing else listens (tests run fleets on random loopback /24s too), the fleet in one of its /22s."""
    rng = random.SystemRandom()
    for _ in range(10):
        sixteen = ipaddress.ip_network(f"127.{rng.randrange(1, 255)}.0.0/16")
        net = rng.choice(list(sixteen.subnets(new_prefix=sweep_prefix)))
        if any(ipaddress.ip_address(ip) in net for ip, _ in listening()):
            continue
        network = str(rng.choice(list(net.subnets(new_prefix=22))))
        spec = default_fleet(network, count=count, seed=seed, lockout_after=None,
                             idle_timeout=10.0, drip_interval=0.5)
        thread = FleetThread(spec)
        try:
            thread.start()
        except FleetError:
            continue
        return str(net), network, thread
    raise RuntimeError(f"no free loopback /{sweep_prefix} for the fleet after 10 tries")


def write_scope(path: Path, network: str) -> Path:
    path.write_text(
        f'[[authorized]]\ncidr = "{network}"\nowner = "iotscope benchmark fleet"\n'
        f'authorization = "emulated fleet started by bench/survey/run.py"\nspecial_purpose = true\n',
        encoding="utf-8",
    )
    return path


def listening() -> set[tuple[str, int]]:
    """(address, port) of every listening IPv4 TCP socket, from the kernel's own table."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":  # TCP_LISTEN
            continue
        address, port = fields[1].split(":")
        ip = socket.inet_ntoa(struct.pack("<I", int(address, 16)))
        found.add((ip, int(port, 16)))
    return found


def expected_open(network: str, ports: list[int]) -> set[tuple[str, int]]:
    """What a correct sweep finds: listeners inside the /22, and wildcard listeners on every address."""
    net = ipaddress.ip_network(network)
    wanted = set(ports)
    truth = set()
    for ip, port in listening():
        if port not in wanted:
            continue
        if ip == "0.0.0.0":
            truth |= {(str(address), port) for address in net}
        elif ipaddress.ip_address(ip) in net:
            truth.add((ip, port))
    return truth
