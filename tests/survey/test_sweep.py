"""Sweep: the permutation (shards, resume, spread), the rate limit, and real connects on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotscope.survey.journal import OpenPort
from iotscope.survey.permutation import CyclicPermutation, Shard, is_probable_prime, safe_prime_above
from iotscope.survey.scope import AuthorizedRange, Scope
from iotscope.survey.sweep import sweep
from iotscope.survey.sweep_bookkeeping import SweepProgress
from iotscope.survey.token_bucket import TokenBucket
from tests.process_table import descendants, running
from tests.survey.loopback_listeners import Listeners
from tests.survey.socket_audit import socket_audit

# -- permutation ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 3000), shards=st.integers(1, 7), seed=st.integers(0, 2**64))
def test_shards_are_disjoint_and_cover_the_whole_space(size: int, shards: int, seed: int) -> None:
    seen: list[int] = []
    for index in range(shards):
        seen += [i for _, i in CyclicPermutation(size, seed, Shard(index, shards)).walk()]
    assert len(seen) == size
    assert sorted(seen) == list(range(size))


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 2000), seed=st.integers(0, 2**32), cut=st.floats(0, 1))
def test_walk_resumes_exactly_where_it_stopped(size: int, seed: int, cut: float) -> None:
    permutation = CyclicPermutation(size, seed, Shard(1, 2))
    full = list(permutation.walk())
    position = int(cut * permutation.positions)
    assert list(permutation.walk(position)) == [(p, i) for p, i in full if p >= position]


def test_seed_fixes_the_order_and_different_seeds_differ() -> None:
    a = [i for _, i in CyclicPermutation(1000, 7).walk()]
    assert a == [i for _, i in CyclicPermutation(1000, 7).walk()]
    assert a != [i for _, i in CyclicPermutation(1000, 8).walk()]


def test_large_spaces_need_no_materialized_list() -> None:
    size = 2**64 * 6  # an IPv6 /64 times six ports
    permutation = CyclicPermutation(size, 1)
    assert permutation.prime > size and is_probable_prime(permutation.prime)
    assert is_probable_prime((permutation.prime - 1) // 2)
    walk = permutation.walk()
    first = [next(walk)[1] for _ in range(1000)]
    assert len(set(first)) == 1000 and all(0 <= i < size for i in first)


def test_safe_primes() -> None:
    assert [safe_prime_above(n) for n in (0, 5, 7, 22, 100)] == [5, 7, 11, 23, 107]
    assert not is_probable_prime(3_215_031_751)  # strong pseudoprime to bases 2, 3, 5, 7


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_slash24_sees_a_burst(seed: int) -> None:
    """A /16 on port 23: in every window of 256 consecutive attempts, no /24 gets more than
    a handful (sequential order would give one /24 all 256)."""
    network = ipaddress.IPv4Network("100.0.0.0/16")
    permutation = CyclicPermutation(network.num_addresses, seed)
    order = [int(network.network_address) + i >> 8 for _, i in permutation.walk()]
    worst = max(max(Counter(order[start:start + 256]).values()) for start in range(0, len(order), 256))
    assert worst <= 10, worst


@pytest.mark.parametrize(("text", "shard"), [("1/1", Shard(0, 1)), ("3/4", Shard(2, 4))])
def test_shard_parse(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard and str(shard) == text


@pytest.mark.parametrize("text", ["0/4", "5/4", "x", "1/0", "1-4"])
def test_bad_shard(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard.parse(text)


def test_token_bucket_holds_the_rate() -> None:
    async def take(n: int, rate: float) -> float:
        bucket = TokenBucket(rate)
        start = time.monotonic()
        for _ in range(n):
            await bucket.take()
        return time.monotonic() - start

    elapsed = asyncio.run(take(300, 1000.0))
    assert 0.28 <= elapsed < 0.6, elapsed


# -- real connects on loopback ----------------------------------------------------------------------

SCOPE_TEXT = """
blocklist = "optout.txt"
[[authorized]]
cidr = "127.0.0.0/26"
owner = "Loopback Lab"
authorization = "test fixture"
special_purpose = true
"""


@pytest.fixture
def listeners():
    hosts = ["127.0.0.2", "127.0.0.17", "127.0.0.33", "127.0.0.5", "127.0.0.100"]
    group = Listeners(hosts)
    yield group
    group.close()


@pytest.fixture
def scope(tmp_path: Path) -> Scope:
    (tmp_path / "optout.txt").write_text("127.0.0.5  # opted out\n")
    (tmp_path / "scope.toml").write_text(SCOPE_TEXT)
    return Scope.load(tmp_path / "scope.toml")


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def test_sweep_finds_open_ports_in_scope_only(scope: Scope, listeners: Listeners) -> None:
    ports = [listeners.port, closed_port()]
    permutation = CyclicPermutation(scope.authorized_count * len(ports), 11)
    with socket_audit() as audit:
        stats = asyncio.run(sweep(scope, ports, permutation, rate=5000, concurrency=32, timeout=2))
    found = {(p.ip, p.port) for p in stats.open_ports}
    assert found == {(h, listeners.port) for h in ("127.0.0.2", "127.0.0.17", "127.0.0.33")}
    assert {p.scanner for p in stats.open_ports} == {"127.0.0.1"}
    assert stats.attempted == 63 * 2 and stats.skipped == 2  # 127.0.0.5 on both ports
    assert stats.open == 3 and stats.closed == 123 and stats.timeouts == stats.errors == 0
    counts = listeners.count()
    assert counts["127.0.0.5"] == 0 and counts["127.0.0.100"] == 0  # blocklisted, out of range
    assert all(ipaddress.ip_address(h) in ipaddress.ip_network("127.0.0.0/26") and h != "127.0.0.5" for h, _ in audit.connects)
    assert len(audit.connects) == 126


def test_sweep_rate_limit_is_global(scope: Scope, listeners: Listeners) -> None:
    ports = [listeners.port]
    permutation = CyclicPermutation(scope.authorized_count, 3)
    stats = asyncio.run(sweep(scope, ports, permutation, rate=250, concurrency=64, timeout=2))
    assert stats.attempted == 63
    assert 0.2 <= stats.seconds < 0.6, stats.seconds  # 63 attempts at 250/s, burst of 2.5


def test_shards_together_find_what_one_sweep_finds(scope: Scope, listeners: Listeners) -> None:
    ports = [listeners.port]
    found: set[tuple[str, int]] = set()
    attempted = 0
    for index in range(3):
        permutation = CyclicPermutation(scope.authorized_count, 5, Shard(index, 3))
        stats = asyncio.run(sweep(scope, ports, permutation, rate=5000, concurrency=16, timeout=2))
        found |= {(p.ip, p.port) for p in stats.open_ports}
        attempted += stats.attempted
    assert attempted == 63
    assert found == {(h, listeners.port) for h in ("127.0.0.2", "127.0.0.17", "127.0.0.33")}
    assert sum(listeners.count().values()) == 3


@pytest.mark.parametrize(("workers", "run_for"), [(1, 0.3), (2, 0.4)])
def test_interrupted_sweep_resumes_without_reprobing(
    scope: Scope, listeners: Listeners, workers: int, run_for: float
) -> None:
    ports = [listeners.port, closed_port()]
    permutation = CyclicPermutation(scope.authorized_count * len(ports), 9)
    saved: list[tuple[int, list[int], list[OpenPort], bool]] = []
    progress: list[SweepProgress] = []

    async def interrupted() -> None:
        task = asyncio.create_task(sweep(
            scope, ports, permutation, rate=200, concurrency=4, timeout=2, workers=workers,
            checkpoint=lambda *state: saved.append(state), checkpoint_interval=0.05, progress=progress.append,
        ))
        await asyncio.sleep(run_for)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    position, done_above, _, finished = saved[-1]
    assert not finished and 0 < position < permutation.positions
    assert all(p >= position for p in done_above)
    first_open = [p for state in saved for p in state[2]]
    stats = asyncio.run(sweep(
        scope, ports, permutation, rate=5000, concurrency=4, timeout=2, workers=workers,
        start_position=position, done_above=done_above,
    ))
    found = {(p.ip, p.port) for p in first_open + stats.open_ports}
    assert found == {(h, listeners.port) for h in ("127.0.0.2", "127.0.0.17", "127.0.0.33")}
    # Only attempts cut off in flight (at most the concurrency) may be made twice.
    assert 126 <= progress[-1].attempted + stats.attempted <= 126 + 4
    counts = listeners.count()
    assert all(counts[h] == 1 for h in ("127.0.0.2", "127.0.0.17", "127.0.0.33")), counts


def test_unanswered_connects_time_out() -> None:
    """A listener whose accept queue is full drops SYNs: the attempt must end at the timeout."""
    server = socket.socket()
    server.bind(("127.0.0.40", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue (backlog 0 still queues one or two)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.40", port))
        fillers.append(filler)
    time.sleep(0.05)
    try:
        one = Scope("scope.toml", (AuthorizedRange(ipaddress.ip_network("127.0.0.40/32"), "lab", "test", True),))
        assert [one.target_at(i) for i in range(one.target_count)] == ["127.0.0.40"]
        permutation = CyclicPermutation(one.authorized_count, 1)
        start = time.monotonic()
        stats = asyncio.run(sweep(one, [port], permutation, rate=100, timeout=0.3))
        elapsed = time.monotonic() - start
    finally:
        for filler in fillers:
            filler.close()
        server.close()
    assert (stats.attempted, stats.timeouts, stats.open) == (1, 1, 0)
    assert 0.3 <= elapsed < 1.0


def test_ipv6_loopback_sweep() -> None:
    server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    try:
        v6 = Scope("scope.toml", (AuthorizedRange(ipaddress.ip_network("::1/128"), "lab", "test", True),))
        ports = [server.getsockname()[1], closed_port()]
        stats = asyncio.run(sweep(v6, ports, CyclicPermutation(2, 1), rate=1000, timeout=1))
    finally:
        server.close()
    assert [(p.ip, p.port, p.scanner) for p in stats.open_ports] == [("::1", ports[0], "::1")]
    assert (stats.attempted, stats.closed) == (2, 1)


# -- several worker processes -----------------------------------------------------------------------


def test_workers_find_what_one_process_finds(scope: Scope, listeners: Listeners) -> None:
    ports = [listeners.port, closed_port()]
    permutation = CyclicPermutation(scope.authorized_count * len(ports), 13)
    one = asyncio.run(sweep(scope, ports, permutation, rate=5000, concurrency=32, timeout=2))
    two = asyncio.run(sweep(scope, ports, permutation, rate=5000, concurrency=32, timeout=2, workers=2))
    expected = {(h, listeners.port) for h in ("127.0.0.2", "127.0.0.17", "127.0.0.33")}
    assert {(p.ip, p.port) for p in one.open_ports} == expected
    assert sorted((p.ip, p.port, p.scanner) for p in two.open_ports) == sorted((p.ip, p.port, p.scanner) for p in one.open_ports)
    assert (two.attempted, two.closed, two.skipped, two.concurrency) == (126, 123, 2, 32)
    assert listeners.count() == {h: 2 for h in ("127.0.0.2", "127.0.0.17", "127.0.0.33")}  # once per sweep


def test_workers_share_the_rate_limit(scope: Scope) -> None:
    """Attempts over time, as the merged progress counts them, stay on the total rate."""
    ports = [closed_port(), closed_port() + 1, closed_port() + 2, closed_port() + 3]
    permutation = CyclicPermutation(scope.authorized_count * len(ports), 4)
    rate = 500.0
    curve: list[tuple[float, int]] = []
    started = time.monotonic()
    stats = asyncio.run(sweep(
        scope, ports, permutation, rate=rate, concurrency=64, timeout=2, workers=2, checkpoint_interval=0.05,
        progress=lambda p: curve.append((time.monotonic() - started, p.attempted)),
    ))
    assert stats.attempted == 63 * 4
    # One rate, not one per worker (plus the start of the workers' forkserver if this test is the
    # first to use it: up to a second or so on a loaded machine).
    assert 252 / rate - 0.05 <= stats.seconds < 252 / rate + 2.0, stats.seconds
    assert len(curve) >= 5
    assert all(attempted <= rate * seconds + 10 for seconds, attempted in curve), curve


def test_workers_must_be_positive(scope: Scope) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        asyncio.run(sweep(scope, [1], CyclicPermutation(scope.authorized_count, 1), workers=0))


def test_a_failing_checkpoint_ends_the_sweep_and_its_workers(scope: Scope) -> None:
    """As in one process, an error saving progress (disk full) ends the sweep; no worker lingers."""
    def disk_full(*state: object) -> None:
        raise OSError(28, "No space left on device")

    started = time.monotonic()
    with pytest.raises(OSError, match="No space left"):
        asyncio.run(sweep(
            scope, [closed_port()], CyclicPermutation(scope.authorized_count, 2), rate=20, workers=2,
            checkpoint=disk_full, checkpoint_interval=0.05,
        ))
    assert time.monotonic() - started < 2.0  # 63 attempts at 20/s would take 3.2 s (plus the workers' start)
    assert multiprocessing.active_children() == []


def _python_312_or_later() -> str | None:
    """An interpreter >= 3.12 (where ``os.fork`` in a threaded process warns): this one, or one
    installed beside it (pyenv). The sweep module needs nothing outside the standard library."""
    if sys.version_info >= (3, 12):
        return sys.executable
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(root.glob("3.1[2-9]*/bin/python3"), reverse=True)
    candidates += [Path(found) for name in ("python3.13", "python3.12") if (found := shutil.which(name))]
    for candidate in candidates:
        probe = subprocess.run([str(candidate), "-c", "import sys; print(sys.version_info >= (3, 12))"],
                               capture_output=True, text=True, check=False)
        if probe.stdout.strip() == "True":
            return str(candidate)
    return None


_THREADED_SWEEP = """
import asyncio, ipaddress, socket, sys, threading
from iotscope.survey.permutation import CyclicPermutation
from iotscope.survey.scope import AuthorizedRange, Scope
from iotscope.survey.sweep import sweep

network = ipaddress.ip_network(sys.argv[1])
listener = socket.create_server((str(network[3]), 0))
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()  # threaded, as the CLI with its progress bar
scope = Scope("test", (AuthorizedRange(network, "Lab", "test", True),))
port = listener.getsockname()[1]
stats = asyncio.run(sweep(scope, [port], CyclicPermutation(scope.authorized_count, 5), rate=5000, workers=2))
print(sorted((p.ip, p.port == port) for p in stats.open_ports), stats.attempted)
"""


def test_sweep_workers_start_safely_from_a_threaded_process() -> None:
    """Forking a threaded process can deadlock the child (a lock held by another thread is copied
    held); Python >= 3.12 warns about it. The sweep's workers must start without forking it."""
    python = _python_312_or_later()
    if python is None:
        pytest.skip("no Python >= 3.12 on this machine: its fork warning is what this test watches")
    rng = random.SystemRandom()
    network = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(32) * 8}/29"
    source = Path(__import__("iotscope").__file__).parent.parent
    result = subprocess.run(
        [python, "-W", "always::DeprecationWarning", "-c", _THREADED_SWEEP, network],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(source), "PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode == 0, result.stderr
    host = str(ipaddress.ip_network(network)[3])
    assert result.stdout.split("] ")[0] + "]" == str([(host, True)]) and result.stdout.split()[-1] == "8", result.stdout
    assert "fork" not in result.stderr and "Warning" not in result.stderr, result.stderr


_THREADED_SLOW_SWEEP = """
import asyncio, ipaddress, socket, sys, threading
from iotscope.survey.permutation import CyclicPermutation
from iotscope.survey.scope import AuthorizedRange, Scope
from iotscope.survey.sweep import sweep

threading.Thread(target=threading.Event().wait, daemon=True).start()
print("started", flush=True)
network = ipaddress.ip_network(sys.argv[1])
scope = Scope("test", (AuthorizedRange(network, "Lab", "test", True),))
permutation = CyclicPermutation(scope.authorized_count, 5)
asyncio.run(sweep(scope, [int(sys.argv[2])], permutation, rate=4, workers=2,
                  progress=lambda p: print("progress", p.attempted, flush=True)))
"""


def test_kill_9_of_a_threaded_caller_stops_its_forkserver_and_workers() -> None:
    """A library caller with threads of its own: the workers' server and the workers end with it."""
    rng = random.SystemRandom()
    base = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}"
    listeners = Listeners([f"{base}.{i}" for i in range(1, 32)])
    port, count = listeners.port, listeners.total
    caller = subprocess.Popen([sys.executable, "-c", _THREADED_SLOW_SWEEP, f"{base}.0/27", str(port)],
                              stdout=subprocess.PIPE, text=True)
    helpers: set[int] = set()
    try:
        assert caller.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        while count() < 3 and time.monotonic() < deadline:  # 32 connects at 4/s: ~8 s of sweep
            time.sleep(0.05)
        helpers = descendants(caller.pid)
        assert len(helpers) >= 3 and caller.poll() is None, helpers  # the server and two workers at least
        caller.kill()
        caller.wait(10)

        def alive() -> list[int]:
            return [pid for pid in helpers if running(pid)]

        deadline = time.monotonic() + 3
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive() == [], "forkserver or workers outlived the killed caller"
        before = count()
        time.sleep(1.5)
        assert count() == before < 32, "connects after the caller was killed"
    finally:
        caller.kill()
        caller.communicate()
        for pid in helpers:  # only on failure: they are ours, by pid
            try:
                os.kill(pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
        listeners.close()
