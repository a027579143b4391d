"""The loop the devnet's bots run (GMX's position keeper, the pre-liquidation bot): one step per new
block until stopped. A bot never dies on one step: a node hiccup, a revert, a block the node no
longer has (a test's snapshot revert) is reported on stderr and the next block is tried."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from web3 import Web3


def every_block(w3: Web3, stop: threading.Event, step: Callable[[int], object], name: str, poll: float = 0.1) -> None:
    last = -1
    while not stop.is_set():
        try:
            block = w3.eth.block_number
            if block != last:
                last = block
                step(block)
        except Exception as e:  # reported, then the next block (see the module doc)
            print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        stop.wait(poll)
