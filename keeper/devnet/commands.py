"""What ``keeper devnet up|down|price`` do (the CLI parses arguments and maps errors to exit codes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

from web3 import Web3
from web3.types import RPCEndpoint

from keeper.chain import contracts as C
from keeper.devnet import DEFAULT_AAVE_VERSION, DEFAULT_GMX_MODE
from keeper.devnet.anvil import Anvil, die_with_parent, rpc_call, stop_pid
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.deployer import Deployer
from keeper.devnet.deployment import (
    DEFAULT_DIR,
    DEPLOYMENT_FILE,
    STATE_FILE,
    find_feed,
    load_deployment,
    read_json,
    write_json,
)
from keeper.errors import ConfigError, TemporaryError


def check_toolchain(aave: str = DEFAULT_AAVE_VERSION) -> None:
    """Fail early, with the fix, when the npm install or the contract build is missing."""
    for load, name in ((C.third_party, "Morpho"), (C.third_party, "MockV3Aggregator"),
                       (C.ours, "KeeperVault"), (C.ours, "TestWETH"), (C.gmx, "Vault"), (C.gmx, "PositionRouter")):
        load(name)
    for name in ("Pool", "PoolConfigurator", "AToken", "VariableDebtToken"):
        C.aave_for(aave, name)


def _web3(url: str) -> Web3:
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))


def start_position_keeper(deployment: Path, out: Path, detach: bool) -> subprocess.Popen[bytes]:
    """GMX v1's position keeper for a gated devnet, as its own process (``keeper.devnet.position_keeper``):
    detached with the devnet, or dying with this process."""
    return _companion("keeper.devnet.position_keeper", "position_keeper.log", deployment, out, detach)


def start_preliquidator(deployment: Path, out: Path, detach: bool) -> subprocess.Popen[bytes]:
    """The pre-liquidation bot (``keeper.devnet.preliquidator``), as GMX's position keeper."""
    return _companion("keeper.devnet.preliquidator", "preliquidator.log", deployment, out, detach)


def _companion(module: str, log_name: str, deployment: Path, out: Path, detach: bool) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / log_name, "ab") as log:
        cmd = [sys.executable, "-m", module, "--deployment", str(deployment)]
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=detach, preexec_fn=None if detach else die_with_parent)


def up(*, port: int | None, block_time: int | None, fork_url: str | None, detach: bool,
       out_dir: Path | None = None, aave: str = DEFAULT_AAVE_VERSION, gmx: str = DEFAULT_GMX_MODE,
       log: Callable[[str], None] = print) -> tuple[Anvil, dict[str, Any]]:
    """Start anvil and deploy the devnet with Aave v``aave`` ("3.7" or "3.0") and GMX v1 in ``gmx``
    mode ("gated": a position keeper process executes PositionRouter requests every block; or
    "direct"). The position keeper's process is ``node.companions[0]`` (stopped with the devnet)."""
    out = out_dir or DEFAULT_DIR
    state_path = out / STATE_FILE
    if state_path.exists():
        state = read_json(state_path, "devnet state file")
        if _alive(state.get("pid")):
            raise ConfigError(f"a devnet is already running (pid {state['pid']}, {state.get('url')})",
                              hint="stop it first with 'keeper devnet down'")
        state_path.unlink()
    check_toolchain(aave)
    started = time.monotonic()
    log_path = out / "anvil.log" if detach else None
    if log_path:
        out.mkdir(parents=True, exist_ok=True)
    node = Anvil(port=port, fork_url=fork_url, detach=detach, log_path=log_path)
    node.start()
    try:
        w3 = _web3(node.url)
        deployment = deploy_devnet(w3, log=log, aave=aave, gmx=gmx)
        if block_time:
            # Deploy with automine (fast), then switch to fixed block times.
            answer = w3.provider.make_request(RPCEndpoint("evm_setIntervalMining"), [int(block_time)])
            if answer.get("error"):
                raise ConfigError(f"anvil refused a {block_time} s block time: {answer['error']}")
        deployment["rpc_url"] = node.url
        deployment["fork_url"] = fork_url
        deployment["block_time"] = block_time
        deployment["seconds_to_ready"] = round(time.monotonic() - started, 2)
        write_json(out / DEPLOYMENT_FILE, deployment)
        node.companions = []
        if deployment["perp"]["mode"] == "gated":
            node.companions.append(start_position_keeper(out / DEPLOYMENT_FILE, out, detach))
            log(f"GMX position keeper running (pid {node.companions[-1].pid}, log {out / 'position_keeper.log'})")
        if deployment["morpho_blue"].get("preliq_factory"):
            node.companions.append(start_preliquidator(out / DEPLOYMENT_FILE, out, detach))
            log(f"Morpho pre-liquidation bot running (pid {node.companions[-1].pid}, log {out / 'preliquidator.log'})")
        if detach:
            assert node.proc is not None  # start() has just set it
            write_json(state_path, {"pid": node.proc.pid, "url": node.url, "port": node.port,
                                    "deployment": str(out / DEPLOYMENT_FILE),
                                    "companions": [p.pid for p in node.companions]})
    except BaseException:
        stop_companions(node)
        node.stop()
        raise
    return node, deployment


def stop_companions(node: Anvil) -> None:
    """Stop the processes started next to a foreground devnet (the position keeper)."""
    for proc in getattr(node, "companions", []):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _alive(pid: object) -> TypeGuard[int]:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_signal(node: Anvil) -> None:
    """Foreground devnet: run until SIGINT/SIGTERM, or until anvil dies."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if node.proc is None or node.proc.poll() is not None:
            raise TemporaryError("anvil exited unexpectedly")


def down(out_dir: Path | None = None) -> str:
    out = out_dir or DEFAULT_DIR
    state_path = out / STATE_FILE
    if not state_path.exists():
        return "no detached devnet is recorded; nothing to stop"
    state = read_json(state_path, "devnet state file")
    pid = state.get("pid")
    for companion in state.get("companions", []):
        if _alive(companion):
            stop_pid(companion)
    stopped = _alive(pid) and stop_pid(pid)
    state_path.unlink()
    return f"devnet stopped (pid {pid})" if stopped else f"devnet (pid {pid}) was not running; state cleared"


def rpc_url(explicit: str | None, deployment: dict[str, Any]) -> str:
    url = explicit or deployment.get("rpc_url")
    if not url:
        raise ConfigError("no RPC URL: pass --rpc or start a devnet with 'keeper devnet up'")
    try:
        rpc_call(url, "eth_chainId", timeout=3.0)
    except TemporaryError as e:
        raise ConfigError(f"the devnet RPC at {url} does not answer",
                          hint="is the devnet running? start it with 'keeper devnet up --detach'") from e
    return url


def set_price(symbol: str, price: float, *, rpc: str | None = None,
              deployment_path: Path | None = None) -> dict[str, Any]:
    if not (price > 0) or price != price or price == float("inf"):
        raise ConfigError(f"price must be a positive number, got {price}")
    dep = load_deployment(deployment_path)
    feed = find_feed(dep, symbol)
    # The feed stores an int256 answer at its decimals: refuse a price it cannot hold (rounding to
    # 0, or beyond int256) before anything is sent.
    scaled = price * 10 ** feed["decimals"]
    if not (scaled < float("inf") and 1 <= round(scaled) <= 2**255 - 1):  # inf, nan: False
        raise ConfigError(f"price {price:g} USD is not representable by the {symbol.upper()} feed "
                          f"({feed['decimals']} decimals): round(price x 10^{feed['decimals']}) = {scaled:.3g} "
                          f"must be an int256 of at least 1")
    answer = round(scaled)
    w3 = _web3(rpc_url(rpc, dep))
    if w3.eth.chain_id != dep["chain_id"]:
        raise ConfigError(f"the RPC's chain id {w3.eth.chain_id} is not the deployment's {dep['chain_id']}")
    agg = w3.eth.contract(address=feed["address"], abi=C.third_party("MockV3Aggregator").abi)
    d = Deployer(w3, dep["roles"]["admin"])
    d.send(agg.functions.updateAnswer(answer))
    round_id, got, _s, updated_at, _a = agg.functions.latestRoundData().call()
    return {"feed": feed["address"], "symbol": symbol.upper(), "answer": got, "round": round_id,
            "updated_at": updated_at, "price": got / 10 ** feed["decimals"], "pools": _arbitrage_pools(d, dep, feed)}


def _arbitrage_pools(d: Deployer, dep: dict[str, Any], moved: dict[str, Any]) -> dict[str, float]:
    """After a feed moves, the devnet's Uniswap pools of its token follow, as arbitrageurs make them
    on a real chain (the LP trades): each pool's new price of its base token in its quote token."""
    from keeper.devnet.uniswap import arbitrage, pool_price

    uni = dep.get("uniswap_v3")
    if not uni:
        return {}
    aggregator = C.third_party("MockV3Aggregator").abi
    prices = {}
    for sym, t in dep["tokens"].items():
        f = dep["feeds"][t["feed_symbol"]]
        answer = d.w3.eth.contract(address=f["address"], abi=aggregator).functions.latestRoundData().call()[1]
        prices[sym] = answer / 10 ** f["decimals"]
    out = {}
    for pair, pool in uni["pools"].items():
        if moved["token"] in (pool["base"], pool["quote"]):
            arbitrage(d, uni, pair, dep["tokens"], prices, dep["roles"]["lp"])
            out[pair] = pool_price(d.w3, pool, dep["tokens"])
    return out
