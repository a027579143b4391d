"""The devnet's GMX v1 position keeper: executes pending PositionRouter requests, as GMX's own
keepers do on Arbitrum and Avalanche.

In gated mode every increase of a GMX v1 position (a new position, more size, more margin) is a
two-step request: ``createIncreasePosition`` stores it with an execution fee, a whitelisted position
keeper runs ``executeIncreasePositions`` a block or more later (the PositionRouter enables leverage,
increases, disables leverage, pays the keeper the fee) or cancels it when it fails or expired
(refunding the collateral to the account). This process does exactly that on every new block: it
reads ``getRequestQueueLengths`` and executes up to the end of each queue.

Run it next to a devnet (``keeper devnet up`` starts it in gated mode)::

    python -m keeper.devnet.position_keeper --deployment .keeper/devnet/deployment.json

Devnet only: it sends from the deployment's unlocked ``position_keeper`` account.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.bot_loop import every_block
from keeper.devnet.deployer import Deployer
from keeper.devnet.deployment import load_deployment
from keeper.errors import KeeperError


class PositionKeeper:
    """Executes a GMX v1 PositionRouter's request queues from ``sender`` (an unlocked account)."""

    def __init__(self, w3: Web3, position_router: str, sender: str) -> None:
        self.w3 = w3
        self.d = Deployer(w3, sender)
        self.router = self.d.at(position_router, C.gmx("PositionRouter"))
        self.sender = Web3.to_checksum_address(sender)
        self.executed = 0  # requests taken off the queues (executed or cancelled)

    def pending(self) -> tuple[int, int]:
        """(increase, decrease) requests waiting in the queues."""
        inc_start, inc_len, dec_start, dec_len = self.router.functions.getRequestQueueLengths().call()
        return inc_len - inc_start, dec_len - dec_start

    def step(self) -> int:
        """Execute everything queued; returns how many requests left the queues."""
        inc_start, inc_len, dec_start, dec_len = self.router.functions.getRequestQueueLengths().call()
        if inc_len > inc_start:
            self.d.send(self.router.functions.executeIncreasePositions(inc_len, self.sender))
        if dec_len > dec_start:
            self.d.send(self.router.functions.executeDecreasePositions(dec_len, self.sender))
        after = self.router.functions.getRequestQueueLengths().call()
        done: int = (after[0] - inc_start) + (after[2] - dec_start)
        self.executed += done
        return done

    def run(self, stop: threading.Event, poll: float = 0.1) -> None:
        """Step once per new block until ``stop`` is set (``bot_loop.every_block``); the PositionRouter
        itself cancels requests that fail."""
        every_block(self.w3, stop, lambda _block: self.step(), "position keeper", poll)


def start_thread(w3: Web3, perp: dict[str, Any]) -> tuple[threading.Thread, threading.Event]:
    """Run a position keeper for the deployment's ``perp`` section in a daemon thread."""
    pk = PositionKeeper(w3, perp["position_router"], perp["position_keeper"])
    stop = threading.Event()
    thread = threading.Thread(target=pk.run, args=(stop,), name="gmx-position-keeper", daemon=True)
    thread.start()
    return thread, stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m keeper.devnet.position_keeper", description=__doc__.split("\n")[0])
    ap.add_argument("--deployment", type=Path, default=None, help="devnet deployment file")
    ap.add_argument("--rpc", default=None, help="JSON-RPC URL (default: the deployment's)")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between block checks")
    args = ap.parse_args(argv)
    try:
        dep = load_deployment(args.deployment)
    except KeeperError as e:
        print(f"position keeper: {e}", file=sys.stderr)
        return 2
    perp = dep.get("perp") or {}
    if perp.get("kind") != "gmx_v1" or not perp.get("position_router"):
        print("position keeper: the deployment has no GMX v1 PositionRouter", file=sys.stderr)
        return 2
    w3 = Web3(Web3.HTTPProvider(args.rpc or dep["rpc_url"], request_kwargs={"timeout": 30}))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pk = PositionKeeper(w3, perp["position_router"], perp["position_keeper"])
    print(f"position keeper: executing requests of {perp['position_router']} from {pk.sender}", flush=True)
    started = time.monotonic()
    pk.run(stop, args.poll)
    print(f"position keeper: stopped after {time.monotonic() - started:.0f} s, {pk.executed} requests", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
