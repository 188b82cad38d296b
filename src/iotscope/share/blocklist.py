"""Blocklists for ISPs (ACTIVE): nftables sets, a DNS RPZ zone, CSV and plain lists.

Only indicators of attackers (scanners, C&C, malware distribution; not DoS victims) at or above
the minimum score, released raw or as a network (truncation), and still valid at generation time
are listed: a pseudonym (cryptopan, hmac) names no real host and blocking it would hit an
innocent one. Addresses go to nftables/CSV/plain, domains to RPZ/CSV/plain.

nftables: one ``inet`` table with an IPv4 and an IPv6 set (``flags interval, timeout``), each
element with ``timeout`` = ``valid_until`` - now, so the kernel drops an entry when our score
says it is stale, and a chain that drops traffic from or to the sets. The file deletes and
recreates its table, so loading it again with ``nft -f`` replaces the list atomically.

RPZ (ISC's response policy zones): ``name CNAME .`` answers NXDOMAIN for the domain and
``*.name`` for its subdomains; the SOA serial is the generation time (seconds since the epoch).
"""

from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import dataclass
from datetime import datetime

from iotscope.share.errors import ShareError
from iotscope.share.indicators import MALICIOUS_ROLES
from iotscope.share.scoring import Scored
from iotscope.spreadsheet import csv_cell

FORMATS: tuple[str, ...] = ("rpz", "nftables", "csv", "plain")
NFT_TABLE = "iotscope_blocklist"
BLOCKABLE_RELEASES = ("raw", "truncate24", "truncate16")


@dataclass(frozen=True)
class Entry:
    type: str
    value: str
    score: float
    valid_until: datetime
    timeout_s: int
    roles: tuple[str, ...]
    sources: tuple[str, ...]


def select(indicators: list[Scored], min_score: float, at: datetime) -> list[Entry]:
    """The blockable indicators with score >= ``min_score`` still valid at ``at``, best first."""
    if not 0 <= min_score <= 100:
        raise ShareError(f"--min-score must be in [0, 100], got {min_score}")
    out = []
    for s in indicators:
        ind = s.indicator
        if not ind.roles & MALICIOUS_ROLES or ind.released_as not in BLOCKABLE_RELEASES:
            continue
        timeout = int((s.score.valid_until - at).total_seconds())
        if s.score.score < min_score or timeout < 1:
            continue
        out.append(Entry(ind.type, ind.value, s.score.score, s.score.valid_until, timeout,
                         tuple(sorted(ind.roles & MALICIOUS_ROLES)), tuple(sorted(ind.sources))))
    return out


def render(entries: list[Entry], fmt: str, at: datetime) -> str:
    if fmt == "nftables":
        return nftables(entries)
    if fmt == "rpz":
        return rpz(entries, at)
    if fmt == "csv":
        return csv_list(entries)
    if fmt == "plain":
        return "".join(f"{e.value}\n" for e in entries)
    raise ShareError(f"unknown blocklist format {fmt!r} (use {', '.join(FORMATS)})")


def _nft_elements(entries: list[Entry], version: int) -> list[str]:
    elements = []
    for e in entries:
        if e.type not in ("ipv4-addr", "ipv6-addr"):
            continue
        network = ipaddress.ip_network(e.value, strict=False)
        if network.version == version:
            elements.append(f"{e.value} timeout {e.timeout_s}s")
    return elements


def nftables(entries: list[Entry]) -> str:
    lines = [
        "#!/usr/sbin/nft -f",
        f"# iotscope blocklist: {len(entries)} indicators; element timeouts end at each one's valid_until",
        f"table inet {NFT_TABLE} {{}}",
        f"delete table inet {NFT_TABLE}",
        f"table inet {NFT_TABLE} {{",
    ]
    for name, kind, version in (("blocklist_v4", "ipv4_addr", 4), ("blocklist_v6", "ipv6_addr", 6)):
        elements = _nft_elements(entries, version)
        lines += [f"\tset {name} {{", f"\t\ttype {kind}", "\t\tflags interval, timeout"]
        if elements:
            lines.append("\t\telements = { " + ",\n\t\t\t     ".join(elements) + " }")
        lines.append("\t}")
    lines += [
        "\tchain filter {",
        "\t\ttype filter hook forward priority -10; policy accept;",
        "\t\tip saddr @blocklist_v4 drop",
        "\t\tip daddr @blocklist_v4 drop",
        "\t\tip6 saddr @blocklist_v6 drop",
        "\t\tip6 daddr @blocklist_v6 drop",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def rpz(entries: list[Entry], at: datetime) -> str:
    serial = int(at.timestamp()) & 0xFFFFFFFF
    lines = [
        "$TTL 300",
        f"@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 300 )",
        "@ IN NS localhost.",
        f"; iotscope blocklist: domains of C&C and malware-distribution sites, generated {at.isoformat()}",
    ]
    for e in entries:
        if e.type != "domain-name":
            continue
        lines.append(f"{e.value} CNAME .")
        lines.append(f"*.{e.value} CNAME .")
    return "\n".join(lines) + "\n"


def csv_list(entries: list[Entry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["type", "value", "score", "valid_until", "roles", "sources"])
    for e in entries:
        writer.writerow([e.type, e.value, f"{e.score:.1f}", e.valid_until.isoformat(), " ".join(e.roles),
                         " ".join(str(csv_cell(s)) for s in e.sources)])
    return out.getvalue()
