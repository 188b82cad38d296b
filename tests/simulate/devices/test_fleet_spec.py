"""Fleet descriptions: loopback-only, deterministic by seed, ground truth consistent with the list."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from iotscope.simulate.devices import (
    KINDS,
    DeviceSpec,
    FleetError,
    FleetSpec,
    ServiceSpec,
    default_fleet,
    write_ground_truth,
)
from iotscope.survey.credentials import load_builtin


@pytest.mark.parametrize("bind", ["10.0.0.0/24", "0.0.0.0/0", "127.0.0.0/7", "192.0.2.1", "::1/128", "nonsense"])
def test_bind_outside_loopback_refused(bind):
    with pytest.raises(FleetError, match="127.0.0.0/8|CIDR"):
        default_fleet(bind, count=1)


def test_device_outside_loopback_refused():
    device = DeviceSpec("192.0.2.10", "no-password", "openwrt-router", (ServiceSpec(23, "telnet"),))
    with pytest.raises(FleetError, match="refusing to bind 192.0.2.10"):
        FleetSpec(devices=(device,))


def test_same_seed_same_fleet_other_seed_other_fleet():
    assert default_fleet("127.3.0.0/24", 30, seed=5) == default_fleet("127.3.0.0/24", 30, seed=5)
    assert default_fleet("127.3.0.0/24", 30, seed=5) != default_fleet("127.3.0.0/24", 30, seed=6)


def test_mix_covers_every_kind_protocol_and_nonstandard_ports():
    spec = default_fleet("127.3.0.0/24", 20, seed=1)
    truth = spec.ground_truth()
    assert {device.kind for device in spec.devices} == set(KINDS)
    vulnerable = {(row["protocol"], row["credential_id"] is None) for row in truth if row["vulnerable"]}
    assert {("telnet", False), ("ssh", False), ("http", False), ("telnet", True), ("ftp", True)} <= vulnerable
    ports = {(row["protocol"], row["port"]) for row in truth}
    assert {("telnet", 2323), ("telnet", 8023), ("http", 8080), ("http", 81)} <= ports
    auth = {s.http_auth for d in spec.devices for s in d.services if s.protocol == "http" and s.username}
    assert auth == {"basic", "digest"}
    assert "127.3.0.1" not in {device.ip for device in spec.devices}


def test_vulnerable_services_use_the_builtin_pair_they_name():
    pairs = {c.id: (c.username, c.password) for c in load_builtin()}
    spec = default_fleet("127.3.0.0/24", 60, seed=2)
    checked = 0
    for device in spec.devices:
        for service in device.services:
            if service.credential_id is not None:
                assert pairs[service.credential_id] == (service.username, service.password)
                checked += 1
            elif device.kind == "hardened":
                assert (service.username, service.password) not in pairs.values()
                assert not service.vulnerable and service.lockout_after == 10
    assert checked > 20


def test_ground_truth_expectations():
    truth = default_fleet("127.3.0.0/24", 20, seed=1).ground_truth()
    for row in truth:
        expected = {"default-credential": "finding", "no-password": "finding", "hardened": "none",
                    "tarpit": "error", "hostile": "error"}[row["kind"]]
        assert row["expected"] == expected
        assert row["vulnerable"] == (expected == "finding")
        if row["kind"] == "no-password" or row["protocol"] == "ftp":
            assert row["credential_id"] is None


def test_fleet_too_big_for_range_and_localhost_never_used():
    with pytest.raises(FleetError, match="room for 1 devices"):
        default_fleet("127.0.0.0/30", 2)  # .1 is the machine's own loopback, .2 is the only host
    assert [d.ip for d in default_fleet("127.0.0.0/30", 1).devices] == ["127.0.0.2"]


def test_ground_truth_files_round_trip(tmp_path):
    truth = default_fleet("127.3.0.0/24", 10, seed=3).ground_truth()
    json_file = write_ground_truth(truth, tmp_path / "truth.json")
    assert json.loads(json_file.read_text()) == truth
    parquet_file = write_ground_truth(truth, tmp_path / "truth.parquet")
    assert pq.read_table(parquet_file).to_pylist() == truth
    with pytest.raises(FleetError, match=".json or .parquet"):
        write_ground_truth(truth, tmp_path / "truth.txt")
