"""Tiny MaxMind-format files written with mmdb-writer, for tests that need exact, known answers."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

#: (network, country, lat, lon) of the test city file, GeoLite2 layout. Between them lie gaps.
CITY_NETWORKS = [
    ("0.0.0.0/30", "AQ", -75.25, 0.5),
    ("1.0.0.0/24", "AU", -33.5, 151.25),
    ("1.0.1.0/24", "CN", 26.0625, 119.3125),
    ("8.8.8.0/24", "US", 37.75, -122.5),
    ("81.2.69.160/27", "GB", 51.5, -0.125),
    ("203.0.113.0/25", "JP", 35.6875, 139.75),
    ("255.255.255.0/24", "ZZ", 0.0, 0.0),
]
#: (network, asn, name) of the test ASN file, GeoLite2-ASN layout; overlaps the city ranges partly.
ASN_NETWORKS = [
    ("1.0.0.0/23", 13335, "Cloudflare, Inc."),
    ("8.8.0.0/16", 15169, "Google LLC"),
    ("81.2.69.0/24", 20712, "Andrews & Arnold Ltd"),
    ("255.255.255.255/32", 64512, "Private Use AS"),
]


def write_city_mmdb(path: Path) -> Path:
    """A GeoLite2-City-shaped IPv6 database with IPv4 mapped in, like MaxMind's own files."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-City", description="test city db")
    for network, country, lat, lon in CITY_NETWORKS:
        if country == "ZZ":  # a record without country or location: must read as unknown
            writer.insert_network(IPSet([network]), {"city": {"names": {"en": "Nowhere"}}})
            continue
        writer.insert_network(
            IPSet([network]),
            {"country": {"iso_code": country}, "location": {"latitude": lat, "longitude": lon}},
        )
    writer.to_db_file(str(path))
    return path


def write_asn_mmdb(path: Path) -> Path:
    """A GeoLite2-ASN-shaped IPv4 database."""
    writer = MMDBWriter(ip_version=4, database_type="Test-ASN", description="test asn db", int_type="u32")
    for network, asn, name in ASN_NETWORKS:
        writer.insert_network(
            IPSet([network]), {"autonomous_system_number": asn, "autonomous_system_organization": name}
        )
    writer.to_db_file(str(path))
    return path
