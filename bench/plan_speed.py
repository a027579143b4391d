"""Benchmark: planning time per vault at risk, the daemon's model (the tail law, vols WETH 80 %,
WBTC 70 %), no chain. The position is bench/reaction.py's after its price move (10 WETH against
13,000 USDC on Aave at ETH 1,700: P(liq 24h) far above the budget), planned as the daemon plans a
vault (``keeper.plan.planner.plan``) with the reserve in the rows below. Columns: the planner as it
runs (it sizes the ways the reserve can pay, and of those only the ones whose estimated cost is within
``PRUNE_MARGIN`` of the cheapest sized) and with the estimate off (``PRUNE_MARGIN`` = inf: every way
the reserve can pay is sized); with a reserve holding every asset the second column is every way.
Milliseconds for ``--vaults`` plans (best of ``--repeat``) and P evaluations per plan.

    .venv/bin/python bench/plan_speed.py [--vaults 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keeper.plan.planner as planner
from keeper.app.books import policy_from
from keeper.app.risk_setup import assemble_model, choose
from keeper.config import Config
from keeper.domain import WAD, Address, Leg, Position, Protocol, Side
from keeper.plan.planner import Reserve, plan
from keeper.plan.whatif import AssetParams
from keeper.risk.health import lending_health

WETH = AssetParams("WETH", Address("0x" + "11" * 20), 18, 1_700.0, {"aave_v3": 0.83})
WBTC = AssetParams("WBTC", Address("0x" + "22" * 20), 8, 60_000.0, {"aave_v3": 0.73})
USDC = AssetParams("USDC", Address("0x" + "33" * 20), 6, 1.0, {"aave_v3": 0.78})
RESERVES = {
    "WETH (20)": {WETH.address: 20 * 10**18},
    "WETH (20), USDC (13,000): bench/reaction.py's vaults": {WETH.address: 20 * 10**18, USDC.address: 13_000 * 10**6},
    "WETH, WBTC, USDC": {WETH.address: 20 * 10**18, WBTC.address: 10**8, USDC.address: 50_000 * 10**6},
}


class Counting:
    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def p_liq(self, pos):
        self.calls += 1
        return self.model.p_liq(pos)


def position(i: int) -> Position:
    legs = (Leg(WETH.asset, Side.COLLATERAL, 10 * 10**18, 1_700.0, 0.83),
            Leg(USDC.asset, Side.DEBT, 13_000 * 10**6, 1.0, 1.0))
    return Position("bench", Protocol.AAVE_V3, Address("0x" + "44" * 20), Address(f"0x{i + 1:040x}"), "pool", legs,
                    int(lending_health(legs) * WAD), 100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vaults", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cfg = Config()
    model, _ = assemble_model(cfg, choose(cfg), ["WETH", "WBTC", "USDC"], {}, {"WETH": 0.8, "WBTC": 0.7})
    policy = policy_from(cfg)
    positions = [position(i) for i in range(args.vaults)]
    print(f"planning {args.vaults} vaults, best of {args.repeat}; model: {model.describe()}")
    print("| reserve | as it runs: ms | P evals per plan | estimate off: ms | P evals per plan | chosen |")
    print("|---|---|---|---|---|---|")
    margin = planner.PRUNE_MARGIN
    for name, held in RESERVES.items():
        cells = []
        for prune in (margin, math.inf):
            planner.PRUNE_MARGIN = prune
            best, chosen = math.inf, ""
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                plans = [plan([p], model, Reserve(held), (WETH, WBTC, USDC), policy, block=100) for p in positions]
                best = min(best, time.perf_counter() - t0)
                a = plans[0].actions[0]
                chosen = f"{a.kind.value} {a.amount:.6g} {a.asset.symbol}"
            counted = Counting(model)
            plan([positions[0]], counted, Reserve(held), (WETH, WBTC, USDC), policy, block=100)
            cells.append((best * 1e3, counted.calls, chosen))
        planner.PRUNE_MARGIN = margin
        (on, n_on, c_on), (off, n_off, c_off) = cells
        same = c_on if c_on == c_off else f"{c_on} (estimate off: {c_off})"
        print(f"| {name} | {on:.1f} | {n_on} | {off:.1f} | {n_off} | {same} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
