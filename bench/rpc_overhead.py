"""Benchmark: the keeper's own CPU per JSON-RPC call and per vault call it encodes — the fixed costs
that a tick at K positions at risk pays dozens to hundreds of times.

- per RPC call (``eth_blockNumber`` on a fresh anvil, so the node's share is the smallest there is):
  the client's blocking path on ``requests`` (what ``ChainClient.request`` used before, still used
  for proxies and credentials in the URL), the same call on the client's kept-alive
  ``http.client`` connection (``ChainClient.request`` now), and a split-phase ``start().result()``;
  CPU of this thread (``time.thread_time``) and wall time, medians of ``--rounds`` blocks of
  ``--calls`` calls;
- per vault call: ``topUp(ref, amount)`` encoded by eth_abi and by the keeper's word-by-word
  encoder (``keeper.protocols.vault_calls``).

    .venv/bin/python bench/rpc_overhead.py [--calls 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
from eth_abi.abi import encode

from keeper.chain.client import ChainClient
from keeper.devnet.anvil import Anvil
from keeper.protocols import vault_calls as V


def per_call(fn: Callable[[], object], calls: int, rounds: int) -> tuple[float, float]:
    """(CPU us, wall us) per call, medians over rounds."""
    fn()
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.thread_time(), time.perf_counter()
        for _ in range(calls):
            fn()
        cpu.append((time.thread_time() - c0) / calls * 1e6)
        wall.append((time.perf_counter() - w0) / calls * 1e6)
    return statistics.median(cpu), statistics.median(wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows: list[tuple[str, float, float]] = []
    with Anvil() as node:
        client = ChainClient("bench", [node.url])
        client.connect()
        ep = client.endpoints[0]
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'

        def via_requests() -> object:
            return ep.session.post(ep.url, data=body, timeout=10, headers={"Content-Type": "application/json"}).json()

        rows.append(("RPC call, requests session", *per_call(via_requests, args.calls, args.rounds)))
        rows.append(("RPC call, ChainClient.request (http.client)",
                     *per_call(lambda: client.request("eth_blockNumber"), args.calls, args.rounds)))
        rows.append(("RPC call, ChainClient.start().result()",
                     *per_call(lambda: client.start("eth_blockNumber", []).result(), args.calls, args.rounds)))
    selector, types = V._vault_functions()["topUp"]
    ref = (0, "0x" + "11" * 20, b"\x22" * 32, "0x" + "33" * 20)
    assert V._encode("topUp", [ref, 10**18]) == selector + encode(types, [ref, 10**18])
    n = args.calls * 10
    rows.append(("topUp calldata, eth_abi", *per_call(lambda: encode(types, [ref, 10**18]), n, args.rounds)))
    rows.append(("topUp calldata, vault_calls._encode", *per_call(lambda: V._encode("topUp", [ref, 10**18]), n,
                                                                   args.rounds)))
    print(f"requests {requests.__version__}; medians of {args.rounds} rounds")
    print("| what | CPU us per call | wall us per call |\n|---|---|---|")
    for what, cpu, wall in rows:
        print(f"| {what} | {cpu:.1f} | {wall:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
