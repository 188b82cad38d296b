"""Enrichment never touches the network: a process whose audit hook forbids sockets still enriches.

The hook turns any socket creation, connect or name resolution into an error, so a lookup that
tried the network would fail loudly; the last step shows the hook is live (it does block a socket).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .mmdb_files import write_asn_mmdb, write_city_mmdb

SCRIPT = textwrap.dedent(
    """
    import sys

    def forbid_network(event, args):
        if event.startswith(("socket.", "urllib.", "http.")) or event == "ftplib.connect":
            raise RuntimeError(f"network use: {event}")

    sys.addaudithook(forbid_network)

    import numpy as np
    from iotscope.enrich import Enricher

    addresses = np.array([0x08080808, 0x01010101, 0], np.uint32)
    default = Enricher.default().lookup_ipv4(addresses)
    assert default.column("asn").to_pylist()[:2] == [15169, 13335], default
    user = Enricher.from_mmdb(city=sys.argv[1], asn=sys.argv[2], cache_dir=sys.argv[3]).lookup_ipv4(addresses)
    assert user.column("country").to_pylist()[0] == "US", user
    print("enriched offline")

    import socket
    try:
        socket.socket()
    except RuntimeError:
        print("hook live")
    """
)


def test_no_socket_is_opened(tmp_path):
    city = write_city_mmdb(tmp_path / "city.mmdb")
    asn = write_asn_mmdb(tmp_path / "asn.mmdb")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(city), str(asn), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["enriched", "offline", "hook", "live"]
