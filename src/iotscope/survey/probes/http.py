"""HTTP: admin pages open without authentication, or behind Basic/Digest auth with a default password.

The probe asks a few admin paths (following same-host redirects). A 200 page is an open admin
page only with positive evidence of a device UI: admin words *and* a device maker's name or a
router/camera/DVR UI marker, and no login form. Stock pages that web servers install (nginx's
"Welcome to nginx!", Apache's "It works!", lighttpd's placeholder, IIS, distribution test
pages) are never devices, whatever they say about "configuration" (issue 7 item 3); a 401 with a Basic or Digest challenge (RFC 7617, RFC 7616)
is tried with the credential list, and a 2xx/3xx answer with credentials is access. Form-based
logins are not attempted (that would mean posting to device-specific forms). One request per
connection (``Connection: close``), each read bounded by the step timeout and size cap.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from iotscope.survey.credentials import Credential
from iotscope.survey.probes.fingerprint import device_maker
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import ProbeFailure, ProbeRecord, ProbeResult, plan_attempts, service_probe
from iotscope.survey.probes.stream import open_device
from iotscope.survey.scope import Scope

ADMIN_PATHS = ("/", "/admin/", "/cgi-bin/")
#: Identifies the scanner to the device owner's logs (ZMap's scanning best practices).
USER_AGENT = "iotscope-survey/0.1 (authorized IoT default-credential survey)"
_MAX_REQUESTS_BEFORE_AUTH = 6
_BODY_KEPT = 16 * 1024  # enough to judge a page; the rest is not read
_STATUS = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")
_ADMIN_WORDS = re.compile(
    rb"admin|setup|settings|configur|firmware|wireless|reboot|device|system|network|camera|router",
    re.IGNORECASE,
)
#: What only a device's own UI says: network, radio, camera and recorder settings, device classes.
_DEVICE_UI_MARKERS = re.compile(
    rb"wireless|\bwi-?fi\b|\bssid\b|\bwlan\b|\bwan\b|\bdhcp\b|pppoe|firmware|reboot|factory (?:reset|default)"
    rb"|port ?forward|\b[dn]vr\b|camera|webcam|surveillance|live ?view|\bptz\b|router|gateway|access point"
    rb"|modem|\bluci\b|device management|\bont\b|\bonu\b|\bcpe\b|set-?top box|\bprinter\b",
    re.IGNORECASE,
)
#: Pages that web server packages install before anyone configures them (Debian, Ubuntu, RHEL,
#: Windows): a server with one of these serves nothing of its own yet.
_STOCK_PAGE = re.compile(
    rb"welcome to nginx|welcome to openresty|\bit works!|apache2? (?:debian|ubuntu) default page"
    rb"|test page for the (?:apache|nginx)|has not put up any web pages yet|placeholder page installed by"
    rb"|<title>\s*iis(?:\d+(?:\.\d+)?| windows(?: server)?)?\s*</title>|iisstart\.png"
    rb"|internet information services|caddy works!",
    re.IGNORECASE,
)
_PASSWORD_FIELD = re.compile(rb"type\s*=\s*[\"']?password", re.IGNORECASE)
_LOGIN_WORDS = re.compile(rb"\blog ?in\b|sign ?in|user ?name", re.IGNORECASE)
_LOGOUT = re.compile(rb"log ?out|log ?off|sign ?out", re.IGNORECASE)
_TITLE = re.compile(rb"<title[^>]*>([^<]{0,120})", re.IGNORECASE)


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def _head_end(data: bytes) -> int:
    end = data.find(b"\r\n\r\n")
    return end + 4 if end >= 0 else -1


def _response_complete(data: bytes) -> bool:
    """Headers plus the part of the body we keep; EOF ends it otherwise (Connection: close)."""
    end = _head_end(data)
    if end < 0:
        return False
    body = len(data) - end
    if body >= _BODY_KEPT:
        return True
    length = re.search(rb"\r\ncontent-length:\s*(\d{1,12})", data[:end], re.IGNORECASE)
    if length is not None:
        return body >= int(length.group(1))
    if re.search(rb"\r\ntransfer-encoding:\s*chunked", data[:end], re.IGNORECASE):
        return data.endswith(b"0\r\n\r\n")
    return False


def parse_response(data: bytes) -> Response:
    """Status, headers and (the start of) the body; anything else is a ProbeFailure."""
    status = _STATUS.match(data)
    if status is None:
        raise ProbeFailure("not an HTTP response" if data else "connection closed without a response")
    end = _head_end(data)
    head = data[: end if end >= 0 else len(data)]
    headers: dict[str, list[str]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().decode("latin-1").lower()
            headers.setdefault(key, []).append(value.strip().decode("latin-1"))
    body = data[end:] if end >= 0 else b""
    return Response(int(status.group(1)), headers, body[:_BODY_KEPT])


async def request(
    scope: Scope,
    ip: str,
    port: int,
    path: str,
    limits: ProbeLimits,
    record: ProbeRecord,
    authorization: str | None = None,
    method: str = "GET",
) -> Response:
    """One request on its own connection."""
    host = f"[{ip}]" if ":" in ip else ip
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"User-Agent: {USER_AGENT}",
        "Accept: */*",
        "Connection: close",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    async with open_device(scope, ip, port, limits, record) as stream:
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = await stream.read_until(
            _response_complete, "HTTP response", usable=lambda d: _head_end(d) >= 0
        )
    return parse_response(data)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "digest"
    params: dict[str, str]


_PARAM = re.compile(r'([\w-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Basic and Digest challenges from WWW-Authenticate headers (others are ignored)."""
    challenges = []
    for value in values:
        for part in re.split(r",\s*(?=(?:basic|digest|bearer|negotiate|ntlm)\b)", value, flags=re.IGNORECASE):
            scheme, _, rest = part.strip().partition(" ")
            if scheme.lower() in ("basic", "digest"):
                params = {
                    k.lower(): v[1:-1].replace('\\"', '"') if v.startswith('"') else v
                    for k, v in _PARAM.findall(rest)
                }
                challenges.append(Challenge(scheme.lower(), params))
    return challenges


_DIGEST_HASHES = {"md5": hashlib.md5, "md5-sess": hashlib.md5, "sha-256": hashlib.sha256, "sha-256-sess": hashlib.sha256}


def authorization_header(
    challenge: Challenge, credential: Credential, method: str, uri: str, cnonce: str | None = None
) -> str | None:
    """The Authorization value answering ``challenge`` (RFC 7617 / RFC 7616), None if unsupported.

    ``cnonce`` is random unless given (tests pin it to check against the RFC's worked example).
    """
    if challenge.scheme == "basic":
        token = f"{credential.username}:{credential.password}".encode("latin-1")
        return "Basic " + base64.b64encode(token).decode("ascii")
    params = challenge.params
    algorithm = params.get("algorithm", "MD5")
    hash_function = _DIGEST_HASHES.get(algorithm.lower())
    nonce = params.get("nonce")
    if hash_function is None or nonce is None:
        return None

    def digest(text: str) -> str:
        return hash_function(text.encode("latin-1")).hexdigest()

    realm = params.get("realm", "")
    cnonce = cnonce or os.urandom(8).hex()
    nc = "00000001"
    ha1 = digest(f"{credential.username}:{realm}:{credential.password}")
    if algorithm.lower().endswith("-sess"):
        ha1 = digest(f"{ha1}:{nonce}:{cnonce}")
    ha2 = digest(f"{method}:{uri}")
    qops = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
    fields = [
        'username="{}"'.format(credential.username.replace("\\", "\\\\").replace('"', '\\"')),
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
    ]
    if "auth" in qops:
        response = digest(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    elif not qops:
        response = digest(f"{ha1}:{nonce}:{ha2}")
    else:
        return None  # auth-int only: needs the body hash; devices do not use it
    fields.append(f'response="{response}"')
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


def is_stock_server_page(body: bytes) -> bool:
    """True for the welcome/placeholder page a web server package installs (never a device)."""
    return _STOCK_PAGE.search(body) is not None


def shows_a_device_ui(response: Response) -> bool:
    """Positive evidence that the page belongs to a device: a maker named in the Server header or
    the page, or a router/camera/DVR UI marker. Admin words alone ("configuration", "system")
    are on every web server's welcome page and many ordinary sites."""
    if _DEVICE_UI_MARKERS.search(response.body):
        return True
    return device_maker(response.header("server"), response.body.decode("latin-1")) is not None


def looks_like_open_admin_page(response: Response) -> bool:
    """A page that administers the device, served without asking for a password.

    A login form (a password field or login words, and no way to log out) is not: it is the
    device asking for credentials in a form this probe does not fill in. A settings page may
    well have a password field (to change it) but offers to log out, as sessions do.
    """
    body = response.body
    if not 200 <= response.status < 300 or _ADMIN_WORDS.search(body) is None:
        return False
    if is_stock_server_page(body) or not shows_a_device_ui(response):
        return False
    asks_to_log_in = _PASSWORD_FIELD.search(body) or _LOGIN_WORDS.search(body)
    return not asks_to_log_in or _LOGOUT.search(body) is not None


def _note(record: ProbeRecord, response: Response) -> None:
    """Keep what identifies the device as the banner: server, realm, page title."""
    parts = [f"HTTP {response.status}"]
    if server := response.header("server"):
        parts.append(f"Server: {server}")
    if realm := re.search(r'realm="([^"]*)"', " ".join(response.headers.get("www-authenticate", []))):
        parts.append(f"realm: {realm.group(1)}")
    if title := _TITLE.search(response.body):
        parts.append(f"title: {title.group(1).decode('latin-1').strip()}")
    record.saw(("; ".join(parts) + "; ").encode("latin-1", "replace"))


def _same_host_path(location: str, ip: str, port: int) -> str | None:
    parts = urlsplit(location)
    if parts.scheme and parts.scheme != "http":
        return None
    if parts.netloc and parts.hostname != ip.strip("[]"):
        return None  # never follow a redirect off the authorized target
    if parts.netloc and (parts.port or 80) != port:
        return None
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return path + (f"?{parts.query}" if parts.query else "")


async def _survey(
    scope: Scope, ip: str, port: int, credentials: list[Credential], limits: ProbeLimits, record: ProbeRecord
) -> ProbeResult:
    """Open admin pages, then Basic/Digest default credentials, on the HTTP service at ``ip:port``."""
    queue = list(ADMIN_PATHS)
    asked: set[str] = set()
    while queue and len(asked) < _MAX_REQUESTS_BEFORE_AUTH:
        path = queue.pop(0)
        if path in asked:
            continue
        asked.add(path)
        response = await request(scope, ip, port, path, limits, record)
        if len(asked) == 1 or response.status == 401:
            _note(record, response)
        if response.status == 401:
            challenges = parse_challenges(response.headers.get("www-authenticate", []))
            if challenges:
                return await _authenticate(scope, ip, port, path, challenges, credentials, limits, record)
        elif looks_like_open_admin_page(response):
            return record.result("vulnerable", f"admin page {path} open without authentication")
        elif 300 <= response.status < 400 and (location := response.header("location")):
            target = _same_host_path(location, ip, port)
            if target is not None:
                queue.insert(0, target)
    return record.result("not_vulnerable", "no open admin page and no Basic/Digest challenge")


probe = service_probe("http", _survey, parallel=False)


async def _authenticate(
    scope: Scope,
    ip: str,
    port: int,
    path: str,
    challenges: list[Challenge],
    credentials: list[Credential],
    limits: ProbeLimits,
    record: ProbeRecord,
) -> ProbeResult:
    # Digest first when offered: a server offering both accepts both, and Digest leaks less.
    challenge = sorted(challenges, key=lambda c: c.scheme != "digest")[0]
    for credential in plan_attempts(credentials, record, limits):  # realm/server/title name the maker
        header = authorization_header(challenge, credential, "GET", path)
        if header is None:
            record.untried = 0  # no pair can ever be tried: a verdict, not an unfinished list
            return record.result("not_vulnerable", f"unsupported {challenge.scheme} challenge")
        await record.pace(limits)
        record.attempt(credential)
        record.sending(credential)
        response = await request(scope, ip, port, path, limits, record, authorization=header)
        if 200 <= response.status < 400:
            return record.result("vulnerable", f"{challenge.scheme} auth accepted on {path}", credential.id)
        record.rejected += 1
        fresh = parse_challenges(response.headers.get("www-authenticate", []))
        same_scheme = [c for c in fresh if c.scheme == challenge.scheme]
        if same_scheme:
            challenge = same_scheme[0]  # a new nonce for the next Digest attempt
    return record.result("not_vulnerable", f"{record.attempts} credentials rejected ({challenge.scheme})")
