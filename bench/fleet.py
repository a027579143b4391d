"""A fleet of positions on a fresh anvil for the daemon benchmarks (bench/reaction.py, bench/soak.py).

- ``n_watch`` Aave v3 borrowers created by ``contracts/bench/BorrowerFactory.sol`` (minimal clones
  that hold real Aave positions as their own address, health ~1.06..3.3 at ETH 2,000): watched by the
  keeper, which reads them every block but cannot act for them (no vault);
- ``n_vaults`` KeeperVaults, each holding one real Aave position of its own (10 WETH collateral,
  ``borrow_usdc`` USDC debt: health 1.375 at ETH 2,000 with the default 12,000) and a WETH reserve
  the keeper may top up from. Owner: the admin account; keeper role: account 1 (the devnet's);
- ``n_perps`` KeeperVaults, each holding one GMX v1 ETH long of its own (gated, as the devnet
  deploys it: opened by a PositionRouter request that the position keeper executes), 2 WETH of
  collateral and ``perp_size_usd`` of size, a WETH reserve, the vault's PositionRouter route, an
  ether cap and 1 ETH for execution fees; the health floor ``perp_floor`` forbids releases.

The keeper config is the devnet deployment file with these positions, so ``chain_from_deployment``
turns it into a chain config exactly as for ``keeper devnet up``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.anvil import Anvil
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.deployer import Deployer

MAX = 2**256 - 1
E18 = 10**18
USDC = 10**6
BLOCK_GAS_LIMIT = 2_000_000_000
AAVE = 0
KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil account 1


def asset_key(asset: str) -> bytes:
    return bytes(12) + bytes.fromhex(Web3.to_checksum_address(asset)[2:])


class Fleet:
    def __init__(self, node: Anvil, w3: Web3, dep: dict, watched: list[str], vaults: list[str],
                 perps: list[str] | None = None) -> None:
        self.node, self.w3, self.dep, self.watched, self.vaults = node, w3, dep, watched, vaults
        self.perps = perps or []

    def rounds(self, n: int) -> Iterator[tuple[int, Path, Path]]:
        """``n`` rounds, each from the chain state this is called at (evm_snapshot / evm_revert):
        yields the round's index, the deployment file and a fresh SQLite store path."""
        with tempfile.TemporaryDirectory() as tmp:
            dep_path = self.write_deployment(Path(tmp) / "devnet.json")
            base = self.w3.provider.make_request("evm_snapshot", [])["result"]
            for r in range(n):
                if r:
                    self.w3.provider.make_request("evm_revert", [base])
                    base = self.w3.provider.make_request("evm_snapshot", [])["result"]
                yield r, dep_path, Path(tmp) / f"k{r}.db"

    def write_deployment(self, path: Path) -> Path:
        path.write_text(json.dumps({**self.dep, "rpc_url": self.node.url}))
        return path

    def feed(self, symbol: str):
        return self.w3.eth.contract(address=self.dep["feeds"][symbol]["address"],
                                    abi=C.third_party("MockV3Aggregator").abi)

    def price_tx(self, symbol: str, usd: float) -> str:
        """Send (not wait for) a feed update from the admin; returns the tx hash."""
        answer = round(usd * 10 ** self.dep["feeds"][symbol]["decimals"])
        return self.feed(symbol).functions.updateAnswer(answer).transact({"from": self.dep["roles"]["admin"]}).hex()


def add_watched(w3: Web3, dep: dict, n: int) -> list[str]:
    """``n`` Aave borrowers from ``BorrowerFactory`` (with the USDC they borrow supplied by the LP),
    appended to ``dep["positions"]`` as watched (holder "none")."""
    if n <= 0:
        return []
    roles = dep["roles"]
    admin, lp = roles["admin"], roles["lp"]
    d = Deployer(w3, admin)
    erc20 = C.ours("TestERC20")
    token = lambda sym: d.at(dep["tokens"][sym]["address"], erc20)  # noqa: E731
    weth, wbtc, usdc = token("WETH"), token("WBTC"), token("USDC")
    pool = d.at(dep["aave_v3"]["pool"], C.aave("Pool"))
    liquidity = n * 5 * 1_560 * USDC
    d.send(usdc.functions.mint(lp, liquidity))
    d.send(usdc.functions.approve(pool.address, MAX), sender=lp)
    d.send(pool.functions.supply(usdc.address, liquidity, lp, 0), sender=lp)
    factory = d.deploy(C.ours("BorrowerFactory"))
    spec = (pool.address, weth.address, E18, wbtc.address, 10**6, usdc.address, 500 * USDC, 1_560 * USDC)
    for first in range(0, n, 1_000):
        k = min(1_000, n - first)
        gas = min(BLOCK_GAS_LIMIT, 100_000 + k * 450_000)
        tx = factory.functions.spawnAave(k, spec).transact({"from": admin, "gas": gas})
        if w3.eth.wait_for_transaction_receipt(tx, timeout=600)["status"] != 1:
            raise RuntimeError("spawning watched borrowers failed")
    watched = list(factory.functions.borrowers(0, 0, n).call())
    dep.setdefault("positions", []).extend(
        {"id": f"watch{i}-aave", "protocol": "aave_v3", "address": pool.address, "account": a, "holder": "none",
         "vault": None, "owner": a} for i, a in enumerate(watched))
    return watched


def add_perp_vaults(w3: Web3, dep: dict, n: int, size_usd: int, floor: float) -> list[str]:
    """``n`` KeeperVaults each holding a GMX v1 ETH long (see the module doc), appended to
    ``dep["positions"]`` as vault-held."""
    from keeper.devnet.position_keeper import PositionKeeper

    roles, perp = dep["roles"], dep["perp"]
    admin, keeper = roles["admin"], roles["keeper"]
    d = Deployer(w3, admin)
    weth = d.at(dep["tokens"]["WETH"]["address"], C.ours("TestERC20"))
    gmx = d.at(perp["vault"], C.gmx("Vault"))
    router, pr = d.at(perp["router"], C.gmx("Router")), d.at(perp["position_router"], C.gmx("PositionRouter"))
    fee = perp["min_execution_fee"]
    m = perp["markets"]["ETH-long"]
    vaults = []
    for _ in range(n):
        v = d.deploy(C.ours("KeeperVault"), admin, keeper)
        d.send(v.functions.setCap(weth.address, 50 * E18, 500 * E18))
        d.send(v.functions.setReleaseCap(weth.address, 50 * E18))
        d.send(v.functions.setCap("0x" + "00" * 20, 10 * fee, 1_000 * fee))
        d.send(v.functions.setPerpMarket(gmx.address, m["collateral_token"], m["index_token"], True, True,
                                         round(floor * E18)))
        d.send(v.functions.setPerpRoute(gmx.address, pr.address, 10 * fee))
        d.send_value(v.address, E18, sender=admin)
        d.send(weth.functions.mint(v.address, 22 * E18))
        limit = gmx.functions.getMaxPrice(weth.address).call() * 101 // 100
        for target, data, value in (
                (weth.address, weth.encode_abi("approve", args=[router.address, MAX]), 0),
                (router.address, router.encode_abi("approvePlugin", args=[pr.address]), 0),
                (pr.address, pr.encode_abi("createIncreasePosition", args=[
                    [weth.address], weth.address, 2 * E18, 0, size_usd * 10**30, True, limit, fee, bytes(32),
                    "0x" + "00" * 20]), fee)):
            d.send(v.functions.execute(target, value, data), value=value)
        vaults.append(v.address)
    PositionKeeper(w3, pr.address, perp["position_keeper"]).step()
    dep["positions"] += [{"id": f"perp{i}-eth-long", "protocol": "perp", "address": gmx.address, "account": a,
                          "holder": "vault", "vault": a, "owner": admin, **m} for i, a in enumerate(vaults)]
    return vaults


def build(n_watch: int, n_vaults: int, *, borrow_usdc: int = 12_000, reserve_weth: int = 20, floor: float = 1.25,
          n_perps: int = 0, perp_size_usd: int = 16_000, perp_floor: float = 13.0, log=lambda _m: None,
          prune_history: int | None = None) -> Fleet:
    """``prune_history``: anvil keeps that many states in memory and writes none to disk (its
    ``--prune-history``); by default it spills old states to disk (gigabytes over a long bench, on the
    disk the keeper's SQLite journal commits to)."""
    floor_wad = round(floor * E18)
    extra = ["--prune-history", str(prune_history)] if prune_history is not None else []
    node = Anvil(extra_args=["--gas-limit", str(BLOCK_GAS_LIMIT), *extra]).start()
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 600}))
        dep = deploy_devnet(w3, seed=False)
        roles = dep["roles"]
        admin, lp, keeper = roles["admin"], roles["lp"], roles["keeper"]
        d = Deployer(w3, admin)
        erc20 = C.ours("TestERC20")
        token = lambda sym: d.at(dep["tokens"][sym]["address"], erc20)  # noqa: E731
        weth, usdc = token("WETH"), token("USDC")
        pool = d.at(dep["aave_v3"]["pool"], C.aave("Pool"))
        liquidity = n_vaults * borrow_usdc * USDC + 1_000_000 * USDC
        d.send(usdc.functions.mint(lp, liquidity))
        d.send(usdc.functions.approve(pool.address, MAX), sender=lp)
        d.send(pool.functions.supply(usdc.address, liquidity, lp, 0), sender=lp)
        log("devnet deployed, USDC liquidity supplied")

        dep["positions"] = []
        watched = add_watched(w3, dep, n_watch)
        if n_watch:
            log(f"{n_watch} watched Aave borrowers created")

        art = C.ours("KeeperVault")
        vaults: list[str] = []
        for _ in range(n_vaults):
            v = d.deploy(art, admin, keeper)
            d.send(v.functions.setCap(weth.address, 50 * E18, 500 * E18))
            d.send(v.functions.setReleaseCap(weth.address, 50 * E18))
            d.send(v.functions.setCap(usdc.address, 100_000 * USDC, 1_000_000 * USDC))
            for t in (weth, usdc):
                d.send(v.functions.setMarket(AAVE, pool.address, asset_key(t.address), True, floor_wad))
            d.send(weth.functions.mint(v.address, (10 + reserve_weth) * E18))
            for fn, args in ((weth.encode_abi("approve", args=[pool.address, MAX]), weth.address),
                             (pool.encode_abi("supply", args=[weth.address, 10 * E18, v.address, 0]), pool.address),
                             (pool.encode_abi("borrow", args=[usdc.address, borrow_usdc * USDC, 2, 0, v.address]),
                              pool.address)):
                d.send(v.functions.execute(args, 0, fn))
            vaults.append(v.address)
        log(f"{n_vaults} KeeperVaults with an Aave position each")

        dep["positions"][:0] = [{"id": f"vault{i}-aave", "protocol": "aave_v3", "address": pool.address, "account": a,
                                 "holder": "vault", "vault": a, "owner": admin} for i, a in enumerate(vaults)]
        perps = add_perp_vaults(w3, dep, n_perps, perp_size_usd, perp_floor) if n_perps else []
        if n_perps:
            log(f"{n_perps} KeeperVaults with a GMX v1 ETH long each ({dep['perp']['mode']})")
        return Fleet(node, w3, dep, watched, vaults, perps)
    except BaseException:
        node.stop()
        raise
