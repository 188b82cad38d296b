"""What a darknet simulation is asked for: the settings, their validation, and the traffic kinds.

Its own module because every part of the simulator reads it (the source plan, the packet
generator, the ground truth) and the CLI builds it; see :mod:`iotscope.simulate.darknet` for what
the kinds look like on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from iotscope.errors import IotscopeError
from iotscope.simulate.addresses import prefix_bounds

DEFAULT_DARKNET = "198.18.0.0/15"
DEFAULT_START = datetime(2016, 9, 1, tzinfo=UTC)

KINDS: tuple[str, ...] = (
    "mirai", "iot_worm", "ssh_scanner", "zmap", "masscan", "pc_scanner",
    "backscatter_victim", "udp_prober", "icmp_prober", "noise",
)
DEFAULT_MIX: Mapping[str, float] = {
    "mirai": 0.50, "iot_worm": 0.16, "ssh_scanner": 0.04, "zmap": 0.05, "masscan": 0.04,
    "pc_scanner": 0.06, "backscatter_victim": 0.06, "udp_prober": 0.04, "icmp_prober": 0.03,
    "noise": 0.02,
}


class SimulationError(IotscopeError, ValueError):
    """A simulation was asked for with impossible settings; the message is one line for the user."""


@dataclass(frozen=True)
class DarknetConfig:
    """What to simulate. The defaults give a reproducible hour toward the RFC 2544 benchmarking /15."""

    packets: int = 1_000_000
    hours: float = 1.0
    seed: int = 0
    darknet: str = DEFAULT_DARKNET
    start: datetime = DEFAULT_START
    outbreak: bool = False
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    outbreak_growth: float = 30.0  # how many times more new Mirai infections per second at the end than at the start
    #: Fraction of the run before the first infection of the outbreak (0 <= x < 1). ``None`` (the
    #: default, and what every earlier capture used) is 0: infections begin with the run, so there
    #: is no pre-outbreak baseline to detect a change against; set it (e.g. 0.5) for a run with one.
    #: A dated outbreak is the 2016 one: the bots active before it scan 23/TCP only (Mirai's
    #: predecessors), the outbreak's bots add 2323/TCP (1 in 10 SYNs), so 2323 rises from almost nothing.
    outbreak_start: float | None = None

    def validate(self) -> tuple[int, int]:
        """Check every setting; return the darknet's ``(first address, size)``."""
        if self.packets < 0:
            raise SimulationError(f"packets must be >= 0, got {self.packets}")
        if not self.hours > 0:
            raise SimulationError(f"hours must be > 0, got {self.hours}")
        unknown = set(self.mix) - set(KINDS)
        if unknown:
            raise SimulationError(f"unknown traffic kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        if any(share < 0 for share in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise SimulationError("traffic mix shares must be >= 0 and not all 0")
        if self.outbreak_growth < 1:
            raise SimulationError(f"outbreak_growth must be >= 1, got {self.outbreak_growth}")
        if self.outbreak_start is not None and not 0 <= self.outbreak_start < 1:
            raise SimulationError(f"outbreak_start must be in [0, 1), got {self.outbreak_start}")
        try:
            return prefix_bounds(self.darknet)
        except ValueError as exc:
            raise SimulationError(f"bad darknet prefix: {exc}") from None

    @property
    def start_us(self) -> int:
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=UTC)
        return int(round(start.timestamp() * 1_000_000))

    @property
    def duration_us(self) -> int:
        return max(1, int(round(self.hours * 3600e6)))

    @property
    def outbreak_onset_us(self) -> int:
        """µs after the run's start when the outbreak's first bot is infected (0 without ``outbreak_start``)."""
        return int(round((self.outbreak_start or 0.0) * self.duration_us))

    @property
    def outbreak_start_us(self) -> int | None:
        """Epoch µs of the outbreak's first infection, ``None`` when ``outbreak`` is off."""
        return self.start_us + self.outbreak_onset_us if self.outbreak else None
