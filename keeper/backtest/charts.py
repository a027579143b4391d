"""PNG charts of backtests (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from keeper.backtest.engine import Result

if TYPE_CHECKING:
    from keeper.backtest.pareto import Evaluated


def _dates(t: np.ndarray) -> np.ndarray:
    return np.asarray(t, dtype="datetime64[s]")


def run_chart(res: Result, path: str | Path, title: str = "") -> Path:
    """Three panels: price with actions and liquidations; distance to liquidation with the policy's
    trigger / target / release; buffer as a share of debt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = _dates(res.t)
    fig, ax = plt.subplots(3, 1, figsize=(12, 8), sharex=True, height_ratios=[2, 2, 1])
    ax[0].plot(x, res.price, lw=0.6, color="black", label="close")
    ups = [a.executed for a in res.actions if a.kind == "topup"]
    downs = [a.executed for a in res.actions if a.kind == "release"]
    liq = [event.bar for event in res.liquidations]
    ax[0].scatter(x[ups], res.price[ups], marker="^", s=14, color="tab:green", label=f"top-up ({len(ups)})")
    ax[0].scatter(x[downs], res.price[downs], marker="v", s=14, color="tab:blue", label=f"release ({len(downs)})")
    ax[0].scatter(x[liq], res.low[liq], marker="x", s=40, color="tab:red", label=f"liquidation ({len(liq)})")
    ax[0].set_yscale("log")
    ax[0].legend(loc="upper left", fontsize=8)
    ax[0].set_title(title or res.label)
    th = res.thresholds
    ax[1].plot(x, res.distance, lw=0.6, color="black", label="distance to liquidation")
    ax[1].plot(x, th.trigger, lw=0.5, color="tab:red", label="trigger")
    ax[1].plot(x, th.target, lw=0.5, color="tab:green", label="target")
    rel = np.where(np.isfinite(th.release) & (th.release < 1), th.release, np.nan)
    ax[1].plot(x, rel, lw=0.5, color="tab:blue", label="release")
    ax[1].set_ylim(0, min(1.0, float(np.nanmax(np.r_[res.distance, 0.1])) * 1.1))
    ax[1].legend(loc="upper left", fontsize=8)
    share = np.where(res.debt_usd > 0, res.buffer_usd / np.where(res.debt_usd > 0, res.debt_usd, 1), np.nan)
    ax[2].plot(x, share, lw=0.6, color="tab:purple")
    ax[2].set_ylabel("buffer / debt")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_chart(groups: dict[str, list[Evaluated]], path: str | Path, title: str = "Pareto frontier") -> Path:
    """``groups``: name -> list of ``pareto.Evaluated``. Every point (hollow when infeasible:
    liquidated or failing the trigger-survival check), the feasible frontier as a line."""
    from keeper.backtest.pareto import frontier
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 6))
    for (name, evals), color in zip(groups.items(), ("tab:orange", "tab:blue", "tab:green", "tab:red")):
        ok = [e for e in evals if e.feasible]
        bad = [e for e in evals if not e.feasible]
        ax.scatter([e.metrics.avg_buffer for e in bad], [e.metrics.transactions for e in bad], s=14,
                   facecolors="none", edgecolors=color, alpha=0.5, label=f"{name}: liquidated / fails check")
        ax.scatter([e.metrics.avg_buffer for e in ok], [e.metrics.transactions for e in ok], s=16, color=color,
                   label=f"{name}: safe")
        front = frontier(evals)
        if front:
            ax.plot([e.metrics.avg_buffer for e in front], [e.metrics.transactions for e in front], color=color, lw=1.5)
    ax.set_xlabel("average buffer (share of debt)")
    ax.set_ylabel("transactions (log scale)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
