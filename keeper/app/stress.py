"""``keeper stress``: Monte Carlo stress of the current positions (read from the chain, or from a
``keeper status --json`` file): P(liquidation) per horizon, expected loss, the book's VaR and
expected shortfall, named historical crash windows, and a fan chart of prices.

The paths are the deciding model's (``policy.model``, built as the daemon builds it: its law's
fitted tails and jumps, each asset's vol now with its source, measured correlations — an unmeasured
pair moves as one), so the stress and the decisions describe one model. Crash windows come from
``--prices`` files; stablecoins are stable legs in the paths and are stressed by depeg scenarios of
their own (``keeper.risk.stress.depeg_scenarios``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keeper.app.risk_setup import base_symbol, symbol_assets
from keeper.domain import Position
from keeper.errors import ConfigError
from keeper.risk import scenarios as sc
from keeper.risk.laws import Law
from keeper.risk.market import Market, is_stable
from keeper.risk.mc_model import McRisk
from keeper.risk.stress import StressReport, depeg_scenarios, stress_report

# Crash windows in shared/data (UTC start of the replayed window).
CRASHES = {"2020-03-12": "2020-03-12T00:00:00", "2021-05-19": "2021-05-19T00:00:00",
           "2022-06-13": "2022-06-13T00:00:00", "2022-11-08": "2022-11-08T00:00:00"}


def law_and_market(model: Any) -> tuple[Law, Market]:
    """The law and market under any risk model (a learned model's are its fallback's)."""
    inner = getattr(model, "fallback", model)
    return inner.law, inner.market


def crash_windows(symbols: Sequence[str], steps: int, price_files: Sequence[Path]) -> sc.HistoricalShocks | None:
    """The named crash windows of the price files, as single replayed paths over ``symbols``."""
    from keeper.backtest.prices import align, load_csv

    by_base = {base_symbol(load_csv(Path(f)).symbol): Path(f) for f in price_files}
    cols = [i for i, s in enumerate(symbols) if base_symbol(s) in by_base]
    if not cols:
        return None
    aligned = align([load_csv(by_base[base_symbol(symbols[i])]) for i in cols])
    closes = np.column_stack([s.close for s in aligned])
    t = aligned[0].t
    starts = {}
    for name, when in CRASHES.items():
        row = int(np.searchsorted(t, int(np.datetime64(when, "s").astype(np.int64))))
        if row >= 0 and row + steps < len(t):
            starts[name] = row
    if not starts:
        return None
    full = np.ones((len(t), len(symbols)))
    for a, i in enumerate(cols):
        full[:, i] = closes[:, a]
    return sc.replay_windows(full, steps, starts)


def run_stress(positions: Sequence[Position], *, horizons_h: Sequence[int], n_paths: int, seed: int,
               model: Any, price_files: Sequence[Path] = ()) -> tuple[StressReport, dict[str, str]]:
    """The Monte Carlo of the deciding model's law and market (``keeper.risk.mc_model``: joint
    paths, t tails, jumps both ways, hourly steps), the crash windows of ``price_files`` replayed,
    and stablecoin depegs as their own scenarios (``StressReport.depegs``)."""
    usable = [p for p in positions if p.price_ok]
    if not usable:
        raise ConfigError("no position with usable prices to stress")
    law, market = law_and_market(model)
    symbols = tuple(s for s in symbol_assets(usable) if not is_stable(s) and market.state(s).sigma > 0)
    if not symbols:
        raise ConfigError("no volatile asset to stress: every position is in stable legs")
    steps = max(horizons_h)
    mc = McRisk(law, market, float(steps), n_paths=n_paths, steps_per_hour=1, seed=seed)
    paths = mc.paths(symbols)
    shocks = crash_windows(symbols, steps, price_files) if price_files else None
    report = stress_report(usable, paths, list(horizons_h), symbols=symbols, historical=shocks)
    report = dataclasses.replace(report, depegs=depeg_scenarios(usable))
    notes = {s: f"{market.state(s).annual:.0%}/yr ({market.state(s).source})" for s in symbols}
    notes["law"] = law.describe()
    corr = market.describe().partition("; corr ")[2]
    notes["correlation"] = corr or "unmeasured: 1 between every pair (joint crash)"
    return report, notes


def fan_png(report: StressReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.symbols)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), squeeze=False)
    steps = np.arange(report.fan.shape[1])
    levels = report.quantile_levels
    for a, sym in enumerate(report.symbols):
        ax = axes[a][0]
        q = report.fan[:, :, a]
        for lo, hi, alpha in ((0, len(levels) - 1, 0.15), (1, len(levels) - 2, 0.25), (2, len(levels) - 3, 0.4)):
            if lo < hi:
                ax.fill_between(steps, q[lo], q[hi], color="tab:blue", alpha=alpha,
                                label=f"{levels[lo]:.0%}-{levels[hi]:.0%}")
        ax.plot(steps, q[len(levels) // 2], color="black", lw=1, label="median")
        ax.set_title(f"{sym}: simulated price fan ({report.n_paths:,} paths)")
        ax.set_xlabel("hours")
        ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def positions_from_json(path: Path) -> list[Position]:
    from keeper.views import position_from_row

    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"positions file {path} not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"positions file {path} is not JSON: {e.msg}") from e
    rows = ([r for c in doc.get("chains", []) for r in c.get("positions", [])] if "chains" in doc
            else doc.get("positions", []))
    if not rows:
        raise ConfigError(f"positions file {path} holds no positions (expected `keeper status --json` output)")
    return [position_from_row(r) for r in rows]
