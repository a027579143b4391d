"""Re-estimating a volatility from an irregular price history (Chainlink rounds, stored snapshots).

Pure: numpy only; times are whatever the caller measures in (seconds since the epoch for rounds).

Chainlink updates on deviation or heartbeat, so rounds are irregular in time. They are put on a
regular grid first (``bucket_closes``: the last price in each ``step``-long bucket, empty buckets
carrying the previous close forward — no move is invented), then the RiskMetrics EWMA of the
grid's log returns (``keeper.risk.volatility.ewma_next_variance``) is annualised
(``annual_ewma_vol``). Too short a history gives ``None``: the caller keeps its old estimate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from keeper.risk.volatility import ewma_next_variance, log_returns

HOURS_PER_YEAR = 24 * 365


def bucket_closes(times: Sequence[float], prices: Sequence[float], step: float = 3600.0) -> np.ndarray:
    """The last price in each ``step``-long bucket from the first observation's bucket to the last's,
    forward-filled; observations need not be sorted. Non-positive or non-finite prices are dropped."""
    t = np.asarray(times, dtype=float)
    p = np.asarray(prices, dtype=float)
    if t.shape != p.shape:
        raise ValueError("times and prices must have the same length")
    if step <= 0:
        raise ValueError("step must be > 0")
    keep = np.isfinite(t) & np.isfinite(p) & (p > 0)
    t, p = t[keep], p[keep]
    if len(t) == 0:
        return np.empty(0)
    order = np.argsort(t, kind="stable")
    t, p = t[order], p[order]
    bucket = np.floor(t / step).astype(np.int64)
    first, last = int(bucket[0]), int(bucket[-1])
    # index of the last observation in each bucket at or before each grid bucket
    grid = np.arange(first, last + 1)
    idx = np.searchsorted(bucket, grid, side="right") - 1
    return p[idx]


def annual_ewma_vol(closes: np.ndarray, lam: float = 0.94, periods_per_year: float = HOURS_PER_YEAR,
                    min_returns: int = 24) -> float | None:
    """Annualised EWMA vol of a regular close series, or None with fewer than ``min_returns`` returns."""
    r = log_returns(np.asarray(closes, dtype=float))
    if len(r) < max(2, min_returns):
        return None
    var = ewma_next_variance(r, lam)
    if not math.isfinite(var) or var < 0:
        return None
    return math.sqrt(var * periods_per_year)
