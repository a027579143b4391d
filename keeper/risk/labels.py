"""Labels for the learned P(liquidation within h): did a position placed at the close of bar i, at
a fractional distance d above its liquidation price, see a bar low at or below ``close[i]*(1-d)``
during bars ``i+1..i+h``?

Pure numpy. Vectorised with a sliding-window minimum of the lows; bars whose window runs past the
end of the history have no label (NaN minimum, excluded by :func:`labelled_rows`).

For an exposure hurt by rises (debt side, short perp) pass the series through
``keeper.risk.features.flip_side`` first (its lows are ``1/high``) and a distance of d/(1+d).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DEFAULT_DISTANCES = np.round(np.geomspace(0.01, 0.40, 24), 5)   # 1% .. 40% below the close


def future_min_low(low: np.ndarray, horizon_bars: int) -> np.ndarray:
    """m[i] = min(low[i+1 .. i+h]); NaN where fewer than h bars follow bar i."""
    low = np.asarray(low, dtype=float)
    h = int(horizon_bars)
    if h < 1:
        raise ValueError("horizon_bars must be >= 1")
    out = np.full(len(low), np.nan)
    if len(low) > h:
        out[: len(low) - h] = sliding_window_view(low[1:], h).min(axis=1)
    return out


def labelled_rows(close: np.ndarray, horizon_bars: int) -> np.ndarray:
    """Rows with a complete future window."""
    ok = np.zeros(len(close), dtype=bool)
    ok[: max(len(close) - int(horizon_bars), 0)] = True
    return ok


def crossed(close: np.ndarray, fmin: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """1.0 where the barrier close*(1-distance) is touched, 0.0 where not, NaN without a window.
    ``close``/``fmin`` have shape (n,); ``distance`` broadcasts against them (e.g. shape (n, 1) or (k,)
    with a leading (n, 1) close)."""
    barrier = np.asarray(close, dtype=float) * (1.0 - np.asarray(distance, dtype=float))
    hit = (np.asarray(fmin) <= barrier).astype(float)
    return np.where(np.isnan(fmin), np.nan, hit)


def label_grid(close: np.ndarray, low: np.ndarray, horizon_bars: int,
               distances: np.ndarray = DEFAULT_DISTANCES) -> np.ndarray:
    """Labels for every bar and every distance of a grid: shape (n, len(distances)), NaN without a window."""
    close = np.asarray(close, dtype=float)
    fmin = future_min_low(low, horizon_bars)
    return crossed(close[:, None], fmin[:, None], np.asarray(distances, dtype=float)[None, :])


def sample_positions(rows: np.ndarray, n_distances: int, per_row: int, rng: np.random.Generator,
                     max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Subsample (row, distance index) pairs: ``per_row`` distinct grid distances at each of the
    given rows (all of them when per_row >= n_distances), then at most ``max_samples`` pairs kept at
    random. Returned sorted by row, so time order is preserved."""
    rows = np.asarray(rows, dtype=np.int64)
    k = min(int(per_row), int(n_distances))
    if k < 1 or len(rows) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if k == n_distances:
        didx = np.tile(np.arange(n_distances), (len(rows), 1))
    else:   # k distinct indices per row: argsort of random keys
        didx = np.argsort(rng.random((len(rows), n_distances)), axis=1)[:, :k]
    r = np.repeat(rows, k)
    d = didx.reshape(-1)
    if max_samples is not None and len(r) > max_samples:
        keep = np.sort(rng.choice(len(r), size=int(max_samples), replace=False))
        r, d = r[keep], d[keep]
    return r, d


def sampled_labels(close: np.ndarray, low: np.ndarray, horizon_bars: int, rows: np.ndarray,
                   didx: np.ndarray, distances: np.ndarray = DEFAULT_DISTANCES) -> np.ndarray:
    """Labels (0/1 floats, NaN without a window) for sampled (row, distance index) pairs."""
    fmin = future_min_low(low, horizon_bars)
    close = np.asarray(close, dtype=float)
    return crossed(close[rows], fmin[rows], np.asarray(distances, dtype=float)[didx])
