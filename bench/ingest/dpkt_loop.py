"""The dpkt peer: a plain parse loop over the first N packets, extracting the fields iotscope stores."""

from __future__ import annotations

import socket
import sys

import dpkt


def main(path: str, limit: int) -> None:
    rows = 0
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP):
                fields = [ts, ip.src, ip.dst, ip.p, ip.id, ip.ttl, ip.len]
                l4 = ip.data
                if isinstance(l4, dpkt.tcp.TCP):
                    fields += [l4.sport, l4.dport, l4.flags, l4.seq, l4.win]
                elif isinstance(l4, dpkt.udp.UDP):
                    fields += [l4.sport, l4.dport]
                elif isinstance(l4, dpkt.icmp.ICMP):
                    fields += [l4.type, l4.code]
                socket.inet_ntoa(ip.src)
            rows += 1
            if rows >= limit:
                break
    print(rows)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
