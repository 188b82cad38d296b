"""Slow logins: time to find a late weak pair, and attempts per device, iotscope vs hydra.

Real vsftpd daemons (Debian package; PAM, ``delay_failed_login=1``, ``max_login_fails=3``), one per
loopback "device", each with a throwaway account that exists only in a private mount namespace
(:mod:`iotscope.simulate.devices.real_daemons`, as in ``tests/survey/test_real_daemons.py``; needs root
and ``unshare -m``). Both tools
get the same list, in the same order: wrong passwords for the account first, the weak pair last,
and the same parallelism per device: iotscope ``--per-device-connections N``, hydra ``-t N``
(``-T`` devices x N, ``-f`` per device). Attempts are counted by the devices (vsftpd logs every
PASS). iotscope tries FTP's anonymous login first (one PASS more per device). Only 127.0.0.0/8.

    sudo .venv/bin/python bench/survey/slow_logins.py      # about 1.5 minutes; bench/out/survey_slow.json
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iotscope.simulate.devices.real_daemons import (
    ACCOUNT,
    WEAK_PASSWORD,
    accounts,
    free_port,
    in_namespace,
    missing_prerequisite,
    stop_daemons,
    vsftpd_command,
    wait_listening,
)
from iotscope.survey.credentials import Credential, load_builtin
from iotscope.survey.probes import ProbeLimits
from iotscope.survey.probes.registry import probes
from iotscope.survey.scope import AuthorizedRange, Scope

ROOT = Path(__file__).resolve().parents[2]
#: Every device is a daemon on 127.0.0.0/8 (loopback needs the special-purpose flag).
LOOPBACK_SCOPE = Scope(
    "bench scope", (AuthorizedRange(ipaddress.ip_network("127.0.0.0/8"), "bench", "loopback only", True),)
)


def _passes(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if '"PASS ' in line) if log.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--wrong", type=int, default=11, help="wrong pairs before the weak one")
    parser.add_argument("--connections", default="1,2", help="per-device parallelism values to run")
    args = parser.parse_args()
    if (why := missing_prerequisite()) or shutil.which("vsftpd") is None or shutil.which("hydra") is None:
        print(f"slow_logins: cannot run: {why or 'vsftpd and hydra must be installed'}", file=sys.stderr)
        return 2
    pairs = [Credential(f"wrong-{n}", ACCOUNT, f"not-it-{n}", "bench") for n in range(1, args.wrong + 1)]
    pairs.append(next(c for c in load_builtin() if c.id == "mirai-61"))
    work = Path(tempfile.mkdtemp(prefix="iotscope-bench-slow-"))
    work.chmod(0o755)  # vsftpd enters the account's home after the password
    processes: list[subprocess.Popen] = []
    rows = []
    try:
        passwd, shadow = accounts(work, WEAK_PASSWORD, home=work / "home")
        devices = []
        for n in range(args.devices):
            host, directory = f"127.0.0.{81 + n}", work / f"device-{n}"
            directory.mkdir()
            port = free_port(host)
            processes.append(in_namespace(passwd, shadow, vsftpd_command(directory, port, host, log_commands=True)))
            wait_listening(host, port, processes[-1])
            devices.append((host, port, directory / "vsftpd.log"))
        (work / "pairs.txt").write_text("".join(f"{c.username}:{c.password}\n" for c in pairs))
        (work / "targets.txt").write_text("".join(f"{host}:{port}\n" for host, port, _ in devices))
        for lanes in sorted({int(v) for v in args.connections.split(",")}):
            limits = ProbeLimits(read_timeout=8.0, attempt_delay=0.0, per_device_connections=lanes)
            before = [_passes(log) for _, _, log in devices]

            async def survey(limits: ProbeLimits = limits):
                scope = LOOPBACK_SCOPE
                return await asyncio.gather(*(probes()["ftp"](scope, h, p, pairs, limits) for h, p, _ in devices))

            started = time.monotonic()
            results = asyncio.run(survey())
            seconds = time.monotonic() - started
            attempts = [_passes(log) - b for (_, _, log), b in zip(devices, before)]
            found = sum(r.credential_id == "mirai-61" for r in results)
            rows.append({"tool": f"iotscope --per-device-connections {lanes}", "lanes": lanes, "seconds": seconds,
                         "found": found, "attempts": attempts, "connections": [r.connections for r in results]})
            before = [_passes(log) for _, _, log in devices]
            command = ["hydra", "-I", "-C", str(work / "pairs.txt"), "-t", str(lanes), "-T", str(lanes * len(devices)),
                       "-f", "-M", str(work / "targets.txt"), "ftp"]
            started = time.monotonic()
            hydra = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
            seconds = time.monotonic() - started
            attempts = [_passes(log) - b for (_, _, log), b in zip(devices, before)]
            found = len(set(re.findall(rf"host: (\S+)\s+login: {ACCOUNT}\s+password: {WEAK_PASSWORD}$",
                                       hydra.stdout, re.MULTILINE)))
            rows.append({"tool": f"hydra -t {lanes}", "lanes": lanes, "seconds": seconds, "found": found,
                         "attempts": attempts, "connections": None, "hydra_output": hydra.stdout[-2000:]})
    finally:
        stop_daemons(processes)
        shutil.rmtree(work, ignore_errors=True)
    print("| tool | devices | list | seconds to find all | found | attempts per device (median, max) | connections per device |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        connections = "" if row["connections"] is None else f"{statistics.median(row['connections']):g}"
        print(f"| {row['tool']} | {args.devices} | {len(pairs)} | {row['seconds']:.1f} | {row['found']} | "
              f"{statistics.median(row['attempts']):g}, {max(row['attempts'])} | {connections} |")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "survey_slow.json").write_text(json.dumps({"devices": args.devices, "list": len(pairs), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
