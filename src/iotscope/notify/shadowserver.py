"""Shadowserver-style CSV: the table an abuse desk's scripts already read, one row per host.

Shadowserver's daily reports set the convention (``timestamp, ip, port, protocol, hostname, tag,
..., severity``); alerts follow it with the darknet-specific columns after those. The survey's
findings use :data:`iotscope.survey.report.REPORT_FIELDS`, the same convention. Cells a
spreadsheet would run as a formula get a leading quote when written (:func:`iotscope.spreadsheet.csv_text`):
host names, tags and banners can come from the hosts themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from iotscope.notify.daedalus import HostEvidence
from iotscope.survey.report import REPORT_TIME_FORMAT

ALERT_FIELDS = (
    "timestamp", "ip", "port", "protocol", "hostname", "tag", "severity", "role", "first_seen", "last_seen",
    "packets", "darknet_addresses", "ports", "tool", "organization",
    "event_ids",
)
SEVERITY = {"scan": "high", "backscatter": "medium"}


def alert_rows(hosts: Iterable[HostEvidence]) -> list[dict]:
    """One CSV row per host."""
    return [{
        "timestamp": h.last_seen.strftime(REPORT_TIME_FORMAT), "ip": h.host,
        "port": h.port_numbers[0] if h.port_numbers else None, "protocol": h.protocols[0] if h.protocols else None,
        "hostname": None, "tag": h.tool or ("scan" if h.role == "scan" else "backscatter"),
        "severity": SEVERITY[h.role], "role": h.role, "first_seen": h.first_seen.strftime(REPORT_TIME_FORMAT),
        "last_seen": h.last_seen.strftime(REPORT_TIME_FORMAT), "packets": h.packets,
        "darknet_addresses": h.targets, "ports": " ".join(map(str, h.port_numbers)), "tool": h.tool,
        "organization": h.org, "event_ids": " ".join(h.event_ids),
    } for h in hosts]
