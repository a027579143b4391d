"""`keeper devnet up|down|price`: a local anvil chain with the real protocols and our vaults."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from keeper.cli.args import feed_price, port, whole_seconds
from keeper.devnet import AAVE_VERSIONS, DEFAULT_AAVE_VERSION, DEFAULT_GMX_MODE, GMX_MODES

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config

# A detached devnet mines on its own at this interval unless told otherwise (0: a block per transaction).
DEFAULT_BLOCK_TIME = 1

def register(sub: Subparsers) -> None:
    dev = sub.add_parser("devnet", help="a local anvil chain with the real Aave v3, Morpho Blue, GMX v1 and our vaults")
    dev.set_defaults(handler=run, needs_config=True)
    dsub = dev.add_subparsers(dest="devnet_command", required=True)
    d_up = dsub.add_parser("up", help="start anvil, deploy everything, seed positions")
    d_up.add_argument("--detach", action="store_true", help="leave the devnet running in the background")
    d_up.add_argument("--port", type=port, default=None, help="RPC port (default: devnet.port, 8545)")
    d_up.add_argument("--block-time", type=whole_seconds, default=None,
                      help=f"seconds per block once deployed; 0: a block per transaction (default: devnet.block_time, "
                           f"else {DEFAULT_BLOCK_TIME:g})")
    d_up.add_argument("--fork-url", default=None, help="fork this chain instead of an empty one (devnet.fork_url)")
    d_up.add_argument("--aave", choices=AAVE_VERSIONS, default=DEFAULT_AAVE_VERSION,
                      help="Aave v3 version: 3.7 (aave-v3-origin, pool revision 11; default) or 3.0 "
                           "(@aave/core-v3 v3.0.2, revision 1)")
    d_up.add_argument("--json", action="store_true", help="print the deployment as JSON")
    d_up.add_argument("--gmx", choices=GMX_MODES, default=DEFAULT_GMX_MODE,
                      help="GMX v1 mode: gated (leverage only inside PositionRouter executions, a position keeper "
                           "executes requests every block, as production; default) or direct (leverage enabled)")
    dsub.add_parser("down", help="stop a detached devnet")
    d_price = dsub.add_parser("price", help="set a price feed (moves Aave, Morpho and the perps at once)")
    d_price.add_argument("symbol", help="ETH, BTC or USDC (or WETH, WBTC)")
    d_price.add_argument("price", type=feed_price, help="new USD price, e.g. 1500 (positive, at most 1e12)")
    d_price.add_argument("--rpc", default=None, help="RPC URL (default: the devnet's)")


def block_time(given: int | None, configured: int | None) -> int | None:
    """Seconds per block after deployment: the flag, else the config, else ``DEFAULT_BLOCK_TIME``;
    0 means a block per transaction (None to the devnet)."""
    chosen = given if given is not None else configured if configured is not None else DEFAULT_BLOCK_TIME
    return chosen or None


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.devnet import commands
    from keeper.devnet.deployment import DEPLOYMENT_FILE

    assert cfg is not None  # needs_config: main() loaded it
    state = cfg.devnet.state_dir
    if args.devnet_command == "down":
        print(commands.down(state))
        return 0
    if args.devnet_command == "price":
        r = commands.set_price(args.symbol, args.price, rpc=args.rpc, deployment_path=state / DEPLOYMENT_FILE)
        print(f"{r['symbol']} = {r['price']:g} USD (feed {r['feed']}, round {r['round']})")
        for pair, price in r["pools"].items():
            print(f"Uniswap {pair} arbitraged to {price:,.6g} {pair.split('/')[1]}")
        return 0
    node, dep = commands.up(port=args.port or cfg.devnet.port,
                            block_time=block_time(args.block_time, cfg.devnet.block_time),
                            fork_url=args.fork_url or cfg.devnet.fork_url, detach=args.detach, out_dir=state,
                            aave=args.aave, gmx=args.gmx, log=lambda m: print(f"  {m}", file=sys.stderr))
    if args.json:
        print(json.dumps(dep, indent=2))
    else:
        from keeper.app.wiring import build_reader
        from keeper.config import chain_from_deployment
        from keeper.domain import Address
        from keeper.views import console, positions_table

        aave = dep["aave_v3"]
        print(f"devnet ready at {node.url} (chain id {dep['chain_id']}, Aave v{aave['version']} pool revision "
              f"{aave['revision']}, GMX v1 {dep['perp']['mode']}) in {dep['seconds_to_ready']:.1f} s")
        reader = build_reader("devnet", chain_from_deployment(state / DEPLOYMENT_FILE), verify_all=True)
        snap = reader.read()
        reader.mc.close()
        labels = {Address(p["account"]): p["id"].split("-")[0] for p in dep["positions"]}
        console().print(positions_table(snap.positions, f"devnet at block {snap.block}", labels))
    if args.detach:
        assert node.proc is not None  # up() started anvil
        print(f"running in the background (pid {node.proc.pid}); stop it with 'keeper devnet down'", file=sys.stderr)
        return 0
    print("press Ctrl-C to stop", file=sys.stderr)
    try:
        commands.wait_for_signal(node)
    finally:
        commands.stop_companions(node)
        node.stop()
        commands.down(state)
    return 0
