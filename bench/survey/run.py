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

The fleet lives in ``loopback_fleet.py``, the peers' output parsers in ``peer_output.py``, the
bounded process handling in ``bounded_processes.py``; this script measures and reports.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import shlex
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bounded_processes import (  # noqa: E402
    PROCESS_LIMIT,
    end_children,
    exit_on_signal,
    limited,
    measure_bounded,
    measure_tolerant,
)
from common import Run, machine  # noqa: E402
from loopback_fleet import expected_open, start_fleet, write_scope  # noqa: E402
from peer_output import parse_grepable, parse_hydra  # noqa: E402

from iotscope.simulate.devices import FleetSpec, FleetThread  # noqa: E402
from iotscope.survey.credentials import attempt_order, load_builtin  # noqa: E402
from iotscope.survey.probes import ProbeLimits  # noqa: E402

HERE = Path(__file__).resolve().parent
#: Ports no fleet device uses: most of a real sweep is closed ports.
CLOSED_PORTS = (25, 53, 110, 443, 554, 1723, 5555, 7547, 8443, 37777)
#: The credential phase: services with a real login, by the name hydra gives the protocol.
HYDRA_SERVICES = {"telnet": ["telnet"], "http": ["http-get", "/"], "ssh": ["ssh"]}
LOGIN_KINDS = ("default-credential", "hardened")


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
    signal.signal(signal.SIGTERM, exit_on_signal)
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
        end_children()
    report(sweep_network, network, args, sweep_rows, credential_rows)


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
        commands = [shlex.join(limited([sys.executable, str(HERE / "sweep_only.py"), "--scope", str(scope),
                                         "--ports", port_text, "--rate", str(rate), "--seed", seed,
                                         "--shard", f"{i}/{shards}", "--workers", str(workers)]))
                    for i in range(1, shards + 1)]
        run = measure_bounded(["sh", "-c", " & ".join(commands) + "; wait"], limited=False)
        results = [json.loads(line) for line in run.stdout.splitlines()]
        found = {(ip, port) for result in results for ip, port in result.pop("open")}
        engine = {"seconds": max(r["seconds"] for r in results), "attempted": sum(r["attempted"] for r in results),
                  "closed": sum(r["closed"] for r in results), "timeouts": sum(r["timeouts"] for r in results),
                  "errors": sum(r["errors"] for r in results), "processes": shards * workers}
        return run, found, engine

    rows = []
    nmap_cmd = ["nmap", "-sT", "-n", "-Pn", "-p", port_text, "--max-retries", "0", "-T4", "-oG", "-", network]
    nmap = measure_bounded(nmap_cmd)
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
            run, failure = measure_tolerant(hydra_cmd, cwd=work)
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
            run, failure = measure_tolerant(cmd)
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
