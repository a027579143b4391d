"""Benchmark: how long `keeper devnet up` takes to reach a ready devnet (anvil started, the real
Aave v3 and Morpho Blue, feeds, tokens, PerpVault, Multicall3, KeeperVaults deployed, positions
seeded, deployment file written). Target: under 20 s on the project's 2-core machine.

    .venv/bin/python bench/devnet_up.py [--runs N] [--aave 3.7|3.0]

Prints a table of each run's phases and the median."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from keeper.devnet import AAVE_VERSIONS, DEFAULT_AAVE_VERSION
from keeper.devnet.commands import up


def one_run(state: Path, aave: str) -> dict[str, float]:
    phases: dict[str, float] = {}
    t0 = time.monotonic()

    def log(msg: str) -> None:
        phases[msg.split(" (")[0]] = time.monotonic() - t0

    node, dep = up(port=None, block_time=None, fork_url=None, detach=False, out_dir=state, aave=aave, log=log)
    total = time.monotonic() - t0
    node.stop()
    phases["ready (total)"] = total
    phases["blocks mined (one tx each)"] = dep["deployed_at_block"]
    return phases


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--aave", choices=AAVE_VERSIONS, default=DEFAULT_AAVE_VERSION, help="the Aave version to deploy")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            runs.append(one_run(Path(tmp) / f"run{i}", args.aave))
    keys = list(runs[0])
    print(f"{'phase (cumulative s)':34} " + " ".join(f"run{i + 1:>3}" for i in range(len(runs))) + "   median")
    for k in keys:
        vals = [r[k] for r in runs]
        fmt = (lambda v: f"{v:6.0f}") if k.startswith("blocks") else (lambda v: f"{v:6.2f}")
        print(f"{k:34} " + " ".join(fmt(v) for v in vals) + "   " + fmt(statistics.median(vals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
