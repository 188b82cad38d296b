"""How much time, data and how many login attempts one device may cost the survey.

Every read the probes make is bounded twice: by ``read_timeout`` for the reply it waits for
(a whole reply, not the gap between bytes, so a tarpit dripping one byte a second still ends) and
by ``max_bytes`` (so a 10 MB banner or a stream of garbage ends too). ``deadline`` bounds the
whole probe of one device, all its services together (:mod:`iotscope.survey.probes.device`).
``max_attempts`` and ``attempt_delay`` keep the survey from locking accounts or loading the
device: NOTICE tried about 100 ID/password pairs per device, slowly.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Devices probed at the same time (each by one task, its services one after another, so that a
#: device never sees parallel logins from the survey).
DEFAULT_PROBE_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class ProbeLimits:
    #: Seconds to establish one TCP connection.
    connect_timeout: float = 3.0
    #: Seconds to wait for one expected reply (a prompt, a status line), whole reply included.
    #: Above 3 s because login(1) waits FAIL_DELAY (3 s) before saying "Login incorrect".
    read_timeout: float = 5.0
    #: Seconds for the whole probe of one device: all its services together, one after another
    #: (it protects the device, so three slow services share it). A service it cuts short is
    #: recorded ``incomplete`` with the pairs tried and not tried.
    deadline: float = 300.0
    #: Seconds for one service (``--service-deadline``), within what is left of ``deadline``: a
    #: slow login (login(1) waits 3 s after each failure) tries about 40 pairs in the default. A
    #: service it cuts short is ``incomplete``; ``--resume`` continues it with the pairs not tried.
    service_deadline: float = 120.0
    #: Bytes read for one reply before the device is declared hostile.
    max_bytes: int = 64 * 1024
    #: Login attempts (credential pairs tried) per service on one device in one run. The built-in
    #: corpus has about 680 pairs; the default tries the 100 likeliest for the device (its maker's
    #: defaults first when its banner names the maker, then Mirai's pairs by prevalence, then the
    #: rest). The rule: a service is ``not_vulnerable`` only when every listed pair was refused; one
    #: that refused all its capped attempts with pairs left is ``incomplete`` (``remaining`` says
    #: how many), and each ``--resume`` tries the next ``max_attempts`` of them. Lower it for device
    #: populations with lockout after few failures; shorten the list (``--credentials``) to settle
    #: services in one run.
    max_attempts: int = 100
    #: Seconds between two login attempts on one service. A device that locks its account after
    #: N failures within W seconds stays unlocked when attempt_delay > W / (N - 1); the default
    #: only spreads load. Raise it (or lower max_attempts) for populations known to lock.
    attempt_delay: float = 0.1
    #: Connections that probe one service of a device at the same time (``--per-device-connections``;
    #: a device's services are probed one after another, so this is per device too). They share
    #: the service's queue of pairs and its ``attempt_delay`` pace, so a second connection adds
    #: no login rate; it only overlaps the fail delays of slow logins (telnet, SSH, FTP; HTTP
    #: stays at one). Small devices lock up under parallel logins: keep it at 1 or 2.
    per_device_connections: int = 1
    #: Telnet option commands accepted before negotiation is declared endless.
    max_negotiation_rounds: int = 64
    #: Seconds of silence after a shell-prompt-looking tail ('#', '$', '>') that confirm it is the
    #: prompt (a shell stops talking when it waits for input; text that goes on was only a line
    #: of a banner or message of the day that looked like one).
    prompt_settle: float = 0.05
    #: Seconds to wait for a greeting when identifying a service (HTTP servers say nothing first).
    greeting_timeout: float = 1.5
    #: Seconds for the reverse DNS name of a device (the findings' ``hostname``); 0 turns the
    #: lookup off. Loopback addresses are looked up in /etc/hosts only.
    reverse_dns_timeout: float = 1.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "deadline", "service_deadline", "greeting_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"probe limit {name} must be positive")
        for name in ("max_bytes", "max_attempts", "max_negotiation_rounds", "per_device_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"probe limit {name} must be at least 1")
        if self.attempt_delay < 0 or self.prompt_settle < 0 or self.reverse_dns_timeout < 0:
            raise ValueError("probe delays must not be negative")
