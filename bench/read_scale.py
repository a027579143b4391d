"""Benchmark: reading 10,000 and 30,000 real Aave v3 borrowers (v3.7 and v3.0) at one block.

Set-up, once per Aave version: a fresh anvil (block gas limit raised to 2e9, which also caps one
eth_call), the devnet with that Aave (``deploy_devnet(aave="3.7")``: aave-v3-origin, pool revision
11; ``aave="3.0"``: @aave/core-v3 v3.0.2, revision 1) and Morpho Blue, extra USDC liquidity, then
``contracts/bench/BorrowerFactory.sol`` creates the borrowers 1,000 per transaction: each is a
minimal clone that supplies collateral and borrows *as its own user* (Aave: WETH, every third one
also WBTC, borrowing USDC; Morpho: the WETH/USDC market), with sizes of 1-5 units and borrow
fractions drawn per user, so health factors differ (about 1.0 to 3.4). With several sizes
(``--aave 10000,30000``) the largest is created and the reads take the first N borrowers of it.

Then, at one pinned block, for each size:
  (a)    naive: one ``eth_call`` per position through web3.py contract calls (Aave
         ``getUserAccountData`` with the version's own Pool ABI; Morpho ``position(id, user)`` plus
         one shared ``market(id)`` and oracle ``price()``), what a simple keeper does;
  (a')   the same calls as raw JSON-RPC on a kept-alive session with hand-built calldata: the
         cheapest one-call-per-position read;
  (a'')  Aave: the same ``getUserAccountData`` eth_calls as JSON-RPC *batch* requests (``--batch``
         request objects per HTTP POST, ``--in-flight`` POSTs at once, like the keeper's
         multicalls), the health sliced out of each result: a plain batched reader;
  (ref)  Aave: one Multicall3 of ``getUserAccountData`` alone, health sliced from each return;
  (b)    the keeper's read path end to end, as the product runs it: the adapter's calldata
         (``plan``), ``run_plans`` (the chunked Multicall3 RPC, each chunk bulk-decoded and turned
         into ``Position`` objects as it arrives while the next ones are in flight) and
         ``nearest_liquidation`` for every position; ``prepare`` (reserve / market metadata) is
         loaded once before, as it is cached between ticks. Its first tick (layouts not yet known:
         a bitmap-only round, then the balances) is its own row (b0);
  (floor) the keeper's own multicalls sent bare: the same pre-encoded chunks, the same requests in
         flight, nothing decoded (the JSON-RPC round trips the keeper cannot avoid).
Two rows take the rest of the multicall apart: aggregate3 encoding (paid on the first tick only:
chunks are encoded once and reused) and decoding the bare returns. Keeper and floor runs are
interleaved so that both see the same load.

Every path's health must equal the keeper's to the wei (Aave: every ``getUserAccountData`` read,
(a), (a'), (a'') and (ref); Morpho: (a) and (a')); the script counts the accounts that agree.

    .venv/bin/python bench/read_scale.py [--aave-version {3.7,3.0,both}] [--aave 10000[,30000]]
        [--morpho N] [--chunk 500] [--aave-chunk 2000] [--batch 500] [--in-flight 2] [--repeat 5]
        [--naive-repeat 1] [--skip-naive] [--profile PREFIX]

``--chunk`` is the keeper's ``Multicall(chunk_size=...)``, counted in calls (Morpho and (ref)). The
Aave adapter encodes its own chunks of about ``--aave-chunk`` calls once and reuses them across
ticks: per user ``getUserEMode`` + ``getUserConfiguration`` + one ``scaledBalanceOf`` per reserve
the user's bitmap marks (+ stable debt on v3.0), plus the shared per-block calls that open every
chunk and one ``getUserAccountData`` check per chunk; health is computed with the version's own
integer maths and must equal ``getUserAccountData`` to the wei. Morpho is measured once, on the
first version (``--morpho 0`` skips it). The naive loops run once by default (each is N sequential
calls: minutes at 30,000); ``--skip-naive`` leaves them out for quick runs. ``--profile PREFIX``
writes cProfile stats of one steady-state keeper read per version at the largest size to
``PREFIX-<version>.pstats`` and prints the top functions. The machine is shared: the load average
is printed with the results.

Goals (issue), checked and printed per version and size: the keeper path <= 1 s per block at
30,000 positions (reported at 10,000 too); <= 1.25x the floor measured in the same run; faster
than (a''), (ref), (a') and (a); every health equal to getUserAccountData's to the wei.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# The set-up and the baselines without the keeper (bench/ is on sys.path when this script runs).
from read_scale_setup import (
    BatchedRpc,
    account_data_multicall,
    lean_aave,
    lean_morpho,
    naive_aave,
    naive_morpho,
    naive_web3,
    setup,
)
from web3 import Web3

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall, decode_aggregate3, encode_aggregate3
from keeper.protocols.aave_v3 import AaveV3Adapter
from keeper.protocols.base import Adapter, ReadContext, run_plans
from keeper.protocols.morpho_blue import MorphoBlueAdapter
from keeper.risk.health import nearest_liquidation

VERSIONS = ("3.7", "3.0")
GOAL_SECONDS = 1.0
GOAL_FLOOR_RATIO = 1.25


# --- (b) the keeper's read path -----------------------------------------------------------------------
def keeper_read(adapter: Adapter, mc: Multicall, users: Sequence[str], ctx: ReadContext) -> tuple[dict, list]:
    """The keeper's read as the product runs it: ``prepare`` (cached between ticks) and the plan's
    calldata, then ``run_plans`` (the chunks in flight while each one back is decoded into
    ``Position`` objects, follow-up rounds included, the cyclic GC paused), then
    ``nearest_liquidation`` for every position. RPC and decoding overlap, so they are one row."""
    t0 = time.perf_counter()
    adapter.prepare(mc, ctx.block)
    plan = adapter.plan(users)
    t1 = time.perf_counter()
    rounds = [0]
    orig = mc.stream_fixed

    def counted(chunks, block):  # rounds of multicalls: 1 once every layout is known
        rounds[0] += 1
        return orig(chunks, block)

    mc.stream_fixed = counted  # type: ignore[method-assign]
    try:
        positions = run_plans(mc, [plan], ctx)
    finally:
        del mc.stream_fixed
    t2 = time.perf_counter()
    nearest = [nearest_liquidation(p) for p in positions]
    t3 = time.perf_counter()
    phases = {PLAN: t1 - t0, READ: t2 - t1, NEAREST: t3 - t2, KEEPER: t3 - t0, "_rounds": max(rounds[0], 1)}
    return phases, list(zip(positions, nearest))


class Floor:
    """The keeper's own multicalls sent bare: the chunks its plan would send (Aave: the adapter's
    pre-encoded aggregate3 payloads; Morpho: its calls in ``--chunk`` slices, encoded beforehand),
    the same requests in flight, the JSON-RPC reply parsed and nothing else decoded."""

    def __init__(self, adapter: Adapter, mc: Multicall, users: Sequence[str]) -> None:
        self.mc = mc
        plan = adapter.plan(users)
        if plan.fixed:
            self.fixed = list(plan.fixed)
            self.chunk_calls = [c.calls for c in self.fixed]
        else:
            self.fixed = []
            calls, prefix = plan.calls, list(plan.prefix)
            self.chunk_calls = [prefix + list(calls[i:i + mc.chunk_size]) for i in range(0, len(calls), mc.chunk_size)]
        self.payloads = [c.payload for c in self.fixed] or ["0x" + encode_aggregate3(c).hex() for c in self.chunk_calls]
        self.calls = sum(len(c) for c in self.chunk_calls)
        self._pool = ThreadPoolExecutor(max_workers=mc.in_flight, thread_name_prefix="floor")

    def send(self, block: int) -> tuple[float, list[bytes]]:
        """Through the keeper's own transport (``ChainClient.call_hex``: the same request bodies and
        reply handling), so the floor is what the keeper's read cannot do without."""
        to, client, gas = self.mc.address, self.mc.client, self.mc.gas
        t = time.perf_counter()
        raw = list(self._pool.map(lambda p: client.call_hex(to, p, block, gas), self.payloads))
        return time.perf_counter() - t, raw

    def encode(self) -> float:
        """aggregate3 encoding of every chunk: what the first tick pays (the keeper reuses it)."""
        t = time.perf_counter()
        for c in self.chunk_calls:
            encode_aggregate3(c)
        return time.perf_counter() - t

    def decode(self, raw: list[str]) -> float:
        """Decoding the bare returns as the keeper does (hex to bytes, then the bulk decoder for
        pre-encoded chunks, the generic aggregate3 decoder otherwise)."""
        t = time.perf_counter()
        if self.fixed:
            for c, r in zip(self.fixed, raw):
                c.decode(r)
        else:
            for r in raw:
                decode_aggregate3(r)
        return time.perf_counter() - t

    def max_gas(self, block: int) -> int:
        """eth_estimateGas of the costliest chunk (an eth_call is capped by the block gas limit)."""
        return max((int(self.mc.client.request("eth_estimateGas", [{"to": self.mc.address, "data": p}, hex(block)]), 16)
                    for p in self.payloads), default=0)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def node_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the node process has used so far; 0 where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- one measured read set ----------------------------------------------------------------------------
NAIVE = "(a)"
LEAN = "(a')"
BATCHED = "(a'')"
REF = "(ref)"
FIRST = "(b0) first tick (Aave: bitmaps, then balances)"
PLAN = "  plan: build calldata"
READ = "  read: multicalls in flight, each decoded on arrival"
NEAREST = "  nearest_liquidation"
KEEPER = "(b) keeper path, end to end"
FLOOR = "(floor) keeper's multicalls sent bare"
ENCODE = "  aggregate3 encode (first tick only)"
BARE_DECODE = "  aggregate3 decode of the bare returns"


@dataclass
class Result:
    protocol: str
    n: int
    rows: list[tuple[str, list[float]]]
    info: str
    agree: int = 0
    compared: str = ""
    goal: str = ""
    met: bool = True


def measure(name: str, adapter: Adapter, mc: Multicall, client: ChainClient, naive_w3: Web3 | None,
            batched: BatchedRpc | None, dep: dict, users: Sequence[str], ctx: ReadContext, args: argparse.Namespace,
            naive: Callable, lean: Callable, naive_fn: str, node_pid: int | None,
            profile: str | None = None) -> Result:
    n, block = len(users), ctx.block
    is_aave = name.startswith("Aave")
    adapter.prepare(mc, block)  # reserve / market metadata: loaded once, cached between ticks
    runs: dict[str, list[float]] = {}
    # The first tick learns every account's layout (a bitmap-only round, then the balances);
    # the repetitions below are the steady state.
    first, _ = keeper_read(adapter, mc, users, ctx)
    runs[FIRST] = [first[KEEPER]]
    floor = Floor(adapter, mc, users)
    keeper_health: dict[str, int] = {}
    verified = with_point = unverified = 0
    cpu, rounds, floor_cpu, node_k, node_f = [], [], [], [], []
    other: dict[str, list[int]] = {}  # each baseline's health per account, to compare with the keeper's
    pool = dep["aave_v3"]["pool"]
    for _ in range(args.repeat):
        # The keeper, its floor and the batched baselines interleaved: the same load on each.
        c0, n0 = time.process_time(), node_cpu(node_pid)
        phases, out = keeper_read(adapter, mc, users, ctx)
        cpu.append(time.process_time() - c0)
        node_k.append(node_cpu(node_pid) - n0)
        rounds.append(phases.pop("_rounds"))
        for k, v in phases.items():
            runs.setdefault(k, []).append(v)
        c0, n0 = time.process_time(), node_cpu(node_pid)
        sent, raw = floor.send(block)
        floor_cpu.append(time.process_time() - c0)
        node_f.append(node_cpu(node_pid) - n0)
        runs.setdefault(FLOOR, []).append(sent)
        runs.setdefault(ENCODE, []).append(floor.encode())
        runs.setdefault(BARE_DECODE, []).append(floor.decode(raw))
        del raw
        if is_aave:
            t = time.perf_counter()
            other[BATCHED] = batched.account_health(pool, users, block)
            runs.setdefault(BATCHED, []).append(time.perf_counter() - t)
            t = time.perf_counter()
            other[REF] = account_data_multicall(mc, dep, users, block)
            runs.setdefault(REF, []).append(time.perf_counter() - t)
        keeper_health = {p.account.lower(): p.health_wad for p, _pt in out}
        with_point = sum(1 for _p, pt in out if pt is not None)
        verified = sum(1 for p, _pt in out if p.extra.get("verified"))
        unverified = sum(1 for p, _pt in out if not p.price_ok)
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        keeper_read(adapter, mc, users, ctx)
        prof.disable()
        prof.dump_stats(profile)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
        print(f"\ncProfile of one steady-state keeper read ({name}, {n:,} positions; main thread, the RPC "
              f"runs in the multicall threads), top by own time; full stats in {profile}:")
        print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:6000], flush=True)

    if naive_w3 is not None:
        for _ in range(args.naive_repeat):
            t = time.perf_counter()
            other[NAIVE] = naive(naive_w3, dep, users, block)
            runs.setdefault(NAIVE, []).append(time.perf_counter() - t)
            t = time.perf_counter()
            other[LEAN] = lean(client, dep, users, block)
            runs.setdefault(LEAN, []).append(time.perf_counter() - t)
    agree = sum(1 for k, u in enumerate(users)
                if u.lower() in keeper_health and all(h[k] == keeper_health[u.lower()] for h in other.values()))
    gas = floor.max_gas(block) if floor.fixed else 0
    floor.close()

    labels = {NAIVE: f"(a) naive: {n:,} x {naive_fn}, web3.py",
              LEAN: f"(a') naive: {n:,} x {naive_fn}, raw JSON-RPC",
              BATCHED: f"(a'') batched JSON-RPC: {args.batch} eth_calls per POST",
              REF: "(ref) Multicall3 of getUserAccountData only"}
    order = [NAIVE, LEAN, BATCHED, REF, FIRST, KEEPER, PLAN, READ, NEAREST, FLOOR, ENCODE, BARE_DECODE]
    rows = [(labels.get(k, k), runs[k]) for k in order if k in runs]
    info = (f"{name} @ {n:,}: {len(keeper_health):,}/{n:,} positions decoded, {with_point:,} with a liquidation "
            f"price" + (f", {verified:,} verified against getUserAccountData by the adapter itself" if is_aave else "")
            + f", {unverified:,} flagged; keeper path: {floor.calls:,} calls "
            f"({floor.calls / n:.3g} per position, shared "
            f"ones included) in {len(floor.payloads)} multicalls of <= {max(len(c) for c in floor.chunk_calls):,} calls"
            + (f" (max {gas / 1e6:.1f}M gas per chunk)" if gas else "")
            + f", {max(rounds)} round(s) per steady-state read (first tick {first['_rounds']}), "
            f"CPU per read (medians): keeper path {statistics.median(cpu):.2f} s Python + "
            f"{statistics.median(node_k):.2f} s node, floor {statistics.median(floor_cpu):.2f} s Python + "
            f"{statistics.median(node_f):.2f} s node")
    res = Result(name, n, rows, info, agree, ", ".join(labels[k].split(" ")[0] for k in other))
    goal(res, runs, other, is_aave, args)
    return res


def goal(res: Result, runs: dict[str, list[float]], other: dict, is_aave: bool, args: argparse.Namespace) -> None:
    """The issue's goals, each with its figure and met / NOT met."""
    med = {k: statistics.median(v) for k, v in runs.items()}
    b = med[KEEPER]
    parts, met = [], []

    def check(text: str, ok: bool) -> None:
        parts.append(f"{text}: {'met' if ok else 'NOT met'}")
        met.append(ok)

    tag = "goal" if res.n >= 30_000 else "reported"
    check(f"(b) {b:.3f} s per block <= {GOAL_SECONDS:g} s ({tag} at {res.n:,})", b <= GOAL_SECONDS)
    check(f"(b)/(floor) = {b:.3f}/{med[FLOOR]:.3f} = {b / med[FLOOR]:.2f}x <= {GOAL_FLOOR_RATIO}x",
          b <= GOAL_FLOOR_RATIO * med[FLOOR])
    for key in (BATCHED, REF, LEAN, NAIVE):
        if key in med:
            check(f"{key}/(b) = {med[key]:.3f}/{b:.3f} = {med[key] / b:.2f}x (> 1)", med[key] > b)
        elif key in (LEAN, NAIVE) and args.skip_naive:
            parts.append(f"{key}: not measured (--skip-naive)")
    if other:
        what = "getUserAccountData" if is_aave else "the naive reads"
        check(f"health equal to {what} ({res.compared}) to the wei for {res.agree:,}/{res.n:,}", res.agree == res.n)
    res.goal = "; ".join(parts)
    res.met = all(met)


# --- report -------------------------------------------------------------------------------------------
def print_table(title: str, results: list[Result], reps: int) -> None:
    print(f"\n{title}")
    for r in results:
        print(r.info)
    print(f"\n{'positions':>13}  {'path / phase':52} " + " ".join(f"run{i + 1:>3}" for i in range(reps))
          + f" {'median s':>9} {'positions/s':>12} {'x (b)':>8}")
    for r in results:
        b = statistics.median(dict(r.rows)[KEEPER])
        for phase, vals in r.rows:
            med = statistics.median(vals)
            cells = " ".join(f"{v:6.3f}" for v in vals) + "       " * (reps - len(vals))
            rate = f"{r.n / med:12,.0f}" if med > 0 else f"{'-':>12}"
            rel = f"{med / b:8.2f}" if not phase.startswith(" ") else f"{'':8}"
            label = f"{r.protocol[:6]} {r.n:,}" if not r.protocol.startswith("Aave") else f"{r.n:,}"
            print(f"{label:>13}  {phase:52} {cells} {med:9.3f} {rate} {rel}")
    print()
    for r in results:
        print(f"goal {r.protocol} @ {r.n:,} positions: {r.goal}")


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--aave takes sizes like 10000 or 10000,30000, not {text!r}") from None
    if not sizes or sizes[0] < 0:
        raise argparse.ArgumentTypeError("--aave sizes must be >= 0")
    return sizes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aave-version", choices=(*VERSIONS, "both"), default="both",
                    help="Aave v3 version(s) to measure, each on its own fresh anvil + devnet (default both)")
    ap.add_argument("--aave", type=parse_sizes, default=[10_000],
                    help="Aave borrowers to read, e.g. 10000 or 10000,30000 (the largest is created, the reads "
                         "take the first N)")
    ap.add_argument("--morpho", type=int, default=10_000,
                    help="Morpho Blue borrowers, measured once on the first version (0: skip)")
    ap.add_argument("--chunk", type=int, default=500, help="calls per Multicall3 eth_call (Multicall chunk_size)")
    ap.add_argument("--aave-chunk", type=int, default=2_000,
                    help="calls per eth_call for the Aave adapter's pre-encoded chunks (its chunk_calls)")
    ap.add_argument("--batch", type=int, default=500, help="eth_call request objects per JSON-RPC batch POST (a'')")
    ap.add_argument("--in-flight", type=int, default=2, help="multicall / batch requests in flight")
    ap.add_argument("--repeat", type=int, default=5,
                    help="repetitions of the keeper path, the floor, (a'') and (ref) (default 5)")
    ap.add_argument("--naive-repeat", type=int, default=1,
                    help="repetitions of the naive reads (each is already N sequential calls; default 1)")
    ap.add_argument("--skip-naive", action="store_true", help="leave out (a) and (a') (quick runs)")
    ap.add_argument("--profile", metavar="PREFIX",
                    help="cProfile one steady-state keeper read per version at the largest size")
    args = ap.parse_args()
    if args.repeat < 1 or args.naive_repeat < 1 or args.batch < 1 or args.morpho < 0:
        ap.error("--repeat, --naive-repeat and --batch must be >= 1, --morpho >= 0")
    versions = list(VERSIONS) if args.aave_version == "both" else [args.aave_version]
    sizes = [s for s in args.aave if s > 0]
    reps = max(args.repeat, 1 if args.skip_naive else args.naive_repeat)

    print(f"read-scale benchmark: Aave v{' and v'.join(versions)} at {', '.join(f'{s:,}' for s in sizes)} "
          f"positions" + (f", Morpho Blue at {args.morpho:,} (on v{versions[0]}'s devnet)" if args.morpho else "")
          + f"; Aave chunks of ~{args.aave_chunk} calls, multicall chunks of {args.chunk} calls, JSON-RPC batches "
          f"of {args.batch}, {args.in_flight} in flight, {args.repeat} repetitions ("
          + ("naive reads skipped)" if args.skip_naive else f"{args.naive_repeat} of the naive reads)"), flush=True)
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores",
          flush=True)
    summary: list[str] = []
    for index, version in enumerate(versions):
        n_morpho = args.morpho if index == 0 else 0
        print(f"\nset-up, Aave v{version}", flush=True)
        s = setup(version, max(sizes, default=0), n_morpho,
                  lambda what, sec: print(f"  {what:76} {sec:8.2f} s", flush=True))
        client = mc = batched = None
        try:
            w3, dep, node = s.w3, s.dep, s.node
            block_info = w3.eth.get_block("latest")
            block, ts = block_info["number"], block_info["timestamp"]
            client = ChainClient("devnet", [node.url], dep["chain_id"], timeout=600)
            mc = Multicall(client, dep["multicall3"], chunk_size=args.chunk, in_flight=args.in_flight)
            batched = BatchedRpc(node.url, args.batch, args.in_flight)
            naive_w3 = None if args.skip_naive else naive_web3(node.url)
            ctx = ReadContext("devnet", block, ts, {})
            aave = dep["aave_v3"]
            name = f"Aave v{version}"
            load0 = os.getloadavg()
            print(f"pinned block {block}; load average {load0[0]:.2f} on {os.cpu_count()} cores", flush=True)
            results = []
            for n in sizes:
                adapter = AaveV3Adapter("devnet", aave["pool"], aave["data_provider"], aave["oracle"],
                                        chunk_calls=args.aave_chunk)  # a fresh one per size: its own first tick
                prof = f"{args.profile}-{version}.pstats" if args.profile and n == sizes[-1] else None
                print(f"  measuring {name} @ {n:,} ...", flush=True)
                results.append(measure(name, adapter, mc, client, naive_w3, batched, dep, s.aave_users[:n], ctx,
                                       args, naive_aave, lean_aave, "getUserAccountData", node.proc.pid, prof))
            if s.morpho_users:
                print(f"  measuring Morpho Blue @ {len(s.morpho_users):,} ...", flush=True)
                adapter = MorphoBlueAdapter("devnet", dep["morpho_blue"]["morpho"],
                                            [m["id"] for m in dep["morpho_blue"]["markets"].values()])
                results.append(measure("Morpho Blue", adapter, mc, client, naive_w3, None, dep, s.morpho_users, ctx,
                                       args, naive_morpho, lean_morpho, "position", node.proc.pid))
            load1 = os.getloadavg()
            print_table(f"Aave v{version} (pool revision {aave['revision']}), block {block}; load average "
                        f"{load0[0]:.2f} before, {load1[0]:.2f} after (1 min; 5 min {load1[1]:.2f}) on "
                        f"{os.cpu_count()} cores; {s.gas_per_aave / 1e3:.0f}k gas per Aave borrower created",
                        results, reps)
            for r in results:
                summary.append(f"{r.protocol} @ {r.n:,}: {'all goals met' if r.met else 'goal(s) NOT met'}")
        finally:
            for x in (batched, mc):
                if x is not None:
                    x.close()
            s.node.stop()
    print("\nsummary: " + "; ".join(summary))
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
