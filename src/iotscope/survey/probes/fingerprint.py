"""A vendor/software guess from what a device says about itself (banners, prompts, headers).

The guess goes into findings so that step (3) of the framework, asking makers for
countermeasures, knows whom to ask. Rules are ordered: device makers first, then the embedded
software they ship (many IoT devices only reveal the latter); up to two distinct matches are
joined, e.g. "Hikvision / lighttpd 1.4.35".
"""

from __future__ import annotations

import re

def _compiled(rules: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern, re.IGNORECASE), name) for pattern, name in rules]


#: Device makers and firmware families: the names a device's own defaults are listed under.
_MAKER_RULES = _compiled(
    [
        (r"hikvision|DVRDVS-Webs|DNVRS-Webs|App-webs/|Hikvision-Webs", "Hikvision"),
        (r"dahua|\bDH_?(?:IPC|NVR|DVR)\b", "Dahua"),
        (r"uc-httpd|xiongmai|\bXMeye\b|NETSurveillance", "Xiongmai"),
        (r"\bZTE\b|ZXHN|ZXV10", "ZTE"),
        (r"huawei|HG532|HG8245|EchoLife", "Huawei"),
        (r"TP-?LINK", "TP-Link"),
        (r"D-?Link|\bDIR-\d+", "D-Link"),
        (r"mikrotik|RouterOS|SSH-[\d.]+-ROSSSH", "MikroTik"),
        (r"ubiquiti|\bUBNT\b|airOS|UniFi", "Ubiquiti"),
        (r"netgear", "Netgear"),
        (r"zyxel", "ZyXEL"),
        (r"AV-TECH|Avtech", "Avtech"),
        (r"Netwave IP Camera", "Netwave"),
        (r"\bAXIS\b", "Axis"),
        (r"raspbian|raspberry ?pi", "Raspberry Pi"),
        (r"OpenWrt", "OpenWrt"),
        (r"DD-WRT", "DD-WRT"),
        (r"Realtek|\bRTL\d{4}", "Realtek SDK"),
    ]
)
#: Embedded software that many makers ship (many IoT devices reveal only this).
_SOFTWARE_RULES = _compiled(
    [
        (r"BusyBox v?(\d+(?:\.\d+)+)", "BusyBox {0}"),
        (r"BusyBox", "BusyBox"),
        (r"SSH-[\d.]+-dropbear_?(\d[\d.]*)?", "dropbear {0}"),
        (r"SSH-[\d.]+-OpenSSH_(\d[\w.]*)", "OpenSSH {0}"),
        (r"SSH-[\d.]+-(?!dropbear|OpenSSH)(\S+)", "SSH {0}"),
        (r"GoAhead", "GoAhead"),
        (r"lighttpd/?([\d.]+)?", "lighttpd {0}"),
        (r"\bBoa/([\d.]+\w*)", "Boa {0}"),
        (r"mini_httpd|micro_httpd|thttpd|uhttpd", "small httpd"),
        (r"RomPager/([\d.]+)", "RomPager {0}"),
        (r"Mbedthis-Appweb|Appweb", "Appweb"),
        (r"vsFTPd ?([\d.]+)?", "vsFTPd {0}"),
        (r"ProFTPD ?([\d.]+)?", "ProFTPD {0}"),
        (r"Pure-FTPd", "Pure-FTPd"),
        (r"nginx/?([\d.]+)?", "nginx {0}"),
        (r"Apache/?([\d.]+)?", "Apache {0}"),
        # Operating systems that telnetd and sshd name in their issue text.
        (r"Debian GNU/Linux ?(\d+)?", "Debian {0}"),
        (r"Ubuntu ?(\d+\.\d+)?", "Ubuntu {0}"),
    ]
)
_RULES = _MAKER_RULES + _SOFTWARE_RULES


def guess_device(*texts: str | None) -> str | None:
    """Up to two distinct vendor/software names found in ``texts``, or None when nothing is known."""
    text = " ".join(t for t in texts if t)
    if not text:
        return None
    found: list[str] = []
    for pattern, name in _RULES:
        match = pattern.search(text)
        if not match:
            continue
        version = next((g for g in match.groups() if g), "")
        label = name.format(version).strip()
        family = label.split(" ")[0]
        if all(not f.startswith(family) for f in found):
            found.append(label)
        if len(found) == 2:
            break
    return " / ".join(found) or None


def device_maker(*texts: str | None) -> str | None:
    """The device maker or firmware family named in ``texts`` ("Hikvision", "OpenWrt"), or None.

    Unlike :func:`guess_device`, embedded software (BusyBox, lighttpd, nginx) does not count: it
    says nothing about whose device this is, so it neither proves a device UI nor selects a
    maker's default credentials.
    """
    text = " ".join(t for t in texts if t)
    return next((name for pattern, name in _MAKER_RULES if pattern.search(text)), None)


#: "220 Welcome to blah FTP service." / "220 DiskStation FTP server ready." -> the name before "FTP".
_FTP_NAME = re.compile(
    r"^220[ -](?:\(?\s*)?(?:welcome to\s+)?(?:the\s+)?([\w][\w .()/-]{0,40}?)\s+ftpd?\b", re.IGNORECASE
)
#: "NVR-4CH login:" -> the host name the device shows before its login prompt.
_LOGIN_NAME = re.compile(r"(?:^|\s)([\w][\w.-]{0,40})\s+login:\s*$", re.IGNORECASE)
_NAMELESS = frozenset({
    "none", "(none)", "localhost", "login", "user", "server", "ftp", "please", "to", "the", "again", "console",
    "system", "device", "admin", "welcome",
})


def name_in_greeting(protocol: str, banner: str) -> str | None:
    """The name a telnet or FTP greeting gives itself when no rule knows it (a host or product
    name: "blah" in "220 Welcome to blah FTP service.", "NVR-4CH" in "NVR-4CH login:"), or None.

    A guess from the device's own words beats an empty column: whoever acts on a finding
    (step 3, ask the maker) needs something to go on.
    """
    pattern = {"ftp": _FTP_NAME, "telnet": _LOGIN_NAME}.get(protocol)
    match = pattern.search(banner.strip()) if pattern else None
    if match is None or match.group(1).lower() in _NAMELESS:
        return None
    return match.group(1)
