"""Benchmark: kill -9 of the keeper at a random point of the send lifecycle, many times over.

Each trial, on a fresh devnet state (snapshot/revert of one anvil with the real protocols):
1. picks at random a kill point (``keeper.faults.POINTS``), a position and an action that the vault
   allows (a top-up, a repay, a release of excess, a target health), a mining mode (automine, or
   1-second blocks) and a delay before recovery (0-2 s: the transaction may or may not be mined yet);
2. runs ``keeper rebalance POSITION ... --execute`` with ``KEEPER_FAULT=<point>``: SIGKILLed there;
3. recovers as an operator does: ``keeper reconcile``; when the intent was never broadcast
   (``before_journal``), runs the same command again: the action must land now, once;
4. checks the chain and the journal: exactly one ``KeeperAction`` (more: a double action; none: a
   lost intent), the keeper's nonce advanced by one, every journal entry settled, and the journal's
   mined hash is the action's transaction (an action on chain the journal does not know is lost too).

    nice .venv/bin/python bench/faults.py [--trials 100] [--seed 6]

Prints one line per trial and a table per point (trials, double actions, lost intents, recovery
time: crash to the journal settled and the action on chain); exits 1 on any double action or lost
intent."""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from keeper.chain import contracts as C
from keeper.demo.faultlab import ACTION_SIG, REQUEST_SIG
from keeper.devnet.anvil import Anvil
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.deployer import Deployer
from keeper.devnet.position_keeper import start_thread
from keeper.faults import POINTS

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil account 1


@dataclass
class Trial:
    n: int
    point: str
    position: str
    action: list[str]
    mining: str
    delay: float
    actions: int = 0
    double: bool = False
    lost: bool = False
    recovery_s: float = 0.0
    note: str = ""
    seen: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, node: Anvil, w3: Web3, dep: dict, root: Path) -> None:
        self.node, self.w3, self.dep, self.root = node, w3, dep, root
        self.keeper = dep["roles"]["keeper"]
        self.vaults = [v["address"] for v in dep["keeper_vaults"].values()]
        # a keeper action is a KeeperAction event, or on gated GMX v1 a PerpIncreaseRequested (the
        # vault's top-up is a PositionRouter request; no KeeperAction until GMX executes it)
        self.topics = [Web3.keccak(text=ACTION_SIG).to_0x_hex(), Web3.keccak(text=REQUEST_SIG).to_0x_hex()]
        (root / "dep.json").write_text(json.dumps({**dep, "rpc_url": node.url}))

    # --- the keeper, as a process ----------------------------------------------------------------
    def config(self, db: str) -> None:
        (self.root / "config.toml").write_text(
            f'[store]\nurl = "sqlite:///{db}"\n[keeper]\nkey_env = "KEEPER_BENCH_KEY"\n'
            '[chains.devnet]\ndeployment = "dep.json"\n')

    def keeper_cmd(self, *args: str, fault: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "KEEPER_FAULT" and not k.startswith("KEEPER__")}
        env["KEEPER_BENCH_KEY"] = KEEPER_KEY
        if fault:
            env["KEEPER_FAULT"] = fault
        proc = subprocess.run([sys.executable, "-m", "keeper", *args], cwd=self.root, env=env, capture_output=True,
                              text=True, timeout=timeout)
        text = proc.stdout + proc.stderr
        if KEEPER_KEY[2:].lower() in text.lower():
            raise SystemExit("the private key appeared in the keeper's output")
        return proc

    # --- the chain ---------------------------------------------------------------------------------
    def rpc(self, method: str, params: list | None = None):
        return self.w3.provider.make_request(method, params or [])["result"]

    def actions_since(self, block: int) -> list[str]:
        if block > self.w3.eth.block_number:
            return []
        logs = self.w3.eth.get_logs({"address": self.vaults, "fromBlock": block, "toBlock": "latest",
                                     "topics": [self.topics]})
        return [lg["transactionHash"].to_0x_hex().lower() for lg in logs]

    def nonce(self) -> int:
        return self.w3.eth.get_transaction_count(self.keeper)

    def set_price(self, sym: str, usd: float) -> None:
        feed = self.dep["feeds"][sym]
        agg = self.w3.eth.contract(address=feed["address"], abi=C.third_party("MockV3Aggregator").abi)
        answer = round(usd * 10**feed["decimals"])
        Deployer(self.w3, self.dep["roles"]["admin"]).send(agg.functions.updateAnswer(answer))

    def wait_blocks(self, n: int, timeout: float = 15) -> None:
        target = self.w3.eth.block_number + n
        deadline = time.monotonic() + timeout
        while self.w3.eth.block_number < target and time.monotonic() < deadline:
            time.sleep(0.1)


def journal_rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, status, mined_hash FROM journal_entry ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def candidate_actions(dep: dict) -> list[tuple[str, list[str]]]:
    alice = dep["keeper_vaults"]["alice"]["address"][:10].lower()
    bob = dep["roles"]["bob"][:10].lower()
    out = []
    for who in (alice, bob):
        for market in ("aave", "morpho"):
            sel = f"{who}:{market}"
            out += [(sel, ["--amount", "0.25", "WETH"]), (sel, ["--amount", "150", "USDC"]),
                    (sel, ["--target-health", "1.6"]), (sel, ["--withdraw-excess"])]
    out += [(f"{alice}:perp:long", ["--amount", "0.2", "WETH"]), (f"{alice}:perp:short", ["--amount", "120", "USDC"]),
            (f"{alice}:perp:long", ["--withdraw-excess"])]
    return out


def usable_actions(b: Bench, snap_fn) -> list[tuple[str, list[str]]]:
    """Each candidate tried once without a fault (then reverted): keep those the vault accepts."""
    ok = []
    for i, (sel, act) in enumerate(candidate_actions(b.dep)):
        snap = snap_fn()
        b.config(f"probe{i}.db")
        proc = b.keeper_cmd("rebalance", sel, *act, "--vol", "WETH=0.8", "--execute")
        b.rpc("evm_revert", [snap])
        if proc.returncode == 0:
            ok.append((sel, act))
        else:
            print(f"  (not used: {sel} {' '.join(act)}: {proc.stderr.strip()[-160:]})", flush=True)
    return ok


def run_trial(b: Bench, t: Trial) -> None:
    db = b.root / f"t{t.n}.db"
    b.config(db.name)
    start, nonce0 = b.w3.eth.block_number + 1, b.nonce()
    if t.mining == "1s-blocks":
        b.rpc("evm_setIntervalMining", [1])
    cmd = ["rebalance", t.position, *t.action, "--vol", "WETH=0.8", "--execute"]
    crashed = b.keeper_cmd(*cmd, fault=t.point)
    if crashed.returncode != -9:
        t.note = f"not killed (exit {crashed.returncode}): {crashed.stderr.strip()[-200:]}"
        t.lost = True
        return
    t0 = time.monotonic()
    time.sleep(t.delay)
    rec = b.keeper_cmd("reconcile")
    if rec.returncode != 0:
        t.note = f"reconcile exit {rec.returncode}: {rec.stderr.strip()[-200:]}"
    if t.point == "before_journal":  # never broadcast: the next run must act, once
        again = b.keeper_cmd(*cmd)
        if again.returncode != 0:
            t.note += f" re-run exit {again.returncode}: {again.stderr.strip()[-200:]}"
    if t.mining == "1s-blocks":
        b.wait_blocks(2)
    t.recovery_s = time.monotonic() - t0
    t.seen = b.actions_since(start)
    t.actions = len(t.seen)
    rows = journal_rows(db)
    mined = {(h or "").lower() for _i, s, h in rows if s == "mined"}
    open_ = [r for r in rows if r[1] in ("intent", "signed")]
    t.double = t.actions > 1 or b.nonce() - nonce0 > 1
    t.lost = t.actions == 0 or bool(open_) or set(t.seen) != mined
    if t.lost and not t.note:
        t.note = f"journal {rows}, on chain {t.seen}"
    b.rpc("evm_setAutomine", [True])


def table(trials: list[Trial]) -> str:
    lines = [f"{'point':<15} {'trials':>6} {'double':>7} {'lost':>5} {'recovery mean s':>16} {'max s':>6}"]
    for point in (*POINTS, "all"):
        ts = [t for t in trials if point in ("all", t.point)]
        if not ts:
            continue
        rec = [t.recovery_s for t in ts]
        lines.append(f"{point:<15} {len(ts):>6} {sum(t.double for t in ts):>7} {sum(t.lost for t in ts):>5} "
                     f"{statistics.mean(rec):>16.2f} {max(rec):>6.2f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=6)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keeper-faults-") as tmp, Anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        dep = deploy_devnet(w3)
        # GMX's own position keeper, as on the devnet: it executes the perps' PositionRouter requests
        pk_thread, pk_stop = start_thread(w3, dep["perp"])
        b = Bench(node, w3, dep, Path(tmp))
        base = b.rpc("evm_snapshot")
        snap = lambda: b.rpc("evm_snapshot")  # noqa: E731
        b.set_price("ETH", 1_700)  # some positions want protection, some still hold excess
        crash_state = snap()
        menu = usable_actions(b, snap)
        if not menu:
            print("no usable action on this devnet", file=sys.stderr)
            return 2
        print(f"{len(menu)} position/action combinations; {args.trials} trials, seed {args.seed}", flush=True)
        trials: list[Trial] = []
        for n in range(args.trials):
            b.rpc("evm_revert", [crash_state])
            crash_state = snap()
            sel, act = rng.choice(menu)
            t = Trial(n, rng.choice(POINTS), sel, act, rng.choice(["automine", "1s-blocks"]),
                      round(rng.uniform(0, 2), 2))
            try:
                run_trial(b, t)
            finally:
                b.rpc("evm_setAutomine", [True])
            trials.append(t)
            flag = "DOUBLE " if t.double else ("LOST " if t.lost else "ok")
            print(f"{n:>3} {t.point:<14} {t.position:<22} {' '.join(t.action):<20} {t.mining:<9} delay {t.delay:4.2f}"
                  f" -> actions {t.actions} recovery {t.recovery_s:5.2f} s {flag} {t.note}", flush=True)
        b.rpc("evm_revert", [base])
        pk_stop.set()
        pk_thread.join(timeout=30)
    print()
    print(table(trials))
    print(f"\n{len(trials)} trials in {time.monotonic() - t_start:.0f} s")
    bad = sum(t.double or t.lost for t in trials)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
