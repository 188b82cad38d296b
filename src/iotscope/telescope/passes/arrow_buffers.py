"""Arrow arrays as raw buffers for numba kernels: values without copies, nulls through the validity bitmap.

Filling nulls (``pc.fill_null``) and converting to numpy copies a column per pass per hour; a
kernel that reads the values buffer and tests the validity bit itself touches each value once.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa


def arrow_buffers(array: pa.Array, dtype: type) -> tuple[np.ndarray, np.ndarray, int]:
    """(values, validity bitmap, bit offset) of a fixed-width Arrow array; values under nulls are arbitrary.

    The bitmap is empty when the array has no nulls (see :func:`valid`).
    """
    validity, data = array.buffers()[:2]
    values = np.frombuffer(data, dtype=dtype)[array.offset:array.offset + len(array)] if data is not None \
        else np.empty(0, dtype=dtype)
    bits = np.frombuffer(validity, dtype=np.uint8) if validity is not None and array.null_count else np.empty(0, np.uint8)
    return values, bits, array.offset


@numba.njit(cache=True, inline="always")
def valid(bits: np.ndarray, offset: int, i: int) -> bool:
    """Whether value ``i`` is not null, from :func:`arrow_buffers`' bitmap (empty: no nulls)."""
    if len(bits) == 0:
        return True
    j = offset + i
    return (bits[j >> 3] >> (j & 7)) & 1 == 1
