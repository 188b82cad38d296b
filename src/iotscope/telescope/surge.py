"""Surge alerts: when the number of distinct sources scanning a port rises sharply, and since when.

NICTER's early warning for Mirai was "scans of 2323/tcp rose sharply from early September": a
change in how many *hosts* scan a port, not in packets (one research scanner can send millions).
:func:`detect_surges` reads the ``port_series`` dataset (distinct sources and packets per protocol,
port and bucket) and returns one row per alert. The method, its parameters and why it was chosen
over Bayesian online change-point detection are in docs/analytics-surge.md; in short:

1. **Robust baseline.** For bucket *t*, the baseline is the median of the port's distinct sources
   over the ``baseline_buckets`` before *t* (leaving out the ``guard`` most recent), and its scale
   is the larger of 1.4826 x MAD and the Poisson standard deviation sqrt(median): a surge or an
   outage inside the window does not move a median, and the Poisson floor keeps ports with few,
   steady sources from alerting on +2 sources.
2. **One-sided CUSUM** (Page 1954) on the standardised counts, ``S = max(0, S + z - k)``. An
   excursion starts when S leaves 0; its baseline is frozen from then on, so the surge itself
   never becomes the baseline it is measured against.
3. **Alarm** when ``S > h`` *and* the last ``confirm`` buckets each exceed the baseline by
   ``min_ratio`` times and ``min_increase`` sources: CUSUM says the rise is not noise, the two
   thresholds say it is big enough to matter (a research scanner campaign adding 8 sources to 443
   is real but not a surge).
4. **Start** of the change: the bucket that best splits the excursion (least squares over a step
   or a ramp from that bucket), searched from a little before the excursion began to the alarm, so
   that a surge that grows (an epidemic) is dated from where it began, not from where it crossed
   ``k``.

After an alarm the alert stays open while S > 0 (no second alert for the same surge); a level
shift that never returns re-baselines after ``baseline_buckets`` and may then alert again on a
further rise. An excursion that has not alarmed within ``horizon`` buckets is dropped and the
baseline re-estimated, so a slow drift of a steady port never accumulates into an alert.

Vectorised per port: the series is made dense (missing buckets are 0 sources) and each port's
counts go through one compiled (numba) pass; there is no per-packet work at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.errors import IotscopeError
from iotscope.store.summaries import ALERTS

#: Columns :func:`detect_surges` reads (the ``port_series`` dataset).
SERIES_COLUMNS = ("proto", "port", "bucket", "packets", "sources")
METHOD = "cusum-robust"
_TS = pa.timestamp("us", tz="UTC")

#: One row per alert: the store's ``alerts`` dataset (``iotscope.store.summaries``).
ALERT_SCHEMA = ALERTS.schema


class SurgeError(IotscopeError, ValueError):
    """Surge detection was given settings or a series it cannot use; the message is one line."""


@dataclass(frozen=True, slots=True)
class SurgeConfig:
    #: Width of a ``port_series`` bucket, in seconds (the dataset's default: 10 minutes).
    bucket_seconds: int = 600
    #: Buckets of history the baseline median is taken over (36 x 10 min = 6 h).
    baseline_buckets: int = 36
    #: Most recent buckets left out of the baseline (the first buckets of a change must not lift it).
    guard: int = 2
    #: Buckets of history a port needs before it is tested at all.
    min_history: int = 18
    #: CUSUM reference value, in baseline standard deviations: shifts smaller than k are ignored.
    k: float = 0.5
    #: CUSUM decision threshold, in standard deviations accumulated over the excursion.
    h: float = 5.0
    #: The alarm also needs each confirming bucket at least this many times the baseline ...
    min_ratio: float = 1.5
    #: ... and at least this many more distinct sources than the baseline.
    min_increase: float = 20.0
    #: Consecutive buckets that must pass both thresholds (1 alerts on a single-bucket spike).
    confirm: int = 2
    #: Buckets an excursion may last without alarming before it is dropped and re-baselined.
    horizon: int = 12

    def __post_init__(self) -> None:
        for name in ("bucket_seconds", "baseline_buckets", "min_history", "confirm", "horizon"):
            if getattr(self, name) < 1:
                raise SurgeError(f"surge setting {name} must be at least 1, got {getattr(self, name)}")
        if self.guard < 0:
            raise SurgeError(f"surge setting guard must be >= 0, got {self.guard}")
        if self.min_history > self.baseline_buckets:
            raise SurgeError("surge setting min_history must not exceed baseline_buckets")
        for name in ("k", "h", "min_increase"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SurgeError(f"surge setting {name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(self.min_ratio) and self.min_ratio >= 1):
            raise SurgeError(f"surge setting min_ratio must be >= 1, got {self.min_ratio}")


#: Growth rates (per bucket) of the exponential onsets :func:`_best_start` tries besides a step.
ONSET_RATES = np.array([0.0, 0.1])


@numba.njit(cache=True)
def _best_start(x: np.ndarray, m: float, lo: int, hi: int, rates: np.ndarray) -> int:
    """The bucket in [lo, hi] from which a change best explains x[lo..hi] (least squares).

    The change is a step (``m + c``) or an epidemic-like onset ``m + c (exp(r d) - 1)`` with ``d``
    buckets since the start (``r = 0`` is read as a ramp ``m + c d``), ``c >= 0`` fitted in closed
    form for each candidate start and rate.
    """
    best, best_sse = hi, np.inf
    for tau in range(lo, hi + 1):
        before = 0.0
        for t in range(lo, tau):
            before += (x[t] - m) ** 2
        n = hi - tau + 1
        mean = 0.0
        for t in range(tau, hi + 1):
            mean += x[t] - m
        mean /= n
        sse = 0.0
        for t in range(tau, hi + 1):
            sse += (x[t] - m - mean) ** 2
        for r in rates:
            rf = 0.0
            ff = 0.0
            for t in range(tau, hi + 1):
                d = t - tau + 1.0
                f = d if r == 0.0 else math.expm1(r * d)
                rf += (x[t] - m) * f
                ff += f * f
            c = max(rf / ff, 0.0)
            fit = 0.0
            for t in range(tau, hi + 1):
                d = t - tau + 1.0
                f = d if r == 0.0 else math.expm1(r * d)
                fit += (x[t] - m - c * f) ** 2
            sse = min(sse, fit)
        if before + sse < best_sse:
            best, best_sse = tau, before + sse
    return best


@numba.njit(cache=True)
def _detect_port(x: np.ndarray, window: int, guard: int, min_history: int, k: float, h: float,
                 min_ratio: float, min_increase: float, confirm: int, horizon: int, rates: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alerts of one port's dense series: (start, detected) bucket indexes, baseline, level."""
    n = x.shape[0]
    starts = np.empty(n, np.int64)
    fired = np.empty(n, np.int64)
    baselines = np.empty(n, np.float64)
    levels = np.empty(n, np.float64)
    count = 0
    s = 0.0
    excursion = -1  # bucket where S left 0, -1 when S == 0
    alert_open = False
    m = 0.0
    sd = 1.0
    for t in range(n):
        if excursion < 0:
            hi = t - guard
            lo = max(0, hi - window)
            if hi - lo < min_history:
                continue
            hist = x[lo:hi]
            m = np.median(hist)
            sd = max(1.4826 * np.median(np.abs(hist - m)), math.sqrt(max(m, 1.0)))
        s = max(0.0, s + (x[t] - m) / sd - k)
        if s == 0.0:
            excursion = -1
            alert_open = False
            continue
        if excursion < 0:
            excursion = t
        if alert_open:
            if t - excursion >= window:  # a lasting shift: re-baseline on the new level
                s, excursion, alert_open = 0.0, -1, False
            continue
        if s > h and t - excursion + 1 >= confirm:
            ok = True
            level = 0.0
            for j in range(t - confirm + 1, t + 1):
                level += x[j]
                if x[j] < min_ratio * max(m, 1.0) or x[j] - m < min_increase:
                    ok = False
            if ok:
                starts[count] = _best_start(x, m, max(0, t - window), t, rates)
                fired[count] = t
                baselines[count] = m
                levels[count] = level / confirm
                count += 1
                alert_open = True
                continue
        if t - excursion >= horizon:  # too slow to be a surge: forget it, re-estimate the baseline
            s, excursion = 0.0, -1
    return starts[:count], fired[:count], baselines[:count], levels[:count]


def detect_surges(series: pa.Table, config: SurgeConfig = SurgeConfig()) -> pa.Table:
    """Surge alerts (:data:`ALERT_SCHEMA`, one row per alert) over a ``port_series`` table.

    ``series`` has the columns :data:`SERIES_COLUMNS` (proto uint8, port uint16, bucket
    timestamp[us, UTC], packets int64, sources int64), any order, all ports at once; a bucket a
    port does not appear in counts as 0 sources. Raises :class:`SurgeError` for missing columns or
    buckets off the ``bucket_seconds`` grid.
    """
    missing = [c for c in SERIES_COLUMNS if c not in series.column_names]
    if missing:
        raise SurgeError(f"port series lacks column(s) {', '.join(missing)}")
    if series.num_rows == 0:
        return ALERT_SCHEMA.empty_table()
    width = config.bucket_seconds * 1_000_000
    bucket = pc.cast(series["bucket"], _TS).to_numpy().astype("datetime64[us]").astype(np.int64)
    first = int(bucket.min())
    offset = bucket - first
    if np.any(offset % width):
        raise SurgeError(f"port series buckets are not on a {config.bucket_seconds} s grid")
    slot = offset // width
    n_buckets = int(slot.max()) + 1
    key = series["proto"].to_numpy().astype(np.int64) << 16 | series["port"].to_numpy().astype(np.int64)
    ports, row_port = np.unique(key, return_inverse=True)
    sources = np.zeros((len(ports), n_buckets), dtype=np.float64)
    packets = np.zeros((len(ports), n_buckets), dtype=np.int64)
    np.add.at(sources, (row_port, slot), series["sources"].to_numpy().astype(np.float64))
    np.add.at(packets, (row_port, slot), series["packets"].to_numpy().astype(np.int64))
    # A port whose busiest bucket cannot reach min_increase or min_ratio over anything never alerts.
    candidates = np.flatnonzero(sources.max(axis=1) >= max(config.min_increase, 1.0))
    out: dict[str, list] = {name: [] for name in ALERT_SCHEMA.names}
    for i in candidates:
        start, fired, baseline, level = _detect_port(
            sources[i], config.baseline_buckets, config.guard, config.min_history, config.k, config.h,
            config.min_ratio, config.min_increase, config.confirm, config.horizon, ONSET_RATES)
        cum = np.concatenate([[0], np.cumsum(packets[i])])
        for a, b, m, lv in zip(start.tolist(), fired.tolist(), baseline.tolist(), level.tolist(), strict=True):
            out["proto"].append(int(ports[i] >> 16))
            out["port"].append(int(ports[i] & 0xFFFF))
            out["start"].append(first + a * width)
            out["detected"].append(first + b * width)
            out["baseline_sources"].append(m)
            out["level_sources"].append(lv)
            out["magnitude"].append(lv / max(m, 1.0))
            out["packets"].append(int(cum[b + 1] - cum[a]))
            out["method"].append(METHOD)
    return pa.table({name: pa.array(out[name], type=ALERT_SCHEMA.field(name).type) for name in ALERT_SCHEMA.names},
                    schema=ALERT_SCHEMA)


__all__ = ["ALERT_SCHEMA", "METHOD", "SERIES_COLUMNS", "SurgeConfig", "SurgeError", "detect_surges"]
