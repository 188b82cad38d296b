"""``iotscope survey run`` / ``survey report`` as a user runs them (loopback only)."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotscope.cli import app
from iotscope.survey.journal import SurveyJournal
from tests.cli.loopback_service import serving
from tests.process_table import children, running
from tests.survey.loopback_listeners import Listeners

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
    (["--ports", "23,http"], "expected comma-separated numbers or ranges"),
    (["--ports", "0"], "ports are 1..65535"),
    (["--rate", "0"], "--rate must be positive"),
    (["--workers", "0"], "--workers must be at least 1, not 0"),
    (["--credentials", "missing.toml"], "credential file not found"),
    (["--max-attempts", "0"], "--max-attempts must be at least 1, not 0"),
    (["--attempt-delay", "-0.5"], "--attempt-delay must be 0 or more seconds, not -0.5"),
    (["--attempt-delay", "nan"], "--attempt-delay must be 0 or more seconds"),
    (["--service-deadline", "0"], "--service-deadline must be a positive number of seconds, not 0"),
    (["--device-deadline", "nan"], "--device-deadline must be a positive number of seconds, not nan"),
    (["--per-device-connections", "0"], "--per-device-connections must be at least 1, not 0"),
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
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "at most 3 logins per service, 0.3 s apart, in 120 s (300 s per device)" in said
    assert len(passwords) == 3  # anonymous, then two listed credentials; the cap stops the rest
    gaps = [later - earlier for earlier, later in zip(passwords, passwords[1:])]
    assert min(gaps) >= 0.3, gaps
    # Listed pairs were left: incomplete, said in the summary, and --resume goes on down the list.
    assert "1 services incomplete" in said and "--resume" in said
    resumed = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"),
                                  "--ports", str(port), "--max-attempts", "3", "--attempt-delay", "0", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "(resumed)" in resumed.output and len(passwords) == 6


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
    args[args.index("--ports") + 1] = "8,7,6,5,4,3,2,1"  # the same port set: the same survey
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


def test_resume_without_a_matching_survey_is_refused_before_sweeping(tmp_path: Path, scope_file: Path) -> None:
    store = tmp_path / "store"
    args = ["survey", "run", "--scope", str(scope_file), "--store", str(store), "--ports", "1,2", "--rate", "5000"]
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 2 and "--resume: no unfinished survey in" in result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1
    with SurveyJournal(store) as journal:
        assert journal.jobs() == []


def iotscope(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "iotscope", *args], stderr=subprocess.PIPE, text=True)


def wait_for_sweep(store: Path, process: subprocess.Popen, seconds: float = 30) -> None:
    """Until the survey run by ``process`` has checkpointed some sweep progress."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if (store / SurveyJournal.FILENAME).exists():
            with SurveyJournal(store) as journal:
                if any(job.sweep_position > 0 for job in journal.jobs()):
                    return
    raise AssertionError(f"no sweep progress within {seconds} s: {process.poll()}")


def test_a_second_run_of_a_running_survey_is_refused(tmp_path: Path, scope_file: Path) -> None:
    store = tmp_path / "store"
    args = ["survey", "run", "--scope", str(scope_file), "--store", str(store), "--ports", "1,2,3,4,5,6,7,8"]
    first = iotscope(*args, "--rate", "4", "--workers", "2")  # 64 attempts: ~16 s of sweep
    try:
        wait_for_sweep(store, first)
        second = subprocess.run(
            [sys.executable, "-m", "iotscope", *args, "--resume"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert second.returncode == 2, second.stderr
        errors = [line for line in second.stderr.splitlines() if "error" in line]
        assert errors == [line for line in second.stderr.splitlines() if "is already running" in line]
        assert len(errors) == 1 and f"(pid {first.pid})" in errors[0] and "Traceback" not in second.stderr
        first.kill()  # kill -9: the kernel frees the lock; nothing of the first run holds it on
        first.wait(10)
        third = runner.invoke(app, [*args, "--rate", "5000", "--resume"])
        assert third.exit_code == 0 and "(resumed)" in third.output, third.output
    finally:
        first.kill()
        first.communicate()
    with SurveyJournal(store) as journal:
        (job,) = journal.jobs()
        assert job.finished_at is not None


def test_kill_9_of_a_survey_stops_its_sweep_workers(tmp_path: Path) -> None:
    """The workers (and the server that forks them) must not go on connecting once the survey is
    gone (reparented to init)."""
    rng = random.SystemRandom()
    network = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(8) * 32}"
    hosts = [network.rsplit(".", 1)[0] + f".{int(network.rsplit('.', 1)[1]) + i}" for i in range(32)]
    listeners = Listeners(hosts)
    port, count = listeners.port, listeners.total
    scope = tmp_path / "scope.toml"
    scope.write_text(
        f'[[authorized]]\ncidr = "{network}/27"\nowner = "Loopback Lab"\nauthorization = "CLI test"\n'
        "special_purpose = true\n"
    )
    store = tmp_path / "store"
    survey = iotscope("survey", "run", "--scope", str(scope), "--store", str(store), "--ports", str(port),
                      "--rate", "4", "--workers", "2")
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while count() < 3 and time.monotonic() < deadline:  # 32 connects at 4/s: the sweep runs ~8 s
            time.sleep(0.05)
        # The workers' forkserver, its two workers and multiprocessing's resource tracker.
        workers = children(survey.pid)
        workers += [grandchild for pid in workers for grandchild in children(pid)]
        assert len(workers) >= 3 and survey.poll() is None, workers
        survey.kill()
        survey.wait(10)
        deadline = time.monotonic() + 2
        while any(map(running, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(running, workers)), "sweep workers outlived their parent"
        before = count()
        time.sleep(2)
        assert count() == before < 32, "connects after the survey was killed"
    finally:
        survey.kill()
        survey.communicate()
        for pid in workers:  # only on failure: they are ours, by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        listeners.close()


# -- issue 7, item 5: what a new user trips over ---------------------------------------------------


def test_a_scope_with_no_usable_address_is_refused_with_the_reason(tmp_path: Path) -> None:
    """Loopback authorized without ``special_purpose``: nothing may be contacted, so nothing runs."""
    scope = tmp_path / "scope.toml"
    scope.write_text('[[authorized]]\ncidr = "127.0.8.0/29"\nowner = "Lab"\nauthorization = "CLI test"\n')
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope), "--store", str(tmp_path / "s"), "--ports", "1"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no address to survey" in errors[0] and "special_purpose = true" in errors[0], result.output
    assert "0 addresses" not in result.output and "warning:" not in result.output
    assert not (tmp_path / "s").exists()


def test_a_scope_whose_every_address_is_blocklisted_is_refused(tmp_path: Path, scope_file: Path) -> None:
    (tmp_path / "optout.txt").write_text("127.0.8.0/29\n")
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"), "--ports", "1"])
    assert result.exit_code == 2 and "no address to survey" in result.output and "blocklisted" in result.output, result.output


def test_the_sweep_bar_and_the_summary_count_the_same_attempts(tmp_path: Path, scope_file: Path) -> None:
    """8 addresses x 8 ports: the bar used to show the permutation's 82 positions, the summary 64 attempts."""
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"),
                                 "--ports", "1-8", "--rate", "5000", "--workers", "1"])
    assert result.exit_code == 0, result.output
    bar = next(line for line in result.output.splitlines() if line.startswith("sweep"))
    assert "64 attempts" in bar and "82" not in bar, bar
    assert "64 connection attempts" in result.output


def test_sweep_bar_of_workers_with_a_blocklist_counts_like_the_summary(tmp_path: Path, scope_file: Path) -> None:
    (tmp_path / "optout.txt").write_text("127.0.8.1\n")  # 7 addresses x 2 ports left
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"),
                                 "--ports", "1,2", "--rate", "5000", "--workers", "2"])
    assert result.exit_code == 0, result.output
    bar = next(line for line in result.output.splitlines() if line.startswith("sweep"))
    assert "14 attempts" in bar, bar
    assert "14 connection attempts" in result.output and "2 skipped (blocklisted)" in result.output, result.output


@pytest.mark.parametrize("command", [["survey", "run"], ["survey", "report"], ["survey", "census"], ["survey", "compact"]])
def test_help_shows_no_value_for_flags(command: list[str]) -> None:
    """typer 0.29 rendered ``--resume <bool>`` and ``--help <bool>``: flags take no value."""
    result = subprocess.run([sys.executable, "-m", "iotscope", *command, "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "160", "TERM": "dumb"}, check=False)
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout, result.stdout
    assert re.search(r"--help\s+Show this message", result.stdout), result.stdout


def test_report_help_does_not_promise_to_create_the_store() -> None:
    for command in ("report", "census"):
        result = runner.invoke(app, ["survey", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        assert "created if missing" not in result.output, result.output
    run_help = runner.invoke(app, ["survey", "run", "--help"], env={"COLUMNS": "200"})
    assert "created if missing" in run_help.output  # true there: survey run creates it


def test_import_without_the_expected_header_says_so_with_the_line(tmp_path: Path, scope_file: Path) -> None:
    """A zmap CSV whose header lacks 'saddr' (here: 'ip,port') used to be read as one address per line."""
    (tmp_path / "scan.csv").write_text("# zmap\nip,port\n127.0.8.1,23\n")
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"),
                                 "--ports", "23", "--import", str(tmp_path / "scan.csv")])
    assert result.exit_code == 2, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "scan.csv:2:" in error and "header" in error and "saddr" in error, error


def test_ports_take_nmap_style_ranges(tmp_path: Path, scope_file: Path) -> None:
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"),
                                 "--ports", "1-4, 2323,6-7", "--rate", "100000", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "ports 1,2,3,4,2323,6,7;" in result.output.replace("\n", "")
    assert "56 connection attempts" in result.output  # 8 addresses x 7 ports


@pytest.mark.parametrize(("ports", "message"), [
    ("100-1", "range '100-1' is reversed"),
    ("0-10", "port 0 in '0-10': ports are 1..65535"),
    ("22,65536", "port 65536 in '65536': ports are 1..65535"),
    ("", "empty port list"),
    ("22,,23", "empty item between commas"),
    ("1-2-3", "'1-2-3' is not a port or range"),
])
def test_bad_port_ranges_fail_with_one_line(tmp_path: Path, scope_file: Path, ports: str, message: str) -> None:
    result = runner.invoke(app, ["survey", "run", "--scope", str(scope_file), "--store", str(tmp_path / "s"), "--ports", ports])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
