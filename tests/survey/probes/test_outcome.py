"""Banners are sanitized evidence; a device failure becomes an error result, a scope refusal does not."""

from __future__ import annotations

import asyncio
import time

import pytest

from iotscope.survey.credentials import Credential
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import (
    ProbeFailure,
    ProbeRecord,
    plan_attempts,
    run_probe,
    sanitize_banner,
)
from iotscope.survey.scope import OutOfScopeError


def test_sanitize_banner_is_printable_one_line_and_capped():
    raw = b"\xff\xfb\x01\r\nlogin:\x00\x1b[0m " + b"x" * 1000
    banner = sanitize_banner(raw)
    assert banner.isprintable() and banner.isascii()
    assert banner.startswith("login:")
    assert len(banner) == 256


@pytest.mark.parametrize(
    ("failure", "status"),
    [(ProbeFailure("garbage"), "error"), (ConnectionResetError("reset"), "error"), (UnicodeDecodeError("ascii", b"\xff", 0, 1, "x"), "error")],
)
def test_failures_become_error_results(failure, status):
    async def body():
        raise failure

    result = asyncio.run(run_probe(ProbeRecord("telnet"), ProbeLimits(), body()))
    assert result.status == status
    assert "\n" not in result.detail


def test_deadline_is_an_error_before_any_login_and_incomplete_after():
    async def slow():
        await asyncio.sleep(5)

    limits = ProbeLimits(deadline=0.05)
    assert asyncio.run(run_probe(ProbeRecord("ssh"), limits, slow(), pairs=73)).status == "error"
    record = ProbeRecord("ssh")
    for n in range(3):
        record.attempt(Credential(f"c{n}", "root", f"p{n}", "t"))
    result = asyncio.run(run_probe(record, limits, slow(), pairs=73))
    assert (result.status, result.attempts, result.remaining) == ("incomplete", 3, 70)  # never "not_vulnerable"
    assert result.tried == ("c0", "c1", "c2")  # what --resume skips
    assert "service deadline 0.05s reached: 3 pairs tried, 70 not" in result.detail


def test_service_deadline_bounds_a_service_within_the_device_deadline():
    async def slow():
        await asyncio.sleep(5)

    async def timed(limits: ProbeLimits, until_in: float | None) -> tuple[float, str]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        until = None if until_in is None else start + until_in
        result = await run_probe(ProbeRecord("ftp"), limits, slow(), until=until)
        return loop.time() - start, result.detail

    spent, detail = asyncio.run(timed(ProbeLimits(service_deadline=0.1, deadline=10), None))
    assert spent < 0.5 and "service deadline 0.1s" in detail
    spent, detail = asyncio.run(timed(ProbeLimits(service_deadline=10, deadline=10), 0.1))  # the device's is sooner
    assert spent < 0.5 and "device deadline 10s" in detail


def test_a_list_cut_by_the_attempt_cap_is_incomplete_not_a_verdict():
    record = ProbeRecord("telnet")
    credentials = [Credential(f"c{n}", "root", f"p{n}", "t") for n in range(5)]
    planned = plan_attempts(credentials, record, ProbeLimits(max_attempts=2))
    for credential in planned:
        record.attempt(credential)
    result = record.result("not_vulnerable", "2 credentials rejected")
    assert (result.status, result.attempts, result.remaining, result.tried) == ("incomplete", 2, 3, ("c0", "c1"))
    assert "3 listed pairs not tried" in result.detail
    record = ProbeRecord("telnet")
    plan_attempts(credentials, record, ProbeLimits(max_attempts=5))
    assert record.result("not_vulnerable").status == "not_vulnerable"  # all refused: a verdict


def test_scope_refusal_is_never_swallowed():
    async def body():
        raise OutOfScopeError("192.0.2.1", "not in any authorized range")

    with pytest.raises(OutOfScopeError):
        asyncio.run(run_probe(ProbeRecord("ftp"), ProbeLimits(), body()))


def test_limits_are_validated():
    with pytest.raises(ValueError, match="deadline"):
        ProbeLimits(deadline=0)
    with pytest.raises(ValueError, match="max_attempts"):
        ProbeLimits(max_attempts=0)


def test_pace_waits_attempt_delay_between_attempts_not_before_the_first():
    limits = ProbeLimits(attempt_delay=0.2)
    record = ProbeRecord("telnet")

    async def two_attempts() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await record.pace(limits)
        first = loop.time() - start
        record.attempts += 1
        await record.pace(limits)
        return first, loop.time() - start - first

    first, second = asyncio.run(two_attempts())
    assert first < 0.05
    assert second >= 0.2


def test_banner_is_pre_login_and_only_the_password_that_logged_in_is_masked():
    from iotscope.survey.credentials import Credential

    record = ProbeRecord("ftp")
    record.saw(b"220 Welcome to blah FTP service, admin.\r\n")
    tried, used = Credential("c1", "root", "service", "t"), Credential("c2", "admin", "blah", "t")
    for credential in (tried, used):
        record.attempts += 1
        record.sending(credential)
        record.saw(b"331 Password for blah, service\r\n")  # after the first attempt: not the banner
    refused = record.result("not_vulnerable")
    assert refused.banner == "220 Welcome to blah FTP service, admin."
    found = record.result("vulnerable", credential_id="c2")
    assert found.banner == "220 Welcome to *** FTP service, admin."
    assert found.confirmed_at is not None and found.confirmed_at.tzinfo is not None


def _two_lanes() -> tuple[ProbeLimits, ProbeRecord, list[float]]:
    """Limits and a service record for two connections paced 0.1 s apart, and a list for start times."""
    record = ProbeRecord("telnet")
    record.lanes = 2
    return ProbeLimits(attempt_delay=0.1, per_device_connections=2), record, []


async def _paced_attempts(record: ProbeRecord, limits: ProbeLimits, starts: list[float]) -> None:
    """Three attempts of one lane, each after its turn of the shared pace; their start times."""
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await record.pace(limits)
        starts.append(loop.time())


def test_parallel_connections_share_one_pace():
    """Two lanes of one service start their attempts attempt_delay apart: no more login rate."""
    limits, record, starts = _two_lanes()

    async def both() -> None:
        await asyncio.gather(*(_paced_attempts(record, limits, starts) for _ in range(2)))

    asyncio.run(both())
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert len(starts) == 6 and min(gaps) >= 0.09, gaps


def test_a_lane_woken_late_does_not_bring_the_next_start_closer():
    """The event loop busy when one lane's turn comes (a slow banner parse, a loaded machine) makes
    that lane start late; the next lane, on time, must still wait attempt_delay after it."""
    limits, record, starts = _two_lanes()

    async def busy_loop() -> None:
        await asyncio.sleep(0.09)
        # on purpose: blocks the loop across the second lane's first turn (0.1), not the next (0.2)
        time.sleep(0.06)  # noqa: ASYNC251

    async def all_three() -> None:
        await asyncio.gather(*(_paced_attempts(record, limits, starts) for _ in range(2)), busy_loop())

    asyncio.run(all_three())
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert len(starts) == 6 and min(gaps) >= 0.099, gaps
