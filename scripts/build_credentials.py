#!/usr/bin/env python3
"""Build the survey's built-in credential corpus, src/iotscope/survey/data/credentials.toml.

Run by a maintainer when a source changes, never at install or run time; its output is committed.
NOTICE tried about 600 ID/password pairs per device; this builds a corpus of that size from
public lists whose licences allow redistribution, each pair with its makers, device types,
protocols and sources:

1. scripts/credential_sources/curated.toml (hand-curated, in this repository): Mirai's 62 pairs
   decoded from mirai/bot/scanner.c, with Mirai's selection weights, and factory defaults taken
   from vendors' own documentation. Its header cites every source.
2. RouterSploit (github.com/threat9/routersploit, BSD 3-clause licence, copyright 2018 Threat9):
   the ``defaults`` wordlist of every per-vendor module under routersploit/modules/creds/cameras
   and .../routers (ftp, ssh, telnet, webinterface_http_*), read with ``git show`` at the commit
   given, never imported. Vendor and device type come from the module path.
3. DefaultCreds-cheat-sheet (pypi.org/project/defaultcreds-cheat-sheet, MIT licence, copyright
   2022 Ihebski), the wheel's DefaultCreds/DefaultCreds_db.json: only the products that
   scripts/credential_sources/makers.toml maps by hand to an IoT maker and device type (routers,
   modems, access points, cameras, DVR/NVR, NAS, printers, set-top boxes, and other embedded
   network devices: VoIP phones, UPS/PDU cards, BMCs, KVMs, industrial controllers). Entries
   that describe a password instead of giving one ("(serial number)", "<SEE COMMENT>", anything
   with a space) are left out. A "(ssh)", "(telnet)", "(ftp)" or "(web)" suffix of the product
   gives the protocol; no suffix means "any".

One pair, one entry: a pair listed by several sources or makers is merged (all its makers,
device types, protocols and sources kept). Ids are stable: a pair already in the output keeps its
id; a new pair gets ``<maker>-<n>``. Order: the curated entries as curated (Mirai's 62 first),
then the rest by how many makers ship the pair (a proxy for prevalence), then by id.

    pip download --no-deps defaultcreds-cheat-sheet==0.5.3.0 -d /tmp/dc
    git clone https://github.com/threat9/routersploit /tmp/rsf
    python scripts/build_credentials.py --routersploit /tmp/rsf/.git \\
        --defaultcreds /tmp/dc/defaultcreds_cheat_sheet-0.5.3.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CURATED = ROOT / "scripts" / "credential_sources" / "curated.toml"
OUTPUT = ROOT / "src" / "iotscope" / "survey" / "data" / "credentials.toml"
ROUTERSPLOIT_COMMIT = "723b574c36ae202857e3f93e4f3c2ab9a1638ed4"
DEFAULTCREDS_VERSION = "0.5.3.0"

MAKERS = ROOT / "scripts" / "credential_sources" / "makers.toml"
ROUTERSPLOIT_DEVICES = {"cameras": "camera", "routers": "router"}
ROUTERSPLOIT_PROTOCOLS = {"ftp": "ftp", "ssh": "ssh", "telnet": "telnet", "webinterface": "http"}
#: Generic DefaultCreds products from IoT botnet and scanner lists: kept, no maker attributed.
DEFAULTCREDS_GENERIC = {"telnet": "iot", "ssh": "iot", "ftp": "iot"}
_PROTOCOL_SUFFIX = re.compile(r"\s*\((ssh|telnet|ftp|web|http)\)\s*$")
_PROTOCOL_NAMES = {"ssh": "ssh", "telnet": "telnet", "ftp": "ftp", "web": "http", "http": "http"}
#: Values that describe a password instead of being one.
_DESCRIPTIVE = re.compile(r"^[<(\[].*[>)\]]$|\s|^n/?a$", re.IGNORECASE)
_VALUE = re.compile(r"[\x21-\x7e]{0,64}")


@dataclass
class Entry:
    username: str
    password: str
    id: str | None = None
    sources: list[str] = field(default_factory=list)
    vendors: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    weight: int | None = None
    curated: bool = False

    def add(self, source: str, vendors: list[str], devices: list[str], protocols: list[str]) -> None:
        for values, new in (
            (self.sources, [source]),
            (self.vendors, vendors),
            (self.devices, devices),
            (self.protocols, protocols),
        ):
            values.extend(v for v in new if v not in values)


class Corpus:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}
        #: Curated entries in curated order, repeats included: Mirai lists guest/12345 twice
        #: (mirai-31, mirai-32) and both ids stay, so the numbering matches Mirai's source (a
        #: probe tries the pair once, under the first id).
        self.curated: list[Entry] = []

    def add(
        self, username: str, password: str, source: str, vendors: list[str], devices: list[str], protocols: list[str]
    ) -> None:
        pair = (username, password)
        entry = self.entries.setdefault(pair, Entry(username, password))
        entry.add(source, vendors, devices, protocols)


def load_curated(corpus: Corpus) -> None:
    for item in tomllib.loads(CURATED.read_text(encoding="utf-8"))["credential"]:
        pair = (item["username"], item["password"])
        source = item["source"] + (f"; makers: {item['vendors_source']}" if "vendors_source" in item else "")
        if pair in corpus.entries:  # a repeat keeps its own id and metadata, outside the merge
            entry = Entry(
                *pair,
                sources=[source],
                vendors=list(item["vendors"]),
                devices=list(item["devices"]),
                protocols=list(item["protocols"]),
            )
        else:
            corpus.add(*pair, source, item["vendors"], item["devices"], item["protocols"])
            entry = corpus.entries[pair]
        entry.id, entry.weight, entry.curated = item["id"], item.get("weight"), True
        corpus.curated.append(entry)


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True, text=True).stdout


def load_routersploit(corpus: Corpus, git_dir: Path, makers: dict[str, str]) -> int:
    count = 0
    paths = _git(git_dir, "ls-tree", "-r", "--name-only", ROUTERSPLOIT_COMMIT, "routersploit/modules/creds").split()
    for path in sorted(paths):
        parts = path.split("/")
        if len(parts) != 6 or parts[3] not in ROUTERSPLOIT_DEVICES or not parts[5].endswith("_default_creds.py"):
            continue
        protocol = ROUTERSPLOIT_PROTOCOLS.get(parts[5].split("_")[0])
        if protocol is None:  # api_ros: MikroTik's API, not a protocol the survey speaks
            continue
        text = _git(git_dir, "show", f"{ROUTERSPLOIT_COMMIT}:{path}")
        match = re.search(r'defaults\s*=\s*OptWordlist\(\s*"([^"]*)"', text)
        if match is None:
            continue
        source = f"routersploit@{ROUTERSPLOIT_COMMIT[:7]} modules/creds (BSD-3-Clause)"
        for pair in match.group(1).split(","):
            username, sep, password = pair.partition(":")
            if sep and _usable(username) and _usable(password):
                corpus.add(
                    username,
                    password,
                    source,
                    [makers[parts[4]]],
                    [ROUTERSPLOIT_DEVICES[parts[3]]],
                    [protocol],
                )
                count += 1
    return count


def load_defaultcreds(corpus: Corpus, wheel: Path, makers: dict[str, list[str]]) -> int:
    with zipfile.ZipFile(wheel) as archive:
        table = json.loads(archive.read("DefaultCreds/DefaultCreds_db.json"))["_default"]
    source = f"DefaultCreds-cheat-sheet {DEFAULTCREDS_VERSION} (MIT)"
    count = 0
    for key in sorted(table, key=int):
        row = table[key]
        product = row["product"].strip().lower()
        suffix = _PROTOCOL_SUFFIX.search(product)
        base = product[: suffix.start()] if suffix else product
        protocols = [_PROTOCOL_NAMES[suffix.group(1)]] if suffix else ["any"]
        if base in makers:
            vendor, device = makers[base]
            vendors = [vendor]
        elif base.startswith("ip camera"):
            vendors, device = ["Generic IP camera"], "camera"
        elif base in DEFAULTCREDS_GENERIC:
            vendors, device = [], DEFAULTCREDS_GENERIC[base]
        else:
            continue
        username, password = (_blank(row["username"]), _blank(row["password"]))
        if _usable(username) and _usable(password):
            corpus.add(username, password, source, vendors, [device], protocols)
            count += 1
    return count


def _blank(value: str) -> str:
    return "" if value.strip().lower() in ("<blank>", "(blank)", "(none)", "<none>", "<empty>") else value


def _usable(value: str) -> bool:
    return _VALUE.fullmatch(value) is not None and _DESCRIPTIVE.search(value) is None


def previous_ids(path: Path) -> dict[tuple[str, str], str]:
    """Pair -> id of the committed output: ids never change once published."""
    if not path.exists():
        return {}
    known: dict[tuple[str, str], str] = {}
    for item in tomllib.loads(path.read_text(encoding="utf-8"))["credential"]:
        known.setdefault((item["username"], item["password"]), item["id"])
    return known


def _slug(vendor: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", vendor.lower()) or "iot"


def assign_ids(corpus: Corpus, known: dict[tuple[str, str], str]) -> None:
    taken = {e.id for e in corpus.entries.values() if e.id} | set(known.values())
    for pair, entry in corpus.entries.items():
        if entry.id is None and pair in known:
            entry.id = known[pair]
    for entry in corpus.entries.values():
        if entry.id is None:
            slug = _slug(entry.vendors[0]) if entry.vendors else "iot"
            n = 1
            while f"{slug}-{n}" in taken:
                n += 1
            entry.id = f"{slug}-{n}"
            taken.add(entry.id)


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string of printable ASCII is a valid TOML basic string


def render(corpus: Corpus, counts: dict[str, int]) -> str:
    curated = corpus.curated
    rest = sorted((e for e in corpus.entries.values() if not e.curated), key=lambda e: (-len(e.vendors), e.id))
    lines = [
        "# Built-in default credentials for the iotscope survey: GENERATED by scripts/build_credentials.py,",
        "# do not edit by hand (edit scripts/credential_sources/curated.toml or the script, then re-run it).",
        "#",
        "# Format (the same for user files given with --credentials): one [[credential]] table per pair,",
        "#   id         stable identifier recorded in findings (the plaintext never leaves the scanner)",
        '#   username / password   printable ASCII, no control characters ("" = empty password)',
        "#   source     where the pair comes from (optional in user files)",
        "#   vendors    makers whose devices ship the pair; devices: their types; protocols: where it",
        "#              applies (telnet, ssh, http, ftp, any); weight: Mirai's selection weight (optional)",
        "#",
        f"# Sources ({len(corpus.entries)} distinct pairs; "
        "Mirai's guest/12345 is listed twice, mirai-31 and mirai-32):",
        f"#   {counts['curated']} hand-curated: Mirai's 62 pairs (mirai-01 .. mirai-62, in source order, with",
        "#     weights) and vendor documentation; see scripts/credential_sources/curated.toml for citations.",
        f"#   {counts['routersploit']} module entries of RouterSploit (github.com/threat9/routersploit at",
        f"#     {ROUTERSPLOIT_COMMIT}, routersploit/modules/creds/{{cameras,routers}}),",
        "#     Copyright 2018 Threat9, BSD 3-clause licence: redistribution with this notice permitted.",
        f"#   {counts['defaultcreds']} rows of DefaultCreds-cheat-sheet {DEFAULTCREDS_VERSION} (pypi.org/project/",
        "#     defaultcreds-cheat-sheet), Copyright (c) 2022 Ihebski, MIT licence: IoT makers' products only.",
        "# A pair listed several times is one entry with all its makers, types, protocols and sources.",
        "# Order: the curated entries, then by the number of makers that ship the pair, then by id.",
    ]
    for entry in curated + rest:
        lines += [
            "",
            "[[credential]]",
            f"id = {_q(entry.id)}",
            f"username = {_q(entry.username)}",
            f"password = {_q(entry.password)}",
            f"source = {_q('; '.join(entry.sources))}",
            f"vendors = [{', '.join(_q(v) for v in entry.vendors)}]",
            f"devices = [{', '.join(_q(d) for d in entry.devices)}]",
            f"protocols = [{', '.join(_q(p) for p in entry.protocols)}]",
        ]
        if entry.weight is not None:
            lines.append(f"weight = {entry.weight}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routersploit", type=Path, required=True, help="git directory of threat9/routersploit")
    parser.add_argument("--defaultcreds", type=Path, required=True, help="defaultcreds-cheat-sheet wheel")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    corpus = Corpus()
    load_curated(corpus)
    counts = {"curated": len(corpus.curated)}
    makers = tomllib.loads(MAKERS.read_text(encoding="utf-8"))
    counts["routersploit"] = load_routersploit(corpus, args.routersploit, makers["routersploit"])
    counts["defaultcreds"] = load_defaultcreds(corpus, args.defaultcreds, makers["defaultcreds"])
    assign_ids(corpus, previous_ids(args.out))
    args.out.write_text(render(corpus, counts), encoding="utf-8")
    print(f"{args.out}: {len(corpus.entries)} pairs ({counts})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
