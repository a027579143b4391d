"""``keeper demo``: a crash replayed on a fresh devnet, with the keeper daemon protecting alice's
positions and a liquidator preying on carol's unprotected twins.

1. anvil in-process, the full devnet deployed and seeded, the liquidator funded with USDC, then
   1 s interval mining;
2. ``keeper run`` as a subprocess (its own config file, the devnet's keeper key from the
   environment, JSON logs to ``keeper.log``), then the liquidator subprocess;
3. the crash path (``keeper.demo.crash``) written to the ETH and BTC Chainlink feeds, one step per
   block, every position's health read at every block;
4. both children stopped (SIGTERM), the results gathered from their logs and the chain, a summary
   printed and written (``summary.txt``, ``summary.json``), the timeline PNG written; anvil stopped.

Everything started here is stopped on success, on error and on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keeper.demo import collect
from keeper.demo.chain import BlockRecord, DemoChain
from keeper.demo.crash import MIN_STEPS, CrashPath, CrashSpec, generate
from keeper.demo.processes import Child, python_env
from keeper.demo.summary import Summary, render, summarise
from keeper.demo.timeline import write_timeline
from keeper.errors import ConfigError, TemporaryError

# anvil's well-known account 1 (public; devnets only): the devnet's keeper role.
DEVNET_KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
KEY_ENV = "KEEPER_DEMO_KEY"
DEFAULT_OUT = Path(".keeper/demo")
TAIL_BLOCKS = 4  # blocks read after the last step, for the last transactions to land
OUTPUTS = ("devnet.json", "config.toml", "keeper.db", "keeper.log", "liquidator.jsonl", "liquidator.log", "anvil.log",
           "summary.txt", "summary.json", "timeline.png")


@dataclass
class DemoOptions:
    out: Path = DEFAULT_OUT
    port: int | None = None
    steps: int = 90
    seed: int = 2022
    # The daemon's forecast vols (annualised). Its vols are fixed at start-up, so the demo gives it
    # storm-level ones: the crash's build-up is what a live vol estimate would see.
    vols: dict[str, float] = field(default_factory=lambda: {"WETH": 1.6, "WBTC": 1.4})
    policy: dict[str, float | int] = field(default_factory=dict)
    crash: CrashSpec | None = None  # overrides steps and seed (e.g. explicit phase lengths)


@dataclass
class DemoResult:
    summary: Summary
    text: str
    timeline: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return self.summary.ok


def keeper_config(opts: DemoOptions, deployment: Path) -> str:
    """The daemon's config file (TOML): the devnet from its deployment file, the key from the env."""
    out = opts.out.resolve()
    policy = "".join(["[policy]\n", *(f"{k} = {v}\n" for k, v in opts.policy.items()), "\n"]) if opts.policy else ""
    return f"""# written by 'keeper demo'
[devnet]
state_dir = "{out}"

[store]
url = "sqlite:///{out / 'keeper.db'}"

[keeper]
key_env = "{KEY_ENV}"

{policy}
[daemon]
poll_interval = 0.2
watchdog_seconds = 30
heartbeat_seconds = 15

[telemetry]
log_json = true

[chains.devnet]
deployment = "{deployment.resolve()}"
"""


class _Interrupted(Exception):
    pass


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise _Interrupted()


class Demo:
    def __init__(self, opts: DemoOptions, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
        self.opts = opts
        self.log = log
        self.chain = DemoChain(opts.out, opts.port)
        self.keeper: Child | None = None
        self.liquidator: Child | None = None
        self.path: CrashPath = generate(opts.crash or CrashSpec(steps=opts.steps, seed=opts.seed))

    def _prepare_out(self) -> None:
        self.opts.out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:
            (self.opts.out / name).unlink(missing_ok=True)

    def _start_children(self) -> None:
        out = self.opts.out
        cfg_path = out / "config.toml"
        cfg_path.write_text(keeper_config(self.opts, self.chain.deployment_path))
        key = os.environ.get(KEY_ENV) or DEVNET_KEEPER_KEY
        cmd = [sys.executable, "-m", "keeper", "--config", str(cfg_path), "run"]
        for sym, vol in self.opts.vols.items():
            cmd += ["--vol", f"{sym}={vol}"]
        self.keeper = Child("keeper daemon", cmd, out / "keeper.log", env=python_env({KEY_ENV: key})).start()
        self.liquidator = Child("liquidator", [sys.executable, "-m", "keeper.demo.liquidator", "--rpc", self.chain.url,
                                               "--deployment", str(self.chain.deployment_path),
                                               "--out", str(out / "liquidator.jsonl")],
                                out / "liquidator.log", env=python_env({})).start()
        self.keeper.wait_for(lambda: collect.keeper_started(out / "keeper.log"), 90, "started")
        self.liquidator.wait_for(lambda: collect.liquidator_ready(out / "liquidator.jsonl"), 60, "ready")

    def _replay(self) -> tuple[list[BlockRecord], list[int], list[tuple[str, int, int]]]:
        """Returns the block records, the block from which each step's prices are in force, and
        each phase's (name, first block, last block)."""
        keeper, liquidator = self.keeper, self.liquidator
        assert keeper is not None and liquidator is not None, "the children are not started"
        records: list[BlockRecord] = []
        last = self.chain.head()
        step_blocks: list[int] = []
        for i in range(len(self.path)):
            head = self.chain.wait_block(last)
            self.chain.set_prices(float(self.path.eth[i]), float(self.path.btc[i]))
            step_blocks.append(head + 1)  # the step's prices are in force from the next block
            records.append(self.chain.read(head))
            last = head
            keeper.check_alive()
            liquidator.check_alive()
            if i % 10 == 0:
                self.log(f"  step {i:>3}/{len(self.path)} block {head}: ETH {self.path.eth[i]:,.0f} "
                         f"BTC {self.path.btc[i]:,.0f} ({self.path.phases[i]})")
        for _ in range(TAIL_BLOCKS):
            head = self.chain.wait_block(last)
            records.append(self.chain.read(head))
            last = head
        phases = []
        for name in dict.fromkeys(self.path.phases):
            idx = [b for b, p in zip(step_blocks, self.path.phases) if p == name]
            phases.append((name, idx[0], idx[-1] + 1))
        return records, step_blocks, phases

    def _stop_children(self) -> dict[str, int | None]:
        """Stop the liquidator, then the daemon (SIGTERM: each finishes its current block)."""
        return {child.name: child.stop() for child in (self.liquidator, self.keeper) if child is not None}

    def run(self) -> DemoResult:
        started = time.monotonic()
        out = self.opts.out
        self._prepare_out()
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            self.log("starting a devnet with the real Aave v3, Morpho Blue and GMX v1 (gated) ...")
            dep = self.chain.start()
            self.chain.interval_mining(1)
            self.log(f"devnet ready at {self.chain.url} ({time.monotonic() - started:.1f} s); starting the keeper "
                     f"daemon and the liquidator ...")
            self._start_children()
            self.log(f"replaying the crash: {len(self.path)} steps, one per block, one block = "
                     f"{self.path.minutes_per_step:g} minutes of market ({time.monotonic() - started:.1f} s)")
            records, step_blocks, phases = self._replay()
            codes = self._stop_children()
            problems = [f"the {name} exited with code {code}" for name, code in codes.items() if code not in (0, None)]
            actions = collect.keeper_actions(out / "keeper.log", dep, self.chain.receipt, self.chain.web3)
            liqs = collect.liquidations(out / "liquidator.jsonl")
            problems += collect.keeper_problems(out / "keeper.log")
            onchain = collect.chain_liquidations(self.chain.web3, dep, dep["deployed_at_block"], records[-1].block)
            summary = summarise(dep, records, actions, liqs, problems, onchain,
                                preliquidations=collect.preliquidations(out / "liquidator.jsonl"))
            summary.daemon_exit = codes.get("keeper daemon")
            png = write_timeline(out / "timeline.png", records, summary.pairs, actions, liqs,
                                 hours=market_hours(step_blocks, self.path.minutes_per_step),
                                 minutes_per_step=self.path.minutes_per_step, phases=phases)
        except _Interrupted:
            raise KeyboardInterrupt from None
        finally:
            self._stop_children()
            self.chain.stop()
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
        text = render(summary)
        (out / "summary.txt").write_text(text + "\n")
        (out / "summary.json").write_text(json.dumps({**summary.as_dict(), "timeline": str(png),
                                                      "seconds": round(time.monotonic() - started, 1)}, indent=2))
        return DemoResult(summary, text, png, time.monotonic() - started)


def market_hours(step_blocks: list[int], minutes_per_step: float) -> Callable[[int], float]:
    """Block -> market hours since the first step: the step in force at that block (blocks after the
    last step count on, one step each)."""
    import bisect

    def hours(block: int) -> float:
        k = bisect.bisect_right(step_blocks, block) - 1
        if k == len(step_blocks) - 1:
            k += block - step_blocks[-1]
        return k * minutes_per_step / 60.0

    return hours


def run_demo(opts: DemoOptions) -> DemoResult:
    if opts.crash is None and not MIN_STEPS <= opts.steps <= 2_000:
        raise ConfigError(f"--steps must be within {MIN_STEPS}..2000, got {opts.steps}")
    try:
        return Demo(opts).run()
    except OSError as e:
        raise TemporaryError(f"the demo could not run: {e}") from e
