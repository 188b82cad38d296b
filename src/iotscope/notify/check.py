"""``iotscope check ADDRESS --store DIR``: what the store knows about one address, for an operator.

The operator's half of the device owners' self-check ("am I infected?"): was the address seen
scanning the darknet (which tool, which ports, when) or under attack, and did a survey find a
service on it with a default password; then what to do. The darknet part is the same query as
the alerts (:func:`iotscope.notify.daedalus.find_hosts` with the address as the only network),
the survey part the same rule as the reports (newest conclusive observation per service).
Reads only: the store is opened read-only and nothing is written.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from iotscope.notify.daedalus import HostEvidence, find_hosts, labelled_networks
from iotscope.notify.errors import NotifyError
from iotscope.store.packets import PacketStore
from iotscope.survey.addresses import canonical_address
from iotscope.survey.findings import CONCLUSIVE, latest_per_service
from iotscope.survey.journal import SurveyJournal
from iotscope.survey.report import store_findings

ADVICE = {
    "scan": ("Restart the device (most IoT malware lives in memory only), then at once change its password, "
             "update its firmware and turn off telnet/SSH/remote administration it does not need."),
    "backscatter": "The address answered a DoS attack with spoofed sources: ask the network's provider to look at it.",
    "vulnerable": "Change the default password to a long one only the owner knows, and update the firmware.",
    "contact": "If you cannot find the device, contact the ISP that assigned the address, with the times above.",
}


@dataclass
class CheckResult:
    address: str
    darknet: list[HostEvidence] = field(default_factory=list)
    #: Services whose newest conclusive observation is vulnerable (survey report rows).
    vulnerable: list[dict] = field(default_factory=list)
    surveyed: bool = False

    @property
    def advice(self) -> list[str]:
        keys = [h.role for h in self.darknet] + (["vulnerable"] if self.vulnerable else [])
        keys = list(dict.fromkeys(keys))
        return [ADVICE[k] for k in keys] + ([ADVICE["contact"]] if keys else [])


def check_address(store_dir: Path, address: str, *, days: float | None = None,
                  now: datetime | None = None) -> CheckResult:
    """Darknet evidence (in the last ``days``, all data by default) and survey findings for ``address``."""
    try:
        canonical = canonical_address(address)
    except ValueError:
        raise NotifyError(f"not an IP address: {address!r}") from None
    network = ipaddress.ip_network(canonical)
    result = CheckResult(canonical)
    since = None if days is None else (now or datetime.now().astimezone()) - timedelta(days=days)
    if (store_dir / "state.sqlite").is_file():
        store = PacketStore(store_dir, read_only=True)
        try:
            result.darknet = find_hosts(store, labelled_networks([(canonical, network)]), since=since)
        finally:
            store.close()
    if (store_dir / SurveyJournal.FILENAME).is_file():
        result.surveyed = True
        latest = latest_per_service(store_findings(store_dir), CONCLUSIVE)
        result.vulnerable = [r for r in latest.to_pylist() if r["ip"] == canonical and r["status"] == "vulnerable"]
    if not (store_dir / "state.sqlite").is_file() and not result.surveyed:
        raise NotifyError(f"{store_dir}: not an iotscope store (no darknet data and no survey)")
    return result
