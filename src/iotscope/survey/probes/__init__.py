"""Credential probes, one module per protocol, and service identification by handshake.

The survey core calls two things::

    protocol = await identify_service(scope, ip, port, limits)      # "telnet" | "ssh" | "ftp" | "http" | None
    result = await PROBES[protocol](scope, ip, port, credentials, limits)   # -> ProbeResult

Every probe checks the scope first (an out-of-scope target raises ``OutOfScopeError`` before any
socket exists), connects only through the scope's guarded openers, and always returns a
:class:`ProbeResult` within ``limits.deadline``: a hostile or broken device is ``status="error"``.
"""

from __future__ import annotations

from iotscope.survey.probes import ftp, http, ssh, telnet
from iotscope.survey.probes.identify import identify_service
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import Probe, ProbeResult, ProbeStatus

PROBES: dict[str, Probe] = {
    "telnet": telnet.probe,
    "ssh": ssh.probe,
    "http": http.probe,
    "ftp": ftp.probe,
}

__all__ = ["PROBES", "Probe", "ProbeLimits", "ProbeResult", "ProbeStatus", "identify_service"]
