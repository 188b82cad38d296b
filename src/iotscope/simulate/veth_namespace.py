"""A network namespace with one veth pair, made by the test or benchmark that uses it and removed after.

Traffic replayed into ``sender`` arrives on ``receiver`` and nowhere else: the namespace has no
route out, no addresses and IPv6 off (so the kernel itself sends nothing, not even router
solicitations), which makes "the store holds exactly the replayed packets" checkable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("ip", "tcpreplay", "dumpcap", "setpriv", "editcap")


def missing_tools() -> list[str]:
    """What this machine lacks to build the namespace and replay into it (empty when all is there)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if os.geteuid() != 0:
        missing.append("root (to create a network namespace)")
    return missing


@dataclass(frozen=True)
class VethNamespace:
    """One namespace and the two ends of its veth pair: replay into ``sender``, capture ``receiver``."""

    name: str
    sender: str
    receiver: str

    def exec(self, *cmd: str) -> list[str]:
        """The command line that runs ``cmd`` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def replay(self, capture: Path, *rate: str) -> subprocess.CompletedProcess[str]:
        """Send every packet of ``capture`` into the sender end (``rate``: e.g. ``--pps=20000``)."""
        result = subprocess.run(
            self.exec("tcpreplay", "-i", self.sender, *rate, str(capture)),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tcpreplay failed: {result.stderr.strip()}")
        return result


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextmanager
def veth_namespace() -> Iterator[VethNamespace]:
    """Create a fresh namespace with a veth pair (needs root), yield it, delete it whatever happens."""
    tag = uuid.uuid4().hex[:6]
    ns = VethNamespace(f"iotscope-{tag}", f"snd{tag}", f"rcv{tag}")
    _run("ip", "netns", "add", ns.name)
    try:
        _run(
            *ns.exec(
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            )
        )
        _run(
            *ns.exec(
                "ip",
                "link",
                "add",
                ns.sender,
                "type",
                "veth",
                "peer",
                "name",
                ns.receiver,
            )
        )
        for link in ("lo", ns.sender, ns.receiver):
            _run(*ns.exec("ip", "link", "set", link, "up"))
        yield ns
    finally:
        subprocess.run(
            ["ip", "netns", "del", ns.name], capture_output=True, check=False
        )
