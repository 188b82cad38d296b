"""``make demo`` (scripts/demo.sh) leaves nothing running, however it ends (issue 6, item 16).

The whole demo runs, small (DEMO_PACKETS, DEMO_DEVICES) and on a random loopback /26 of its own
(DEMO_BIND), with the installed ``iotscope``; afterwards no process whose command line names the
demo's directory may be alive, and no fleet address may still be listening. Once to the end, and
once killed with SIGKILL while its survey runs (no EXIT trap then).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.sh"
_SMALL = {"DEMO_PACKETS": "20000", "DEMO_DEVICES": "4"}


def processes_naming(text: str) -> dict[int, str]:
    """Live (not zombie) processes whose command line contains ``text``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue  # gone meanwhile
        if text in cmdline and "Z" not in state.split()[1]:
            found[int(entry.name)] = cmdline
    return found


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def listening(truth_file: Path) -> list[tuple[str, int]]:
    """The fleet's (ip, port) pairs that still accept a connection."""
    alive = []
    for row in json.loads(truth_file.read_text()):
        try:
            socket.create_connection((row["ip"], row["port"]), timeout=1).close()
            alive.append((row["ip"], row["port"]))
        except OSError:
            pass
    return alive


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[[], tuple[subprocess.Popen[str], Path]]]:
    """Start the demo in ``tmp_path`` (a session of its own); yields (process, out dir); whatever
    is left of that session is killed at the end, so a failing test leaves nothing either."""
    # demo.sh runs .venv/bin/iotscope relative to its working directory: point it at this one.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "iotscope").symlink_to(Path(sys.executable).parent / "iotscope")
    out = tmp_path / "demo-out"
    bind = f"127.{random.randrange(2, 255)}.{random.randrange(256)}.{random.randrange(4) * 64}/26"
    started: list[subprocess.Popen[str]] = []

    def start() -> tuple[subprocess.Popen[str], Path]:
        with (tmp_path / "demo.log").open("w") as log:  # a file, not a pipe nobody reads while it runs
            process = subprocess.Popen(
                ["bash", str(DEMO), str(out)], cwd=tmp_path, env={**os.environ, **_SMALL, "DEMO_BIND": bind},
                stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )
        started.append(process)
        return process, out

    yield start
    for process in started:
        for pid in processes_naming(str(out)):
            try:
                if os.getsid(pid) == process.pid:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.kill()
        process.wait()


def test_demo_ends_with_nothing_left_running(demo) -> None:
    process, out = demo()
    process.wait(timeout=600)
    output = (out.parent / "demo.log").read_text()
    assert process.returncode == 0, output
    assert "== 7. per-owner report" in output
    assert wait_until(lambda: not processes_naming(str(out)), 5), processes_naming(str(out))
    assert listening(out / "fleet-truth.json") == []


def test_demo_killed_with_sigkill_leaves_nothing_running(demo) -> None:
    process, out = demo()
    surveying = lambda: [c for c in processes_naming(str(out)).values() if "survey run" in c]  # noqa: E731
    assert wait_until(surveying, 300), (out.parent / "demo.log").read_text()
    assert listening(out / "fleet-truth.json") != []  # the fleet was up
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert wait_until(lambda: not processes_naming(str(out)), 15), processes_naming(str(out))
    assert listening(out / "fleet-truth.json") == []
