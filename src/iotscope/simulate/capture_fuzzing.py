"""The capture readers' fuzz target: real captures, mutated where parsers are fragile, and an oracle.

Seeds are real files: simulator captures (classic pcap and pcapng) and writer-made pcapng with
several interfaces, time resolutions, a second section in the other byte order, simple and obsolete
packet blocks and blocks the reader must skip. Mutations know the formats' structure (where block
lengths, trailers, record lengths, timestamps and interface options are) as well as plain bit flips,
truncations, splices and gzip, so a few thousand inputs reach the reader's corner cases.

:func:`check_capture` is the oracle: a capture either is refused when opened with a one-line
:class:`CaptureError`, or reads to its end without any exception, every record it hands out lying
inside its block's buffer with a time in range, and the counts adding up (checked with ``assert``:
a broken promise is an AssertionError, which both drivers report with the input).
``tests/capture/test_fuzz.py`` drives it with hypothesis in every test run;
``bench/fuzz/capture_fuzz.py`` runs it for minutes (atheris or random). It lives in the package,
beside the other synthetic captures, because both of them use it and a benchmark must not import
the tests.
"""

from __future__ import annotations

import gzip
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iotscope.capture import CaptureBlock, CaptureError, open_capture
from iotscope.capture.records import MAX_RECORD_BYTES, TS_END_US, TS_MIN_US
from iotscope.capture.writer import block_from_frames, write_pcap, write_pcapng
from iotscope.simulate.darknet import DarknetConfig, simulate_darknet

SECOND = 1_700_000_000
BASE_TS_US = SECOND * 1_000_000
#: Values that sit on or just past the limits the readers check.
INTERESTING_U32 = (0, 1, 3, 4, 11, 12, 13, 16, 20, 24, 27, 28, 31, 32, 33, 0x7F, 0xFF, 0xFFFF, 0x10000,
                   262_144, 262_145, MAX_RECORD_BYTES, MAX_RECORD_BYTES + 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC,
                   0xFFFFFFFF)
INTERESTING_TSRESOL = (0, 1, 6, 9, 12, 18, 19, 0x7F, 0x80, 0x80 | 10, 0x80 | 40, 0x80 | 41, 0x80 | 62, 0x80 | 63,
                       0xFF)
INTERESTING_I64 = (0, 1, -1, SECOND, -SECOND, 2**31, 2**32, 2**61 // 10**6, 2**62, -(2**62), 2**63 - 1, -(2**63))


@dataclass(frozen=True)
class Field:
    """A place in a seed worth mutating: ``size`` bytes at ``pos`` in byte order ``order``."""

    kind: str  # "length", "trailer", "caplen", "interface", "ts", "tsresol", "tsoffset", "option"
    pos: int
    size: int
    order: str


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    fields: tuple[Field, ...]

    def __repr__(self) -> str:  # hypothesis prints failing inputs: the name says which seed
        return f"Seed({self.name!r}, {len(self.data)} bytes, {len(self.fields)} fields)"


# ---- seeds -----------------------------------------------------------------------------------


def random_block(n: int, seed: int = 0, linktypes: tuple[int, ...] = (1,)) -> CaptureBlock:
    """``n`` frames of random bytes and lengths 1..300 (so pcapng padding of every size occurs)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 301, n)
    frames = [rng.integers(0, 256, int(k), dtype=np.uint8).tobytes() for k in lengths]
    ts = BASE_TS_US + np.cumsum(rng.integers(0, 3_000_000, n))
    wirelen = lengths + rng.integers(0, 2, n) * 40  # some frames "cut by the snap length"
    return block_from_frames(frames, ts, rng.choice(linktypes, n), wirelen=wirelen)


def pcapng_block(order: str, block_type: int, body: bytes) -> bytes:
    """One pcapng block: type, total length, ``body`` padded to 32 bits, total length again."""
    body += b"\0" * (-len(body) % 4)
    length = struct.pack(order + "I", 12 + len(body))
    return struct.pack(order + "I", block_type) + length + body + length


def pcapng_option(order: str, code: int, value: bytes) -> bytes:
    """One pcapng option: code, length, ``value`` padded to 32 bits."""
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _idb(order: str, linktype: int, snaplen: int, tsresol: int, tsoffset: int) -> bytes:
    options = (pcapng_option(order, 2, b"eth0") + pcapng_option(order, 9, bytes([tsresol]))
               + pcapng_option(order, 14, struct.pack(order + "q", tsoffset)) + struct.pack(order + "HH", 0, 0))
    return pcapng_block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options)


def _shb(order: str) -> bytes:
    return pcapng_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + pcapng_option(order, 4, b"fuzz"))


def _epb(order: str, interface: int, units: int, frame: bytes) -> bytes:
    header = struct.pack(order + "IIIII", interface, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame) + 4)
    return pcapng_block(order, 6, header + frame + pcapng_option(order, 1, b"comment") + struct.pack(order + "HH", 0, 0))


def _hand_built_pcapng() -> bytes:
    """Two sections (little then big endian), options everywhere, SPB, obsolete PB, skipped blocks."""
    frame = bytes(range(64))
    le, be = "<", ">"
    return b"".join([
        _shb(le), _idb(le, 1, 64, 6, 0), _idb(le, 101, 0, 9, 0),
        pcapng_block(le, 4, pcapng_option(le, 1, b"\x7f\x00\x00\x01name\0") + bytes(4)),
        _epb(le, 0, SECOND * 10**6, frame), _epb(le, 1, SECOND * 10**9 + 5, frame[:33]),
        pcapng_block(le, 3, struct.pack(le + "I", 1400) + frame),
        pcapng_block(le, 5, struct.pack(le + "III", 0, 0, 0)),
        pcapng_block(le, 0x40000BAD, b"custom"),
        _shb(be), _idb(be, 113, 0, 0x80 | 20, 100),
        pcapng_block(be, 2, struct.pack(be + "HHIIII", 0, 0, SECOND >> 12, (SECOND << 20) & 0xFFFFFFFF, 40, 40) + frame[:40]),
        _epb(be, 0, SECOND << 20, frame),
    ])


def _simulated(tmp: Path, suffix: str) -> bytes:
    path = tmp / f"sim{suffix}"
    simulate_darknet(DarknetConfig(packets=200, hours=0.1, seed=3), path)
    return path.read_bytes()


def build_seeds(tmp: Path) -> list[Seed]:
    """The seed captures, each with the places worth mutating. ``tmp``: a directory to write them in."""
    raw: list[tuple[str, bytes]] = [("sim.pcap", _simulated(tmp, ".pcap")), ("sim.pcapng", _simulated(tmp, ".pcapng"))]
    block = random_block(60, seed=5, linktypes=(1, 101, 113))
    for name, write, options in [
        ("ns-be.pcap", write_pcap, {"nanosecond": True, "big_endian": True}),
        ("exp2-be.pcapng", write_pcapng, {"tsresol_exp2": 30, "big_endian": True}),
        ("ns.pcapng", write_pcapng, {"tsresol_exp10": 9}),
    ]:
        path = tmp / name
        write(path, block if write is write_pcapng else random_block(60, seed=6), **options)
        raw.append((name, path.read_bytes()))
    raw.append(("hand.pcapng", _hand_built_pcapng()))
    return [Seed(name, data, tuple(_fields(data))) for name, data in raw]


def _fields(data: bytes) -> list[Field]:
    """Where the structure of a capture lies: record/block lengths, trailers, times, options."""
    fields: list[Field] = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        pos, order = 0, "<"
        while pos + 12 <= len(data):
            if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
                order = ">" if data[pos + 8 : pos + 12] == b"\x1a\x2b\x3c\x4d" else "<"
            block_type, length = struct.unpack(order + "II", data[pos : pos + 8])
            if length < 12 or pos + length > len(data):
                break
            fields += [Field("length", pos + 4, 4, order), Field("trailer", pos + length - 4, 4, order)]
            if block_type in (2, 6):
                fields += [Field("interface", pos + 8, 4 if block_type == 6 else 2, order),
                           Field("ts", pos + 12, 8, order), Field("caplen", pos + 20, 4, order)]
            elif block_type == 1:
                p = pos + 16
                while p + 4 <= pos + length - 4:
                    code, size = struct.unpack(order + "HH", data[p : p + 4])
                    fields.append(Field("option", p, 4, order))
                    if code == 9:
                        fields.append(Field("tsresol", p + 4, 1, order))
                    elif code == 14:
                        fields.append(Field("tsoffset", p + 4, 8, order))
                    if code == 0:
                        break
                    p += 4 + size + (-size % 4)
            pos += length
        return fields
    order = ">" if data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d") else "<"
    fields.append(Field("caplen", 16, 4, order))  # the header's snap length
    pos = 24
    while pos + 16 <= len(data):
        (caplen,) = struct.unpack(order + "I", data[pos + 8 : pos + 12])
        fields += [Field("ts", pos, 8, order), Field("caplen", pos + 8, 4, order), Field("length", pos + 12, 4, order)]
        pos += 16 + caplen
    return fields


# ---- mutations -------------------------------------------------------------------------------


def interesting_value(field: Field, choice: int) -> bytes:
    """The ``choice``-th interesting value for ``field``, packed for it."""
    if field.kind == "tsresol":
        return bytes([INTERESTING_TSRESOL[choice % len(INTERESTING_TSRESOL)]])
    if field.size == 8:
        if field.kind == "ts":  # two u32 words: high, low
            value = INTERESTING_I64[choice % len(INTERESTING_I64)] & (2**64 - 1)
            return struct.pack(field.order + "II", value >> 32, value & 0xFFFFFFFF)
        return struct.pack(field.order + "q", INTERESTING_I64[choice % len(INTERESTING_I64)])
    if field.size == 2:
        return struct.pack(field.order + "H", INTERESTING_U32[choice % len(INTERESTING_U32)] & 0xFFFF)
    return struct.pack(field.order + "I", INTERESTING_U32[choice % len(INTERESTING_U32)])


def mutate(seed: Seed, operations: Sequence[tuple[int, int, int, int]]) -> tuple[bytes, bool]:
    """Apply ``operations`` (opcode, a, b, c: small integers a fuzzer draws) to the seed's bytes.

    Returns the mutated bytes and whether to gzip them. Structure-aware operations pick a kind of
    field by ``c`` and one of that kind by ``a``; byte-level ones take ``a`` as a position (modulo the length).
    """
    data = bytearray(seed.data)
    compress = False
    kinds: dict[str, list[Field]] = {}
    for f in seed.fields:  # a kind first, then one of its fields: rare option fields get their share
        kinds.setdefault(f.kind, []).append(f)
    groups = [kinds[k] for k in sorted(kinds)]
    for opcode, a, b, c in operations:
        n = len(data)
        op = opcode % 9
        if n == 0 and op != 8:
            continue
        if op in (0, 1, 2) and seed.fields:  # a structural field gets an interesting value, or an off-by-k
            group = groups[c % len(groups)]
            field = group[a % len(group)]
            if field.pos + field.size > len(data):
                continue
            if op == 2 and field.size == 4:
                (value,) = struct.unpack(field.order + "I", data[field.pos : field.pos + 4])
                value = (value + (b % 17) - 8) & 0xFFFFFFFF
                data[field.pos : field.pos + 4] = struct.pack(field.order + "I", value)
            else:
                data[field.pos : field.pos + field.size] = interesting_value(field, b)
        elif op == 3:  # bit flip
            data[a % n] ^= 1 << (b % 8)
        elif op == 4:  # byte set
            data[a % n] = b % 256
        elif op == 5:  # truncate
            del data[a % n :]
        elif op == 6:  # delete a run
            del data[a % n : a % n + 1 + b % 64]
        elif op == 7:  # splice a copy of a run elsewhere (duplicated or misaligned blocks)
            chunk = bytes(data[a % n : a % n + 1 + b % 256])
            data[c % n : c % n] = chunk
        elif op == 8:
            compress = not compress
    return bytes(data), compress


# ---- the oracle ------------------------------------------------------------------------------


@dataclass
class Outcome:
    refused: bool = False
    records: int = 0
    kept: int = 0
    warnings: int = 0
    seconds: float = 0.0


def check_capture(data: bytes, path: Path, *, compress: bool = False, block_bytes: int = 1 << 20,
                  max_seconds: float = 10.0) -> Outcome:
    """Read ``data`` as a capture file and check every promise the reader makes; AssertionError if one fails."""
    path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)
    started = time.perf_counter()
    outcome = Outcome()
    try:
        reader = open_capture(path, block_bytes=block_bytes)
    except CaptureError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        outcome.refused = True
        return outcome
    with reader:
        for block in reader.blocks():
            n = len(block)
            assert n > 0
            assert all(len(a) == n for a in (block.offset, block.caplen, block.wirelen, block.ts_us, block.linktype))
            assert block.offset.dtype == np.int64 and block.ts_us.dtype == np.int64
            assert (block.offset >= 0).all(), "record starts before its buffer"
            assert (block.offset + block.caplen <= len(block.data)).all(), "record runs past its buffer"
            assert (block.caplen <= MAX_RECORD_BYTES).all()
            assert ((block.ts_us >= TS_MIN_US) & (block.ts_us < TS_END_US)).all(), "time out of range kept"
            outcome.kept += n
        stats = reader.stats
    dropped = stats.skipped.get("bad_timestamp", 0) + stats.skipped.get("interface_limit", 0)
    assert outcome.kept == stats.records - dropped, (outcome.kept, stats.records, stats.skipped)
    assert stats.skipped.get("corrupt_record", 0) in (0, 1)
    assert all(v > 0 for v in stats.skipped.values())
    assert all("\n" not in w for w in stats.warnings)
    outcome.records = stats.records
    outcome.warnings = len(stats.warnings)
    outcome.seconds = time.perf_counter() - started
    assert outcome.seconds < max_seconds, f"reading took {outcome.seconds:.1f} s"
    return outcome
