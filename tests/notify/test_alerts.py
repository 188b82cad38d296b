"""``iotscope alerts run`` end to end: simulated darknet data in a real store, organizations whose
networks hold simulated sources, a real SMTP server process (STARTTLS + AUTH) that must receive
exactly the right mail for the right people, and nothing of one organization in another's mail."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from tests.notify.conftest import Darknet, SmtpServer, org_entry, write_orgs


def iotscope(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotscope", *args], capture_output=True, text=True, env=env, check=False,
                          timeout=120)


def text_of(part: EmailMessage) -> str:
    content = part.get_content()
    return content.decode() if isinstance(content, bytes) else content


def everything(message: EmailMessage) -> str:
    """The text of a message: headers, body and every attachment decoded."""
    parts = [str(message.get("Subject")), str(message.get("To"))]
    for part in message.walk():
        if part.is_multipart():
            continue
        content = text_of(part)
        parts.append(content)
        if part.get_filename() and part.get_filename().endswith(".json"):
            for item in json.loads(content)["evidence"]:
                parts.append(base64.b64decode(item["payload"]).decode())
    return "\n".join(parts)


def three_orgs(darknet: Darknet, tmp_path: Path) -> tuple[Path, dict[str, list[dict]]]:
    a_hosts = darknet.sources("mirai", 3) + darknet.sources("zmap", 1)
    b_hosts = darknet.sources("backscatter_victim", 2)
    quiet = next(f"10.{i}.0.0/16" for i in range(256) if not any(h["ip"].startswith(f"10.{i}.") for h in darknet.truth))
    orgs = write_orgs(tmp_path / "orgs.toml", [
        org_entry("Org A", ["soc@a.example", "noc@a.example"], [f"{h['ip']}/32" for h in a_hosts]),
        org_entry("Org B", ["cert@b.example"], [f"{h['ip']}/32" for h in b_hosts], language="ja"),
        org_entry("Org C", ["c@c.example"], [quiet, "2001:db8::/32"]),
    ])
    return orgs, {"Org A": a_hosts, "Org B": b_hosts}


def smtp_args(server: SmtpServer, *extra: str) -> list[str]:
    return ["--smtp", f"127.0.0.1:{server.port}", "--smtp-user", server.user, "--smtp-cafile", str(server.cafile), *extra]


def test_alerts_reach_the_right_people_with_evidence_and_nothing_else(darknet: Darknet, smtp_server: SmtpServer,
                                                                      tmp_path: Path) -> None:
    orgs, hosts = three_orgs(darknet, tmp_path)
    outbox = tmp_path / "outbox"
    run = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox", str(outbox),
                   *smtp_args(smtp_server), env=smtp_server.env())
    assert run.returncode == 0, run.stderr
    received = smtp_server.received()
    assert len(received) == 2  # Org C has no host in the darknet: no mail
    by_rcpt = {tuple(sorted(env["rcpt_tos"])): (env, msg) for env, msg in received}
    assert set(by_rcpt) == {("cert@b.example",), ("noc@a.example", "soc@a.example")}
    for env, _ in received:
        assert env["tls"] and env["login"] == "alerts" and env["mail_from"] == "csirt@csirt.example"
    expected = {("noc@a.example", "soc@a.example"): "Org A", ("cert@b.example",): "Org B"}
    for rcpt, (_, message) in by_rcpt.items():
        org = expected[rcpt]
        text = everything(message)
        other = "Org B" if org == "Org A" else "Org A"
        for host in hosts[org]:
            assert host["ip"] in text
        for host in hosts[other]:
            assert host["ip"] not in text, f"{other}'s host {host['ip']} in {org}'s mail"
        # the CSV: one row per host, packets and first/last seen as the simulator's ground truth says
        (csv_part,) = [p for p in message.iter_attachments() if p.get_filename() == "hosts.csv"]
        rows = {r["ip"]: r for r in csv.DictReader(io.StringIO(text_of(csv_part)))}
        assert set(rows) == {h["ip"] for h in hosts[org]}
        for host in hosts[org]:
            row = rows[host["ip"]]
            assert int(row["packets"]) == host["packets"]
            assert row["first_seen"] == host["first_ts"].strftime("%Y-%m-%dT%H:%M:%SZ")
            assert row["tool"] == (host["tool"] or "")
            assert row["role"] == ("backscatter" if org == "Org B" else "scan")
        xarf = [json.loads(p.get_content()) for p in message.iter_attachments() if p.get_filename().endswith(".json")]
        assert sorted(r["source_identifier"] for r in xarf) == sorted(h["ip"] for h in hosts[org])
        assert {r["type"] for r in xarf} == ({"ddos"} if org == "Org B" else {"port_scan"})
    assert "ダークネット" in by_rcpt[("cert@b.example",)][1].get_body(("plain",)).get_content()
    assert "darknet" in by_rcpt[("noc@a.example", "soc@a.example")][1].get_body(("plain",)).get_content()
    # the outbox keeps both messages, private
    files = sorted(outbox.rglob("*.eml"))
    assert len(files) == 2 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert all(d.stat().st_mode & 0o777 == 0o700 for d in [outbox, *(f.parent for f in files)])
    assert (darknet.store / "notify.sqlite").stat().st_mode & 0o777 == 0o600

    # de-duplicated: nothing new in the store, so a second run sends nothing
    again = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox", str(outbox),
                     *smtp_args(smtp_server), env=smtp_server.env())
    assert again.returncode == 0, again.stderr
    assert len(smtp_server.received()) == 2 and "6 held back" in again.stderr
    # a quiet period of 0 days still alerts nobody: no packet after the ones alerted
    zero = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox", str(outbox),
                    "--quiet-days", "0", *smtp_args(smtp_server), env=smtp_server.env())
    assert zero.returncode == 0 and len(smtp_server.received()) == 2


def test_dry_run_prints_the_plan_and_records_nothing(darknet: Darknet, tmp_path: Path) -> None:
    orgs, hosts = three_orgs(darknet, tmp_path)
    outbox = tmp_path / "outbox"
    run = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox", str(outbox),
                   "--dry-run", "--smtp", "127.0.0.1:9")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2
    line_a = next(line for line in lines if "Org A" in line)
    assert line_a.startswith("would alert Org A <soc@a.example, noc@a.example>")
    assert all(h["ip"] in line_a for h in hosts["Org A"]) and not any(h["ip"] in line_a for h in hosts["Org B"])
    assert not outbox.exists() and not (darknet.store / "notify.sqlite").exists()
    # with history present, a dry run still writes nothing
    iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox", str(outbox))
    before = (darknet.store / "notify.sqlite").read_bytes()
    files = sorted(outbox.rglob("*"))
    dry = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox", str(outbox),
                   "--dry-run")
    assert dry.returncode == 0 and dry.stdout == ""
    assert (darknet.store / "notify.sqlite").read_bytes() == before and sorted(outbox.rglob("*")) == files


def test_unreachable_server_is_retried_then_reported_and_nothing_is_marked_sent(
        darknet: Darknet, smtp_server: SmtpServer, tmp_path: Path) -> None:
    orgs, hosts = three_orgs(darknet, tmp_path)
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    began = time.monotonic()
    run = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox",
                   str(tmp_path / "outbox"), "--smtp", f"127.0.0.1:{closed}", "--smtp-user", "alerts",
                   "--smtp-cafile", str(smtp_server.cafile), "--smtp-attempts", "3", "--smtp-backoff", "0.3",
                   env=smtp_server.env())
    assert run.returncode == 2
    assert "error:" in run.stderr and "not delivered after 3 attempt(s)" in run.stderr
    assert "Traceback" not in run.stderr
    assert time.monotonic() - began >= 0.9  # 0.3 s, then 0.6 s between the three tries, for each message
    assert "[pending]" in run.stdout
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 2  # kept, not lost
    # the hosts are still due: the next run with a reachable server delivers them
    again = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox",
                     str(tmp_path / "outbox"), *smtp_args(smtp_server), env=smtp_server.env())
    assert again.returncode == 0, again.stderr
    received = smtp_server.received()
    assert len(received) == 2
    assert all(h["ip"] in everything(received[0][1]) + everything(received[1][1]) for h in hosts["Org A"])


def test_wrong_password_is_one_line_and_not_retried(darknet: Darknet, smtp_server: SmtpServer, tmp_path: Path) -> None:
    orgs, _ = three_orgs(darknet, tmp_path)
    env = {**os.environ, "IOTSCOPE_SMTP_PASSWORD": "wrong"}
    run = iotscope("alerts", "run", "--orgs", str(orgs), "--store", str(darknet.store), "--outbox",
                   str(tmp_path / "outbox"), *smtp_args(smtp_server, "--smtp-backoff", "5"), env=env)
    assert run.returncode == 2 and "authentication failed" in run.stderr and "Traceback" not in run.stderr
    assert smtp_server.received() == []
