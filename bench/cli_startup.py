"""Benchmark: the wall time of CLI commands, each in a fresh interpreter as an operator runs them,
for one source tree or several, alternating (so a noisy machine hits them alike). Run it from a
directory whose config.toml names a running devnet (the README's `keeper devnet up --detach`).
Prints the median seconds per command and tree, with the exit codes seen.

    .venv/bin/python bench/cli_startup.py [--tree DIR ...] [--rounds 5]

``--tree``: a checkout of the keeper (default: this one); an older commit comes from
`git worktree add /tmp/old REV`. Each run imports ``keeper`` from its tree (checked) with this
directory's config.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("--help", "check-config", "status", "plan", "rebalance bob-aave")
LAUNCH = ("import sys; sys.path.insert(0, {tree!r}); import keeper; "
          "assert keeper.__file__.startswith({tree!r}), keeper.__file__; "
          "from keeper.cli import main; sys.exit(main())")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--command", action="append", default=None, help="a command line (default: five of them)")
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in (args.tree or [Path(__file__).resolve().parents[1]])]
    commands = args.command or list(COMMANDS)
    times: dict[tuple[str, str], list[float]] = {}
    codes: dict[tuple[str, str], set[int]] = {}
    for cmd in commands:
        for _ in range(args.rounds):
            for tree in trees:
                t0 = time.perf_counter()
                r = subprocess.run([sys.executable, "-c", LAUNCH.format(tree=tree), *cmd.split()],
                                   capture_output=True, text=True, timeout=300)
                times.setdefault((cmd, tree), []).append(time.perf_counter() - t0)
                codes.setdefault((cmd, tree), set()).add(r.returncode)
                if "AssertionError" in r.stderr:
                    raise SystemExit(f"keeper was not imported from {tree}: {r.stderr.strip()[-300:]}")
    print(f"median wall seconds of {args.rounds} runs per cell; trees: " + ", ".join(trees))
    print("| command | " + " | ".join(Path(t).name for t in trees) + " | exit codes |")
    print("|---|" + "---|" * len(trees) + "---|")
    for cmd in commands:
        cells = [f"{statistics.median(times[(cmd, t)]):.2f}" for t in trees]
        seen = "/".join(",".join(str(c) for c in sorted(codes[(cmd, t)])) for t in trees)
        print(f"| keeper {cmd} | " + " | ".join(cells) + f" | {seen} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
