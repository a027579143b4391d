"""The demo's PNG timeline: ETH and BTC feed prices on top; below, one panel per protected/twin
pair with both healths, the keeper's actions and the liquidations marked. The x axis is market
time (one block = one crash step)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from keeper.demo.chain import BlockRecord
from keeper.demo.collect import KeeperAction, Liquidation

# Health is capped per panel: lending around 1-2; perp health counts in units of the maximum leverage.
HEALTH_CAP = {"lending": 3.0, "perp": 25.0}
PHASE_COLOURS = {"calm": "#f2f7f2", "build-up": "#fff6e0", "crash": "#fde8e8", "rebound": "#eaf1fb"}


def _clip(h: float | None, cap: float) -> float:
    """No line where the position is gone or has no debt left; capped at ``cap``."""
    if h is None or not math.isfinite(h):
        return math.nan
    return min(h, cap)


def write_timeline(path: Path, records: Sequence[BlockRecord], pairs: Sequence[tuple[str, str]],
                   actions: Sequence[KeeperAction], liquidations: Sequence[Liquidation], *,
                   hours: Callable[[int], float], minutes_per_step: float,
                   phases: Sequence[tuple[str, int, int]] = ()) -> Path:
    """``hours``: block -> market hours (the x axis); ``phases``: (name, first block, last block) of
    each crash phase, shaded in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [hours(r.block) for r in records]
    fig, axes = plt.subplots(1 + len(pairs), 1, figsize=(11, 2.6 * (1 + len(pairs))), sharex=True)
    top = axes[0]
    top.plot(x, [r.eth for r in records], color="#3b5bdb", label="ETH / USD")
    top.set_ylabel("ETH (USD)", color="#3b5bdb")
    right = top.twinx()
    right.plot(x, [r.btc for r in records], color="#e8590c", label="BTC / USD")
    right.set_ylabel("BTC (USD)", color="#e8590c")
    top.set_title("Crash replay through the Chainlink feeds: keeper-protected positions vs unprotected twins")
    for ax in axes:
        for name, b0, b1 in phases:
            ax.axvspan(hours(b0), hours(b1), color=PHASE_COLOURS.get(name, "#eeeeee"), zorder=0)
    for name, b0, b1 in phases:
        top.text((hours(b0) + hours(b1)) / 2, 0.04, name, transform=top.get_xaxis_transform(), ha="center",
                 fontsize=8, color="#555555")
    by_block = {r.block: r for r in records}
    for ax, (pid, twin) in zip(axes[1:], pairs):
        cap = HEALTH_CAP["perp" if "perp" in pid else "lending"]
        ours = [_clip(r.health.get(pid), cap) for r in records]
        theirs = [_clip(r.health.get(twin), cap) for r in records]
        ax.plot(x, ours, color="#2b8a3e", label=f"{pid} (keeper)")
        ax.plot(x, theirs, color="#c92a2a", ls="--", label=f"{twin}")
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        top_h = max([h for h in ours + theirs if not math.isnan(h)] or [cap])
        ax.set_ylim(0, min(cap, top_h) * 1.1)
        ax.set_ylabel("health")
        first = True
        for a in actions:
            if a.position == pid:
                h = a.health_after if a.health_after is not None else by_block.get(a.block, records[-1]).health.get(pid)
                ax.scatter([hours(a.block)], [_clip(h, cap)], marker="^" if a.kind != "withdraw_excess" else "v",
                           color="#2b8a3e", edgecolor="black", s=40, zorder=5, label="keeper action" if first else None)
                first = False
        first = True
        for liq in liquidations:
            if liq.position in (pid, twin):
                prev = by_block.get(liq.block - 1)
                h = _clip(prev.health.get(liq.position), cap) if prev else math.nan
                ax.scatter([hours(liq.block)], [0.0 if math.isnan(h) else h], marker="X", color="#c92a2a", s=70,
                           zorder=6, label="liquidation" if first else None)
                first = False
        ax.legend(loc="lower left", fontsize=7, ncol=2)
    axes[-1].set_xlabel(f"market time (hours; one block = {minutes_per_step:g} minutes)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
