"""Fixtures of the notify tests: darknet data from the simulator in a real store, orgs files whose
networks hold simulated sources, and a real SMTP server process (STARTTLS + AUTH) on loopback.

    def test_x(darknet, smtp_server, tmp_path):
        orgs = write_orgs(tmp_path / "orgs.toml", [org_entry("A", ["a@a.example"], ["1.2.3.4/32"])])
        ...
        received = smtp_server.received()     # [(envelope dict, email.message.EmailMessage)]
"""

from __future__ import annotations

import email
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iotscope.lifetime import end_with_parent
from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze

SERVER = Path(__file__).with_name("smtp_server.py")
SENDER = '[sender]\norg = "Test CSIRT"\nemail = "csirt@csirt.example"\ndomain = "csirt.example"\n'


@dataclass
class Darknet:
    """A simulated hour ingested into ``store``; ``truth`` rows per source (``ip`` as text added)."""

    store: Path
    truth: list[dict]

    def sources(self, kind: str, n: int) -> list[dict]:
        return [row for row in self.truth if row["kind"] == kind][:n]


@pytest.fixture(scope="session")
def darknet_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    directory = tmp_path_factory.mktemp("darknet")
    result = simulate_darknet(DarknetConfig(packets=40_000, hours=1, seed=11), directory / "darknet.pcap")
    truth = pq.read_table(result.truth_path).to_pylist()
    for row in truth:
        row["ip"] = str(ipaddress.IPv4Address(row["src"]))
    ingest([directory / "darknet.pcap"], directory / "store")
    analyze(directory / "store")  # the alerts read the events and attacks
    return directory / "store", truth


@pytest.fixture
def darknet(darknet_capture: tuple[Path, list[dict]], tmp_path: Path) -> Darknet:
    """A private copy of the ingested store (tests write notify.sqlite into it)."""
    store, truth = darknet_capture
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    return Darknet(copy, truth)


def org_entry(name: str, emails: list[str], networks: list[str], language: str = "en") -> str:
    listed = ", ".join(f'"{e}"' for e in emails)
    nets = ", ".join(f'"{n}"' for n in networks)
    return f'\n[[org]]\nname = "{name}"\nemail = [{listed}]\nnetworks = [{nets}]\nlanguage = "{language}"\n'


def write_orgs(path: Path, entries: list[str]) -> Path:
    path.write_text(SENDER + "".join(entries), encoding="utf-8")
    return path


@dataclass
class SmtpServer:
    port: int
    cafile: Path
    user: str
    password: str
    maildir: Path

    def received(self) -> list[tuple[dict, EmailMessage]]:
        out = []
        for meta in sorted(self.maildir.glob("*.json"), key=lambda p: int(p.stem)):
            raw = meta.with_suffix(".eml").read_bytes()
            out.append((json.loads(meta.read_text()), email.message_from_bytes(raw, policy=policy.default)))
        return out

    def env(self) -> dict[str, str]:
        return {**os.environ, "IOTSCOPE_SMTP_PASSWORD": self.password}


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made with openssl for this test only."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """aiosmtpd in its own process (ends with this one, even on kill -9), STARTTLS and AUTH required."""
    cert, key = make_certificate(tmp_path)
    maildir = tmp_path / "maildir"
    maildir.mkdir()
    parent = os.getpid()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--cert", str(cert), "--key", str(key), "--user", "alerts",
         "--password", "s3cret-pw", "--maildir", str(maildir)],
        stdout=subprocess.PIPE, text=True, preexec_fn=lambda: end_with_parent(parent),  # noqa: PLW1509 - no threads run yet
    )
    try:
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"SMTP test server did not start: {line!r}")
        yield SmtpServer(int(line), cert, "alerts", "s3cret-pw", maildir)
    finally:
        process.kill()
        process.wait()
