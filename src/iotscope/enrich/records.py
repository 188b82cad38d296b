"""Reading country, location and AS out of one MaxMind-format record, whatever its vendor's layout.

The .mmdb format fixes the tree, not the record: MaxMind's GeoLite2 and DB-IP's own files nest
``country.iso_code`` and ``location.latitude``; ip-location-db's files are flat
(``country_code``, ``latitude``); IPinfo's say ``country_code``, ``lat``/``lng`` (as strings) and
``asn`` as ``"AS15169"``. These functions accept each layout so a user can point iotscope at
whichever file they have.
"""

from __future__ import annotations

import math
from typing import Any


def _nested(record: dict, outer: str, inner: str) -> Any:
    value = record.get(outer)
    return value.get(inner) if isinstance(value, dict) else None


def country_code(record: Any) -> str | None:
    """ISO 3166-1 alpha-2 code of the record's country (registered country as a fallback)."""
    if not isinstance(record, dict):
        return None
    code = (
        _nested(record, "country", "iso_code")
        or record.get("country_code")
        or _nested(record, "registered_country", "iso_code")
        or (record.get("country") if isinstance(record.get("country"), str) else None)
    )
    if isinstance(code, str) and len(code) == 2 and code.isalpha():
        return code.upper()
    return None


def _coordinate(value: Any, limit: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and -limit <= number <= limit else None


def location(record: Any) -> tuple[float, float] | None:
    """(latitude, longitude) in degrees, or None when the record has no usable location."""
    if not isinstance(record, dict):
        return None
    lat = _nested(record, "location", "latitude")
    lon = _nested(record, "location", "longitude")
    if lat is None:
        lat = record.get("latitude", record.get("lat"))
        lon = record.get("longitude", record.get("lng", record.get("lon")))
    lat, lon = _coordinate(lat, 90.0), _coordinate(lon, 180.0)
    return None if lat is None or lon is None else (lat, lon)


def autonomous_system(record: Any) -> tuple[int, str | None] | None:
    """(AS number, AS name), or None when the record names no AS."""
    if not isinstance(record, dict):
        return None
    number = record.get("autonomous_system_number", record.get("asn"))
    name = record.get("autonomous_system_organization", record.get("as_name", record.get("as_org")))
    if isinstance(number, str):
        digits = number[2:] if number[:2].upper() == "AS" else number
        number = int(digits) if digits.isdigit() else None
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 1 << 32:
        return None
    return number, name if isinstance(name, str) and name else None
