"""Calibration chart of a probability forecast (matplotlib, Agg backend: no display needed).

One PNG per forecast set (an asset, or all assets pooled), three panels:

1. reliability diagram: mean forecast vs observed frequency per quantile bin of the forecast, with
   the diagonal and a +-3-point band (the calibration goal) and binomial 95% error bars;
2. the same in log-log scale for the low-P region (forecasts below 10%, where a keeper's decisions
   are made), with log-spaced bins;
3. histogram of the forecasts (log-spaced bins, log count axis).

In the log panels a forecast or a frequency of 0 is drawn at the smallest positive forecast
(floor 1e-5): a bin where nothing happened sits on the chart's floor.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

LOW_P_PANEL = 0.10          # upper end of the log-scale panel
GOAL_POINTS = 0.03          # calibration goal: within 3 percentage points


def _binned(p: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin [edges[k], edges[k+1]): mean forecast, observed frequency, count (bins with data)."""
    k = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(k, minlength=len(edges) - 1)
    sp = np.bincount(k, weights=p, minlength=len(edges) - 1)
    sy = np.bincount(k, weights=y, minlength=len(edges) - 1)
    ok = n > 0
    return sp[ok] / n[ok], sy[ok] / n[ok], n[ok]


def calibration_chart(p: np.ndarray, y: np.ndarray, path: str | Path, title: str = "",
                      n_bins: int = 20) -> Path:
    """Write the chart for forecasts ``p`` and 0/1 outcomes ``y`` to ``path`` (PNG); returns the path."""
    p = np.asarray(p, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if len(p) != len(y) or len(p) == 0:
        raise ValueError("p and y must be non-empty and of one length")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.8))

    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        edges = np.array([p.min(), p.max() + 1e-12])
    mp, ob, n = _binned(p, y, edges)
    err = 1.96 * np.sqrt(np.maximum(ob * (1 - ob), 1e-12) / n)
    x = np.linspace(0, 1, 2)
    ax[0].fill_between(x, x - GOAL_POINTS, x + GOAL_POINTS, color="tab:green", alpha=0.15, label="+-3 points")
    ax[0].plot(x, x, color="black", lw=0.8, label="perfect")
    ax[0].errorbar(mp, ob, yerr=err, fmt="o-", ms=3, lw=1, color="tab:blue",
                   label=f"{len(mp)} quantile bins")
    ax[0].set_xlim(0, 1)
    ax[0].set_ylim(0, 1)
    ax[0].set_xlabel("forecast P(liquidation)")
    ax[0].set_ylabel("observed frequency")
    ax[0].set_title("reliability")
    ax[0].legend(fontsize=8, loc="upper left")

    floor = max(float(p[p > 0].min()) if np.any(p > 0) else 1e-5, 1e-5)
    low = p < LOW_P_PANEL
    if low.sum() > 0:
        ledges = np.geomspace(floor, LOW_P_PANEL, 13)
        ledges[0] = 0.0
        lm, lo_obs, ln = _binned(p[low], y[low], ledges)
        shown = np.maximum(lo_obs, floor / 2)     # an empty bin (no event) drawn at the floor
        ax[1].plot([floor, LOW_P_PANEL], [floor, LOW_P_PANEL], color="black", lw=0.8, label="perfect")
        ax[1].plot(np.maximum(lm, floor), shown, "o-", ms=3, lw=1, color="tab:blue",
                   label=f"log bins ({int(low.sum())} forecasts < {LOW_P_PANEL:.0%})")
        for xi, yi, ni in zip(np.maximum(lm, floor), shown, ln):
            ax[1].annotate(f"{ni}", (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax[1].set_xscale("log")
        ax[1].set_yscale("log")
        ax[1].set_xlim(floor / 1.5, LOW_P_PANEL * 1.5)
        ax[1].legend(fontsize=8, loc="upper left")
    ax[1].set_xlabel("forecast (log)")
    ax[1].set_ylabel("observed (log)")
    ax[1].set_title(f"low-P region (< {LOW_P_PANEL:.0%})")

    hedges = np.geomspace(floor, 1.0, 41)
    ax[2].hist(np.clip(p, floor, 1.0), bins=hedges, color="tab:gray")
    ax[2].set_xscale("log")
    ax[2].set_xlim(floor / 1.5, 1.0)
    ax[2].set_yscale("log")
    ax[2].set_xlabel("forecast (log)")
    ax[2].set_ylabel("count")
    ax[2].set_title(f"forecasts: n={len(p)}, event rate {y.mean():.4f}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
