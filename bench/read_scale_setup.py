"""Set-up and the baselines of ``bench/read_scale.py`` (see its docstring): the devnet with N real
Aave v3 / Morpho Blue borrowers on a fresh anvil, and the reads that do without the keeper — (a)
one call per position through web3.py, (a') the same as raw JSON-RPC, (a'') JSON-RPC batches, (ref)
one Multicall3 of ``getUserAccountData``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from web3 import Web3

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.multicall import Call, Multicall
from keeper.devnet.anvil import Anvil
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.deployer import Deployer
from keeper.protocols.aave_v3 import SEL_ACCOUNT_DATA
from keeper.protocols.base import enc_address, word
from keeper.protocols.morpho_blue import SEL_MARKET, SEL_POSITION, SEL_PRICE, health_wad, to_assets_up

MAX = 2**256 - 1
E18 = 10**18
USDC = 10**6
BLOCK_GAS_LIMIT = 2_000_000_000
PER_TX = 1_000  # borrowers created per transaction
# Gas per borrower, with headroom: v3.0 measured ~280k-380k, v3.7 see the set-up log; Morpho ~150k-200k.
GAS_PER_AAVE_BORROWER = 600_000
GAS_PER_MORPHO_BORROWER = 260_000
# Per collateral unit (1 WETH at 2,000 USD; every third Aave borrower adds 0.01 WBTC): borrow a USDC
# amount drawn in [min, max]. Aave WETH LTV is 80 %, liquidation threshold 82.5 %: HF ~1.06..3.3.
# Morpho's LLTV is 86 %: health ~1.01..3.4. Each borrower's size is 1..5 units.
AAVE_BORROW = (500 * USDC, 1_560 * USDC)
MORPHO_BORROW = (500 * USDC, 1_700 * USDC)

# --- set-up ----------------------------------------------------------------------------------------
@dataclass
class Setup:
    node: Anvil
    w3: Web3
    dep: dict
    aave_users: list[str]
    morpho_users: list[str]
    gas_per_aave: float = 0.0
    log: list[tuple[str, float]] = field(default_factory=list)


def setup(version: str, n_aave: int, n_morpho: int, log: Callable[[str, float], None]) -> Setup:
    t0 = time.perf_counter()
    node = Anvil(extra_args=["--gas-limit", str(BLOCK_GAS_LIMIT)]).start()
    try:
        return _setup(node, version, n_aave, n_morpho, log, t0)
    except BaseException:
        node.stop()
        raise


def _setup(node: Anvil, version: str, n_aave: int, n_morpho: int, log: Callable[[str, float], None],
           t0: float) -> Setup:
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 600}))
    dep = deploy_devnet(w3, seed=False, aave=version)
    aave = dep["aave_v3"]
    if aave.get("version") != version:
        raise RuntimeError(f"asked for Aave {version}, the devnet says {aave.get('version')!r}")
    log(f"anvil + devnet deployed (Aave v{version}, pool revision {aave['revision']}; Morpho Blue)",
        time.perf_counter() - t0)

    t1 = time.perf_counter()
    admin, lp = w3.eth.accounts[0], w3.eth.accounts[2]
    d = Deployer(w3, admin)
    erc20 = C.ours("TestERC20")
    token = lambda sym: d.at(dep["tokens"][sym]["address"], erc20)  # noqa: E731
    usdc = token("USDC")
    pool = d.at(aave["pool"], C.aave_for(version, "Pool"))
    morpho = d.at(dep["morpho_blue"]["morpho"], C.third_party("Morpho"))
    m = dep["morpho_blue"]["markets"]["WETH/USDC"]
    params = (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], m["lltv"])
    # Liquidity for every borrower: at most 5 units * the max borrow each, plus headroom.
    aave_liq = max(1, n_aave) * 5 * AAVE_BORROW[1]
    morpho_liq = max(1, n_morpho) * 5 * MORPHO_BORROW[1]
    d.send(usdc.functions.mint(lp, aave_liq + morpho_liq))
    d.send(usdc.functions.approve(pool.address, MAX), sender=lp)
    d.send(usdc.functions.approve(morpho.address, MAX), sender=lp)
    d.send(pool.functions.supply(usdc.address, aave_liq, lp, 0), sender=lp)
    if n_morpho:
        d.send(morpho.functions.supply(params, morpho_liq, 0, lp, b""), sender=lp)
    factory = d.deploy(C.ours("BorrowerFactory"))
    log("USDC liquidity supplied, factory deployed", time.perf_counter() - t1)

    aave_spec = (pool.address, token("WETH").address, E18, token("WBTC").address, 10**6, usdc.address, *AAVE_BORROW)
    morpho_spec = (morpho.address, params, E18, *MORPHO_BORROW)

    def spawn(fn, n: int, gas_each: int) -> int:
        used = 0
        for first in range(0, n, PER_TX):
            k = min(PER_TX, n - first)
            tx = fn(k).transact({"from": admin, "gas": min(BLOCK_GAS_LIMIT, 100_000 + k * gas_each)})
            receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=600, poll_latency=0.05)
            if receipt["status"] != 1:
                raise RuntimeError(f"spawning borrowers failed in {tx.hex()} (gas used {receipt['gasUsed']})")
            used += receipt["gasUsed"]
        return used

    t2 = time.perf_counter()
    gas = spawn(lambda k: factory.functions.spawnAave(k, aave_spec), n_aave, GAS_PER_AAVE_BORROWER)
    per = gas / n_aave if n_aave else 0.0
    log(f"{n_aave:,} Aave borrowers created ({-(-n_aave // PER_TX)} tx, {per / 1e3:.0f}k gas each)",
        time.perf_counter() - t2)
    t3 = time.perf_counter()
    spawn(lambda k: factory.functions.spawnMorpho(k, morpho_spec), n_morpho, GAS_PER_MORPHO_BORROWER)
    if n_morpho:
        log(f"{n_morpho:,} Morpho borrowers created ({-(-n_morpho // PER_TX)} tx)", time.perf_counter() - t3)

    aave_users = list(factory.functions.borrowers(0, 0, n_aave).call()) if n_aave else []
    morpho_users = list(factory.functions.borrowers(1, 0, n_morpho).call()) if n_morpho else []
    assert len(aave_users) == n_aave and len(morpho_users) == n_morpho
    log("set-up total", time.perf_counter() - t0)
    return Setup(node, w3, dep, aave_users, morpho_users, per)


# --- (a), (a'), (a''), (ref): getUserAccountData / position, without the keeper ----------------------
def naive_web3(url: str) -> Web3:
    # cache_allowed_requests: web3.py otherwise asks the node for its chain id twice per eth_call
    # (validation middleware), which alone makes a call ~7 ms instead of ~5 ms here.
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}, cache_allowed_requests=True))


def naive_aave(w3: Web3, dep: dict, users: Sequence[str], block: int) -> list[int]:
    pool = w3.eth.contract(address=dep["aave_v3"]["pool"], abi=C.aave_for(dep["aave_v3"]["version"], "Pool").abi)
    return [pool.functions.getUserAccountData(u).call(block_identifier=block)[5] for u in users]


def naive_morpho(w3: Web3, dep: dict, users: Sequence[str], block: int) -> list[int]:
    m = dep["morpho_blue"]["markets"]["WETH/USDC"]
    morpho = w3.eth.contract(address=dep["morpho_blue"]["morpho"], abi=C.third_party("Morpho").abi)
    oracle = w3.eth.contract(address=m["oracle"], abi=C.ours("MorphoChainlinkOracle").abi)
    mid = bytes.fromhex(m["id"][2:])
    market = morpho.functions.market(mid).call(block_identifier=block)  # shared
    price = oracle.functions.price().call(block_identifier=block)  # shared
    out = []
    for u in users:
        _supply_shares, borrow_shares, collateral = morpho.functions.position(mid, u).call(block_identifier=block)
        out.append(health_wad(collateral, price, m["lltv"], to_assets_up(borrow_shares, market[2], market[3])))
    return out


def lean_aave(client: ChainClient, dep: dict, users: Sequence[str], block: int) -> list[int]:
    """The cheapest one-call-per-position read: raw JSON-RPC on a kept-alive session, calldata
    encoded by hand, the health factor sliced out of the return data."""
    pool = dep["aave_v3"]["pool"]
    return [int.from_bytes(client.eth_call(pool, SEL_ACCOUNT_DATA + enc_address(u), block)[160:192], "big")
            for u in users]


def lean_morpho(client: ChainClient, dep: dict, users: Sequence[str], block: int) -> list[int]:
    m = dep["morpho_blue"]["markets"]["WETH/USDC"]
    morpho, mid = dep["morpho_blue"]["morpho"], bytes.fromhex(m["id"][2:])
    market = client.eth_call(morpho, SEL_MARKET + mid, block)
    total_assets, total_shares = word(market, 2), word(market, 3)
    price = word(client.eth_call(m["oracle"], SEL_PRICE, block), 0)
    out = []
    for u in users:
        pos = client.eth_call(morpho, SEL_POSITION + mid + enc_address(u), block)
        out.append(health_wad(word(pos, 2), price, m["lltv"], to_assets_up(word(pos, 1), total_assets, total_shares)))
    return out


class BatchedRpc:
    """(a''): plain JSON-RPC batches: a list of ``eth_call`` request objects per HTTP POST, a few
    POSTs in flight, one kept-alive ``requests`` session per thread; no Multicall3, no keeper code."""

    def __init__(self, url: str, batch: int, in_flight: int) -> None:
        self.url, self.batch = url, batch
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="batched-rpc")

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.trust_env = False  # a local node: no proxy look-up per request
        return s

    def _post(self, requests_: list[dict]) -> list[str]:
        resp = self._session().post(self.url, data=json.dumps(requests_), timeout=600,
                                    headers={"Content-Type": "application/json"})
        resp.raise_for_status()
        replies = {r["id"]: r for r in resp.json()}
        out = []
        for q in requests_:
            r = replies[q["id"]]
            if "error" in r:
                raise RuntimeError(f"batched eth_call failed: {r['error']}")
            out.append(r["result"])
        return out

    def account_health(self, pool: str, users: Sequence[str], block: int) -> list[int]:
        tag = hex(block)
        sel = "0x" + SEL_ACCOUNT_DATA.hex()
        parts = []
        for first in range(0, len(users), self.batch):
            parts.append([{"jsonrpc": "2.0", "id": first + i, "method": "eth_call",
                           "params": [{"to": pool, "data": sel + "0" * 24 + u[2:].lower()}, tag]}
                          for i, u in enumerate(users[first:first + self.batch])])
        # health factor: the sixth word of the return ("0x" + 5 * 64 hex digits before it)
        return [int(h[322:386], 16) for part in self._pool.map(self._post, parts) for h in part]

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def account_data_multicall(mc: Multicall, dep: dict, users: Sequence[str], block: int) -> list[int]:
    """(ref): the keeper's Multicall with getUserAccountData only (no per-reserve data)."""
    pool = dep["aave_v3"]["pool"]
    calls = [Call(pool, SEL_ACCOUNT_DATA + enc_address(u)) for u in users]
    return [int.from_bytes(r.data[160:192], "big") if r.success else -1 for r in mc.call(calls, block)]
