"""Real daemons from Debian packages as devices on loopback, with a throwaway login account.

Why beside the emulated fleet: the emulated devices answer as the protocols say, but PAM's fail
delays, login(1)'s retries and vsftpd's ``max_login_fails`` are what real devices do, and the
survey's tests and its slow-login benchmark both need them, started the same way.

The account exists only inside a private mount namespace (``unshare -m``) in which temporary
copies of /etc/passwd and /etc/shadow, with the account added, are bind-mounted over the real
ones: the daemons and the login programs they start see the account, the machine does not. Needs
root. Each daemon runs in its own process group; the caller stops them with :func:`stop_daemons`,
and a caller killed with SIGKILL (which stops nothing) takes them with it: each daemon gets SIGKILL
from the kernel when its parent dies (:mod:`iotscope.lifetime`), so no daemon outlives a killed test
or benchmark holding its loopback port. ``PR_SET_PDEATHSIG`` survives the ``exec`` of ``unshare``, ``sh``
and the daemon (none raises privileges), but it follows the *thread* that started the daemon: call
:func:`in_namespace` from a thread that lives as long as the daemon should (the main thread).
The sessions a daemon forks are not covered by the signal; they end when their client's connection
closes (telnetd's login also on the hang-up of its terminal when telnetd dies).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from iotscope.lifetime import end_with_parent

#: The throwaway account; with password :data:`WEAK_PASSWORD` it is Mirai's pair tech/tech (``mirai-61``).
ACCOUNT = "tech"
WEAK_PASSWORD = "tech"


def missing_prerequisite() -> str | None:
    """Why real daemons cannot run here (not root, a tool missing, no ``unshare -m``), or None."""
    if os.geteuid() != 0:
        return "needs root (bind mounts in a private mount namespace)"
    for tool in ("unshare", "busybox", "dropbear", "dropbearkey", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare -m is not permitted here: {probe.stderr.decode().strip()}"
    return None


def free_port(host: str) -> int:
    """A TCP port nobody listens on at ``host`` right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def accounts(directory: Path, password: str, home: Path | None = None) -> tuple[Path, Path]:
    """Copies of passwd/shadow with the throwaway account (hash from openssl, SHA-512 crypt);
    its ``home`` must be reachable by the account where the daemon enters it (vsftpd does)."""
    digest = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password.encode(), capture_output=True, check=True
    ).stdout.decode().strip()
    home = home or directory / "home"
    home.mkdir()
    passwd, shadow = directory / "passwd", directory / "shadow"
    uids = {int(line.split(":")[2]) for line in Path("/etc/passwd").read_text().splitlines() if line.count(":") >= 6}
    uid = next(u for u in range(64100, 65000) if u not in uids)
    os.chown(home, uid, uid)
    passwd.write_text(Path("/etc/passwd").read_text() + f"{ACCOUNT}:x:{uid}:{uid}:throwaway:{home}:/bin/sh\n")
    shadow.write_text(Path("/etc/shadow").read_text() + f"{ACCOUNT}:{digest}:19000:0:99999:7:::\n")
    shadow.chmod(0o640)
    return passwd, shadow


def in_namespace(passwd: Path, shadow: Path, command: list[str]) -> subprocess.Popen:
    """Start ``command`` in a private mount namespace that sees ``passwd`` and ``shadow`` as /etc's."""
    script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/shadow && shift 2 && exec "$@"'
    parent = os.getpid()
    return subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(passwd), str(shadow), *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the daemon and the sessions it forks
        preexec_fn=lambda: end_with_parent(parent),  # noqa: PLW1509  dies with its parent, even on kill -9
    )


def stop_daemons(processes: Iterable[subprocess.Popen]) -> None:
    """End each daemon with its process group (the sessions it forked), and reap it."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


def wait_listening(host: str, port: int, process: subprocess.Popen) -> None:
    """Return once ``host:port`` accepts a connection; raise if ``process`` exits or 10 s pass."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daemon exited: {process.stderr.read().decode()[-500:]}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"daemon on {host}:{port} did not start")


def vsftpd_command(directory: Path, port: int, host: str, log_commands: bool = False) -> list[str]:
    """vsftpd with local accounts only (PAM service "vsftpd", Debian's), in the foreground; with
    ``log_commands`` its log (``directory``/vsftpd.log) has every command, a PASS line per login."""
    config = directory / "vsftpd.conf"
    config.write_text(
        f"listen=YES\nlisten_address={host}\nlisten_port={port}\nbackground=NO\nanonymous_enable=NO\n"
        "local_enable=YES\npam_service_name=vsftpd\nsecure_chroot_dir=/var/run/vsftpd/empty\nseccomp_sandbox=NO\n"
        f"max_login_fails=3\ndelay_failed_login=1\nxferlog_enable={'YES' if log_commands else 'NO'}\n"
        f"log_ftp_protocol={'YES' if log_commands else 'NO'}\nxferlog_std_format=NO\n"
        f"vsftpd_log_file={directory}/vsftpd.log\n"
    )
    return ["vsftpd", str(config)]
