"""The demo's PNG timeline: ETH and BTC feed prices on top; below, one panel per protected/twin
pair with both healths, the keeper's actions and the liquidations marked. The x axis is market
time (one block = one crash step).

Both lines of a pair start from the same state: the daemon starts before the replay and may act
at once (typically releasing excess collateral), so the first block read can already include
that action. The protected line then starts at the pre-action health the vault read in the same
transaction (``KeeperAction.health_before``), the state its twin still has, and steps to the
first reading at the same x (:func:`health_series`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from keeper.demo.chain import BlockRecord
from keeper.demo.collect import KeeperAction, Liquidation

# Health is capped per panel: lending around 1-2; perp health counts in units of the maximum leverage.
HEALTH_CAP = {"lending": 3.0, "perp": 25.0}
PHASE_COLOURS = {"calm": "#f2f7f2", "build-up": "#fff6e0", "crash": "#fde8e8", "rebound": "#eaf1fb"}
# Action kind -> (marker, legend label). Up: collateral in (or debt down); down: collateral out.
ACTION_MARKERS = {
    "top_up": ("^", "keeper protects (top-up/repay)"),
    "repay": ("^", "keeper protects (top-up/repay)"),
    "rebalance": ("D", "keeper protects (rebalance from a safe position)"),
    "withdraw_excess": ("v", "keeper releases excess"),
}
LIQUIDATION_LINE = "liquidation line (health 1)"
PERP_HEALTH = "remaining collateral \u00d7 maxLeverage / size"


def _clip(h: float | None, cap: float) -> float:
    """No line where the position is gone or has no debt left; capped at ``cap``."""
    if h is None or not math.isfinite(h):
        return math.nan
    return min(h, cap)


def _is_perp(pid: str) -> bool:
    return "perp" in pid


def health_series(records: Sequence[BlockRecord], pid: str, actions: Sequence[KeeperAction],
                  hours: Callable[[int], float]) -> tuple[list[float], list[float | None]]:
    """``pid``'s health at every record (x in market hours, raw health). If the keeper acted on
    ``pid`` at or before the first record's block, that reading already includes the action: the
    earliest such action's ``health_before`` (the state before the keeper touched the position) is
    put first, at the first record's x."""
    if not records:
        return [], []
    xs = [hours(r.block) for r in records]
    ys: list[float | None] = [r.health.get(pid) for r in records]
    early = sorted((a for a in actions if a.position == pid and a.block <= records[0].block
                    and a.health_before is not None), key=lambda a: a.block)
    if early:
        xs.insert(0, xs[0])
        ys.insert(0, early[0].health_before)
    return xs, ys


def _price_panel(ax: Any, records: Sequence[BlockRecord], x: list[float]) -> None:
    ax.plot(x, [r.eth for r in records], color="#3b5bdb", label="ETH / USD")
    ax.set_ylabel("ETH (USD)", color="#3b5bdb")
    right = ax.twinx()
    right.plot(x, [r.btc for r in records], color="#e8590c", label="BTC / USD")
    right.set_ylabel("BTC (USD)", color="#e8590c")
    ax.set_title("ETH and BTC prices as the Chainlink feeds report them (the crash, one step per block)",
                 fontsize=9)


def _health_panel(ax: Any, records: Sequence[BlockRecord], pid: str, twin: str, actions: Sequence[KeeperAction],
                  liquidations: Sequence[Liquidation], hours: Callable[[int], float]) -> None:
    perp = _is_perp(pid)
    cap = HEALTH_CAP["perp" if perp else "lending"]
    by_block = {r.block: r for r in records}
    ox, oy = health_series(records, pid, actions, hours)
    tx, ty = health_series(records, twin, (), hours)
    ours, theirs = [_clip(h, cap) for h in oy], [_clip(h, cap) for h in ty]
    ax.plot(ox, ours, color="#2b8a3e", label=f"{pid} (keeper)")
    ax.plot(tx, theirs, color="#c92a2a", ls="--", label=f"{twin} (no keeper)")
    ax.axhline(1.0, color="black", lw=0.8, ls=":", label=LIQUIDATION_LINE)
    top_h = max([h for h in ours + theirs if not math.isnan(h)] or [cap])
    ax.set_ylim(0, max(min(cap, top_h), 1.0) * 1.1)  # the liquidation line always in view
    if perp:
        ax.set_title(f"{pid} (keeper) vs {twin} (no keeper): GMX perp health\n"
                     f"health = {PERP_HEALTH} (in units of GMX's max leverage; 1 = liquidatable)", fontsize=9)
        ax.set_ylabel("perp health\n(\u00d7 max leverage)")
    else:
        ax.set_title(f"{pid} (keeper) vs {twin} (no keeper): health factor; 1 = liquidatable", fontsize=9)
        ax.set_ylabel("health factor")
    labelled: set[str] = set()
    for a in actions:
        if a.position != pid:
            continue
        marker, label = ACTION_MARKERS.get(a.kind, ("o", f"keeper action ({a.kind})"))
        h = a.health_after if a.health_after is not None else by_block.get(a.block, records[-1]).health.get(pid)
        ax.scatter([max(hours(a.block), ox[0])], [_clip(h, cap)], marker=marker, color="#2b8a3e",
                   edgecolor="black", s=40, zorder=5, label=None if label in labelled else label)
        labelled.add(label)
    for liq in liquidations:
        if liq.position in (pid, twin):
            prev = by_block.get(liq.block - 1)
            h = _clip(prev.health.get(liq.position), cap) if prev else math.nan
            ax.scatter([hours(liq.block)], [0.0 if math.isnan(h) else h], marker="X", color="#c92a2a", s=70,
                       zorder=6, label=None if "liquidation" in labelled else "liquidation")
            labelled.add("liquidation")
    ax.legend(loc="lower left", fontsize=7, ncol=2)


def timeline_figure(records: Sequence[BlockRecord], pairs: Sequence[tuple[str, str]],
                    actions: Sequence[KeeperAction], liquidations: Sequence[Liquidation], *,
                    hours: Callable[[int], float], minutes_per_step: float,
                    phases: Sequence[tuple[str, int, int]] = ()) -> tuple[Any, list[Any]]:
    """The figure and its panels (prices first, then one per pair); headless (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [hours(r.block) for r in records]
    fig, grid = plt.subplots(1 + len(pairs), 1, figsize=(11, 2.6 * (1 + len(pairs))), sharex=True, squeeze=False)
    axes = list(grid[:, 0])
    top = axes[0]
    _price_panel(top, records, x)
    fig.suptitle("Crash replay through the Chainlink feeds: keeper-protected positions vs unprotected twins")
    for ax in axes:
        for name, b0, b1 in phases:
            ax.axvspan(hours(b0), hours(b1), color=PHASE_COLOURS.get(name, "#eeeeee"), zorder=0)
    for name, b0, b1 in phases:
        top.text((hours(b0) + hours(b1)) / 2, 0.04, name, transform=top.get_xaxis_transform(), ha="center",
                 fontsize=8, color="#555555")
    for ax, (pid, twin) in zip(axes[1:], pairs, strict=True):
        _health_panel(ax, records, pid, twin, actions, liquidations, hours)
    axes[-1].set_xlabel(f"market time (hours; one block = {minutes_per_step:g} minutes)")
    fig.tight_layout()
    return fig, axes


def write_timeline(path: Path, records: Sequence[BlockRecord], pairs: Sequence[tuple[str, str]],
                   actions: Sequence[KeeperAction], liquidations: Sequence[Liquidation], *,
                   hours: Callable[[int], float], minutes_per_step: float,
                   phases: Sequence[tuple[str, int, int]] = ()) -> Path:
    """``hours``: block -> market hours (the x axis); ``phases``: (name, first block, last block) of
    each crash phase, shaded in every panel."""
    fig, _axes = timeline_figure(records, pairs, actions, liquidations, hours=hours,
                                 minutes_per_step=minutes_per_step, phases=phases)
    import matplotlib.pyplot as plt  # after timeline_figure has chosen the Agg backend

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
