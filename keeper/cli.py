"""The operator CLI. Every error reaches the operator as one line saying what is wrong and how to
fix it; the exit code comes from the error's class (``keeper.errors``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from keeper.errors import ConfigError, KeeperError


def _err(msg: str) -> None:
    print(f"keeper: error: {msg}", file=sys.stderr)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be within 1-65535: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keeper", description="Risk-driven collateral keeper.")
    p.add_argument("--config", type=Path, default=None, help="config file (default ./config.toml if present)")
    sub = p.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("devnet", help="a local anvil chain with the real Aave v3, Morpho Blue and our vaults")
    dsub = dev.add_subparsers(dest="devnet_command", required=True)
    d_up = dsub.add_parser("up", help="start anvil, deploy everything, seed positions")
    d_up.add_argument("--detach", action="store_true", help="leave the devnet running in the background")
    d_up.add_argument("--port", type=_port, default=None, help="RPC port (default: devnet.port, 8545)")
    d_up.add_argument("--block-time", type=_positive_float, default=None,
                      help="seconds per block once deployed (default: devnet.block_time, else a block per tx)")
    d_up.add_argument("--fork-url", default=None, help="fork this chain instead of an empty one (devnet.fork_url)")
    d_up.add_argument("--json", action="store_true", help="print the deployment as JSON")
    dsub.add_parser("down", help="stop a detached devnet")
    d_price = dsub.add_parser("price", help="set a price feed (moves Aave, Morpho and the perps at once)")
    d_price.add_argument("symbol", help="ETH, BTC or USDC (or WETH, WBTC)")
    d_price.add_argument("price", type=_positive_float, help="new USD price, e.g. 1500")
    d_price.add_argument("--rpc", default=None, help="RPC URL (default: the devnet's)")

    st = sub.add_parser("status", help="the watched positions and their health")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--rpc", default=None, help="RPC URL (default: the devnet's)")
    st.add_argument("--deployment", type=Path, default=None, help="deployment file (default <devnet.state_dir>/devnet.json)")
    return p


def _cmd_devnet(args, cfg) -> int:
    from keeper.devnet import commands
    from keeper.devnet.deployment import DEPLOYMENT_FILE

    state = cfg.devnet.state_dir
    if args.devnet_command == "down":
        print(commands.down(state))
        return 0
    if args.devnet_command == "price":
        r = commands.set_price(args.symbol, args.price, rpc=args.rpc, deployment_path=state / DEPLOYMENT_FILE)
        print(f"{r['symbol']} = {r['price']:g} USD (feed {r['feed']}, round {r['round']})")
        return 0
    node, dep = commands.up(port=args.port or cfg.devnet.port, block_time=args.block_time or cfg.devnet.block_time,
                            fork_url=args.fork_url or cfg.devnet.fork_url, detach=args.detach, out_dir=state,
                            log=lambda m: print(f"  {m}", file=sys.stderr))
    from keeper.devnet.report import seeded_health
    from web3 import Web3

    rows = seeded_health(Web3(Web3.HTTPProvider(node.url)), dep)
    if args.json:
        print(json.dumps(dep, indent=2))
    else:
        print(f"devnet ready at {node.url} (chain id {dep['chain_id']}) in {dep['seconds_to_ready']:.1f} s")
        _print_positions(rows)
    if args.detach:
        print(f"running in the background (pid {node.proc.pid}); stop it with 'keeper devnet down'", file=sys.stderr)
        return 0
    print("press Ctrl-C to stop", file=sys.stderr)
    try:
        commands.wait_for_signal(node)
    finally:
        node.stop()
        commands.down(state)
    return 0


def _print_positions(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="positions")
    for col in ("id", "protocol", "holder", "account", "health", "liquidatable"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        h = r["health"]
        table.add_row(r["id"], r["protocol"], r["holder"], r["account"][:10] + "…",
                      "∞" if math.isinf(h) else f"{h:.4f}", "YES" if r["liquidatable"] else "no")
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped or in CI: do not truncate ids to 80 columns
    console.print(table)


def _cmd_status(args, cfg) -> int:
    from web3 import Web3

    from keeper.devnet.commands import rpc_url
    from keeper.devnet.deployment import DEPLOYMENT_FILE, load_deployment
    from keeper.devnet.report import seeded_health

    dep = load_deployment(args.deployment or cfg.devnet.state_dir / DEPLOYMENT_FILE)
    w3 = Web3(Web3.HTTPProvider(rpc_url(args.rpc, dep)))
    rows = seeded_health(w3, dep)
    if args.json:
        print(json.dumps({"block": w3.eth.block_number, "chain_id": w3.eth.chain_id,
                          "positions": [{**r, "health": None if math.isinf(r["health"]) else r["health"]} for r in rows]},
                         indent=2))
    else:
        _print_positions(rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from keeper.config import load_config

        cfg = load_config(args.config)
        if args.command == "devnet":
            return _cmd_devnet(args, cfg)
        if args.command == "status":
            return _cmd_status(args, cfg)
    except KeeperError as e:
        _err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    raise ConfigError(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
