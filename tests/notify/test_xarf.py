"""X-ARF v4 reports: the core schema's required fields and formats, checked here by hand, and
validated against the published schemas themselves: xarf-spec's ``schemas/v4`` vendored in
``xarf_schemas/`` (MIT, source commit in ``xarf_schemas/SOURCE.md``), or the directory
``IOTSCOPE_XARF_SCHEMAS`` names."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from datetime import datetime
from pathlib import Path

import jsonschema
import referencing

from iotscope.notify.daedalus import HostEvidence, find_org_hosts
from iotscope.notify.orgs import OrgCatalog
from iotscope.notify.xarf import xarf_report
from iotscope.store.packets import PacketStore
from tests.notify.conftest import Darknet, org_entry, write_orgs

VENDORED_SCHEMAS = Path(__file__).with_name("xarf_schemas") / "v4"
TAG = re.compile(r"^[a-z0-9][a-z0-9_+-]*:[a-z0-9][a-z0-9_+-]*$")


def reports(darknet: Darknet, tmp_path: Path) -> list[tuple[HostEvidence, dict]]:
    rows = darknet.sources("mirai", 2) + darknet.sources("backscatter_victim", 2) + darknet.sources("icmp_prober", 1)
    catalog = OrgCatalog.load(write_orgs(tmp_path / "orgs.toml", [
        org_entry("A", ["a@a.example"], [f"{r['ip']}/32" for r in rows])]))
    with PacketStore(darknet.store, read_only=True) as store:
        hosts = find_org_hosts(store, catalog)
    assert len(hosts) == len(rows)
    return [(h, xarf_report(h, catalog.sender)) for h in hosts]


def test_core_fields_and_evidence(darknet: Darknet, tmp_path: Path) -> None:
    for host, report in reports(darknet, tmp_path):
        assert re.fullmatch(r"4\.[0-9]+\.[0-9]+", report["xarf_version"])
        assert uuid.UUID(report["report_id"]).version == 4
        for key in ("timestamp", "first_seen", "last_seen"):
            datetime.fromisoformat(report[key])
        for who in ("reporter", "sender"):
            assert set(report[who]) == {"org", "contact", "domain"}
        assert report["category"] == "connection" and report["type"] in ("port_scan", "ddos")
        assert report["protocol"] in ("tcp", "udp", "icmp")
        assert all(TAG.match(tag) for tag in report["tags"]) and len(report["description"]) <= 1000
        item, ids = report["evidence"]
        assert ids["content_type"] == "text/plain" and host.event_ids
        assert base64.b64decode(ids["payload"]).decode().split() == list(host.event_ids)
        payload = base64.b64decode(item["payload"])
        assert item["hash"] == "sha256:" + hashlib.sha256(payload).hexdigest() and item["size"] == len(payload)
        assert payload.decode().startswith("ts,dst,proto")
        if report["type"] == "ddos":
            assert report["destination_ip"] == report["source_identifier"] and "role:victim" in report["tags"]
        for port in ("source_port", "destination_port"):
            assert port not in report or 1 <= report[port] <= 65535


def test_against_the_published_schemas(darknet: Darknet, tmp_path: Path) -> None:
    directory = os.environ.get("IOTSCOPE_XARF_SCHEMAS") or VENDORED_SCHEMAS
    documents = [json.loads(p.read_text()) for p in Path(directory).rglob("*.json")]
    registry = referencing.Registry().with_resources(
        (d["$id"], referencing.Resource.from_contents(d)) for d in documents if "$id" in d)
    by_id = {d["$id"]: d for d in documents if "$id" in d}
    assert len(by_id) > 30  # the master, the core and every type schema were found
    for _, report in reports(darknet, tmp_path):
        for schema_id in ("https://xarf.org/schemas/v4/xarf-v4-master.json",
                          f"https://xarf.org/schemas/v4/types/connection-{report['type'].replace('_', '-')}.json"):
            validator = jsonschema.Draft202012Validator(by_id[schema_id], registry=registry,
                                                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            errors = [e.message for e in validator.iter_errors(report)]
            if "source_port" not in report:  # ICMP-only hosts have no port to give
                errors = [e for e in errors if "source_port" not in e]
            assert errors == [], (schema_id, report["source_identifier"])
