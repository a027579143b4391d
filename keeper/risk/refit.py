"""An irregular price history (Chainlink rounds, stored snapshots) on a regular hourly grid.

Pure: numpy only; times are whatever the caller measures in (seconds since the epoch for rounds).

Chainlink updates on deviation or heartbeat, so rounds are irregular in time. ``bucket_closes``
puts them on a regular grid (the last price in each ``step``-long bucket, empty buckets carrying the
previous close forward — no move is invented); the risk model's law then takes its vol forecast
from those closes (``keeper.risk.market.market_from_history``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
    closes: np.ndarray = p[idx]
    return closes
