"""Real daemons from Debian packages, started on loopback by the test: BusyBox telnetd (running
login(1), which waits 3 s after each failure), dropbear, vsftpd, and nginx and lighttpd serving
their stock pages.

A throwaway account exists only inside a private mount namespace (``unshare -m``), see
:mod:`iotscope.simulate.devices.real_daemons`: the daemons and the login programs they start see
the account, the machine does not. A weak password (a Mirai pair) must be found with its
credential id, a strong one not.
The web servers run as the test's own processes with a configuration in a temporary directory
(never the system service): their stock welcome pages must not be reported as admin pages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
from iotscope.survey.journal import ResumeError, SurveyJournal
from iotscope.survey.probes import ProbeLimits, identify_service
from iotscope.survey.probes.registry import probes
from iotscope.survey.report import export_report
from iotscope.survey.run import run_survey
from iotscope.survey.scope import Scope
from tests.process_table import running

from .conftest import write_scope
from .probes.fake_devices import loopback_scope

WEAK, STRONG = WEAK_PASSWORD, "v9#Lq-2xT!mZ-unlisted"  # WEAK: Mirai's pair tech/tech is mirai-61
TELNET_HOST, SSH_HOST = "127.0.0.71", "127.0.0.72"
#: login(1) waits 3 s (pam_faildelay) after each wrong password: allow for it.
LIMITS = ProbeLimits(connect_timeout=2.0, read_timeout=8.0, deadline=40.0, attempt_delay=0.0, prompt_settle=0.3)
#: A user that does not exist on the device first (refused), then the account's Mirai pair.
CREDENTIALS = [c for c in load_builtin() if c.id in ("mirai-16", "mirai-61")]


needs_namespace = pytest.mark.skipif(missing_prerequisite() is not None, reason=missing_prerequisite() or "")


@dataclass
class Daemons:
    telnet_port: int
    ssh_port: int


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
    passwd, shadow = accounts(tmp_path, request.param)
    telnet_port, ssh_port = free_port(TELNET_HOST), free_port(SSH_HOST)
    telnetd = in_namespace(
        passwd, shadow, ["busybox", "telnetd", "-F", "-p", str(telnet_port), "-b", TELNET_HOST, "-l", "/bin/login"]
    )
    dropbear = in_namespace(
        passwd, shadow, ["dropbear", "-F", "-E", "-j", "-k", "-p", f"{SSH_HOST}:{ssh_port}", *host_keys]
    )
    try:
        wait_listening(TELNET_HOST, telnet_port, telnetd)
        wait_listening(SSH_HOST, ssh_port, dropbear)
        yield request.param, Daemons(telnet_port, ssh_port)
    finally:
        stop_daemons((telnetd, dropbear))


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
    port = free_port(WEB_HOST)
    process = subprocess.Popen(
        command(tmp_path, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        wait_listening(WEB_HOST, port, process)

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


# --- Slow logins (issue 7 item 2): login(1) via PAM waits 3 s after each failure, vsftpd 1 s. ---

FTP_HOST, SLOW_TELNET_HOST = "127.0.0.73", "127.0.0.74"
#: The account's weak pair comes last, after wrong passwords for the same account: each costs
#: the daemon's fail delay, so the probe must use each connection for as long as it is allowed.
SLOW_LIST = [Credential(f"wrong-{n}", ACCOUNT, f"not-it-{n}", "test") for n in range(1, 5)] + [
    next(c for c in load_builtin() if c.id == "mirai-61")
]
SLOW_LIMITS = ProbeLimits(connect_timeout=2.0, read_timeout=8.0, deadline=60.0, attempt_delay=0.0, prompt_settle=0.3)


@pytest.fixture
def slow_daemons(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """BusyBox telnetd running login(1) and vsftpd, both seeing the weak account."""
    if shutil.which("vsftpd") is None:
        pytest.skip("vsftpd is not installed (Debian package vsftpd)")
    # vsftpd enters the home directory after the password: pytest's tmp_path is private (0700).
    reachable = Path(tempfile.mkdtemp(prefix="iotscope-ftp-"))
    reachable.chmod(0o755)
    passwd, shadow = accounts(tmp_path, WEAK, home=reachable / "home")
    telnet_port, ftp_port = free_port(SLOW_TELNET_HOST), free_port(FTP_HOST)
    telnetd = in_namespace(
        passwd, shadow, ["busybox", "telnetd", "-F", "-p", str(telnet_port), "-b", SLOW_TELNET_HOST, "-l", "/bin/login"]
    )
    vsftpd = in_namespace(passwd, shadow, vsftpd_command(tmp_path, ftp_port, FTP_HOST))
    try:
        wait_listening(SLOW_TELNET_HOST, telnet_port, telnetd)
        wait_listening(FTP_HOST, ftp_port, vsftpd)
        yield telnet_port, ftp_port
    finally:
        stop_daemons((telnetd, vsftpd))
        shutil.rmtree(reachable, ignore_errors=True)


@needs_namespace
def test_slow_pam_logins_over_telnet_and_ftp_find_the_late_pair_on_few_connections(slow_daemons):
    telnet_port, ftp_port = slow_daemons

    async def survey():
        scope = loopback_scope()
        return await asyncio.gather(
            probes()["telnet"](scope, SLOW_TELNET_HOST, telnet_port, SLOW_LIST, SLOW_LIMITS),
            probes()["ftp"](scope, FTP_HOST, ftp_port, SLOW_LIST, SLOW_LIMITS),
        )

    started = time.monotonic()
    telnet, ftp = asyncio.run(survey())
    elapsed = time.monotonic() - started
    assert (telnet.status, telnet.credential_id, telnet.attempts) == ("vulnerable", "mirai-61", 5), telnet
    # login(1) re-prompts after a failure (LOGIN_RETRIES 5): one connection carries all five.
    assert telnet.connections == 1, telnet
    assert telnet.tried == tuple(c.id for c in SLOW_LIST)
    # vsftpd: anonymous, then the list, USER again on one connection until max_login_fails (3).
    assert (ftp.status, ftp.credential_id, ftp.attempts) == ("vulnerable", "mirai-61", 6), ftp
    assert 1 < ftp.connections < ftp.attempts, ftp
    assert ftp.banner.startswith("220"), ftp
    assert elapsed < 40, f"{elapsed:.1f} s"


@needs_namespace
def test_an_incomplete_slow_service_is_resumed_to_completion(slow_daemons, tmp_path: Path):
    """The attempt cap leaves the list unexhausted: incomplete (never not_vulnerable), in the
    summary; --resume tries only the pairs not tried yet and finds the weak one."""
    telnet_port, _ = slow_daemons
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [f"{SLOW_TELNET_HOST}/32"]))
    limits = dataclasses.replace(SLOW_LIMITS, max_attempts=3)

    def survey(resume: bool):
        return asyncio.run(run_survey(
            scope, store=tmp_path / "store", credentials=SLOW_LIST, ports=[telnet_port], rate=100, limits=limits,
            workers=1, resume=resume,
        ))

    first = survey(resume=False)
    [finding] = first.findings
    assert (finding.status, finding.attempts, finding.remaining) == ("incomplete", 3, 2), finding
    assert first.incomplete == 1
    with SurveyJournal(tmp_path / "store") as journal:
        assert journal.incomplete_services(first.survey_id) == {
            (SLOW_TELNET_HOST, telnet_port): [c.id for c in SLOW_LIST[:3]],
        }
    second = survey(resume=True)
    assert second.survey_id == first.survey_id and second.resumed
    [finding] = second.findings
    # Only the two pairs not tried before: the fourth (wrong), then the weak one.
    assert (finding.status, finding.credential_id, finding.attempts) == ("vulnerable", "mirai-61", 2), finding
    assert second.incomplete == 0
    with pytest.raises(ResumeError):  # nothing left to continue
        survey(resume=True)
    report = export_report(tmp_path / "store", tmp_path / "out")
    assert report.incomplete == 0 and report.severities, report


@needs_namespace
def test_two_connections_per_device_overlap_the_fail_delays_of_a_slow_login(slow_daemons):
    """--per-device-connections 2: the two share one queue (no pair twice) and one pace; login(1)'s
    3 s fail delays overlap, so the late weak pair is found in about half the time."""
    telnet_port, ftp_port = slow_daemons
    limits = dataclasses.replace(SLOW_LIMITS, per_device_connections=2)

    async def survey(limits: ProbeLimits):
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await probes()["telnet"](loopback_scope(), SLOW_TELNET_HOST, telnet_port, SLOW_LIST, limits)
        return result, loop.time() - started

    parallel, parallel_seconds = asyncio.run(survey(limits))
    serial, serial_seconds = asyncio.run(survey(SLOW_LIMITS))
    for result in (parallel, serial):
        assert (result.status, result.credential_id) == ("vulnerable", "mirai-61"), result
    assert parallel.connections == 2 and serial.connections == 1
    assert len(set(parallel.tried)) == len(parallel.tried) <= len(SLOW_LIST)  # no pair twice
    assert parallel.banner == serial.banner  # the device identified once, not its greeting twice
    # Four failures cost the serial probe four fail delays (~12 s: PAM varies each 3 s delay); in two lanes about two.
    print(f"telnet, login(1): 2 lanes {parallel_seconds:.1f} s, 1 lane {serial_seconds:.1f} s")
    assert serial_seconds > 8 and parallel_seconds < 0.75 * serial_seconds, (parallel_seconds, serial_seconds)
    ftp = asyncio.run(probes()["ftp"](loopback_scope(), FTP_HOST, ftp_port, SLOW_LIST, limits))
    assert (ftp.status, ftp.credential_id) == ("vulnerable", "mirai-61"), ftp
    assert ftp.banner == "220 (vsFTPd 3.0.3)", ftp.banner


_PARENT = """
import sys
from pathlib import Path
from iotscope.simulate.devices.real_daemons import accounts, free_port, in_namespace, wait_listening
directory = Path(sys.argv[1])
passwd, shadow = accounts(directory, "tech")
port = free_port("127.0.0.73")
telnetd = in_namespace(passwd, shadow, ["busybox", "telnetd", "-F", "-p", str(port), "-b", "127.0.0.73"])
wait_listening("127.0.0.73", port, telnetd)
print(telnetd.pid, flush=True)
sys.stdin.read()  # until killed
"""


@needs_namespace
def test_daemons_end_with_their_parent_on_kill_9(tmp_path: Path) -> None:
    # A parent killed with SIGKILL never calls stop_daemons: the daemon used to live on, its port taken.
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        daemon = int(parent.stdout.readline())
        assert running(daemon)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(daemon) and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = running(daemon)
    finally:
        parent.kill()
    if alive:
        os.killpg(daemon, signal.SIGKILL)
    assert not alive, f"daemon {daemon} outlived its parent's kill -9"
