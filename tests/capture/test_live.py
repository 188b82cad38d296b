"""dumpcap supervision: file-close events, bad settings, and dumpcap ending with its parent even
when the kernel cannot be asked to (a dumpcap binary with file capabilities)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotscope.capture.live import CaptureSettings, LiveCaptureError
from iotscope.simulate.veth_namespace import (
    VethNamespace,
    missing_tools,
    veth_namespace,
)
from tests.telescope.test_sensor import gone

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())}")

#: A parent that starts a capture, prints dumpcap's pid, and waits to be killed.
PARENT = """
import sys, time
from pathlib import Path
from iotscope.capture.live import CaptureSettings, DumpcapRing
ring = DumpcapRing(CaptureSettings(sys.argv[1], Path(sys.argv[2]), dumpcap=sys.argv[3]), "t")
ring.start()
print(ring.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def ns() -> Iterator[VethNamespace]:
    with veth_namespace() as namespace:
        yield namespace


def test_settings_are_validated(tmp_path: Path) -> None:
    for bad in ({"snaplen": 10}, {"rotate_seconds": 0}, {"buffer_mib": 0}):
        with pytest.raises(LiveCaptureError):
            CaptureSettings("eth0", tmp_path, **bad)
    with pytest.raises(LiveCaptureError):
        CaptureSettings("../../etc", tmp_path)


def test_ring_reports_each_closed_file_and_the_drop_counter(ns: VethNamespace, tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from iotscope.capture.live import CaptureSettings, DumpcapRing\n"
        "ring = DumpcapRing(CaptureSettings(sys.argv[1], Path(sys.argv[2]), rotate_seconds=1), 'r'); ring.start()\n"
        "time.sleep(2.5); end = ring.stop(); files = []\n"
        "while (p := ring.closed.get()) is not None: files.append(p)\n"
        "print(len(files), end.kernel_drops, end.returncode, all(p.exists() for p in files))\n"
    )
    out = subprocess.run(ns.exec(sys.executable, "-c", code, ns.receiver, str(tmp_path)), capture_output=True,
                         text=True, check=True).stdout.split()
    assert int(out[0]) >= 2 and out[1:] == ["0", "0", "True"]
    assert len(list(tmp_path.glob("r_*.pcapng"))) == int(out[0])


@pytest.mark.skipif(shutil.which("setcap") is None, reason="needs setcap")
def test_capability_dumpcap_still_dies_with_a_killed_parent(ns: VethNamespace) -> None:
    """An unprivileged parent runs a dumpcap that has file capabilities (Debian's "non-superusers
    may capture"): exec raises its privileges, so the kernel clears PR_SET_PDEATHSIG; the watchdog
    must end it instead."""
    with tempfile.TemporaryDirectory(prefix="iotscope-caps-") as shared_dir:
        shared = Path(shared_dir)
        os.chmod(shared, 0o777)
        binary = shared / "dumpcap"
        shutil.copy(shutil.which("dumpcap"), binary)  # type: ignore[arg-type]
        subprocess.run(["setcap", "cap_net_raw,cap_net_admin+eip", str(binary)], check=True)
        spool = shared / "spool"
        spool.mkdir(mode=0o777)
        os.chmod(spool, 0o777)
        parent = subprocess.Popen(
            ns.exec("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                    sys.executable, "-c", PARENT, ns.receiver, str(spool), str(binary)),
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
            env={**os.environ, "NUMBA_CACHE_DIR": str(shared / "numba")})
        try:
            pid = int(parent.stdout.readline())  # type: ignore[union-attr]
            time.sleep(0.5)
            assert not gone(pid, timeout=0.1)
            parent.send_signal(signal.SIGKILL)
            parent.wait()
            assert gone(pid), "a dumpcap with file capabilities outlived its killed parent"
        finally:
            parent.kill()
