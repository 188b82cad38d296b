"""The device's name in reverse DNS, for the ``hostname`` column of findings and reports.

Shadowserver-style reports carry a hostname: an ISP's PTR names often encode the access line or
the customer ("p1234-ipngn.tokyo.example.ne.jp"), which is what step (4) of the framework needs
to find the subscriber behind an address. Asked once per device, only for an address the survey
is authorized to probe and has just probed, through the system resolver, with a short timeout:
a missing or slow PTR leaves the column empty and never holds up the survey.

Loopback addresses are looked up in the hosts file only (``/etc/hosts``): a PTR query for them
would go to whatever DNS server the machine uses, which is not the device, and tests and demos
must not send anything off the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

HOSTS_FILE = Path("/etc/hosts")


async def reverse_name(ip: str, timeout: float, hosts_file: Path | None = None) -> str | None:
    """The name of ``ip`` (PTR, or for loopback ``hosts_file``, default :data:`HOSTS_FILE`), or
    None: no name, lookup failed, or ``timeout`` (seconds; 0 turns lookups off) ran out."""
    if timeout <= 0:
        return None
    address = ipaddress.ip_address(ip)
    if address.is_loopback:
        return hosts_file_name(address, hosts_file or HOSTS_FILE)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            name, _ = await loop.getnameinfo((ip, 0), socket.NI_NAMEREQD)
    except (TimeoutError, OSError, UnicodeError):
        return None
    return name.rstrip(".") or None


def hosts_file_name(address: ipaddress.IPv4Address | ipaddress.IPv6Address, hosts_file: Path) -> str | None:
    """The first name ``hosts_file`` gives ``address`` (hosts(5) format), or None."""
    try:
        lines = hosts_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            if ipaddress.ip_address(fields[0].split("%", 1)[0]) == address:
                return fields[1]
        except ValueError:
            continue
    return None
