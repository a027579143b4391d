"""A fault lab on the devnet: the keeper as operators run it (``python -m keeper`` subprocesses,
``KEEPER_FAULT`` kill points), a webhook receiver, a killable RPC proxy, a TCP proxy that can be cut
(a partition from the database), a block miner, and on-chain counting of the vaults'
``KeeperAction`` events. Every byte a keeper process prints is kept and scanned for the private key
(``Env.outputs``; a leak raises ``KeyLeak``). Used by the fault tests (``tests/faults/``), the
replica tests and the fault and replica benchmarks (``bench/faults_daemon.py``, ``bench/ha.py``)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.types import RPCEndpoint

from keeper.chain import contracts as C

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil account 1 (public)
KEY_FORMS = (KEEPER_KEY, KEEPER_KEY[2:], KEEPER_KEY[2:].upper())
VOLS = ("--vol", "WETH=0.8", "--vol", "WBTC=0.7")
ACTION_SIG = "KeeperAction(uint8,uint8,address,bytes32,address,address,uint256,uint256,uint256)"
REQUEST_SIG = "PerpIncreaseRequested(bytes32,address,bytes32,address,address,uint256,uint256,uint256)"


class KeyLeak(AssertionError):
    """The keeper printed its private key."""


def set_feed_price(w3: Web3, dep: dict[str, Any], feed_symbol: str, usd: float) -> None:
    """Move the devnet's Chainlink feed of ``feed_symbol`` (ETH, BTC, USDC) to ``usd``."""
    feed = dep["feeds"][feed_symbol]
    agg = w3.eth.contract(address=feed["address"], abi=C.third_party("MockV3Aggregator").abi)
    tx = agg.functions.updateAnswer(round(usd * 10 ** feed["decimals"])).transact({"from": dep["roles"]["admin"]})
    w3.eth.wait_for_transaction_receipt(tx)


class Receiver:
    """A webhook endpoint: every POSTed JSON body lands in ``posts``."""

    def __init__(self) -> None:
        posts: list[dict[str, Any]] = []
        self.posts = posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posts.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> list[str]:
        return [str(p.get("kind")) for p in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RpcProxy:
    """A tiny HTTP forwarder in front of anvil (one connection per request), to be killed mid-run."""

    def __init__(self, upstream: str) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    out = resp.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CuttableProxy:
    """Forwards TCP connections to ``127.0.0.1:target``; ``cut()`` drops them all and refuses new
    ones (they are accepted and closed at once), ``restore()`` forwards again."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepting = threading.Event()
        self.accepting.set()
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            if not self.accepting.is_set():
                conn.close()
                continue
            up = socket.create_connection(("127.0.0.1", self.target))
            self._conns += [conn, up]
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.accepting.clear()
        conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.accepting.set()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self.listener.close()


class Env:
    """A keeper working directory: deployment file, config, store; runs the CLI and the daemon."""

    def __init__(self, root: Path, anvil_url: str, devnet: dict[str, Any], receiver: Receiver) -> None:
        self.root, self.anvil_url, self.devnet, self.receiver = root, anvil_url, devnet, receiver
        (root / "dep.json").write_text(json.dumps({**devnet, "rpc_url": anvil_url}))
        self.outputs: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.config()

    def config(self, extra: str = "", chain_extra: str = "", fees: str = "") -> None:
        (self.root / "config.toml").write_text(
            '[store]\nurl = "sqlite:///k.db"\n[keeper]\nkey_env = "KEEPER_TEST_KEY"\n'
            '[daemon]\npoll_interval = 0.2\nwatchdog_seconds = 60\nheartbeat_seconds = 5\n'
            '[alerts]\nwebhook_env = "KEEPER_TEST_WEBHOOK"\nmin_interval_s = 0\n'
            f'[fees]\n{fees}\n{extra}\n[chains.devnet]\ndeployment = "dep.json"\n{chain_extra}\n')

    def environ(self, fault: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "KEEPER_FAULT" and not k.startswith("KEEPER__")}
        env.update(KEEPER_TEST_KEY=KEEPER_KEY, KEEPER_TEST_WEBHOOK=self.receiver.url, PYTHONUNBUFFERED="1")
        if fault:
            env["KEEPER_FAULT"] = fault
        return env

    def _keep(self, text: str) -> None:
        self.outputs.append(text)
        for form in KEY_FORMS:
            if form.lower() in text.lower():
                raise KeyLeak("the private key appeared in the keeper's output")

    def cli(self, *args: str, fault: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True,
                              cwd=self.root, env=env or self.environ(fault), timeout=timeout)
        self._keep(proc.stdout + proc.stderr)
        return proc

    def daemon(self, *args: str, fault: str | None = None) -> Daemon:
        return Daemon(self, args, fault)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


class Daemon:
    """``keeper run --log-level DEBUG`` as a subprocess; its output goes to a file read on demand."""

    def __init__(self, env: Env, args: Sequence[str], fault: str | None) -> None:
        self.env = env
        self.log = env.root / f"daemon-{len(env.procs)}.log"
        self._finished = False
        # the daemon writes the log through its own copy of the descriptor; this process only reads the file
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "keeper", "run", "--log-level", "DEBUG", *VOLS, *args],
                                         cwd=env.root, env=env.environ(fault), stdout=fh, stderr=subprocess.STDOUT,
                                         text=True)
        env.procs.append(self.proc)

    def text(self) -> str:
        return self.log.read_text()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def seen(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event and all(e.get(k) == v for k, v in match.items())]

    def ticked_after(self, block: int) -> bool:
        return any(e.get("block", -1) > block for e in self.seen("tick"))

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._finish()

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self.env._keep(self.text())


class Miner:
    """Mines a block every ``period`` seconds on top of automine (a fast chain: transactions land at
    once, and the daemon, which ticks on new heads, sees one every ``period``)."""

    #: consecutive failed ``evm_mine`` calls after which the miner gives up (and says so)
    GIVE_UP_AFTER = 50

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: every failed ``evm_mine`` call, as text: a loaded machine can time one out; the miner
        #: retries at its next period rather than stop the chain for the rest of the run
        self.errors: list[str] = []
        self.gave_up = False
        #: blocks mined, and when the last one was (monotonic s) and the call in flight began (None:
        #: none): a stuck evm_mine shows as a call in flight for long, not as a failure
        self.mined = 0
        self._last_mined: float | None = None
        self._calling_since: float | None = None

    def start(self, period: float = 0.3) -> None:
        self.stop()
        self._stop.clear()
        self.gave_up = False

        def loop() -> None:
            failed = 0
            while not self._stop.wait(period):
                self._calling_since = time.monotonic()
                try:
                    reply = self.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
                    if "error" in reply:  # a JSON-RPC error is a reply, not an exception
                        raise RuntimeError(f"evm_mine answered {reply['error']}")
                    failed = 0
                    self.mined += 1
                    self._last_mined = time.monotonic()
                except Exception as e:  # any failure is retried, and recorded
                    failed += 1
                    self.errors.append(f"{type(e).__name__}: {e}")
                    print(f"miner: evm_mine failed ({failed} in a row): {type(e).__name__}: {e}",
                          file=sys.stderr, flush=True)
                self._calling_since = None
                if failed >= self.GIVE_UP_AFTER:
                    self.gave_up = True
                    return
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def report(self) -> str:
        """What went wrong with mining, if anything (for a failing test's message)."""
        now = time.monotonic()
        last = "never" if self._last_mined is None else f"{now - self._last_mined:.1f} s ago"
        calling = self._calling_since
        flight = "" if calling is None else f", an evm_mine call in flight for {now - calling:.1f} s"
        mined = f"{self.mined} block(s) mined, the last {last}{flight}"
        if not self.errors:
            return f"the miner had no failures ({mined})"
        state = "gave up" if self.gave_up else "kept mining"
        return (f"the miner {state} after {len(self.errors)} failed evm_mine call(s) ({mined}), "
                f"last: {self.errors[-1]}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


# --- on chain --------------------------------------------------------------------------------------
def keeper_actions(w3: Web3, devnet: dict[str, Any], from_block: int) -> list[dict[str, Any]]:
    """Every keeper action of the devnet's vaults since ``from_block``, decoded: their
    ``KeeperAction`` events, and their ``PerpIncreaseRequested`` events (a margin top-up on gated
    GMX v1 is a PositionRouter request: one action, whose margin lands when GMX executes it), the
    latter with ``protocol`` = the GMX Vault and ``request`` = the request key."""
    abi = C.ours("KeeperVault").abi
    vaults = [v["address"] for v in devnet["keeper_vaults"].values()]
    contract = w3.eth.contract(abi=abi)
    topics = [Web3.keccak(text=ACTION_SIG).to_0x_hex(), Web3.keccak(text=REQUEST_SIG).to_0x_hex()]
    if from_block > w3.eth.block_number:
        return []
    logs = w3.eth.get_logs({"address": vaults, "fromBlock": from_block, "toBlock": "latest", "topics": [topics]})
    out = []
    for lg in logs:
        where = {"vault": lg["address"], "block": lg["blockNumber"], "tx": lg["transactionHash"].to_0x_hex()}
        if lg["topics"][0].to_0x_hex() == topics[0]:
            ev = contract.events.KeeperAction().process_log(lg)
            out.append({**dict(ev["args"]), **where})
        else:
            ev = contract.events.PerpIncreaseRequested().process_log(lg)
            out.append({**dict(ev["args"]), **where, "protocol": devnet["perp"]["vault"],
                        "request": ev["args"]["requestKey"].hex()})
    return out


def per_position(actions: list[dict[str, Any]]) -> Counter[tuple[str, str, str, str]]:
    """Actions counted per (vault, protocol, market, account): a double action shows as a count of 2."""
    return Counter((a["vault"], a["protocol"], a["market"].hex(), a["account"]) for a in actions)


def planned_positions(env: Env, kinds: tuple[str, ...] | None = None) -> set[str]:
    """The position keys the planner acts on now (in-process, the keeper's own planner)."""
    from keeper.app.manual import open_session, plan_now
    from keeper.config import load_config

    cwd = os.getcwd()
    os.chdir(env.root)
    try:
        cfg = load_config(env.root / "config.toml", env={})
        session = open_session(cfg, None, vols={"WETH": 0.8, "WBTC": 0.7})
        try:
            return {a.position_key for _b, plan in plan_now(session) for a in plan.actions
                    if kinds is None or a.kind.value in kinds}
        finally:
            session.close()
    finally:
        os.chdir(cwd)


def protective_needed(env: Env) -> set[str]:
    """Positions the planner would top up or repay now."""
    return planned_positions(env, ("top_up", "repay"))


def planned_at(env: Env, w3: Web3, change: Callable[[Web3], object]) -> set[str]:
    """What the planner would act on after ``change(w3)``, without keeping the change (snapshot/revert)."""
    snap = w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    try:
        change(w3)
        return planned_positions(env)
    finally:
        assert w3.provider.make_request(RPCEndpoint("evm_revert"), [snap])["result"]


def idle(daemon: Daemon) -> bool:
    """The last three ticks are on consecutive blocks and nothing was acted on since the first."""
    events = daemon.events()
    ticks = [i for i, e in enumerate(events) if e.get("event") == "tick"]
    if len(ticks) < 3:
        return False
    blocks = [events[i]["block"] for i in ticks[-3:]]
    quiet = not any(e.get("event") == "decision" for e in events[ticks[-3]:])
    return quiet and blocks[2] - blocks[0] == 2


def head(w3: Web3) -> int:
    return w3.eth.block_number
