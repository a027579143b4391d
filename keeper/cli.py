"""The operator CLI. Every error reaches the operator as one line saying what is wrong and how to
fix it; the exit code comes from the error's class (``keeper.errors``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from keeper.devnet import AAVE_VERSIONS, DEFAULT_AAVE_VERSION, DEFAULT_GMX_MODE, GMX_MODES
from keeper.errors import ConfigError, KeeperError, TemporaryError


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

    dev = sub.add_parser("devnet", help="a local anvil chain with the real Aave v3, Morpho Blue, GMX v1 and our vaults")
    dsub = dev.add_subparsers(dest="devnet_command", required=True)
    d_up = dsub.add_parser("up", help="start anvil, deploy everything, seed positions")
    d_up.add_argument("--detach", action="store_true", help="leave the devnet running in the background")
    d_up.add_argument("--port", type=_port, default=None, help="RPC port (default: devnet.port, 8545)")
    d_up.add_argument("--block-time", type=_positive_float, default=None,
                      help="seconds per block once deployed (default: devnet.block_time, else a block per tx)")
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
    d_price.add_argument("price", type=_positive_float, help="new USD price, e.g. 1500")
    d_price.add_argument("--rpc", default=None, help="RPC URL (default: the devnet's)")

    st = sub.add_parser("status", help="every watched position: health, liquidation price, distance")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--chain", default=None, help="only this configured chain")

    w = sub.add_parser("watch", help="read-only monitoring of any address, refreshed every block (no key needed)")
    w.add_argument("addresses", nargs="+", help="accounts to watch")
    w.add_argument("--protocol", action="append", choices=["aave_v3", "morpho_blue", "perp"],
                   help="only these protocols (repeatable; default: every configured one)")
    w.add_argument("--chain", default=None, help="the configured chain (needed when several are)")
    w.add_argument("--blocks", type=int, default=None, help="stop after this many blocks (default: run until Ctrl-C)")
    w.add_argument("--json", action="store_true", help="one JSON document per block")
    w.add_argument("--record", action="store_true", help="also write each block's snapshot to the store (store.url)")

    sub.add_parser("check-config", help="validate the config, then check on chain that the keeper can read every "
                                           "position and that every vault answers health() for it")

    pl = sub.add_parser("plan", help="what the keeper would do now and why (dry run: nothing is sent)")
    pl.add_argument("--chain", default=None)
    pl.add_argument("--json", action="store_true")
    pl.add_argument("--prices", nargs="*", type=Path, default=(), help="hourly CSVs for the vol forecast")
    pl.add_argument("--vol", action="append", default=[], metavar="SYMBOL=ANNUAL", help="override an asset's vol")

    rb = sub.add_parser("rebalance", help="act on one position by hand: plan, simulate, and with --execute send")
    rb.add_argument("position", help="the position's key, or a unique fragment of it (account, protocol, market)")
    mode = rb.add_mutually_exclusive_group()
    mode.add_argument("--target-health", type=_positive_float, default=None, help="top up or repay to this health")
    mode.add_argument("--amount", nargs=2, metavar=("N", "ASSET"), default=None,
                      help="top up N of ASSET (repay when ASSET is the position's debt)")
    mode.add_argument("--withdraw-excess", action="store_true", help="release what the risk budget allows")
    rb.add_argument("--execute", action="store_true", help="send it through the vault (default: simulate only)")
    rb.add_argument("--chain", default=None)
    rb.add_argument("--json", action="store_true")
    rb.add_argument("--prices", nargs="*", type=Path, default=(), help="hourly CSVs for the vol forecast")
    rb.add_argument("--vol", action="append", default=[], metavar="SYMBOL=ANNUAL", help="override an asset's vol")

    run = sub.add_parser("run", help="the daemon: protect every configured position at every block")
    run.add_argument("--dry-run", action="store_true", help="plan and log every decision, send nothing")
    run.add_argument("--chain", default=None)
    run.add_argument("--prices", nargs="*", type=Path, default=(), help="hourly CSVs for the vol forecast")
    run.add_argument("--vol", action="append", default=[], metavar="SYMBOL=ANNUAL", help="override an asset's vol")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    demo = sub.add_parser("demo", help="replay a crash on a fresh devnet: the daemon protects alice's positions, "
                                       "a liquidator takes carol's unprotected twins; summary and PNG timeline")
    demo.add_argument("--out", type=Path, default=Path(".keeper/demo"), help="output directory (default .keeper/demo)")
    demo.add_argument("--port", type=_port, default=None, help="anvil's RPC port (default: a free one)")
    demo.add_argument("--steps", type=int, default=90, help="crash steps, one 1 s block each (24..2000, default 90)")
    demo.set_defaults(keeper_handler=_cmd_demo)

    rc = sub.add_parser("reconcile", help="settle the action journal with the chain (what a crash left pending)")
    rc.add_argument("--chain", default=None)
    rc.add_argument("--no-wait", action="store_true", help="resend what is pending but do not wait for it")

    sp = sub.add_parser("stress", help="Monte Carlo stress of the current positions: P(liq) per horizon, expected "
                                       "shortfall, crash replays, a fan chart")
    sp.add_argument("--positions", type=Path, default=None, help="a `keeper status --json` file (default: read the chain)")
    sp.add_argument("--chain", default=None, help="only this configured chain")
    sp.add_argument("--horizons", default="1,4,24", help="hours, comma-separated (default 1,4,24)")
    sp.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths (default 100,000)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--prices", nargs="*", type=Path, default=None,
                    help="hourly price CSVs: vols where the chain's history is short, and crash replays "
                         "(default: shared/data if present)")
    sp.add_argument("--vol", action="append", default=[], metavar="SYMBOL=ANNUAL",
                    help="override an asset's annualised vol, e.g. WETH=0.9 (repeatable)")
    sp.add_argument("--out", type=Path, default=Path("stress"), help="where the fan chart PNG goes")
    sp.add_argument("--json", action="store_true")

    from keeper.backtest import backtest_cli, fit_cli, train_cli

    train_cli.register(sub)  # train, evaluate
    backtest_cli.register(sub)  # backtest
    fit_cli.register(sub)  # fit
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
                            aave=args.aave, gmx=args.gmx, log=lambda m: print(f"  {m}", file=sys.stderr))
    if args.json:
        print(json.dumps(dep, indent=2))
    else:
        from keeper.config import chain_from_deployment
        from keeper.daemon.wiring import build_reader
        from keeper.views import console, positions_table

        aave = dep["aave_v3"]
        print(f"devnet ready at {node.url} (chain id {dep['chain_id']}, Aave v{aave['version']} pool revision "
              f"{aave['revision']}, GMX v1 {dep['perp']['mode']}) in {dep['seconds_to_ready']:.1f} s")
        reader = build_reader("devnet", chain_from_deployment(state / DEPLOYMENT_FILE), verify_all=True)
        snap = reader.read()
        reader.mc.close()
        labels = {p["account"]: p["id"].split("-")[0] for p in dep["positions"]}
        console().print(positions_table(snap.positions, f"devnet at block {snap.block}", labels))
    if args.detach:
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


def _labels(cfg) -> dict[str, str]:
    return {a.address: a.label for c in cfg.chains.values() for a in c.accounts if a.label}


def _snapshot_json(snap) -> dict:
    from keeper.views import position_row

    return {"chain": snap.chain, "block": snap.block, "block_hash": snap.block_hash, "timestamp": snap.timestamp,
            "positions": [position_row(p) for p in snap.positions],
            "prices": {addr: {"name": r.name, "price": r.price if r.round else None, "ok": r.ok, "issue": r.issue}
                       for addr, r in snap.prices.items()}}


def _cmd_status(args, cfg) -> int:
    from keeper.daemon.inspect import read_status
    from keeper.views import console, positions_table

    snaps = read_status(cfg, args.chain)
    if args.json:
        print(json.dumps({"chains": [_snapshot_json(s) for s in snaps]}, indent=2))
        return 0
    out = console()
    for s in snaps:
        out.print(positions_table(s.positions, f"{s.chain} at block {s.block}", _labels(cfg)))
        bad = [r for r in s.prices.values() if not r.ok]
        for r in bad:
            out.print(f"[magenta]price unusable: {r.name} ({r.feed}): {r.issue}[/magenta]")
    return 0


def _cmd_watch(args, cfg) -> int:
    from keeper.config import parse_address
    from keeper.daemon.inspect import watch
    from keeper.views import console, positions_table

    try:
        addresses = [parse_address(a) for a in args.addresses]
    except ValueError as e:
        raise ConfigError(f"watch: {e}") from None
    out = console()
    store = None
    if args.record:
        from keeper.store import Store

        store = Store.open(cfg.store.url)

    def show(snap) -> None:
        if store is not None:
            from keeper.daemon.recording import record_snapshot

            record_snapshot(store, snap, watched=addresses)
        if args.json:
            print(json.dumps(_snapshot_json(snap)), flush=True)
        else:
            out.print(positions_table(snap.positions, f"{snap.chain} at block {snap.block}", _labels(cfg)))

    try:
        watch(cfg, addresses, chain=args.chain, protocols=args.protocol, on_snapshot=show, blocks=args.blocks)
    finally:
        if store is not None:
            store.close()
    return 0


def _cmd_check_config(args, cfg) -> int:
    from keeper.daemon.check_config import check_config

    checks = check_config(cfg)
    for c in checks:
        print(f"{c.mark} {c.what}" + (f": {c.detail}" if c.detail else ""))
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"keeper: error: {len(failed)} check(s) failed", file=sys.stderr)
        return ConfigError.exit_code
    return 0


def _vol_overrides(items: list[str]) -> dict[str, float]:
    vols = {}
    for item in items:
        sym, _, val = item.partition("=")
        try:
            vols[sym] = float(val)
        except ValueError:
            raise ConfigError(f"--vol {item!r}: expected SYMBOL=ANNUAL, e.g. WETH=0.9") from None
    return vols


def _action_json(a) -> dict:
    return {"kind": a.kind.value, "position": a.position_key, "asset": a.asset.symbol, "asset_address": a.asset.address,
            "amount": a.amount, "amount_raw": str(a.amount_raw), "usd": a.usd, "target": a.target_key,
            "reason": {**a.reason.__dict__}}


def _print_action(out, a) -> None:
    from rich.markup import escape

    r = a.reason
    out.print(f"[bold]{a.kind.value}[/bold] {a.amount:,.6g} {a.asset.symbol} (~{a.usd:,.2f} USD) on {a.position_key}"
              + (f" -> {a.target_key}" if a.target_key else ""))
    out.print(f"    P(liq {r.horizon_hours:g}h) {r.p_before:.3%} -> {r.p_after:.3%} (budget {r.epsilon:.2%}); "
              f"health {r.health_before:.4f} -> {r.health_after:.4f} (estimate)")
    out.print(f"    forecast: {escape(r.model)}")
    if r.note:
        out.print(f"    why: {escape(r.note)}")


def _plan_positions(session, plans) -> list[dict]:
    """Every position of the session, acted on or not: its key, short name, P(liq) and the model's
    inputs (model, horizon, each asset's vol and its source)."""
    from keeper.views import market_label

    inputs = session.risk.inputs()
    acted = {a.position_key for _b, p in plans for a in p.actions} | {a.target_key for _b, p in plans for a in p.actions}
    p_liq = {k: v for _b, p in plans for k, v in p.p_liq.items()}
    out = []
    for book in session.books:
        for pos in book.positions:
            held = {pos.perp.index.symbol} if pos.perp is not None else {leg.asset.symbol for leg in pos.legs}
            out.append({"key": pos.key, "name": f"{pos.protocol.value} {pos.account[:10]} {market_label(pos)}",
                        "vault": book.vault, "health": pos.health,
                        "p_liq": p_liq.get(pos.key, session.risk.p_liq(pos)), "acted_on": pos.key in acted,
                        "model": inputs["model"], "horizon_hours": inputs["horizon_hours"],
                        "vols": {s: v for s, v in inputs["vols"].items() if s in held}})
    return out


def _cmd_plan(args, cfg) -> int:
    from rich.markup import escape

    from keeper.daemon.inspect import chains_or_fail
    from keeper.daemon.manual import open_session, plan_now
    from keeper.views import console

    docs, out = [], console()
    for name in sorted(chains_or_fail(cfg, args.chain)):
        session = open_session(cfg, name, price_files=args.prices, vols=_vol_overrides(args.vol))
        try:
            plans = plan_now(session)
        finally:
            session.close()
        for w in session.warnings:
            print(f"keeper: warning: {name}: risk model: {w}", file=sys.stderr)
        if args.json:
            docs.append({"chain": session.chain, "block": session.snap.block, "model": session.risk.describe(),
                         "warnings": session.warnings, "positions": _plan_positions(session, plans), "vaults": [
                {"vault": book.vault, "actions": [_action_json(a) for a in p.actions],
                 "skipped": list(map(list, p.skipped)), "alerts": list(p.alerts), "p_liq": p.p_liq}
                for book, p in plans]})
            continue
        out.print(f"plan for {session.chain} at block {session.snap.block} (dry run: nothing is sent)")
        out.print(f"model: {escape(session.risk.describe())}")
        for book, p in plans:
            out.print(f"\nvault {book.vault}: {len(book.positions)} position(s)")
            if not p.actions:
                out.print("  no action: every position is inside its risk budget")
            for a in p.actions:
                _print_action(out, a)
            for key, why in p.skipped:
                out.print(f"  skipped {key}: {why}")
            for alert in p.alerts:
                out.print(f"  [red]ALERT[/red] {alert}")
    if args.json:
        print(json.dumps({"chains": docs}, indent=2, default=str))
    return 0


def _print_reconcile(out, report) -> None:
    for what in ("mined", "reverted", "failed", "abandoned", "rebroadcast"):
        ids = getattr(report, what)
        if ids:
            out.print(f"journal: {what}: entries {', '.join(map(str, ids))}")


def _cmd_run(args, cfg) -> int:
    from keeper.daemon.keeper import Keeper
    from keeper.telemetry import setup_logging

    setup_logging(args.log_level, json=cfg.telemetry.log_json)
    return Keeper(cfg, args.chain, dry_run=args.dry_run, price_files=args.prices,
                  vols=_vol_overrides(args.vol)).run()


def _cmd_demo(args) -> int:
    from keeper.demo.runner import DemoOptions, run_demo

    try:
        result = run_demo(DemoOptions(out=args.out, port=args.port, steps=args.steps))
    except KeyboardInterrupt:
        _err("demo interrupted; the daemon, the liquidator and anvil it started are stopped")
        return 130
    print(result.text)
    print(f"timeline: {result.timeline}")
    print(f"summary: {args.out / 'summary.json'} ({result.seconds:.0f} s)")
    if not result.ok:
        _err(result.summary.verdict())
        return 1
    return 0


def _cmd_reconcile(args, cfg) -> int:
    from keeper.daemon.manual import open_session, reconcile_journal
    from keeper.views import console

    session = open_session(cfg, args.chain)
    try:
        report = reconcile_journal(cfg, session, wait=not args.no_wait)
    finally:
        session.close()
    out = console()
    _print_reconcile(out, report)
    if not any((report.mined, report.reverted, report.failed, report.abandoned, report.rebroadcast)):
        out.print("journal: nothing open")
    return 0 if not report.rebroadcast else 3


def _cmd_rebalance(args, cfg) -> int:
    from keeper.daemon.manual import (execute, find, manual_action, open_session, plan_now, reconcile_journal,
                                      simulate_on_chain)
    from keeper.views import console

    session = open_session(cfg, args.chain, price_files=args.prices, vols=_vol_overrides(args.vol))
    out = console()
    try:
        if args.execute:
            # Start-up: what a previous run left in the journal is settled before any new action.
            report = reconcile_journal(cfg, session)
            _print_reconcile(out, report)
            if report.rebroadcast:
                raise TemporaryError("earlier transactions are still pending; run 'keeper reconcile' and retry")
            if report.mined or report.rebroadcast:
                session.close()
                session = open_session(cfg, args.chain, price_files=args.prices, vols=_vol_overrides(args.vol))
        pos, book = find(session, args.position)
        if args.target_health or args.amount or args.withdraw_excess:
            amount = asset = None
            if args.amount:
                try:
                    amount, asset = float(args.amount[0]), args.amount[1]
                except ValueError:
                    raise ConfigError(f"--amount: {args.amount[0]!r} is not a number") from None
                if not amount > 0:
                    raise ConfigError("--amount must be positive")
            action = manual_action(session, pos, book, target_health=args.target_health, amount=amount, asset=asset,
                                   withdraw_excess=args.withdraw_excess)
        else:
            planned = [a for b, p in plan_now(session) for a in p.actions if a.position_key == pos.key]
            if not planned:
                out.print(f"{pos.key}: the planner has nothing to do (health {pos.health:.4f}); "
                          f"use --target-health, --amount or --withdraw-excess to act anyway")
                return 0
            action = planned[0]
        _print_action(out, action)
        simulate_on_chain(cfg, session, book, action)  # raises Reverted (decoded) before anything is sent
        out.print("    simulation (eth_call through the vault): ok")
        if not args.execute:
            out.print("dry run: add --execute to send it")
            return 0
        tx, fresh, requests = execute(cfg, session, book, action)
        rc = tx.receipt
        out.print(f"mined in block {int(rc['blockNumber'], 16)}: {tx.mined_hash} (gas {int(rc['gasUsed'], 16):,}, "
                  f"{len(tx.attempts)} attempt(s))")
        for key, router, settled in requests:
            out.print(f"    GMX PositionRouter request {key} ({router}): "
                      + ("executed or cancelled by GMX's position keepers" if settled else
                         "still pending; the daemon follows it (executes it from the vault once GMX allows)"))
        if fresh is not None:
            out.print(f"health now {fresh.health:.4f} (was {pos.health:.4f}), as the protocol reports it")
        if args.json:
            print(json.dumps({"action": _action_json(action), "tx": tx.mined_hash,
                              "requests": [{"key": k, "position_router": r, "settled": s} for k, r, s in requests],
                              "health_before": pos.health, "health_after": fresh.health if fresh else None}, default=str))
        return 0
    finally:
        session.close()


def _cmd_stress(args, cfg) -> int:
    from keeper.daemon import stress_cmd

    try:
        horizons = sorted({int(h) for h in args.horizons.split(",") if h.strip()})
    except ValueError:
        raise ConfigError(f"--horizons: hours as integers, comma-separated, got {args.horizons!r}") from None
    if not horizons or horizons[0] < 1 or horizons[-1] > 24 * 30:
        raise ConfigError("--horizons: each within 1..720 hours")
    if not 100 <= args.paths <= 5_000_000:
        raise ConfigError("--paths: within 100..5,000,000")
    vols = _vol_overrides(args.vol)
    if args.prices is None:
        from keeper.backtest.prices import DEFAULT_PRICES_DIR

        args.prices = sorted(DEFAULT_PRICES_DIR.glob("*USDT_binance_1h.csv")) if DEFAULT_PRICES_DIR.is_dir() else []
    if args.positions:
        from keeper.daemon.risk_setup import model_for

        positions = stress_cmd.positions_from_json(args.positions)
        model, warnings = model_for(cfg, positions, price_files=args.prices, overrides=vols)
    else:
        from keeper.daemon.manual import open_session

        session = open_session(cfg, args.chain, price_files=args.prices, vols=vols)
        session.close()
        positions, model, warnings = list(session.snap.positions), session.risk, session.warnings
    for w in warnings:
        print(f"keeper: warning: risk model: {w}", file=sys.stderr)
    report, notes = stress_cmd.run_stress(positions, horizons_h=horizons, n_paths=args.paths, seed=args.seed,
                                          model=model, price_files=args.prices)
    png = stress_cmd.fan_png(report, args.out / "stress_fan.png")
    if args.json:
        print(json.dumps({"horizons_h": horizons, "model": model.describe(), "calibration": notes, "rows": report.rows(),
                          "book_var_usd": report.book_var, "book_es_usd": report.book_es,
                          "tail_level": report.tail_level, "fan_chart": str(png)}, indent=2))
        return 0
    from rich.table import Table

    from keeper.views import console

    table = Table(title=f"stress: {report.n_paths:,} paths, P(liquidation) within each horizon")
    table.add_column("position", no_wrap=True)
    for h in horizons:
        table.add_column(f"P {h}h", justify="right")
    for name in report.historical:
        table.add_column(f"replay {name}", justify="right")
    table.add_column("expected loss $", justify="right")
    from keeper.views import market_label

    names = {p.key: f"{p.protocol.value} {p.account[:8]}… {market_label(p)}" for p in positions}
    for row in report.rows():
        cells = [f"{row[f'p_liq_{h}']:.2%} ±{row[f'se_{h}']:.2%}" for h in horizons]
        cells += ["LIQ" if row[f"hist_{n}"] else "ok" for n in report.historical]
        table.add_row(names.get(row["key"], row["label"]), *cells, f"{row['expected_loss_usd']:,.2f}")
    out = console()
    out.print(table)
    out.print(f"book loss at {report.tail_level:.0%}: VaR {report.book_var:,.2f} USD, "
              f"expected shortfall {report.book_es:,.2f} USD")
    for name, hit in report.depegs.items():
        hit_keys = [names.get(k, k) for k, h in zip(report.keys, hit) if h]
        out.print(f"  depeg {name}: " + (f"liquidates {', '.join(hit_keys)}" if hit_keys else "no position liquidated"))
    for sym, note in notes.items():
        out.print(f"  {sym}: {note}")
    out.print(f"fan chart: {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "keeper_handler", None) is not None:
            return args.keeper_handler(args)  # offline commands (train, evaluate, backtest): no config needed
        from keeper.config import load_config

        cfg = load_config(args.config, resolve_chains=args.command != "devnet")
        handler = {"devnet": _cmd_devnet, "status": _cmd_status, "watch": _cmd_watch,
                   "check-config": _cmd_check_config, "stress": _cmd_stress, "plan": _cmd_plan,
                   "rebalance": _cmd_rebalance, "reconcile": _cmd_reconcile, "run": _cmd_run}[args.command]
        return handler(args, cfg)
    except KeeperError as e:
        _err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    raise ConfigError(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
