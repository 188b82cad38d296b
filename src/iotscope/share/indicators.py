"""Indicators: one per (type, value), from our sensors and from imported feeds, merged.

An indicator is what we share and block on: an address or domain, what it did (``roles``: a
scanner, a DoS victim, a C&C server, a malware-distribution site), how often it was seen
(``sightings``), by whom (``sources``: our sensor names and the names of imported feeds) and when.

Where each kind comes from, one library function each, so that a richer source can replace it
without touching scoring or exporters:

- :func:`scanner_indicators`: the analytics' per-source profiles (``sources``: classification,
  tools, country, AS) of the sources with scan packets, and their scanner events (``events``,
  traffic class ``scan``): one sighting per scanner event, first/last seen, packets and the
  most-hit ports from the events.
- :func:`dos_victim_indicators`: the victims of the ``attacks`` view (only backscatter that passed
  the attack thresholds of ``iotscope analyze``): one sighting per attack, ports its attacked services.
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
    #: ``sources.classification`` of our sensors' sources (``benign``, ``malicious``, ``unknown``); null for feeds.
    classification: str | None = None
    country: str | None = None
    asn: int | None = None

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


# Scanners: the sources with scan packets, profile from ``sources``, sightings/ports/time from their
# ``scan`` events. Tools: those of ``sources.tools`` that are the majority fingerprint of at least one
# of its scanner events (``sources.tools`` lists any fingerprint seen, so one chance IP ID of 54321 in
# an SSH scanner's SYNs would make it ZMap).
_SCANNERS_SQL = """
WITH e AS (
    SELECT src_ip, dport, first_ts, last_ts, packets, tool FROM events WHERE traffic_class = 'scan'
), per_source AS (
    SELECT src_ip, min(first_ts) AS first_seen, max(last_ts) AS last_seen, sum(packets)::BIGINT AS packets,
           count(*) AS sightings, list(DISTINCT tool) FILTER (WHERE tool IS NOT NULL) AS event_tools
    FROM e GROUP BY src_ip
), by_port AS (
    SELECT src_ip, dport, sum(packets) AS n FROM e WHERE dport IS NOT NULL GROUP BY ALL
), top_ports AS (
    SELECT src_ip, list(dport ORDER BY n DESC, dport)[1:5] AS ports FROM by_port GROUP BY ALL
)
SELECT s.src_ip, s.src6 IS NOT NULL AS v6, p.first_seen, p.last_seen, p.packets, p.sightings,
       list_intersect(s.tools, coalesce(p.event_tools, [])) AS tools, t.ports,
       s.classification, s.country, s.asn
FROM sources s JOIN per_source p ON p.src_ip = s.src_ip LEFT JOIN top_ports t ON t.src_ip = s.src_ip
WHERE s.scan_packets > 0 AND p.packets >= ?
ORDER BY p.packets DESC, s.src_ip
"""

# DoS victims: one sighting per attack; ports its attacked services, most attacks first.
_VICTIMS_SQL = """
WITH a AS (SELECT * FROM attacks), per_victim AS (
    SELECT victim_ip, any_value(victim6 IS NOT NULL) AS v6, min(first_ts) AS first_seen, max(last_ts) AS last_seen,
           sum(packets)::BIGINT AS packets, count(*) AS sightings FROM a GROUP BY victim_ip
), by_port AS (
    SELECT victim_ip, port, count(*) AS n FROM (SELECT victim_ip, unnest(victim_ports) AS port FROM a) GROUP BY ALL
), top_ports AS (
    SELECT victim_ip, list(port ORDER BY n DESC, port)[1:5] AS ports FROM by_port GROUP BY ALL
)
SELECT v.victim_ip, v.v6, v.first_seen, v.last_seen, v.packets, v.sightings, []::VARCHAR[] AS tools, t.ports,
       s.classification, s.country, s.asn
FROM per_victim v LEFT JOIN top_ports t ON t.victim_ip = v.victim_ip LEFT JOIN sources s ON s.src_ip = v.victim_ip
WHERE v.packets >= ?
ORDER BY v.packets DESC, v.victim_ip
"""


def _store_indicators(store_dir: Path, sensor: str, role: str, sql: str, min_packets: int) -> list[Indicator]:
    with PacketStore(store_dir, read_only=True) as store:
        con = connect(store)
        try:
            rows = con.execute(sql, [min_packets]).fetchall()
        except duckdb.Error as exc:
            raise ShareError(f"{store_dir}: cannot read the analytics views ({str(exc).splitlines()[0]})") from None
        finally:
            con.close()
    return [Indicator(
        type="ipv6-addr" if v6 else "ipv4-addr", value=str(ipaddress.ip_address(address)), roles=frozenset({role}),
        sightings=int(sightings), sources=frozenset({sensor}), first_seen=first.astimezone(UTC),
        last_seen=last.astimezone(UTC), tools=frozenset(tools or ()), ports=tuple(int(p) for p in ports or ()),
        packets=int(packets), classification=classification, country=country,
        asn=int(asn) if asn is not None else None,
    ) for address, v6, first, last, packets, sightings, tools, ports, classification, country, asn in rows]


def scanner_indicators(store_dir: Path, sensor: str, min_packets: int = 1) -> list[Indicator]:
    """Every source with scan packets: its ``sources`` profile (tools, classification, country, AS) and
    its scanner events (one sighting each; first/last seen, packets and top ports)."""
    return _store_indicators(store_dir, sensor, "scanner", _SCANNERS_SQL, min_packets)


def dos_victim_indicators(store_dir: Path, sensor: str, min_packets: int = 1) -> list[Indicator]:
    """Every victim of an attack in ``attacks`` (a spoofed-source flood whose backscatter passed the
    thresholds); one sighting per attack, ports its attacked services."""
    return _store_indicators(store_dir, sensor, "dos_victim", _VICTIMS_SQL, min_packets)


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
