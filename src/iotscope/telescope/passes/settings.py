"""The knobs of the analysis passes: one frozen, validated dataclass, stored with the analysis.

Defaults are the published ones: Merit ORION's darknet-events idle timeout of 600 s for events;
CAIDA corsaro3's dos plugin (``libcorsaro/plugins/corsaro_dos.c``: ``CORSARO_DOS_DEFAULT_VECTOR_MIN_PACKETS``
25, ``..._MIN_DURATION`` 60 s, ``..._MIN_PPM`` 30 packets in a ``..._PPM_WINDOW_SIZE`` of 60 s that
slides by ``..._PPM_WINDOW_PRECISION`` 10 s) for attacks; NICTER's 10-minute per-port series.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, fields

from iotscope.errors import IotscopeError


class AnalysisSettingsError(IotscopeError, ValueError):
    """An analysis setting is impossible (negative timeout, malformed darknet prefix); one line."""


@dataclass(frozen=True)
class AnalysisSettings:
    """What the passes need to know; every value is checked on construction."""

    #: An event ends when its source sends nothing for longer than this (a gap of exactly this
    #: long continues the event).
    event_idle_s: float = 600.0
    #: An attack vector ends when its victim's backscatter pauses longer than this (see attacks.py).
    attack_timeout_s: float = 300.0
    attack_min_packets: int = 25
    attack_min_duration_s: float = 60.0
    attack_min_window_packets: int = 30
    attack_window_s: int = 60
    attack_window_slide_s: int = 10
    #: Width of a ``port_series`` bucket; it must divide an hour so that no bucket straddles two.
    series_bucket_s: int = 600

    def __post_init__(self) -> None:
        for name in ("event_idle_s", "attack_timeout_s", "attack_window_s", "attack_window_slide_s", "series_bucket_s"):
            value = getattr(self, name)
            if not value > 0:
                raise AnalysisSettingsError(f"--{_flag(name)} must be > 0, got {value}")
        for name in ("attack_min_packets", "attack_min_duration_s", "attack_min_window_packets"):
            if getattr(self, name) < 0:
                raise AnalysisSettingsError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if 3600 % self.series_bucket_s:
            raise AnalysisSettingsError(f"--series-bucket must divide 3600 s, got {self.series_bucket_s}")
        if self.attack_window_s % self.attack_window_slide_s or 3600 % self.attack_window_slide_s:
            raise AnalysisSettingsError("--attack-window must be a multiple of --attack-window-slide, which must divide 3600")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> AnalysisSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


def _flag(name: str) -> str:
    return name.removesuffix("_s").replace("_", "-")


@dataclass(frozen=True)
class Darknet:
    """The monitored IPv4 prefix: its size scales observed backscatter rates to the whole Internet."""

    prefix: str
    size: int
    inferred: bool = False  # True: derived from the destinations seen, not given by the user

    @classmethod
    def parse(cls, text: str) -> Darknet:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as exc:
            raise AnalysisSettingsError(f"--darknet: not a CIDR prefix: {text!r} ({exc})") from None
        if net.version != 4:
            raise AnalysisSettingsError(f"--darknet: an IPv4 prefix is needed for the rate estimate, got {text!r}")
        return cls(str(net), net.num_addresses)

    @classmethod
    def covering(cls, lowest: int, highest: int) -> Darknet:
        """The smallest prefix that holds every destination seen (the default when none is given)."""
        length = 32 - (lowest ^ highest).bit_length()
        net = ipaddress.ip_network((lowest >> (32 - length) << (32 - length), length))
        return cls(str(net), net.num_addresses, inferred=True)
