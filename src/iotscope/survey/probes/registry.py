"""Which probe handles which protocol: ``probes()["telnet"]`` is the telnet module's ``probe``.

Why a function rather than a module-level dict: the protocol modules pull in asyncssh (~0.1 s),
which whoever only needs :class:`~iotscope.survey.probes.ProbeLimits` or
:class:`~iotscope.survey.probes.ProbeResult` (the CLI at start-up, the findings and report code)
should not pay for. The mapping is built on the first call, by plain imports, and is the same
read-only mapping afterwards. A new protocol: write its module, add it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from iotscope.survey.probes.outcome import Probe


@cache
def probes() -> Mapping[str, Probe]:
    """Every credential probe, by the protocol name :func:`~iotscope.survey.probes.identify_service` returns."""
    from iotscope.survey.probes import ftp, http, ssh, telnet

    return MappingProxyType({"telnet": telnet.probe, "ssh": ssh.probe, "http": http.probe, "ftp": ftp.probe})
