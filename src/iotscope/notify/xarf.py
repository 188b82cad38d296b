"""X-ARF v4 JSON: one machine-readable report per host, attached to every alert.

Abuse desks import X-ARF into their ticketing; v4 (https://xarf.org, schemas in the
``xarf/xarf-spec`` repository, ``schemas/v4/xarf-core.json`` and ``types/connection-*.json``)
is one JSON object per incident. Fields written (all required ones of the core schema, plus the
ones its connection types require or recommend):

============================  ================================================================
``xarf_version``              ``"4.0.0"``
``report_id``                 UUID v4, new per report
``timestamp``                 the host's last packet (ISO 8601, UTC, ``Z``)
``reporter``, ``sender``      ``{org, contact, domain}`` from ``[sender]`` of orgs.toml
``source_identifier``         the host's address
``category``, ``type``        ``connection`` / ``port_scan`` for a scanning host;
                              ``connection`` / ``ddos`` for a backscatter host (it is the
                              *target* of the attack: ``destination_ip`` is the host too, and
                              the ``role:victim`` tag and description say so)
``protocol``                  ``tcp``, ``udp`` or ``icmp`` (the host's most common)
``source_port``               the first sample packet's source port; the master schema requires
                              it for connection reports, and an ICMP-only host has none to give
                              (its report then fails that one rule, knowingly)
``destination_port``          the port most hit (scans) or the attacked service (backscatter)
``first_seen``, ``last_seen`` first and last darknet packet
``evidence_source``           ``honeypot`` (a darknet sensor; the closest of the schema's values)
``evidence``                  a ``text/csv`` item: the sample packets, base64, with its sha256;
                              a ``text/plain`` item: the event ids, one per line
``tags``                      ``tool:<mirai|zmap|masscan>``, ``role:<scanner|victim>``
``description``               one sentence with packets, addresses hit and ports
============================  ================================================================

Checked with ``jsonschema`` against ``xarf-v4-master.json`` and the ``connection-port-scan`` and
``connection-ddos`` schemas of xarf-spec (commit 37820da, MIT): tests/notify/test_xarf.py does it with
the copy vendored in ``tests/notify/xarf_schemas`` (or the ``schemas/v4`` directory ``IOTSCOPE_XARF_SCHEMAS`` names).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import uuid

from iotscope.notify.daedalus import HostEvidence
from iotscope.notify.orgs import Sender

XARF_VERSION = "4.0.0"
SAMPLE_FIELDS = ("ts", "dst", "proto", "sport", "dport", "flags", "ttl", "ip_id", "seq", "win", "tool")


def xarf_report(host: HostEvidence, sender: Sender) -> dict:
    """The X-ARF v4 report of one host."""
    contact = {"org": sender.org, "contact": sender.email, "domain": sender.domain}
    scanning = host.role == "scan"
    protocol = next((p for p in host.protocols if p in ("tcp", "udp", "icmp")), "tcp")
    samples = samples_csv(host).encode()
    ports = ", ".join(str(p) for p in host.port_numbers) or "none"
    report = {
        "xarf_version": XARF_VERSION,
        "report_id": str(uuid.uuid4()),
        "timestamp": _z(host.last_seen),
        "reporter": contact,
        "sender": contact,
        "source_identifier": host.host,
        "category": "connection",
        "type": "port_scan" if scanning else "ddos",
        "protocol": protocol,
        "first_seen": _z(host.first_seen),
        "last_seen": _z(host.last_seen),
        "evidence_source": "honeypot",
        "evidence": [{
            "content_type": "text/csv",
            "description": f"first {len(host.samples)} of {host.packets} packets the darknet sensor received",
            "payload": base64.b64encode(samples).decode(),
            "hash": "sha256:" + hashlib.sha256(samples).hexdigest(),
            "size": len(samples),
        }] + _event_ids_evidence(host),
        "tags": [f"role:{'scanner' if scanning else 'victim'}"] + ([f"tool:{host.tool}"] if host.tool else []),
        "description": (
            f"{host.host} sent {host.packets} packets to {host.targets} unused (darknet) addresses"
            + (f", scanning ports {ports}" if scanning else
               f": replies to spoofed packets, i.e. it is under a DoS attack on port(s) {ports}")
        )[:1000],
    }
    source_port = next((s["sport"] for s in host.samples if s.get("sport")), None)
    if source_port:
        report["source_port"] = source_port
    if host.port_numbers and host.port_numbers[0] > 0:
        report["destination_port"] = host.port_numbers[0]
    if not scanning:
        report["destination_ip"] = host.host
    return report


def _event_ids_evidence(host: HostEvidence) -> list[dict]:
    """The ids of the events behind the report (one per line), so that the recipient can quote them."""
    if not host.event_ids:
        return []
    text = "\n".join(host.event_ids).encode() + b"\n"
    return [{
        "content_type": "text/plain",
        "description": f"ids of the {len(host.event_ids)} darknet "
                       f"{'scanner events' if host.role == 'scan' else 'DoS attacks'} behind this report",
        "payload": base64.b64encode(text).decode(),
        "hash": "sha256:" + hashlib.sha256(text).hexdigest(),
        "size": len(text),
    }]


def samples_csv(host: HostEvidence) -> str:
    """The host's sample packets as CSV (the evidence payload, also shown in the mail)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SAMPLE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for sample in host.samples:
        writer.writerow({k: "" if sample.get(k) is None else sample[k] for k in SAMPLE_FIELDS})
    return buffer.getvalue()


def _z(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
