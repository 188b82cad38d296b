"""Each vendor's record layout yields the same country, location and AS."""

from __future__ import annotations

from iotscope.enrich.records import autonomous_system, country_code, location

GEOLITE2 = {
    "country": {"iso_code": "DE", "names": {"en": "Germany"}},
    "location": {"latitude": 52.5, "longitude": 13.4},
}
IP_LOCATION_DB = {"country_code": "JP", "latitude": 35.6, "longitude": 139.7, "city": "Tokyo"}
IPINFO = {"country_code": "US", "lat": "37.4056", "lng": "-122.0775", "asn": "AS15169", "as_name": "Google LLC"}
GEOLITE2_ASN = {"autonomous_system_number": 3320, "autonomous_system_organization": "Deutsche Telekom AG"}


def test_country():
    assert [country_code(r) for r in (GEOLITE2, IP_LOCATION_DB, IPINFO, GEOLITE2_ASN)] == ["DE", "JP", "US", None]
    assert country_code({"registered_country": {"iso_code": "fr"}}) == "FR"
    assert country_code({"country_code": ""}) is None and country_code({"country_code": "USA"}) is None
    assert country_code("not a record") is None


def test_location():
    assert location(GEOLITE2) == (52.5, 13.4)
    assert location(IP_LOCATION_DB) == (35.6, 139.7)
    assert location(IPINFO) == (37.4056, -122.0775)
    assert location(GEOLITE2_ASN) is None
    assert location({"latitude": 91.0, "longitude": 0.0}) is None  # out of range: unknown, not clipped
    assert location({"lat": "n/a", "lng": "1"}) is None


def test_autonomous_system():
    assert autonomous_system(GEOLITE2_ASN) == (3320, "Deutsche Telekom AG")
    assert autonomous_system(IPINFO) == (15169, "Google LLC")
    assert autonomous_system({"asn": 64500}) == (64500, None)
    assert autonomous_system({"asn": 0}) is None and autonomous_system({"asn": "ASX"}) is None
    assert autonomous_system({"asn": True}) is None and autonomous_system(GEOLITE2) is None
