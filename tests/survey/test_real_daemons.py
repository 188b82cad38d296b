"""Real daemons from Debian packages, started on loopback by the test: BusyBox telnetd, dropbear,
and nginx and lighttpd serving their stock pages.

A throwaway account exists only inside a private mount namespace (``unshare -m``) in which
temporary copies of /etc/passwd and /etc/shadow, with the account added, are bind-mounted over
the real ones: the daemons and the login programs they start see the account, the machine does
not. A weak password (a Mirai pair) must be found with its credential id, a strong one not.
The web servers run as the test's own processes with a configuration in a temporary directory
(never the system service): their stock welcome pages must not be reported as admin pages.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iotscope.survey.credentials import load_builtin
from iotscope.survey.probes import ProbeLimits, identify_service
from iotscope.survey.probes.registry import probes

from .probes.fake_devices import loopback_scope

ACCOUNT = "tech"  # Mirai's pair tech/tech is mirai-61
WEAK, STRONG = "tech", "v9#Lq-2xT!mZ-unlisted"
TELNET_HOST, SSH_HOST = "127.0.0.71", "127.0.0.72"
#: login(1) waits 3 s (pam_faildelay) after each wrong password: allow for it.
LIMITS = ProbeLimits(connect_timeout=2.0, read_timeout=8.0, deadline=40.0, attempt_delay=0.0, prompt_settle=0.3)
#: A user that does not exist on the device first (refused), then the account's Mirai pair.
CREDENTIALS = [c for c in load_builtin() if c.id in ("mirai-16", "mirai-61")]


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root (bind mounts in a private mount namespace)"
    for tool in ("unshare", "busybox", "dropbear", "dropbearkey", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare -m is not permitted here: {probe.stderr.decode().strip()}"
    return None


needs_namespace = pytest.mark.skipif(_missing_prerequisite() is not None, reason=_missing_prerequisite() or "")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _accounts(directory: Path, password: str) -> tuple[Path, Path]:
    """Copies of passwd/shadow with the throwaway account (hash from openssl, SHA-512 crypt)."""
    digest = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password.encode(), capture_output=True, check=True
    ).stdout.decode().strip()
    home = directory / "home"
    home.mkdir()
    passwd, shadow = directory / "passwd", directory / "shadow"
    uids = {int(line.split(":")[2]) for line in Path("/etc/passwd").read_text().splitlines() if line.count(":") >= 6}
    uid = next(u for u in range(64100, 65000) if u not in uids)
    os.chown(home, uid, uid)
    passwd.write_text(Path("/etc/passwd").read_text() + f"{ACCOUNT}:x:{uid}:{uid}:throwaway:{home}:/bin/sh\n")
    shadow.write_text(Path("/etc/shadow").read_text() + f"{ACCOUNT}:{digest}:19000:0:99999:7:::\n")
    shadow.chmod(0o640)
    return passwd, shadow


@dataclass
class Daemons:
    telnet_port: int
    ssh_port: int


def _in_namespace(passwd: Path, shadow: Path, command: list[str]) -> subprocess.Popen:
    script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/shadow && shift 2 && exec "$@"'
    return subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(passwd), str(shadow), *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the daemon and the sessions it forks
    )


def _wait_listening(host: str, port: int, process: subprocess.Popen) -> None:
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


@pytest.fixture(scope="module")
def host_keys(tmp_path_factory) -> list[str]:
    """An Ed25519 host key only. dropbear 2022.83 still advertises the RSA host-key algorithms
    then and aborts (``Failed assertion (rsa.c:164)``) when a client picks one of them: the
    probe must offer host-key algorithms in OpenSSH's order, as hydra and ssh(1) do (issue 7)."""
    key = tmp_path_factory.mktemp("dropbear") / "dropbear_ed25519_host_key"
    subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(key)], capture_output=True, check=True)
    return ["-r", str(key)]


@pytest.fixture(params=[WEAK, STRONG], ids=["weak", "strong"])
def daemons(request, tmp_path: Path, host_keys: list[str]) -> Iterator[tuple[str, Daemons]]:
    passwd, shadow = _accounts(tmp_path, request.param)
    telnet_port, ssh_port = _free_port(TELNET_HOST), _free_port(SSH_HOST)
    telnetd = _in_namespace(
        passwd, shadow, ["busybox", "telnetd", "-F", "-p", str(telnet_port), "-b", TELNET_HOST, "-l", "/bin/login"]
    )
    dropbear = _in_namespace(
        passwd, shadow, ["dropbear", "-F", "-E", "-j", "-k", "-p", f"{SSH_HOST}:{ssh_port}", *host_keys]
    )
    try:
        _wait_listening(TELNET_HOST, telnet_port, telnetd)
        _wait_listening(SSH_HOST, ssh_port, dropbear)
        yield request.param, Daemons(telnet_port, ssh_port)
    finally:
        for process in (telnetd, dropbear):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            process.wait(timeout=5)


@needs_namespace
def test_busybox_telnetd_and_dropbear(daemons):
    password, ports = daemons
    # Strong: only the account's own name (each refusal costs login's 3 s fail delay).
    credentials = CREDENTIALS if password == WEAK else [c for c in CREDENTIALS if c.username == ACCOUNT]

    async def survey():
        scope = loopback_scope()
        return await asyncio.gather(
            identify_service(scope, TELNET_HOST, ports.telnet_port, LIMITS),
            identify_service(scope, SSH_HOST, ports.ssh_port, LIMITS),
            probes()["telnet"](scope, TELNET_HOST, ports.telnet_port, credentials, LIMITS),
            probes()["ssh"](scope, SSH_HOST, ports.ssh_port, credentials, LIMITS),
        )

    telnet_service, ssh_service, telnet, ssh = asyncio.run(survey())
    assert (telnet_service, ssh_service) == ("telnet", "ssh")
    assert ssh.device and ssh.device.startswith("dropbear")
    # busybox telnetd shows /etc/issue.net ("Debian GNU/Linux 12") before login's prompt.
    assert telnet.device, telnet
    assert telnet.banner.endswith("login:"), telnet.banner
    if password == WEAK:
        assert (telnet.status, telnet.credential_id, telnet.attempts) == ("vulnerable", "mirai-61", 2), telnet
        assert (ssh.status, ssh.credential_id, ssh.attempts) == ("vulnerable", "mirai-61", 2), ssh
        assert "login:" in telnet.banner, telnet.banner
    else:
        assert (telnet.status, telnet.credential_id, telnet.attempts) == ("not_vulnerable", None, 1), telnet
        assert (ssh.status, ssh.credential_id, ssh.attempts) == ("not_vulnerable", None, 1), ssh


WEB_HOST = "127.0.0.76"


def _nginx(directory: Path, port: int) -> list[str]:
    """nginx serving Debian's stock page (/var/www/html/index.nginx-debian.html) on ``port``."""
    config = directory / "nginx.conf"
    config.write_text(
        f"daemon off;\nmaster_process off;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n access_log off;\n client_body_temp_path {directory}/body;\n"
        f" proxy_temp_path {directory}/proxy;\n fastcgi_temp_path {directory}/fastcgi;\n"
        f" server {{\n  listen {WEB_HOST}:{port};\n  root /var/www/html;\n"
        "  index index.html index.nginx-debian.html;\n }\n}\n"
    )
    return ["nginx", "-e", str(directory / "error.log"), "-p", str(directory), "-c", str(config)]


def _lighttpd(directory: Path, port: int) -> list[str]:
    """lighttpd serving Debian's placeholder page (/usr/share/lighttpd/index.html) on ``port``."""
    config = directory / "lighttpd.conf"
    config.write_text(
        f'server.document-root = "/usr/share/lighttpd"\nserver.bind = "{WEB_HOST}"\nserver.port = {port}\n'
        f'server.errorlog = "{directory}/error.log"\nindex-file.names = ("index.html")\n'
        'mimetype.assign = (".html" => "text/html")\n'
    )
    return ["lighttpd", "-D", "-f", str(config)]


STOCK_PAGE_FILES = {"nginx": "/var/www/html/index.nginx-debian.html", "lighttpd": "/usr/share/lighttpd/index.html"}


@pytest.mark.parametrize(("server", "command"), [("nginx", _nginx), ("lighttpd", _lighttpd)])
def test_stock_page_of_a_real_web_server_is_not_an_admin_page(server, command, tmp_path):
    if shutil.which(server) is None or not Path(STOCK_PAGE_FILES[server]).exists():
        pytest.skip(f"{server} is not installed (Debian package {'nginx-light' if server == 'nginx' else server})")
    port = _free_port(WEB_HOST)
    process = subprocess.Popen(
        command(tmp_path, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _wait_listening(WEB_HOST, port, process)

        async def survey():
            scope = loopback_scope()
            return (
                await identify_service(scope, WEB_HOST, port, LIMITS),
                await probes()["http"](scope, WEB_HOST, port, CREDENTIALS, LIMITS),
            )

        service, result = asyncio.run(survey())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    assert service == "http"
    assert (result.status, result.credential_id, result.attempts) == ("not_vulnerable", None, 0), result
    assert result.device and result.device.startswith(server), result
