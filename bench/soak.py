"""Soak benchmark: the daemon through ``--blocks`` blocks of random prices, accelerated.

Set-up: a fresh anvil with the seeded devnet (real Aave v3, Morpho Blue and GMX v1 gated, with its
position keeper executing PositionRouter requests; alice's vault-held Aave, Morpho and two perp
positions, dave's e-mode position and bob's owner-held Aave and Morpho positions are protected,
carol's unprotected twins are only watched), plus ``--watch`` watched Aave borrowers
(bench/fleet.py's factory) so every tick reads a realistic book.

The keeper runs as in production (``Keeper.run`` with its scheduler, head subscription, journal and
store) in this process. The chain is driven as fast as the keeper keeps up ("accelerated"): each
step moves ETH and BTC (two feed updates, each mined at once: two blocks), waits until the keeper has
ticked the new head, and mines ``--idle`` extra empty blocks every few steps, until ``--blocks``
blocks have passed. Prices follow a mean-reverting log walk with volatility regimes and jumps
(seeded; roughly 0.45x .. 1.8x of the start), so positions are repeatedly pushed toward liquidation
and released again.

The vaults' rolling cap window is scaled down with the accelerated prices (``--cap-window``, 60 s
instead of a day); everything else is as deployed.

Measured: resident memory of this process (keeper + driver) after warm-up and at the end (growth
must stay < 10 %); protected positions that were ever liquidatable (health < 1) at a block the
keeper had ticked, once GMX's position keeper had executed the pending requests (a gated perp's
margin lands with the request's execution; must be 0); unhandled exceptions (error log records from
the scheduler, and any tick that failed with something other than a temporary chain error; must be
0); actions sent.

    .venv/bin/python bench/soak.py [--blocks 10000] [--watch 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from web3 import Web3

from keeper.chain import contracts as C
from keeper.config import Config, DaemonConfig, KeeperConfig, StoreConfig, chain_from_deployment
from keeper.daemon.keeper import Keeper
from keeper.devnet.anvil import Anvil
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.position_keeper import PositionKeeper, start_thread

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
VOLS = {"WETH": 0.8, "WBTC": 0.7}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Errors(logging.Handler):
    """Counts ERROR records: scheduler job crashes (unhandled) and keeper errors (handled)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.unhandled: list[str] = []
        self.keeper: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.name.startswith("apscheduler"):
            self.unhandled.append(msg)
        else:
            self.keeper.append(f"{msg}: {getattr(record, 'error', '')}")


class Prices:
    """Mean-reverting log walk with volatility regimes and jumps (per step; seeded)."""

    def __init__(self, seed: int, start: dict[str, float]) -> None:
        self.rng = random.Random(seed)
        self.start = dict(start)
        self.log = {k: 0.0 for k in start}
        self.vol = 0.008

    def step(self) -> dict[str, float]:
        r = self.rng
        if r.random() < 0.01:
            self.vol = r.choice((0.004, 0.008, 0.015, 0.025))  # regime switch
        common = r.gauss(0, 1)
        jump = r.random() < 0.004
        shock = -abs(r.gauss(0.06, 0.03)) if jump else 0.0
        for k in self.log:
            z = 0.8 * common + 0.6 * r.gauss(0, 1)
            self.log[k] += -0.01 * self.log[k] + self.vol * z + shock
            self.log[k] = max(-0.8, min(0.6, self.log[k]))
        return {k: self.start[k] * math.exp(v) for k, v in self.log.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=10_000)
    ap.add_argument("--watch", type=int, default=200, help="extra watched Aave borrowers")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--idle", type=int, default=3, help="empty blocks mined every fourth step")
    ap.add_argument("--cap-window", type=int, default=60, help="the vaults' rolling cap window (seconds)")
    args = ap.parse_args()
    os.environ["KEEPER_SOAK_KEY"] = KEEPER_KEY
    t0 = time.perf_counter()
    node = Anvil(extra_args=["--gas-limit", "2000000000"]).start()
    errors = Errors()
    logging.getLogger().addHandler(errors)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        dep = deploy_devnet(w3)
        if args.watch:
            import fleet as F

            F.add_watched(w3, dep, args.watch)
        protected = [p for p in dep["positions"] if p["holder"] in ("vault", "owner")]
        # Accelerated time: a price step here moves like an hour of a volatile market but takes about
        # a second of chain time, so the vaults' rolling cap window (1 day: at most 32 keeper actions
        # per asset) would span ~80,000 steps. Scale it down with the prices (a day of steps = 24 s,
        # rounded up to 60 s) so the cap is exercised as it would be, not exhausted by compression.
        vault_abi = C.ours("KeeperVault").abi
        for v in dep["keeper_vaults"].values():
            w3.eth.contract(address=v["address"], abi=vault_abi).functions.setCapWindow(args.cap_window).transact(
                {"from": v["owner"]})
        with tempfile.TemporaryDirectory() as tmp:
            dep_path = Path(tmp) / "devnet.json"
            import json

            dep_path.write_text(json.dumps({**dep, "rpc_url": node.url}))
            cfg = Config(chains={"soak": chain_from_deployment(dep_path)},
                         keeper=KeeperConfig(key_env="KEEPER_SOAK_KEY"),
                         store=StoreConfig(url=f"sqlite:///{tmp}/soak.db"),
                         daemon=DaemonConfig(poll_interval=0.05, watchdog_seconds=300, heartbeat_seconds=60,
                                             max_consecutive_failures=50))
            k = Keeper(cfg, vols=VOLS)
            runner = threading.Thread(target=lambda: k.run(install_signals=False), daemon=True)
            runner.start()
            position_keeper, pk_stop = start_thread(w3, dep["perp"])
            pk = PositionKeeper(w3, dep["perp"]["position_router"], dep["perp"]["position_keeper"])
            end = time.monotonic() + 120
            while k.ticks < 1 and k.halted is None and time.monotonic() < end:
                time.sleep(0.05)
            feeds = {s: w3.eth.contract(address=dep["feeds"][s]["address"], abi=C.third_party("MockV3Aggregator").abi)
                     for s in ("ETH", "BTC")}
            prices = Prices(args.seed, {"ETH": 2_000.0, "BTC": 30_000.0})
            from keeper.app.wiring import build_reader

            reader = build_reader(k.name, k.ccfg)
            first = w3.eth.block_number
            admin = dep["roles"]["admin"]
            rss: list[tuple[int, float]] = []
            unsafe: set[str] = set()
            step = 0
            lowest: dict[str, float] = {}
            guarded = {p["account"].lower() for p in protected}
            while w3.eth.block_number - first < args.blocks and k.halted is None:
                step += 1
                for sym, px in prices.step().items():
                    feeds[sym].functions.updateAnswer(round(px * 1e8)).transact({"from": admin})
                if step % 4 == 0 and args.idle:
                    w3.provider.make_request("anvil_mine", [hex(args.idle)])
                head = w3.eth.block_number
                wait_end = time.monotonic() + 60
                while (k.last_block or 0) < head and k.halted is None and time.monotonic() < wait_end:
                    time.sleep(0.005)
                while pk.pending() != (0, 0) and time.monotonic() < wait_end:
                    time.sleep(0.005)  # GMX's position keeper executes the keeper's margin requests
                # The keeper has ticked `head` (and its transactions are mined: automine). Any protected
                # position still liquidatable now is one the keeper failed to save.
                snap = reader.read()  # its own reader: the keeper's belong to the keeper's thread
                for pos in snap.positions:
                    if pos.account.lower() not in guarded:
                        continue
                    lowest[pos.key] = min(lowest.get(pos.key, math.inf), pos.health)
                    if pos.health < 1:
                        unsafe.add(f"{pos.key} at block {snap.block} (health {pos.health:.4f})")
                done = w3.eth.block_number - first
                if step % 250 == 0 or done >= args.blocks:
                    rss.append((done, rss_mb()))
                    print(f"  block +{done:>6}: ETH {prices.start['ETH'] * math.exp(prices.log['ETH']):7.0f}, "
                          f"ticks {k.ticks}, actions {k.actions_sent}, RSS {rss[-1][1]:.1f} MB "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
            k.stop.set()
            runner.join(timeout=120)
            pk_stop.set()
            position_keeper.join(timeout=30)
    finally:
        node.stop()
    warm = next((m for b, m in rss if b >= min(1_000, args.blocks // 5)), rss[0][1] if rss else float("nan"))
    final = rss[-1][1] if rss else float("nan")
    growth = (final - warm) / warm * 100
    print()
    print(f"soak: {args.blocks:,} blocks, {step:,} price steps, {len(protected)} protected + "
          f"{len(dep['positions']) - len(protected)} watched positions, seed {args.seed}; "
          f"{time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.2f}")
    rows = [("keeper ticks", f"{k.ticks:,}"), ("actions sent", f"{k.actions_sent:,}"),
            ("RSS after warm-up / at the end", f"{warm:.1f} / {final:.1f} MB"),
            ("memory growth", f"{growth:+.1f} %"),
            ("protected positions liquidatable", str(len(unsafe))),
            ("lowest health of a protected position", f"{min(lowest.values()):.3f}"),
            ("unhandled exceptions", str(len(errors.unhandled))),
            ("handled tick errors (logged)", str(len(errors.keeper))),
            ("halted", str(k.halted) if k.halted else "no")]
    print(f"| {'metric':<40} | {'value':>22} |")
    print(f"|{'-' * 42}|{'-' * 24}|")
    for name, val in rows:
        print(f"| {name:<40} | {val:>22} |")
    for what in sorted(unsafe)[:10]:
        print("  liquidatable:", what)
    kinds: dict[str, int] = {}
    for what in errors.unhandled + errors.keeper:
        kinds[what[:90]] = kinds.get(what[:90], 0) + 1
    for what, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n:>6} x {what}")
    ok = growth < 10 and not unsafe and not errors.unhandled and k.halted is None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
