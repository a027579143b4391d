"""A fleet of positions on a fresh anvil for the daemon benchmarks (bench/reaction.py, bench/soak.py).

- ``n_watch`` Aave v3 borrowers created by ``contracts/bench/BorrowerFactory.sol`` (minimal clones
  that hold real Aave positions as their own address, health ~1.06..3.3 at ETH 2,000): watched by the
  keeper, which reads them every block but cannot act for them (no vault);
- ``n_vaults`` KeeperVaults, each holding one real Aave position of its own (10 WETH collateral,
  ``borrow_usdc`` USDC debt: health 1.375 at ETH 2,000 with the default 12,000) and a WETH reserve
  the keeper may top up from. Owner: the admin account; keeper role: account 1 (the devnet's).

The keeper config is the devnet deployment file with these positions, so ``chain_from_deployment``
turns it into a chain config exactly as for ``keeper devnet up``.
"""

from __future__ import annotations

import json
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
    def __init__(self, node: Anvil, w3: Web3, dep: dict, watched: list[str], vaults: list[str]) -> None:
        self.node, self.w3, self.dep, self.watched, self.vaults = node, w3, dep, watched, vaults

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
        tx = factory.functions.spawnAave(k, spec).transact({"from": admin, "gas": min(BLOCK_GAS_LIMIT, 100_000 + k * 450_000)})
        if w3.eth.wait_for_transaction_receipt(tx, timeout=600)["status"] != 1:
            raise RuntimeError("spawning watched borrowers failed")
    watched = list(factory.functions.borrowers(0, 0, n).call())
    dep.setdefault("positions", []).extend(
        {"id": f"watch{i}-aave", "protocol": "aave_v3", "address": pool.address, "account": a, "holder": "none",
         "vault": None, "owner": a} for i, a in enumerate(watched))
    return watched


def build(n_watch: int, n_vaults: int, *, borrow_usdc: int = 12_000, reserve_weth: int = 20, floor: float = 1.25,
          log=lambda _m: None) -> Fleet:
    floor_wad = round(floor * E18)
    node = Anvil(extra_args=["--gas-limit", str(BLOCK_GAS_LIMIT)]).start()
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
        return Fleet(node, w3, dep, watched, vaults)
    except BaseException:
        node.stop()
        raise
