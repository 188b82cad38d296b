"""Survey benchmark: iotscope's connect sweep against ``nmap -sT`` and its credential probes
against ``hydra``, on one emulated loopback fleet, in one run.

The fleet (``default_fleet`` on a free 127.X.Y.0/22, lockouts off) runs in this process on its
own thread, so its per-service counters tell how many login attempts really reached a device:
attempts per second are counted by the devices, the same way for every tool. Only 127.0.0.0/8 is
ever contacted.

* Sweep: the /20 around the fleet's /22 x the fleet's ports plus ports nobody listens on (a closed loopback port answers
  with a RST at once). Correct = the open (ip, port) set equals the kernel's listening table.
* Credentials: the fleet's telnet, HTTP (Basic and Digest) and SSH services that have a login
  (default-credential and hardened devices), iotscope's built-in list exported to hydra's
  ``-C user:pass`` file in iotscope's attempt order. iotscope stops at the first success per
  service and tries one login at a time per device, so hydra gets ``-f`` and ``-t``/``-T`` of the
  same order. Correct = the (ip, port, credential id) found equals the fleet's ground truth.

    .venv/bin/python bench/survey/run.py            # about 2 minutes; writes bench/out/survey.json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shlex
import signal
import socket
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Run, machine, measure  # noqa: E402

from iotscope.simulate.devices import FleetError, FleetSpec, FleetThread, default_fleet  # noqa: E402
from iotscope.survey.credentials import attempt_order, load_builtin  # noqa: E402
from iotscope.survey.probes import ProbeLimits  # noqa: E402

HERE = Path(__file__).resolve().parent
#: Ports no fleet device uses: most of a real sweep is closed ports.
CLOSED_PORTS = (25, 53, 110, 443, 554, 1723, 5555, 7547, 8443, 37777)
#: The credential phase: services with a real login, by the name hydra gives the protocol.
HYDRA_SERVICES = {"telnet": ["telnet"], "http": ["http-get", "/"], "ssh": ["ssh"]}
LOGIN_KINDS = ("default-credential", "hardened")
#: Seconds any one peer or iotscope process may take before ``timeout`` ends it (and its children).
PROCESS_LIMIT = 60
_TIMED_OUT = 124  # timeout(1)'s exit status
_HYDRA_RESULT = re.compile(r"^\[(\d+)\]\[[\w-]+\] host: (\S+)   login: (.*?)(?:   password: (.*))?$", re.MULTILINE)
_EXIT_LINE = "bench-exit-status "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=40, help="emulated devices in the /22")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--hydra-tasks", default="4,1",
                        help="hydra -t values to run, highest first (connections per service; iotscope uses 1)")
    parser.add_argument("--parallel", type=int, default=64, help="hydra -T and iotscope's devices in flight")
    parser.add_argument("--sweep-prefix", type=int, default=20, help="the sweep covers this prefix around the fleet")
    parser.add_argument("--default-rate-sweep", action="store_true",
                        help="also sweep at iotscope's default 1,000/s (as many seconds as pairs / 1,000)")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.hydra_tasks = sorted({int(t) for t in args.hydra_tasks.split(",")}, reverse=True)
    if not 16 <= args.sweep_prefix <= 22:
        parser.error("--sweep-prefix must be 16..22 (the sweep range holds the fleet's /22, inside one 127.X/16)")
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    fleet = None
    try:
        sweep_network, network, fleet = start_fleet(args.devices, args.seed, args.sweep_prefix)
        with tempfile.TemporaryDirectory(prefix="iotscope-bench-survey-") as work_dir:
            work = Path(work_dir)
            scope = write_scope(work / "scope.toml", sweep_network)
            print(f"fleet: {len(fleet.spec.devices)} devices, {len(fleet.ground_truth())} services in {network}",
                  file=sys.stderr)
            sweep_rows = bench_sweep(sweep_network, fleet.spec, scope, args)
            credential_rows = bench_credentials(fleet, scope, work, args)
    finally:
        if fleet is not None:
            fleet.stop()
        _end_children()
    report(sweep_network, network, args, sweep_rows, credential_rows)


# ---------------------------------------------------------------- fleet and scope


def start_fleet(count: int, seed: int, sweep_prefix: int) -> tuple[str, str, FleetThread]:
    """(sweep range, fleet /22, running fleet): a random 127.X.Y.0/``sweep_prefix`` in which
    nothing else listens (tests run fleets on random loopback /24s too), the fleet in one of its /22s."""
    rng = random.SystemRandom()
    for _ in range(10):
        sixteen = ipaddress.ip_network(f"127.{rng.randrange(1, 255)}.0.0/16")
        net = rng.choice(list(sixteen.subnets(new_prefix=sweep_prefix)))
        if any(ipaddress.ip_address(ip) in net for ip, _ in listening()):
            continue
        network = str(rng.choice(list(net.subnets(new_prefix=22))))
        spec = default_fleet(network, count=count, seed=seed, lockout_after=None,
                             idle_timeout=10.0, drip_interval=0.5)
        thread = FleetThread(spec)
        try:
            thread.start()
        except FleetError:
            continue
        return str(net), network, thread
    raise RuntimeError(f"no free loopback /{sweep_prefix} for the fleet after 10 tries")


def write_scope(path: Path, network: str) -> Path:
    path.write_text(
        f'[[authorized]]\ncidr = "{network}"\nowner = "iotscope benchmark fleet"\n'
        f'authorization = "emulated fleet started by bench/survey/run.py"\nspecial_purpose = true\n',
        encoding="utf-8",
    )
    return path


def listening() -> set[tuple[str, int]]:
    """(address, port) of every listening IPv4 TCP socket, from the kernel's own table."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":  # TCP_LISTEN
            continue
        address, port = fields[1].split(":")
        ip = socket.inet_ntoa(struct.pack("<I", int(address, 16)))
        found.add((ip, int(port, 16)))
    return found


# ---------------------------------------------------------------- sweep vs nmap -sT


def bench_sweep(network: str, spec: FleetSpec, scope: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    ports = sorted({service.port for device in spec.devices for service in device.services} | set(CLOSED_PORTS))
    port_text = ",".join(map(str, ports))
    truth = expected_open(network, ports)
    probes = ipaddress.ip_network(network).num_addresses * len(ports)
    print(f"sweep: {probes:,} (address, port) pairs, {len(truth)} open", file=sys.stderr)

    def iotscope_sweep(rate: float, shards: int = 1, workers: int = 1) -> tuple[Run, set[tuple[str, int]], dict[str, Any]]:
        """``shards`` processes at once (``--shard i/N``, one permutation seed), as on N cores, each
        sweeping with ``workers`` processes of its own (``survey run --workers``)."""
        seed = str(random.SystemRandom().getrandbits(63))
        commands = [shlex.join(_limited([sys.executable, str(HERE / "sweep_only.py"), "--scope", str(scope),
                                         "--ports", port_text, "--rate", str(rate), "--seed", seed,
                                         "--shard", f"{i}/{shards}", "--workers", str(workers)]))
                    for i in range(1, shards + 1)]
        run = _measure(["sh", "-c", " & ".join(commands) + "; wait"], limited=False)
        results = [json.loads(line) for line in run.stdout.splitlines()]
        found = {(ip, port) for result in results for ip, port in result.pop("open")}
        engine = {"seconds": max(r["seconds"] for r in results), "attempted": sum(r["attempted"] for r in results),
                  "closed": sum(r["closed"] for r in results), "timeouts": sum(r["timeouts"] for r in results),
                  "errors": sum(r["errors"] for r in results), "processes": shards * workers}
        return run, found, engine

    rows = []
    nmap_cmd = ["nmap", "-sT", "-n", "-Pn", "-p", port_text, "--max-retries", "0", "-T4", "-oG", "-", network]
    nmap = _measure(nmap_cmd)
    rows.append(_sweep_row("nmap -sT -T4 --max-retries 0", " ".join(nmap_cmd), probes, nmap, parse_grepable(nmap.stdout), truth))
    run, found, engine = iotscope_sweep(1e9)
    rows.append(_sweep_row("iotscope sweep, rate unlimited, --workers 1", "--rate 1e9 (concurrency 1000, timeout 2 s)",
                           probes, run, found, truth, engine))
    run, found, engine = iotscope_sweep(1e9, workers=2)
    rows.append(_sweep_row("iotscope sweep, rate unlimited, --workers 2", "one command, two sweep processes",
                           probes, run, found, truth, engine))
    run, found, engine = iotscope_sweep(1e9, shards=2)
    rows.append(_sweep_row("iotscope sweep, rate unlimited, --shard 1/2 + 2/2 at once", "two processes, one per core",
                           probes, run, found, truth, engine))
    if args.default_rate_sweep:
        run, found, engine = iotscope_sweep(1000)
        rows.append(_sweep_row("iotscope sweep, default rate", "--rate 1000 (the CLI default)",
                               probes, run, found, truth, engine))
    return rows


def expected_open(network: str, ports: list[int]) -> set[tuple[str, int]]:
    """What a correct sweep finds: listeners inside the /22, and wildcard listeners on every address."""
    net = ipaddress.ip_network(network)
    wanted = set(ports)
    truth = set()
    for ip, port in listening():
        if port not in wanted:
            continue
        if ip == "0.0.0.0":
            truth |= {(str(address), port) for address in net}
        elif ipaddress.ip_address(ip) in net:
            truth.add((ip, port))
    return truth


def parse_grepable(text: str) -> set[tuple[str, int]]:
    """Open (ip, port) pairs from nmap's ``-oG`` output."""
    found = set()
    for line in text.splitlines():
        if not line.startswith("Host: ") or "Ports: " not in line:
            continue
        ip = line.split()[1]
        for entry in line.split("Ports: ", 1)[1].split("\t")[0].split(", "):
            port, state = entry.split("/")[:2]
            if state == "open":
                found.add((ip, int(port)))
    return found


def _sweep_row(tool: str, settings: str, probes: int, run: Run, found: set, truth: set,
               engine: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "tool": tool, "settings": settings, "probes": probes, "seconds": run.seconds,
        "probes_per_second": probes / run.seconds, "peak_rss_mb": run.peak_rss_mb,
        "open_found": len(found), "missed": sorted(truth - found)[:20], "missed_count": len(truth - found),
        "extra": sorted(found - truth)[:20], "extra_count": len(found - truth),
        "correct": found == truth, "engine": engine,
    }


# ---------------------------------------------------------------- credentials vs hydra


def bench_credentials(fleet: FleetThread, scope: Path, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    # The same list for both: the pairs iotscope tries, within its attempt cap, on a device that
    # names no maker (the corpus has ~680; a device naming its maker gets that maker's first).
    credentials = attempt_order(load_builtin())[: ProbeLimits().max_attempts]
    if any(":" in c.username for c in credentials):
        raise RuntimeError("a username contains ':', which hydra's -C format cannot express")
    pair_ids = {(c.username, c.password): c.id for c in credentials}
    cred_file = work / "credentials.txt"
    cred_file.write_text("".join(f"{c.username}:{c.password}\n" for c in credentials), encoding="utf-8")
    rows = []
    for protocol, hydra_service in HYDRA_SERVICES.items():
        targets = [row for row in fleet.ground_truth()
                   if row["protocol"] == protocol and row["behaviour"] == "login" and row["kind"] in LOGIN_KINDS]
        truth = {(r["ip"], r["port"], r["credential_id"]) for r in targets if r["expected"] == "finding"}
        services = {(r["ip"], r["port"]) for r in targets}
        print(f"credentials/{protocol}: {len(services)} services, {len(truth)} with a default pair", file=sys.stderr)
        target_file = work / f"{protocol}-targets.txt"
        target_file.write_text("".join(f"{ip}:{port}\n" for ip, port in sorted(services)))
        import_file = work / f"{protocol}-open.txt"  # masscan -oL, what `survey run --import` reads
        import_file.write_text("".join(f"open tcp {port} {ip} 0\n" for ip, port in sorted(services)))
        ports = ",".join(str(p) for p in sorted({port for _, port in services}))

        for tasks in args.hydra_tasks:
            hydra_cmd = ["hydra", "-C", str(cred_file), "-M", str(target_file), "-t", str(tasks),
                         "-T", str(args.parallel), "-f", "-I", *hydra_service]
            before = _attempts(fleet, services)
            run, failure = _measure_tolerant(hydra_cmd, cwd=work)
            found = parse_hydra(run.stdout, pair_ids)
            row = _credential_row(protocol, f"hydra -t {tasks} -T {args.parallel} -f", len(services), run,
                                  _attempts(fleet, services) - before, found, truth, failure)
            row["hydra_tasks"] = tasks
            rows.append(row)
            if run.seconds >= PROCESS_LIMIT:
                break  # fewer connections per service cannot finish sooner

        for label, delay in (("iotscope probes (default pacing)", None), ("iotscope probes, attempt_delay 0", 0.0)):
            store = work / f"{protocol}-store-{delay}"
            cmd = [sys.executable, str(HERE / "probe_only.py"), "--scope", str(scope), "--import", str(import_file),
                   "--ports", ports, "--store", str(store), "--probe-concurrency", str(args.parallel)]
            if delay is not None:
                cmd += ["--attempt-delay", str(delay)]
            before = _attempts(fleet, services)
            run, failure = _measure_tolerant(cmd)
            found, statuses, per_found = set(), Counter(), []
            if failure is None:
                for finding in json.loads(run.stdout)["findings"]:
                    statuses[finding["status"]] += 1
                    if finding["status"] == "vulnerable":
                        found.add((finding["ip"], finding["port"], finding["credential_id"]))
                        per_found.append(finding["attempts"])
            row = _credential_row(protocol, label, len(services), run, _attempts(fleet, services) - before,
                                  found, truth, failure)
            row["statuses"] = dict(statuses)
            row["attempts_per_found"] = _median_p95(per_found)
            rows.append(row)
    return rows


def parse_hydra(text: str, pair_ids: dict[tuple[str, str], str]) -> set[tuple[str, int, str | None]]:
    """(ip, port, credential id) of hydra's result lines (``[23][telnet] host: IP   login: U   password: P``);
    a pair not in the list keeps id None. Its ``-b jsonv1`` file is not valid JSON with ``-M``."""
    found = set()
    for match in _HYDRA_RESULT.finditer(text):
        port, host, login, password = match.groups()
        found.add((host, int(port), pair_ids.get((login, password or ""))))
    return found


def _attempts(fleet: FleetThread, services: set[tuple[str, int]]) -> int:
    """Login attempts the devices themselves counted on ``services`` so far."""
    return sum(s["attempts"] for s in fleet.stats() if (s["ip"], s["port"]) in services)


def _median_p95(values: list[int]) -> dict[str, float] | None:
    """Attempts per found service (issue 7 item 6): how fast the attempt order reaches the pair."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": median, "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]}


def _credential_row(protocol: str, tool: str, services: int, run: Run, attempts: int,
                    found: set, truth: set, failure: str | None) -> dict[str, Any]:
    return {
        "protocol": protocol, "tool": tool, "services": services, "seconds": run.seconds,
        "attempts": attempts, "attempts_per_second": attempts / run.seconds, "peak_rss_mb": run.peak_rss_mb,
        "found": len(found), "missed": sorted(truth - found), "extra": sorted(found - truth, key=str),
        "correct": found == truth, "failure": failure,
    }


# ---------------------------------------------------------------- processes


def _limited(cmd: list[str]) -> list[str]:
    """``cmd`` under ``timeout``: it (and its children, in timeout's process group) end by
    PROCESS_LIMIT seconds even if this script is killed outright."""
    return ["timeout", "-k", "5", str(PROCESS_LIMIT), *cmd]


def _measure_tolerant(cmd: list[str], **kwargs: Any) -> tuple[Run, str | None]:
    """Like :func:`_measure`, but a failing ``cmd`` still gives its output (hydra exits 255 after
    worker errors even when it found pairs) and the failure as text."""
    run = _measure(["sh", "-c", f'"$@"; echo "{_EXIT_LINE}$?"', "sh", *_limited(cmd)], limited=False, **kwargs)
    output, _, status_line = run.stdout.rstrip("\n").rpartition("\n")
    status = int(status_line.removeprefix(_EXIT_LINE))
    failure = None
    if status == _TIMED_OUT:
        failure = f"did not finish in {PROCESS_LIMIT} s"
    elif status != 0:
        failure = f"exit status {status}"
    return Run(run.seconds, run.peak_rss_mb, output), failure


def _measure(cmd: list[str], *, limited: bool = True, **kwargs: Any) -> Run:
    started = time.monotonic()
    try:
        return measure(_limited(cmd) if limited else cmd, **kwargs)
    finally:
        print(f"  {time.monotonic() - started:6.2f} s  {' '.join(cmd[:8])} ...", file=sys.stderr)


def _end_children() -> None:
    """Terminate whatever this process started and is still running (a failure or a signal
    mid-measure): every descendant, each ``timeout`` together with its process group."""
    parents: dict[int, tuple[int, int]] = {}  # pid -> (ppid, pgid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = (int(fields[1]), int(fields[2]))
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, (ppid, _) in parents.items() if ppid in frontier} - mine
        mine |= frontier
    for pid in mine:
        try:
            if parents[pid][1] == pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------- report


def report(sweep_network: str, network: str, args: argparse.Namespace, sweep_rows: list[dict],
           credential_rows: list[dict]) -> None:
    lines = [f"Machine: {machine()}",
             f"Fleet: {args.devices} emulated devices (seed {args.seed}) in {network}; sweep of {sweep_network}.", ""]
    peer = next(r for r in sweep_rows if r["tool"].startswith("nmap"))
    lines += ["| sweep | (address, port) pairs | seconds | pairs/s | peak RSS (MB) | open found | correct | iotscope / nmap (rate) |",
              "|---|---:|---:|---:|---:|---:|---|---:|"]
    for row in sweep_rows:
        ratio = "" if row is peer else f"{row['probes_per_second'] / peer['probes_per_second']:.2f}x"
        lines.append(f"| {row['tool']} | {row['probes']:,} | {row['seconds']:.2f} | {row['probes_per_second']:,.0f} | "
                     f"{row['peak_rss_mb']:.0f} | {row['open_found']} | {_correct(row)} | {ratio} |")
    for row in sweep_rows:
        if row["engine"]:
            rate = row["probes"] / row["engine"]["seconds"]
            lines.append(f"\n{row['tool']}: the engine alone took {row['engine']['seconds']:.2f} s ({rate:,.0f} pairs/s, "
                         f"{rate / peer['probes_per_second']:.2f}x nmap); the rest is interpreter start-up and imports.")
    ratio_heads = [f"iotscope vs hydra -t {t} (time)" for t in args.hydra_tasks]
    lines += ["", "| credentials | services | seconds | login attempts (device-counted) | attempts/s | found | correct | "
              + " | ".join(ratio_heads) + " |", "|---|---:|---:|---:|---:|---:|---|" + "---:|" * len(ratio_heads)]
    totals: dict[str, list[float]] = {}
    for protocol in HYDRA_SERVICES:
        rows = [r for r in credential_rows if r["protocol"] == protocol]
        hydras = {r["hydra_tasks"]: r for r in rows if "hydra_tasks" in r}
        for row in rows:
            ratios = ["" if row in hydras.values() else _time_ratio(row, hydras.get(t)) for t in args.hydra_tasks]
            lines.append(f"| {protocol}: {row['tool']} | {row['services']} | {row['seconds']:.2f} | {row['attempts']:,} | "
                         f"{row['attempts_per_second']:,.0f} | {row['found']} | {_correct(row)} | " + " | ".join(ratios) + " |")
            if row.get("attempts_per_found"):
                spread = row["attempts_per_found"]
                lines.append(f"|   attempts per found service: median {spread['median']:g}, p95 {spread['p95']:g} "
                             "|" + " |" * (6 + len(ratio_heads)))
            total = totals.setdefault(row["tool"], [0.0, 0.0, 0])
            total[0] += row["seconds"]
            total[1] += row["attempts"]
            total[2] += 1
    lines.append("")
    lines.append("Totals (protocols one after another): " + "; ".join(
        f"{tool}: {seconds:.1f} s, {attempts:,.0f} attempts"
        + ("" if runs == len(HYDRA_SERVICES) else f" ({runs} of {len(HYDRA_SERVICES)} protocols run)")
        for tool, (seconds, attempts, runs) in totals.items()))
    (args.out / "survey.json").write_text(json.dumps(
        {"machine": machine(), "network": network, "devices": args.devices, "seed": args.seed,
         "sweep_network": sweep_network, "hydra_tasks": args.hydra_tasks, "parallel": args.parallel,
         "sweep": sweep_rows, "credentials": credential_rows}, indent=2, default=list))
    print("\n".join(lines))


def _time_ratio(ours: dict[str, Any], hydra: dict[str, Any] | None) -> str:
    """How much sooner iotscope finished than hydra; a hydra that ran out of time (or was not run
    because a faster setting already had) finished at least PROCESS_LIMIT seconds after it started."""
    if hydra is None or hydra["seconds"] >= PROCESS_LIMIT:
        return f">= {PROCESS_LIMIT / ours['seconds']:.1f}x faster (hydra unfinished)"
    if ours["seconds"] <= hydra["seconds"]:
        return f"{hydra['seconds'] / ours['seconds']:.2f}x faster"
    return f"{ours['seconds'] / hydra['seconds']:.2f}x slower"


def _correct(row: dict[str, Any]) -> str:
    missed = row.get("missed_count", len(row["missed"]))
    extra = row.get("extra_count", len(row["extra"]))
    verdict = "yes" if row["correct"] else f"no: {missed} missed, {extra} extra"
    return f"{verdict} ({row['failure']})" if row.get("failure") else verdict


if __name__ == "__main__":
    main()
