"""``iotscope survey run`` / ``survey report`` as a user runs them (loopback only)."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotscope.cli import app
from iotscope.survey.journal import SurveyJournal

runner = CliRunner()


@pytest.fixture
def scope_file(tmp_path: Path) -> Path:
    (tmp_path / "optout.txt").write_text("# nobody yet\n")
    path = tmp_path / "scope.toml"
    path.write_text(
        'blocklist = "optout.txt"\n[[authorized]]\ncidr = "127.0.8.0/29"\nowner = "Loopback Lab"\n'
        'authorization = "CLI test"\nspecial_purpose = true\n'
    )
    return path


@contextlib.contextmanager
def serving(host: str, handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP service on ``host`` (loopback) run by a thread, one connection at a time; yields its port."""
    server = socket.create_server((host, 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # e.g. the sweep's connect resets at once
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def mute_device():
    """A service on 127.0.8.3 that accepts and hangs up at once: open, but not telnet/SSH/HTTP/FTP."""
    with serving("127.0.8.3", lambda conn: None) as port:
        yield port


def test_run_then_report(tmp_path: Path, scope_file: Path, mute_device: int) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(store),
                                 "--ports", str(mute_device), "--rate", "5000"])
    assert result.exit_code == 0, result.output
    assert "1 open ports, 1 probed" in result.output
    report = runner.invoke(app, ["survey", "report", "--store", str(store), "--out", str(out)])
    assert report.exit_code == 0, report.output
    errors = (out / "errors.csv").read_text().splitlines()
    assert len(errors) == 2 and f"127.0.8.3,{mute_device},unknown,unidentified-service" in errors[1]


@pytest.mark.parametrize(("extra", "message"), [
    (["--shard", "5/4"], "shard '5/4': i must be between 1 and N"),
    (["--ports", "23,http"], "expected comma-separated numbers"),
    (["--ports", "0"], "ports are 1..65535"),
    (["--rate", "0"], "--rate must be positive"),
    (["--workers", "0"], "--workers must be at least 1, not 0"),
    (["--credentials", "missing.toml"], "credential file not found"),
    (["--max-attempts", "0"], "--max-attempts must be at least 1, not 0"),
    (["--attempt-delay", "-0.5"], "--attempt-delay must be 0 or more seconds, not -0.5"),
    (["--attempt-delay", "nan"], "--attempt-delay must be 0 or more seconds"),
])
def test_bad_options_fail_with_one_line(tmp_path: Path, scope_file: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"), *extra])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


@pytest.fixture
def ftp_device():
    """An FTP server on 127.0.8.5 that refuses every login; yields (port, times each PASS arrived)."""
    passwords: list[float] = []

    def handle(conn: socket.socket) -> None:
        with conn.makefile("rwb", buffering=0) as stream:
            stream.write(b"220 (vsFTPd 3.0.3)\r\n")
            for line in stream:
                if line.startswith(b"USER"):
                    stream.write(b"331 Please specify the password.\r\n")
                elif line.startswith(b"PASS"):
                    passwords.append(time.monotonic())
                    stream.write(b"530 Login incorrect.\r\n")
                else:
                    stream.write(b"221 Goodbye.\r\n")
                    break

    with serving("127.0.8.5", handle) as port:
        yield port, passwords


def test_max_attempts_and_attempt_delay_reach_the_probes(tmp_path: Path, scope_file: Path, ftp_device) -> None:
    port, passwords = ftp_device
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"),
                                 "--ports", str(port), "--max-attempts", "3", "--attempt-delay", "0.3"])
    assert result.exit_code == 0, result.output
    assert "at most 3 logins per service, 0.3 s apart" in result.output
    assert len(passwords) == 3  # anonymous, then two listed credentials; the cap stops the rest
    gaps = [later - earlier for earlier, later in zip(passwords, passwords[1:])]
    assert min(gaps) >= 0.3, gaps


def test_bad_scope_and_out_of_scope_import_are_refused(tmp_path: Path, scope_file: Path) -> None:
    result = runner.invoke(app, ["survey", "run", "--scope", str(tmp_path / "nope.toml"), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "nope.toml: scope file not found" in result.output
    (tmp_path / "scan.txt").write_text("open tcp 23 127.0.9.1 1\n")
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"),
                                 "--import", str(tmp_path / "scan.txt")])
    assert result.exit_code == 2
    assert "scan.txt:1: refusing 127.0.9.1: not in any authorized range" in result.output


def test_store_that_is_a_file(tmp_path: Path, scope_file: Path) -> None:
    (tmp_path / "store").write_text("not a directory")
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "store"), "--ports", "1"])
    assert result.exit_code == 2 and "cannot open the survey store" in result.output


def test_report_of_missing_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["survey", "report", "--store", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no survey in this store" in result.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_saves_progress_and_resume_continues(tmp_path: Path, scope_file: Path, workers: str) -> None:
    """With sweep worker processes too: the parent stops them and merges their last checkpoints."""
    store = tmp_path / "store"
    args = ["survey", "run", "--scope", str(scope_file), "--store", str(store), "--workers", workers,
            "--ports", "1,2,3,4,5,6,7,8", "--rate", "20"]
    process = subprocess.Popen([sys.executable, "-m", "iotscope", *args], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        position = 0
        while position == 0 and time.monotonic() < deadline:  # 64 attempts at 20/s: ~3 s of sweep
            time.sleep(0.2)
            if (store / SurveyJournal.FILENAME).exists():
                with SurveyJournal(store) as journal:
                    jobs = journal.jobs()
                    position = jobs[0].sweep_position if jobs else 0
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert "run the same command with --resume" in stderr
    result = runner.invoke(app, [*args[:-1], "1000", "--resume"])
    assert result.exit_code == 0, result.output
    assert "(resumed)" in result.output
    attempts = int(re.search(r"([\d,]+) connection attempts", result.output).group(1).replace(",", ""))
    assert attempts < 64  # 8 addresses x 8 ports; the part swept before SIGTERM is not redone


def test_cli_starts_without_the_survey_engine() -> None:
    """Every command (and --help) pays for what the CLI imports at start-up: not asyncssh, not the
    survey engine or report; ``survey run``/``survey report`` import them when they run."""
    code = "import sys, iotscope.cli; print(sorted(m for m in ('asyncssh', 'iotscope.survey.run', 'iotscope.survey.report') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
