"""Network-byte-order reads from a uint8 buffer, compiled into the decode kernel.

Callers check bounds first; these only assemble bytes, widened to int64 so that arithmetic on the
results never wraps in a narrow unsigned type.
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, inline="always")
def be16(data, p):  # pragma: no cover - compiled
    return (int(data[p]) << 8) | int(data[p + 1])


@numba.njit(cache=True, inline="always")
def be32(data, p):  # pragma: no cover - compiled
    return (int(data[p]) << 24) | (int(data[p + 1]) << 16) | (int(data[p + 2]) << 8) | int(data[p + 3])
