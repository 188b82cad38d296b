"""What emulated devices say: banners, prompts and server names modelled on real IoT firmware.

The survey identifies services and guesses vendors from exactly these strings, so they follow the
shape of real firmware (BusyBox ``login`` and ``ash``, Huawei's ATP CLI, vendor web servers) rather
than anything tidy. Each :class:`Profile` is one firmware family; a device of the fleet wears one.
The strings are written from public device dumps and scan write-ups (Mirai analyses, Shodan/Censys
banners); none of them is copied from proprietary firmware.
"""

from __future__ import annotations

from dataclasses import dataclass

CRLF = "\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One firmware family: how its telnet, SSH, HTTP and FTP services present themselves.

    The telnet defaults are BusyBox ``login``'s, which most families run; a family says otherwise."""

    name: str
    vendor: str
    login_prompt: str
    #: Printed after a successful login, before the first shell prompt.
    shell_banner: str
    shell_prompt: str
    ssh_version: str
    http_server: str
    http_realm: str
    http_title: str
    ftp_banner: str
    #: Account name the vendor ships (hardened devices keep it and set a strong password).
    admin_user: str
    #: The built-in credential id of this family's factory default (``None``: no known default).
    default_credential_id: str | None
    #: Printed once before the first login prompt (may be empty).
    telnet_preamble: str = ""
    password_prompt: str = "Password: "
    login_incorrect: str = f"{CRLF}Login incorrect{CRLF}"


def busybox_shell_banner(version: str) -> str:
    """The greeting BusyBox ``ash`` prints for an interactive login shell."""
    return (
        f"{CRLF}{CRLF}BusyBox {version} built-in shell (ash){CRLF}"
        f"Enter 'help' for a list of built-in commands.{CRLF}{CRLF}"
    )


PROFILES: tuple[Profile, ...] = (
    Profile(
        name="xiongmai-dvr",
        vendor="Xiongmai",
        login_prompt=f"{CRLF}(none) login: ",
        shell_banner=busybox_shell_banner("v1.19.4 (2014-03-10 15:19:29 CST)"),
        shell_prompt="# ",
        ssh_version="dropbear_2014.63",
        http_server="uc-httpd 1.0.0",
        http_realm="DVR",
        http_title="NETSurveillance WEB",
        ftp_banner="220 Operation successful",
        admin_user="root",
        default_credential_id="mirai-01",
    ),
    Profile(
        name="dahua-dvr",
        vendor="Dahua",
        login_prompt=f"{CRLF}DVRDVS-Webs login: ",
        shell_banner=busybox_shell_banner("v1.16.1 (2013-08-12 17:33:04 CST)"),
        shell_prompt="~ # ",
        ssh_version="dropbear_2012.55",
        http_server="DNVRS-Webs",
        http_realm="Login to DVR",
        http_title="WEB SERVICE",
        ftp_banner="220 Welcome to FTP Server",
        admin_user="root",
        default_credential_id="mirai-02",
    ),
    Profile(
        name="hikvision-ipc",
        vendor="Hikvision",
        login_prompt=f"{CRLF}dvrdvs login: ",
        shell_banner=busybox_shell_banner("v1.16.1 (2013-07-29 15:49:05 CST)"),
        shell_prompt="[root@dvrdvs /]# ",
        ssh_version="dropbear_2014.66",
        http_server="Hikvision-Webs",
        http_realm="Hikvision",
        http_title="Network Camera",
        ftp_banner="220 (vsFTPd 2.0.8)",
        admin_user="admin",
        default_credential_id="mirai-54",
    ),
    Profile(
        name="huawei-hg532",
        vendor="Huawei",
        telnet_preamble=(
            f"{CRLF}-------------------------------{CRLF}"
            f"-----Welcome to ATP Cli------{CRLF}"
            f"-------------------------------{CRLF}"
        ),
        login_prompt=f"{CRLF}Login: ",
        login_incorrect=f"{CRLF}Error: Authorization failed.{CRLF}",
        shell_banner=CRLF,
        shell_prompt="ATP>",
        ssh_version="dropbear_2013.58",
        http_server="mini_httpd/1.19 19dec2003",
        http_realm="HuaweiHomeGateway",
        http_title="HG532e Home Gateway",
        ftp_banner="220 FTP server ready",
        admin_user="telecomadmin",
        default_credential_id="vendor-huawei-1",
    ),
    Profile(
        name="zte-zxhn",
        vendor="ZTE",
        telnet_preamble=f"{CRLF}F660{CRLF}",
        login_prompt="Login: ",
        shell_banner=busybox_shell_banner("v1.01 (2012.10.25-03:26+0000)"),
        shell_prompt="/ # ",
        ssh_version="dropbear_2015.71",
        http_server="Mini web server 1.0 ZTE corp 2005.",
        http_realm="ZXHN H108N",
        http_title="ZXHN F660",
        ftp_banner="220 ZTE FTP server ready",
        admin_user="root",
        default_credential_id="mirai-39",
    ),
    Profile(
        name="openwrt-router",
        vendor="OpenWrt",
        telnet_preamble=(
            f"{CRLF}=== IMPORTANT ============================{CRLF}"
            f" Use 'passwd' to set your login password{CRLF}"
            f" this will disable telnet and enable SSH{CRLF}"
            f" ------------------------------------------{CRLF}"
        ),
        login_prompt=f"{CRLF}OpenWrt login: ",
        shell_banner=busybox_shell_banner("v1.22.1 (2014-09-20 22:01:35 CEST)"),
        shell_prompt="root@OpenWrt:~# ",
        ssh_version="dropbear_2014.63",
        http_server="lighttpd/1.4.35",
        http_realm="OpenWrt",
        http_title="OpenWrt - LuCI",
        ftp_banner="220 Operation successful",
        admin_user="root",
        default_credential_id="mirai-14",
    ),
    Profile(
        name="realtek-router",
        vendor="Realtek",
        login_prompt=f"{CRLF}RTL8186-rg login: ",
        shell_banner=busybox_shell_banner("v1.00-pre8 (2008.06.13-09:11+0000)"),
        shell_prompt="# ",
        ssh_version="dropbear_0.52",
        http_server="Boa/0.94.14rc21",
        http_realm="Wireless Router",
        http_title="Wireless Router Setup",
        ftp_banner="220 RTL FTP Server ready",
        admin_user="admin",
        default_credential_id="mirai-04",
    ),
    Profile(
        name="goahead-camera",
        vendor="Generic IP camera",
        login_prompt=f"{CRLF}IPCamera login: ",
        shell_banner=busybox_shell_banner("v1.12.1 (2012-11-07 10:20:08 CST)"),
        shell_prompt="$ ",
        ssh_version="dropbear_2011.54",
        http_server="GoAhead-Webs",
        http_realm="GoAhead",
        http_title="IP Camera",
        ftp_banner="220 GoAhead FTP ready",
        admin_user="admin",
        default_credential_id="mirai-17",
    ),
)

PROFILES_BY_NAME: dict[str, Profile] = {profile.name: profile for profile in PROFILES}

#: Words that Mirai-style scanners send to reach a shell from a vendor CLI; the prompt just returns.
_SHELL_ESCAPES = frozenset({"enable", "system", "shell", "sh", "linuxshell", "start-shell"})
_EXIT_WORDS = frozenset({"exit", "logout", "quit"})


def shell_reply(command: str) -> str | None:
    """What the fake shell answers to one command line (``None``: the session ends).

    Nothing is ever executed: the survey only needs to see a shell prompt and leave, and an
    emulated device must never become a real shell on the machine running the fleet. The answers
    are the ones BusyBox ``ash`` gives for missing commands and applets, which is also what Mirai's
    ``/bin/busybox ECCHI`` check looks for.
    """
    words = command.strip().split()
    if not words:
        return ""
    if words[0] in _EXIT_WORDS:
        return None
    if words[0] in _SHELL_ESCAPES:
        return ""
    if words[0] in ("busybox", "/bin/busybox") and len(words) > 1:
        return f"{words[1]}: applet not found{CRLF}"
    return f"-sh: {words[0]}: not found{CRLF}"
