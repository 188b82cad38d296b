"""Indicators: one per (type, value), from our sensors and from imported feeds, merged.

An indicator is what we share and block on: an address or domain, what it did (``roles``: a
scanner, a DoS victim, a C&C server, a malware-distribution site), how often it was seen
(``sightings``), by whom (``sources``: our sensor names and the names of imported feeds) and when.

Where each kind comes from, one library function each, so that a richer source can replace it
without touching scoring or exporters:

- :func:`scanner_indicators`: scan traffic in the ``packets`` view, grouped by source in DuckDB.
  One sighting is one hour in which the source scanned us; the tool is its SYNs' majority fingerprint.
  When the analytics views land (issue 8), this reads ``sources``/``events`` instead (one
  sighting per scanner event, with category, country and ASN): only this function's SQL changes.
- :func:`dos_victim_indicators`: backscatter sources (the victims of spoofed floods); later the
  ``attacks`` view (only victims that pass Corsaro's thresholds).
- :func:`survey_aggregates`: counts of vulnerable services per protocol/tag/severity from the
  survey's ``findings/``; never a device's address.
- :mod:`iotscope.share.feeds`: C&C and malware-distribution addresses and domains an operator
  imports from CSV or STIX.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from iotscope.share.errors import ShareError
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect

#: Indicator types, named as the STIX cyber-observable they become.
TYPES: tuple[str, ...] = ("ipv4-addr", "ipv6-addr", "domain-name", "url")
#: What an indicator's subject did. ``scanner`` and ``dos_victim`` come from the telescope; the
#: others from imported feeds.
ROLES: tuple[str, ...] = ("scanner", "dos_victim", "c2", "malware_distribution")
#: Roles whose subjects are attackers (what a blocklist blocks); a DoS victim is not one.
MALICIOUS_ROLES: frozenset[str] = frozenset({"scanner", "c2", "malware_distribution"})


@dataclass(frozen=True)
class Indicator:
    """One observable, everything we know about it merged (see :func:`merge_indicators`)."""

    type: str
    value: str
    roles: frozenset[str]
    sightings: int
    sources: frozenset[str]
    first_seen: datetime
    last_seen: datetime
    tools: frozenset[str] = frozenset()
    ports: tuple[int, ...] = ()  # most-targeted ports (scanners) or attacked service ports (victims)
    packets: int = 0
    #: How the value was anonymized before release ("raw" for the real value); set by the policy.
    released_as: str = "raw"

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.value)


@dataclass(frozen=True)
class SurveyAggregate:
    """How many services of one kind the survey found vulnerable, and in how many owners' networks."""

    protocol: str
    tag: str
    severity: str
    services: int
    owners: int
    first_seen: datetime
    last_seen: datetime


def parse_time(text: str, where: str) -> datetime:
    """ISO 8601 (``Z`` allowed) as an aware UTC datetime; naive times are taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ShareError(f"{where}: not an ISO 8601 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def indicator_type(value: str) -> str:
    """The type of a feed value: an address, a network (CIDR), a URL or a domain name."""
    text = value.strip()
    if "://" in text:
        return "url"
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    else:
        return "ipv4-addr" if network.version == 4 else "ipv6-addr"
    label = text.rstrip(".").lower()
    if label and all(part and len(part) <= 63 and part.replace("-", "").replace("_", "").isalnum()
                     for part in label.split(".")) and "." in label:
        return "domain-name"
    raise ShareError(f"not an address, network, domain or URL: {value!r}")


def canonical_value(type_: str, value: str) -> str:
    """One spelling per value, so that feeds and sensors merge: ``192.0.2.1/32`` is ``192.0.2.1``."""
    text = value.strip()
    if type_ in ("ipv4-addr", "ipv6-addr"):
        network = ipaddress.ip_network(text, strict=False)
        return str(network.network_address) if network.num_addresses == 1 else str(network)
    if type_ == "domain-name":
        return text.rstrip(".").lower()
    return text


def merge_indicators(groups: Iterable[Iterable[Indicator]]) -> list[Indicator]:
    """One indicator per (type, value): sightings and packets summed, sources, roles, tools and
    ports united, first/last seen widened. Sorted by (type, value) for stable output."""
    merged: dict[tuple[str, str], Indicator] = {}
    for group in groups:
        for ind in group:
            have = merged.get(ind.key)
            if have is None:
                merged[ind.key] = ind
                continue
            merged[ind.key] = replace(
                have,
                roles=have.roles | ind.roles,
                sightings=have.sightings + ind.sightings,
                sources=have.sources | ind.sources,
                first_seen=min(have.first_seen, ind.first_seen),
                last_seen=max(have.last_seen, ind.last_seen),
                tools=have.tools | ind.tools,
                ports=tuple(dict.fromkeys(have.ports + ind.ports))[:10],
                packets=have.packets + ind.packets,
            )
    return [merged[k] for k in sorted(merged)]


# The source address as text: dotted quad for IPv4 (uint32 in the store), else the IPv6 bytes
# (converted in Python: one row per source, not per packet).
_SOURCE_SQL = """
WITH p AS (
    SELECT src, src6, ts, tool, flag_class, {port} AS port FROM packets WHERE traffic_class = '{traffic_class}'
),
by_port AS (
    SELECT src, src6, port, count(*) AS n FROM p WHERE port IS NOT NULL GROUP BY ALL
),
top_ports AS (
    SELECT src, src6, list(port ORDER BY n DESC, port)[1:5] AS ports FROM by_port GROUP BY ALL
),
per_source AS (
    SELECT src, src6, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS packets,
           count(DISTINCT date_trunc('hour', ts)) AS sightings,
           -- the tool of the majority of its SYNs (an unfingerprinted SYN votes for none: one
           -- chance IP ID of 54321 among many SYNs does not make a source ZMap)
           nullif(mode(coalesce(tool, '')) FILTER (WHERE flag_class = 'syn'), '') AS tool
    FROM p GROUP BY ALL
)
SELECT CASE WHEN s.src IS NOT NULL THEN
            format('{{}}.{{}}.{{}}.{{}}', s.src >> 24, (s.src >> 16) & 255, (s.src >> 8) & 255, s.src & 255)
       END AS src_ip,
       s.src6, s.first_seen, s.last_seen, s.packets, s.sightings, s.tool, t.ports
FROM per_source s LEFT JOIN top_ports t
  ON s.src IS NOT DISTINCT FROM t.src AND s.src6 IS NOT DISTINCT FROM t.src6
WHERE s.packets >= ?
ORDER BY s.packets DESC
"""


def _source_indicators(store_dir: Path, sensor: str, role: str, traffic_class: str, port: str,
                       min_packets: int) -> list[Indicator]:
    with PacketStore(store_dir) as store:
        con = connect(store)
        try:
            rows = con.execute(_SOURCE_SQL.format(traffic_class=traffic_class, port=port), [min_packets]).fetchall()
        except duckdb.Error as exc:
            raise ShareError(f"{store_dir}: cannot read packets ({str(exc).splitlines()[0]})") from None
        finally:
            con.close()
    out = []
    for src_ip, src6, first, last, packets, sightings, tool, ports in rows:
        if src_ip is not None:
            type_, value = "ipv4-addr", src_ip
        else:
            type_, value = "ipv6-addr", str(ipaddress.IPv6Address(bytes(src6)))
        out.append(Indicator(
            type=type_, value=value, roles=frozenset({role}), sightings=int(sightings),
            sources=frozenset({sensor}), first_seen=first.astimezone(UTC), last_seen=last.astimezone(UTC),
            tools=frozenset({tool}) if tool else frozenset(), ports=tuple(int(p) for p in ports or ()),
            packets=int(packets),
        ))
    return out


def scanner_indicators(store_dir: Path, sensor: str, min_packets: int = 1) -> list[Indicator]:
    """Every source of scan traffic: first/last seen, packets, hours seen, majority tool, top ports."""
    return _source_indicators(store_dir, sensor, "scanner", "scan", "dport", min_packets)


def dos_victim_indicators(store_dir: Path, sensor: str, min_packets: int = 1) -> list[Indicator]:
    """Every source of backscatter, i.e. a victim of a spoofed-source flood; ports are its attacked
    services (the backscatter's source ports)."""
    return _source_indicators(store_dir, sensor, "dos_victim", "backscatter", "sport", min_packets)


def survey_aggregates(store_dir: Path) -> list[SurveyAggregate]:
    """Vulnerable services per (protocol, tag, severity) over the latest conclusive observation of
    each service; an empty list when the store holds no survey."""
    from iotscope.survey.findings import CONCLUSIVE, latest_per_service
    from iotscope.survey.journal import SurveyJournal
    from iotscope.survey.report import store_findings

    if not (store_dir / SurveyJournal.FILENAME).is_file():
        return []
    latest = latest_per_service(store_findings(store_dir), CONCLUSIVE)
    con = duckdb.connect()
    try:
        con.register("latest", latest)
        rows = con.execute(
            "SELECT protocol, tag, severity, count(*), count(DISTINCT owner), min(ts), max(ts) FROM latest "
            "WHERE status = 'vulnerable' GROUP BY ALL ORDER BY 4 DESC, 1, 2").fetchall()
    finally:
        con.close()
    return [SurveyAggregate(protocol=p, tag=t, severity=s, services=int(n), owners=int(o), first_seen=f, last_seen=la)
            for p, t, s, n, o, f, la in rows]
