"""Live capture: a supervised ``dumpcap`` writing a ring of closed pcapng files into a spool.

Why dumpcap rather than our own AF_PACKET ring or a libpcap binding (measured, see docs/sensor.md):
on this machine's veth it captured every packet at the highest rate tcpreplay could send, like
``tcpdump -w``; it is the capture engine of Wireshark (maintained, packaged everywhere, the only
part of Wireshark that needs privileges); it writes pcapng, so the spool stays useful to every
other tool; it rotates files itself without a gap; and it runs in its own process, so decoding and
Parquet encoding in the sensor can never stall the kernel ring's reader. A Python binding would have
put one Python call per packet (``pcap_dispatch`` callbacks) on the capture path, which the
architecture forbids; our own TPACKET_V3 reader would have had to re-implement pcapng writing.

dumpcap runs in its "capture child" mode (``-Z none``), the mode Wireshark itself drives it in:
it then reports on stderr, in small framed messages, every file it opens (so the previous one is
closed: dumpcap closes a ring file before it opens the next), the packets written since the last
report, the kernel's drop counter (``pcap_stats``: ``PACKET_STATISTICS`` of its TPACKET_V3 socket)
when the capture ends, and any error (no such device, no permission, a bad filter, a full disk)
as text meant for a person. That makes "which files are closed" exact rather than guessed.

dumpcap ends with the sensor however the sensor ends: ``PR_SET_PDEATHSIG`` asks the kernel to send
it SIGTERM (so it closes its current file cleanly, which the next start then ingests) when its
parent dies, ``kill -9`` included. A dumpcap binary with file capabilities or set-user-ID (the
Debian "non-superusers may capture" setup) has that request cleared by the kernel at exec, so then
a watchdog process reads a pipe from the sensor and sends the SIGTERM when the pipe ends.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.lifetime import end_with_parent

#: Ethernet (14) + two VLAN tags (8) + IPv6 (40) + one extension header (8) + TCP with all options
#: (60) = 130 bytes; an ICMP error quoting an IPv4 header with options and its 8 bytes needs less.
#: Rounded up so that everything the decode kernel reads is always captured.
DEFAULT_SNAPLEN = 160
#: Kernel buffer for the capture socket: rides out a burst of ~0.5 s at 1M packets/s of 64 bytes
#: while dumpcap waits for the disk.
DEFAULT_BUFFER_MIB = 64
#: Seconds to wait for dumpcap to report its first file (or refuse) before giving up.
START_TIMEOUT = 15.0


class LiveCaptureError(IotscopeError):
    """Live capture cannot start or went wrong: no such interface, no permission, a bad filter."""


@dataclass(frozen=True)
class CaptureSettings:
    """What to capture and where the closed files go; validated on construction."""

    interface: str
    spool: Path
    bpf: str = ""
    snaplen: int = DEFAULT_SNAPLEN
    rotate_seconds: int = 60
    buffer_mib: int = DEFAULT_BUFFER_MIB
    dumpcap: str = "dumpcap"  # the binary (a path, or a name looked up on PATH)

    def __post_init__(self) -> None:
        if not self.interface or "/" in self.interface or len(self.interface) > 15:
            raise LiveCaptureError(f"interface {self.interface!r}: not an interface name")
        if not 64 <= self.snaplen <= 262144:
            raise LiveCaptureError(f"--snaplen must be between 64 and 262144 bytes, got {self.snaplen}")
        if not 1 <= self.rotate_seconds <= 86400:
            raise LiveCaptureError(f"--rotate must be between 1 and 86400 seconds, got {self.rotate_seconds}")
        if not 1 <= self.buffer_mib <= 4096:
            raise LiveCaptureError(f"capture buffer must be between 1 and 4096 MiB, got {self.buffer_mib}")


def interface_exists(name: str) -> bool:
    """True if the network interface ``name`` exists in this process's network namespace."""
    return Path("/sys/class/net", name).exists()


@dataclass
class CaptureEnd:
    """How a capture session ended: dumpcap's exit code, its drop report, and an error if any."""

    returncode: int | None
    kernel_drops: int | None  # None when dumpcap could not report it (killed, or failed early)
    error: str | None


class DumpcapRing:
    """One dumpcap session writing ``<spool>/<prefix>_NNNNN_YYYYmmddHHMMSS.pcapng`` files.

    ``closed`` receives each file once dumpcap has closed it, in order, and ``None`` after the
    last one when the session has ended. ``packets`` counts packets dumpcap wrote so far.
    """

    def __init__(self, settings: CaptureSettings, prefix: str, inherit_fds: tuple[int, ...] = ()) -> None:
        self.settings = settings
        self.prefix = prefix
        self.closed: queue.Queue[Path | None] = queue.Queue()
        self.packets = 0
        self.kernel_drops: int | None = None
        self.error: str | None = None
        self.current: Path | None = None
        self._inherit = inherit_fds
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._started = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        s = self.settings
        cmd = [
            s.dumpcap, "-Z", "none", "-i", s.interface, "-s", str(s.snaplen), "-B", str(s.buffer_mib),
            "-b", f"duration:{s.rotate_seconds}", "-w", str(s.spool / f"{self.prefix}.pcapng"),
        ]
        if s.bpf:
            cmd += ["-f", s.bpf]
        return cmd

    def start(self) -> None:
        """Start dumpcap and wait until it writes its first file; raise ``LiveCaptureError`` if it refuses."""
        binary = shutil.which(self.settings.dumpcap)
        if binary is None:
            raise LiveCaptureError(f"{self.settings.dumpcap}: not found (install the Debian package wireshark-common)")
        if not interface_exists(self.settings.interface):
            raise LiveCaptureError(f"interface {self.settings.interface!r}: no such network interface")
        parent = os.getpid()
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # The preexec only calls prctl and getppid (no lock, no allocation that could deadlock
            # after a fork from a threaded process); it must run between fork and exec.
            pass_fds=self._inherit, preexec_fn=lambda: end_with_parent(parent, signal.SIGTERM),  # noqa: PLW1509
        )
        if _exec_drops_pdeathsig(binary):
            try:
                self._watchdog = _start_watchdog(self._proc.pid)
            except OSError as exc:
                self._proc.terminate()
                self._proc.wait()
                raise LiveCaptureError(f"cannot start the capture's watchdog ({exc.strerror}); capture not started") from None
        self._reader = threading.Thread(target=self._read_messages, name="dumpcap-messages", daemon=True)
        self._reader.start()
        if not self._started.wait(START_TIMEOUT) or self.current is None:
            self.stop()
            raise LiveCaptureError(
                f"capture on {self.settings.interface!r} did not start: {self.error or 'dumpcap gave no reason'}")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> CaptureEnd:
        """Ask dumpcap to close its file and end (SIGTERM), wait for it and its last report."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout)
        if self._watchdog is not None:
            self._watchdog.stdin.close()  # type: ignore[union-attr]
            self._watchdog.wait()
            self._watchdog = None
        return CaptureEnd(self._proc.returncode if self._proc else None, self.kernel_drops, self.error)

    def _read_messages(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        pipe = self._proc.stderr
        try:
            while (message := _read_message(pipe)) is not None:
                self._handle(*message)
        finally:
            self._proc.wait()
            if self.current is not None:
                self.closed.put(self.current)
                self.current = None
            self.closed.put(None)
            self._started.set()

    def _handle(self, kind: bytes, payload: bytes) -> None:
        if kind == b"F":
            if self.current is not None:
                self.closed.put(self.current)
            self.current = Path(payload.rstrip(b"\0").decode(errors="replace"))
            self._started.set()
        elif kind == b"P":
            self.packets += int(payload.rstrip(b"\0") or 0)
        elif kind == b"D":
            self.kernel_drops = int(payload.rstrip(b"\0").split(b":", 1)[0] or 0)
        elif kind == b"B":
            text = payload.rstrip(b"\0").decode(errors="replace").split(":", 1)[-1].strip()
            self.error = f"invalid --bpf expression {self.settings.bpf!r}: {text}"
            self._started.set()
        elif kind == b"E":
            self.error = _error_text(payload)
            self._started.set()


def _read_exactly(pipe: object, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = pipe.read(n - len(data))  # type: ignore[attr-defined]
        if not chunk:
            return None
        data += chunk
    return data


def _read_message(pipe: object) -> tuple[bytes, bytes] | None:
    """One sync-pipe message of dumpcap's capture-child mode: a type byte, a 24-bit big-endian
    length, then the payload (Wireshark's ``sync_pipe.h``)."""
    header = _read_exactly(pipe, 4)
    if header is None:
        return None
    length = int.from_bytes(header[1:4], "big")
    payload = _read_exactly(pipe, length) if length else b""
    if payload is None:
        return None
    return header[:1], payload


def _error_text(payload: bytes) -> str:
    """The first line of an error message: its payload holds two framed messages, the primary
    text (what happened) and the secondary one (generic advice), of which the primary says it."""
    length = int.from_bytes(payload[1:4], "big") if len(payload) >= 4 else 0
    primary = payload[4:4 + length] if length else payload
    lines = [line.strip() for line in primary.rstrip(b"\0").decode(errors="replace").splitlines() if line.strip()]
    return " ".join(lines) if lines else "dumpcap reported an error"


def _exec_drops_pdeathsig(binary: str) -> bool:
    """True if executing ``binary`` raises privileges (set-user-ID or file capabilities), which
    makes the kernel clear ``PR_SET_PDEATHSIG`` (prctl(2))."""
    try:
        mode = os.stat(binary).st_mode
        if mode & (stat.S_ISUID | stat.S_ISGID):
            return True
        os.getxattr(binary, "security.capability")
        return True
    except OSError:
        return False


_WATCHDOG = """
import os, signal, sys
fd = os.pidfd_open(int(sys.argv[1]))
sys.stdin.buffer.read()  # returns when the sensor's end of the pipe closes, however it ended
try:
    signal.pidfd_send_signal(fd, signal.SIGTERM)
except ProcessLookupError:
    pass
"""


def _start_watchdog(pid: int) -> subprocess.Popen[bytes]:
    """A process that sends SIGTERM to ``pid`` when the sensor dies (pidfd: never to a reused pid).

    It runs this same interpreter through ``/proc/self/exe``, which works even where the path to
    ``sys.executable`` is not traversable by the service user (it needs only the standard library).
    """
    return subprocess.Popen(
        [sys.executable, "-I", "-c", _WATCHDOG, str(pid)], executable="/proc/self/exe", stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, start_new_session=True,
    )

