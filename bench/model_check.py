"""Closed form against Monte Carlo for the product's risk model on one multi-collateral position.

Command: ``.venv/bin/python bench/model_check.py [--paths 100000]``

Alice's devnet Aave position (WETH 60% + WBTC 40% of the collateral, liquidation weight 0.8, USDC
debt) at several healths; vols 80% / 70% a year, correlation 0.8, horizon 24 h. For the lognormal
law, the tail law without jumps and the built-in tail law: P from the closed form on the joint
factor (``LawRisk``) and from joint paths of the same law and market (``McRisk``, 4 steps an hour).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeper.domain import WAD, Asset, Leg, Position, Protocol, Side
from keeper.risk.builtin_law import BUILTIN_TAIL
from keeper.risk.laws import GaussLaw
from keeper.risk.market import AssetState, Market
from keeper.risk.mc_model import McRisk
from keeper.risk.model import LawRisk

HOURLY = 1 / math.sqrt(24 * 365)
WETH, WBTC, USDC = Asset("WETH", "0xe", 18), Asset("WBTC", "0xb", 8), Asset("USDC", "0xu", 6)


def alice(health: float) -> Position:
    debt = 0.8 * 100_000 / health
    legs = (Leg(WETH, Side.COLLATERAL, 30 * 10**18, 2000.0, 0.8),
            Leg(WBTC, Side.COLLATERAL, int(40_000 / 30_000 * 10**8), 30_000.0, 0.8),
            Leg(USDC, Side.DEBT, int(debt * 10**6), 1.0))
    return Position("devnet", Protocol.AAVE_V3, "0xpool", "0xa", "pool", legs, WAD, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=100_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    market = Market({"WETH": AssetState(0.8 * HOURLY, "given"), "WBTC": AssetState(0.7 * HOURLY, "given")},
                    {("WBTC", "WETH"): 0.8})
    laws = {"lognormal": GaussLaw(), "tail, no jumps": replace(BUILTIN_TAIL, lam_u=0.0),
            "tail (built-in)": BUILTIN_TAIL}
    print("| health | " + " | ".join(f"{n}: closed form / MC" for n in laws) + " |")
    print("|---" * (len(laws) + 1) + "|")
    for h in (1.05, 1.10, 1.15, 1.25):
        pos = alice(h)
        cells = []
        for law in laws.values():
            cf = LawRisk(law, market, 24.0).p_liq(pos)
            mc = McRisk(law, market, 24.0, n_paths=args.paths, steps_per_hour=4, seed=1).p_liq(pos)
            cells.append(f"{cf:.2e} / {mc:.2e}")
        print(f"| {h:.2f} | " + " | ".join(cells) + " |")
    print(f"\n{args.paths:,} paths per cell; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
