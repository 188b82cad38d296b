"""Credential probes, one module per protocol, and service identification by handshake.

The survey core calls two things::

    protocol = await identify_service(scope, ip, port, limits)      # "telnet" | "ssh" | "ftp" | "http" | None
    result = await probes()[protocol](scope, ip, port, credentials, limits)  # -> ProbeResult

(``probes`` is in :mod:`iotscope.survey.probes.registry`; it imports the protocol modules on first use.)

Every probe checks the scope first (an out-of-scope target raises ``OutOfScopeError`` before any
socket exists), connects only through the scope's guarded openers, and always returns a
:class:`ProbeResult` within ``limits.deadline``: a hostile or broken device is ``status="error"``.
"""

from __future__ import annotations

from iotscope.survey.probes.identify import identify_service
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import Probe, ProbeResult, ProbeStatus

__all__ = ["Probe", "ProbeLimits", "ProbeResult", "ProbeStatus", "identify_service"]
