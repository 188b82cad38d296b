"""Credential probes, one module per protocol, and service identification by handshake.

The survey core calls two things::

    protocol = await identify_service(scope, ip, port, limits)      # "telnet" | "ssh" | "ftp" | "http" | None
    result = await PROBES[protocol](scope, ip, port, credentials, limits)   # -> ProbeResult

Every probe checks the scope first (an out-of-scope target raises ``OutOfScopeError`` before any
socket exists), connects only through the scope's guarded openers, and always returns a
:class:`ProbeResult` within ``limits.deadline``: a hostile or broken device is ``status="error"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iotscope.survey.probes.identify import identify_service
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import Probe, ProbeResult, ProbeStatus

if TYPE_CHECKING:
    PROBES: dict[str, Probe]


def __getattr__(name: str) -> dict[str, Probe]:
    """``PROBES``, built on first use: the protocol modules pull in asyncssh (~0.1 s), which
    whoever only needs :class:`ProbeLimits` or :class:`ProbeResult` (the CLI at start-up, the
    findings and report code) should not pay for."""
    if name != "PROBES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from iotscope.survey.probes import ftp, http, ssh, telnet

    probes: dict[str, Probe] = {"telnet": telnet.probe, "ssh": ssh.probe, "http": http.probe, "ftp": ftp.probe}
    globals()["PROBES"] = probes
    return probes

__all__ = ["PROBES", "Probe", "ProbeLimits", "ProbeResult", "ProbeStatus", "identify_service"]
