"""Benchmark: how long `keeper devnet up` takes to reach a ready devnet (anvil started, the real
Aave v3, Morpho Blue and GMX v1, feeds, tokens, Multicall3, KeeperVaults deployed, positions seeded,
deployment file written, GMX's position keeper started in gated mode). Target: under 20 s on the
project's 2-core machine.

    .venv/bin/python bench/devnet_up.py [--runs N] [--aave 3.7|3.0] [--gmx gated|direct]

Prints a table of each run's phases and the median."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from keeper.devnet import AAVE_VERSIONS, DEFAULT_AAVE_VERSION, DEFAULT_GMX_MODE, GMX_MODES
from keeper.devnet.commands import stop_companions, up


def one_run(state: Path, aave: str, gmx: str) -> dict[str, float]:
    phases: dict[str, float] = {}
    t0 = time.monotonic()

    def log(msg: str) -> None:
        phases[msg.split(" (")[0]] = time.monotonic() - t0

    node, dep = up(port=None, block_time=None, fork_url=None, detach=False, out_dir=state, aave=aave, gmx=gmx, log=log)
    total = time.monotonic() - t0
    stop_companions(node)
    node.stop()
    phases["ready (total)"] = total
    phases["blocks mined (one tx each)"] = dep["deployed_at_block"]
    return phases


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--aave", choices=AAVE_VERSIONS, default=DEFAULT_AAVE_VERSION, help="the Aave version to deploy")
    ap.add_argument("--gmx", choices=GMX_MODES, default=DEFAULT_GMX_MODE, help="GMX v1's mode")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            runs.append(one_run(Path(tmp) / f"run{i}", args.aave, args.gmx))
    keys = list(runs[0])
    print(f"{'phase (cumulative s)':34} " + " ".join(f"run{i + 1:>3}" for i in range(len(runs))) + "   median")
    for k in keys:
        vals = [r[k] for r in runs]
        fmt = (lambda v: f"{v:6.0f}") if k.startswith("blocks") else (lambda v: f"{v:6.2f}")
        print(f"{k:34} " + " ".join(fmt(v) for v in vals) + "   " + fmt(statistics.median(vals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
