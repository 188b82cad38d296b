"""An emulated IoT device fleet on loopback: telnet, SSH, HTTP and FTP services with real
protocol behaviour, known credentials and a ground truth, for the survey's tests, benchmark and demo.

    spec = default_fleet("127.0.3.0/24", count=20, seed=1)
    async with run_fleet(spec) as fleet:
        ...                       # survey 127.0.3.0/24, compare with fleet.ground_truth()
"""

from iotscope.simulate.devices.fleet import (
    KINDS,
    PROTOCOLS,
    DeviceSpec,
    FleetError,
    FleetSpec,
    ServiceSpec,
    default_fleet,
    loopback_network,
    write_ground_truth,
)
from iotscope.simulate.devices.runner import Fleet, FleetThread, run_fleet, serve_fleet

__all__ = [
    "KINDS",
    "PROTOCOLS",
    "DeviceSpec",
    "Fleet",
    "FleetError",
    "FleetSpec",
    "FleetThread",
    "ServiceSpec",
    "default_fleet",
    "loopback_network",
    "run_fleet",
    "serve_fleet",
    "write_ground_truth",
]
