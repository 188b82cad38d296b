"""Open ports from a zmap or masscan run, instead of sweeping (the L4 phase done by a faster tool).

Operators with a raw-socket scanner already tuned for their network can use it for the SYN
phase and let iotscope do the service probes. The file is still judged against the scope, line
by line: an address outside the authorized ranges means the file does not belong to this scope,
and the whole import is refused; an address blocklisted since the scan ran is dropped (and
counted), because opt-outs apply to every run.

Formats (detected from the content):

* zmap CSV with a header (``saddr`` plus ``sport``; rows with ``success`` = 0 or a
  ``classification`` other than ``synack`` are ignored), or zmap's default one address per line,
  which names no port: then exactly one port must be given;
* masscan ``-oL`` (``open tcp 80 192.0.2.1 1700000000``);
* masscan ``-oJ`` (a JSON array, or masscan's older line-per-object output with trailing commas).

The file is read as a regular file of at most :data:`IMPORT_MAX_BYTES` (see
:mod:`iotscope.textfile`). Whatever it holds, the only error that leaves this module is
:class:`L4ImportError`, one line with the file and line number (a fuzz test holds it to that).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.survey.addresses import canonical_address
from iotscope.survey.journal import OpenPort
from iotscope.survey.scope import OutOfScopeError, Scope
from iotscope.textfile import read_text_file, read_user_bytes

#: Cap on an imported zmap/masscan file: 256 MiB, some ten million open ports in zmap's CSV.
IMPORT_MAX_BYTES = 256 << 20

_WHAT = "import file"


class L4ImportError(IotscopeError, ValueError):
    """The file is unreadable, not one of the formats, or names an out-of-scope target."""


@dataclass
class L4Import:
    open_ports: list[OpenPort] = field(default_factory=list)
    blocklisted: int = 0
    #: Ports present in the file but not asked for.
    other_ports: int = 0


def read_l4_file(path: Path, scope: Scope, ports: list[int] | None = None) -> L4Import:
    """The open (address, port) pairs of a zmap/masscan output file, checked against ``scope``.

    ``ports``: keep only these (all when None). Duplicates are dropped.
    """
    text = read_text_file(path, _WHAT, L4ImportError, max_bytes=IMPORT_MAX_BYTES)
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        rows = _masscan_json(text, path)
    elif any(line.startswith(("open ", "#masscan")) for line in text.splitlines()[:5]):
        rows = _masscan_list(text, path)
    else:
        rows = _zmap_csv(text, path, ports)
    result = L4Import()
    seen: set[tuple[str, int]] = set()
    for line, ip, port in rows:
        if ports is not None and port not in ports:
            result.other_ports += 1
            continue
        if not ip.isprintable():
            raise L4ImportError(f"{path}:{line}: not an IP address: {ip!r}")
        try:
            scope.check(ip)
        except OutOfScopeError as exc:
            if exc.reason.startswith("blocklisted"):
                result.blocklisted += 1
                continue
            raise L4ImportError(f"{path}:{line}: {exc}") from None
        ip = canonical_address(ip)  # ::ffff:192.0.2.1 and 192.0.2.1 are one target
        if (ip, port) not in seen:
            seen.add((ip, port))
            result.open_ports.append(OpenPort(ip, port))
    return result


def import_file_digest(path: Path) -> str:
    """SHA-256 of the file's content (hex): what a resumed import must share with the first run.
    Read under the same rules and cap as :func:`read_l4_file`."""
    return hashlib.sha256(read_user_bytes(path, _WHAT, L4ImportError, max_bytes=IMPORT_MAX_BYTES)).hexdigest()


Row = tuple[int, str, int]  # (line number, ip, port)


def _port(value: object, path: Path, line: int) -> int:
    text = str(value)
    port = int(text) if text.isascii() and text.isdigit() else 0  # no "+23", "2_3", " 23", "２３"
    if not 0 < port < 65536:
        raise L4ImportError(f"{path}:{line}: bad port {text[:40]!r}")
    return port


def _masscan_list(text: str, path: Path) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 4:
            raise L4ImportError(f"{path}:{number}: not a masscan -oL line")
        status, proto, port, ip = fields[:4]
        if status == "open" and proto == "tcp":
            rows.append((number, ip, _port(port, path, number)))
    return rows


def _masscan_json(text: str, path: Path) -> list[Row]:
    try:
        document = _json(text, path, 1)
        records = [(1, r) for r in (document if isinstance(document, list) else [document])]
    except L4ImportError:
        # masscan < 1.3 writes one object per line with trailing commas and a bare "[" / "]".
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip().rstrip(",")
            if line not in ("", "[", "]"):
                records.append((number, _json(line, path, number)))
    rows = []
    for number, record in records:
        if not isinstance(record, dict) or "ip" not in record:
            continue  # masscan's {"finished": 1} trailer
        entries = record.get("ports", [])
        if not isinstance(entries, list):
            raise L4ImportError(f"{path}:{number}: not masscan -oJ JSON (expected a list of ports)")
        for entry in entries:
            if not isinstance(entry, dict):
                raise L4ImportError(f"{path}:{number}: not masscan -oJ JSON (expected a port object)")
            if entry.get("proto") == "tcp" and entry.get("status", "open") == "open":
                rows.append((number, str(record["ip"]), _port(entry.get("port"), path, number)))
    return rows


def _json(text: str, path: Path, number: int) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        raise L4ImportError(f"{path}:{number}: not masscan -oJ JSON (nested too deeply)") from None
    except ValueError:  # JSONDecodeError, and integers past Python's digit limit
        raise L4ImportError(f"{path}:{number}: not masscan -oJ JSON") from None


def _zmap_csv(text: str, path: Path, ports: list[int] | None) -> list[Row]:
    lines = text.splitlines()
    content = ((n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#"))
    number, first = next(content, (0, ""))
    has_header = "saddr" in first.split(",")
    has_port = has_header and "sport" in first.split(",")
    if not has_header and first and ("," in first or not _is_address(first.strip())):
        # Neither zmap's CSV (whose header names 'saddr') nor its one-address-per-line output.
        raise L4ImportError(
            f"{path}:{number}: expected a zmap CSV header naming 'saddr' (and 'sport'), masscan -oL/-oJ, "
            f"or one address per line; got {first.strip()[:60]!r}"
        )
    if not has_port and (ports is None or len(ports) != 1):
        raise L4ImportError(f"{path}: zmap output without a 'sport' column needs exactly one --ports value")
    if not has_header:
        return [(n, line.strip(), ports[0]) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")]
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows = []
    try:
        for fields in reader:
            number = reader.line_num
            if not fields or fields[0].startswith("#") or not "".join(fields).strip():
                continue
            if header is None:
                header = fields
                continue
            if len(fields) < len(header):
                raise L4ImportError(f"{path}:{number}: not a zmap CSV row (missing {header[len(fields)]!r})")
            record = dict(zip(header, fields, strict=False))  # extra fields: ignored, as csv.DictReader does
            status = record.get("success", "1"), record.get("classification", "synack")
            if status[0] in ("0", "false") or status[1] not in ("synack", ""):
                continue
            port = _port(record["sport"], path, number) if has_port else ports[0]
            rows.append((number, record["saddr"], port))
    except csv.Error as exc:
        raise L4ImportError(f"{path}:{reader.line_num}: not zmap CSV ({exc})") from None
    return rows


def _is_address(text: str) -> bool:
    try:
        canonical_address(text)
    except ValueError:
        return False
    return True
