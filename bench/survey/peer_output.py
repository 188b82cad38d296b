"""What the peer tools found, read from their own output: nmap's grepable lines, hydra's results."""

from __future__ import annotations

import re

_HYDRA_RESULT = re.compile(r"^\[(\d+)\]\[[\w-]+\] host: (\S+)   login: (.*?)(?:   password: (.*))?$", re.MULTILINE)


def parse_grepable(text: str) -> set[tuple[str, int]]:
    """Open (ip, port) pairs from nmap's ``-oG`` output."""
    found = set()
    for line in text.splitlines():
        if not line.startswith("Host: ") or "Ports: " not in line:
            continue
        ip = line.split()[1]
        for entry in line.split("Ports: ", 1)[1].split("\t")[0].split(", "):
            port, state = entry.split("/")[:2]
            if state == "open":
                found.add((ip, int(port)))
    return found


def parse_hydra(text: str, pair_ids: dict[tuple[str, str], str]) -> set[tuple[str, int, str | None]]:
    """(ip, port, credential id) of hydra's result lines (``[23][telnet] host: IP   login: U   password: P``);
    a pair not in the list keeps id None. Its ``-b jsonv1`` file is not valid JSON with ``-M``."""
    found = set()
    for match in _HYDRA_RESULT.finditer(text):
        port, host, login, password = match.groups()
        found.add((host, int(port), pair_ids.get((login, password or ""))))
    return found
