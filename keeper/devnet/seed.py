"""Seed the devnet: liquidity in every protocol, two users' KeeperVaults, and live positions.

- alice: every position is held by her KeeperVault (Aave WETH+WBTC/USDC, Morpho WETH/USDC, a 5x
  ETH long and a 3x BTC short on GMX v1), opened by the owner through ``execute``. GMX positions are
  opened as GMX's own UI does: in gated mode a ``PositionRouter.createIncreasePosition`` request that
  the position keeper executes, in direct mode ``Router.increasePosition`` (one atomic call).
- bob: his Aave and Morpho positions are held by his own address; his KeeperVault is authorised on
  them (aToken allowance, Morpho ``setAuthorization``, GMX ``Vault.addRouter``).
- carol: unprotected twins of alice's four positions (Aave, Morpho, the ETH long, the BTC short),
  held by her own address with no vault (the demo's control). Seeded after the vaults, so no
  contract address depends on them.
- dave: an Aave position in e-mode category 1 ("ETH correlated", LT 93%) held by his KeeperVault:
  10 WETH + 0.2 WBTC collateral, 8.5 WETH debt; health about 1.36 in e-mode, 1.24 without it.
- erin: watched only (no vault): one Aave account with three collateral assets (5 WETH, 0.3 WBTC,
  5,000 USDC) and two debts (8,000 USDC, 2 WETH).
- frank: an Aave position held by a KeeperVault with **no reserve at all** (10 WETH collateral,
  14,000 USDC debt: health 1.18), whose owner set up deleverage: Morpho Blue as the flash source, the
  WETH/USDC Uniswap v3 pool, the Chainlink feeds, 1 % slippage, caps on the WETH sold. The keeper
  can only protect it with its own collateral. Seeded last (nothing before it moves).
- gina: alice's Morpho position again (5 WETH, 6,800 USDC), held by her own address with no keeper,
  but opted in to Morpho's pre-liquidation (``seed_preliquidation``, after the pre-liquidation
  factory): fixed parameters close to what ``keeper preliq plan`` proposes for it (pre-LLTV 0.80,
  close factor 10 % rising to 100 % at the LLTV, incentive 1 % rising to 2.2 %). Her twin without it
  is carol's.
dave and erin come last (after an LP's WETH supply that their WETH borrows draw on), so nothing
seeded before them moved. All prices start at ETH 2,000, BTC 30,000, USDC 1; a drop of roughly
20-30% makes alice's, bob's and carol's positions liquidatable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer

ETH_EMODE = 1  # the devnet's e-mode category "ETH correlated" (keeper.devnet.deploy.AAVE_EMODES)

MAX = 2**256 - 1
E18 = 10**18
USD30 = 10**30

AAVE, MORPHO, PERP = 0, 1, 2
NATIVE = "0x" + "00" * 20  # the KeeperVault's cap key for ether (PositionRouter execution fees)


@dataclass(frozen=True)
class Roles:
    admin: str
    keeper: str
    lp: str
    alice: str
    bob: str
    liquidator: str
    carol: str
    dave: str
    erin: str
    position_keeper: str
    frank: str
    gina: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def asset_key(asset: str) -> bytes:
    """The KeeperVault market key of an Aave asset: bytes32(uint256(uint160(asset)))."""
    return bytes(12) + bytes.fromhex(Web3.to_checksum_address(asset)[2:])


class _Seeder:
    def __init__(self, w3: Web3, d: Deployer, dep: dict[str, Any], roles: Roles) -> None:
        self.w3, self.d, self.dep, self.roles = w3, d, dep, roles
        self.erc20 = C.ours("TestERC20")
        self.vault_art = C.ours("KeeperVault")
        self.pool = d.at(dep["aave_v3"]["pool"], C.aave_for(dep["aave_v3"].get("version"), "Pool"))
        self.morpho = d.at(dep["morpho_blue"]["morpho"], C.third_party("Morpho"))
        self.perp = d.at(dep["perp"]["vault"], C.gmx("Vault"))
        self.router = d.at(dep["perp"]["router"], C.gmx("Router"))
        self.position_router = d.at(dep["perp"]["position_router"], C.gmx("PositionRouter"))
        self.gated = dep["perp"]["mode"] == "gated"
        self.market = dep["morpho_blue"]["markets"]["WETH/USDC"]
        self.params = (self.market["loan_token"], self.market["collateral_token"], self.market["oracle"],
                       self.market["irm"], self.market["lltv"])

    def token(self, sym: str) -> Contract:
        return self.d.at(self.dep["tokens"][sym]["address"], self.erc20)

    def mint(self, sym: str, to: str, amount: int) -> None:
        self.d.send(self.token(sym).functions.mint(to, amount), sender=self.roles.admin)

    # --- liquidity -------------------------------------------------------------------------
    def liquidity(self) -> None:
        lp = self.roles.lp
        usdc = self.token("USDC")
        self.mint("USDC", lp, 3_000_000 * 10**6)
        self.d.send(usdc.functions.approve(self.pool.address, MAX), sender=lp)
        self.d.send(self.pool.functions.supply(usdc.address, 2_000_000 * 10**6, lp, 0), sender=lp)
        self.d.send(usdc.functions.approve(self.morpho.address, MAX), sender=lp)
        self.d.send(self.morpho.functions.supply(self.params, 1_000_000 * 10**6, 0, lp, b""), sender=lp)

    # --- vaults ----------------------------------------------------------------------------
    def vault(self, owner: str) -> Contract:
        v = self.d.deploy(self.vault_art, owner, self.roles.keeper)

        def send(fn: ContractFunction) -> TxReceipt:
            return self.d.send(fn, sender=owner)

        send(v.functions.setCap(self.token("WETH").address, 50 * E18, 200 * E18))
        send(v.functions.setCap(self.token("WBTC").address, 2 * 10**8, 10 * 10**8))
        send(v.functions.setCap(self.token("USDC").address, 100_000 * 10**6, 500_000 * 10**6))
        # What the keeper may release (take out of positions back into the vault) per window: a stolen
        # key can lower the positions' health only this far per day, and never below the floors.
        send(v.functions.setReleaseCap(self.token("WETH").address, 20 * E18))
        send(v.functions.setReleaseCap(self.token("WBTC").address, 10**8))
        send(v.functions.setReleaseCap(self.token("USDC").address, 40_000 * 10**6))
        for sym in ("WETH", "WBTC", "USDC"):
            send(v.functions.setMarket(AAVE, self.pool.address, asset_key(self.token(sym).address), True,
                                       125 * E18 // 100))
        send(v.functions.setMarket(MORPHO, self.morpho.address, bytes.fromhex(self.market["id"][2:]), True,
                                   115 * E18 // 100))
        for m in self.dep["perp"]["markets"].values():
            # Perp health counts in units of the maximum leverage (50x): a floor of 5 means at most 10x.
            send(v.functions.setPerpMarket(self.perp.address, m["collateral_token"], m["index_token"], m["is_long"],
                                           True, 5 * E18))
        # Margin top-ups on gated GMX go through PositionRouter requests paid in ether: the owner
        # names the PositionRouter, caps the fee per request (10x GMX's minimum) and the ether the
        # keeper may spend on fees, and leaves the vault 1 ETH for them.
        min_fee = self.dep["perp"]["min_execution_fee"]
        send(v.functions.setPerpRoute(self.perp.address, self.position_router.address, 10 * min_fee))
        send(v.functions.setCap(NATIVE, 10 * min_fee, 200 * min_fee))
        self.d.send_value(v.address, E18, sender=owner)
        return v

    def exec(self, vault: Contract, owner: str, target: Contract, fn_name: str, args: list[Any],
             value: int = 0) -> None:
        data = target.encode_abi(fn_name, args=args)
        self.d.send(vault.functions.execute(target.address, value, data), sender=owner, value=value)

    def open_perp(self, market: str, amount: int, size_usd: int, owner: str, vault: Contract | None = None) -> None:
        """Open a GMX v1 position for ``vault`` (through the owner's ``execute``) or for ``owner``
        itself, with ``amount`` of the market's collateral token and ``size_usd`` (whole dollars)."""
        m = self.dep["perp"]["markets"][market]
        coll, index, is_long = m["collateral_token"], m["index_token"], m["is_long"]
        token = self.d.at(coll, self.erc20)
        # The worst price accepted: 1% above the mark for a long, 1% below for a short.
        price = (self.perp.functions.getMaxPrice(index).call() * 101 // 100 if is_long
                 else self.perp.functions.getMinPrice(index).call() * 99 // 100)
        call = (lambda target, fn, args, value=0: self.exec(vault, owner, target, fn, args, value)) if vault else \
            (lambda target, fn, args, value=0: self.d.send(getattr(target.functions, fn)(*args), sender=owner,
                                                          value=value))
        call(token, "approve", [self.router.address, MAX])
        if not self.gated:
            call(self.router, "increasePosition", [[coll], index, amount, 0, size_usd * USD30, is_long, price])
            return
        fee = self.dep["perp"]["min_execution_fee"]
        call(self.router, "approvePlugin", [self.position_router.address])
        call(self.position_router, "createIncreasePosition",
             [[coll], index, amount, 0, size_usd * USD30, is_long, price, fee, bytes(32), "0x" + "00" * 20], fee)
        self.execute_requests()

    def execute_requests(self) -> None:
        """What the devnet's position keeper does every block, done here at once while seeding."""
        pr = self.position_router
        _inc_start, inc_len, _dec_start, _dec_len = pr.functions.getRequestQueueLengths().call()
        keeper = self.dep["perp"]["position_keeper"]
        self.d.send(pr.functions.executeIncreasePositions(inc_len, keeper), sender=keeper)
        if pr.functions.getRequestQueueLengths().call()[0] != inc_len:
            raise RuntimeError("a seeded GMX increase request was not executed")

    # --- positions -------------------------------------------------------------------------
    def alice(self) -> dict[str, Any]:
        owner = self.roles.alice
        v = self.vault(owner)
        weth, wbtc, usdc = self.token("WETH"), self.token("WBTC"), self.token("USDC")
        # Position collateral plus a reserve the keeper may use.
        self.mint("WETH", v.address, 10 * E18 + 5 * E18 + 2 * E18 + 5 * E18)
        self.mint("WBTC", v.address, 5 * 10**7 + 2 * 10**7)
        self.mint("USDC", v.address, 3_000 * 10**6 + 20_000 * 10**6)
        for t in (weth, wbtc, usdc):
            self.exec(v, owner, t, "approve", [self.pool.address, MAX])
        self.exec(v, owner, self.pool, "supply", [weth.address, 10 * E18, v.address, 0])
        self.exec(v, owner, self.pool, "supply", [wbtc.address, 5 * 10**7, v.address, 0])
        self.exec(v, owner, self.pool, "borrow", [usdc.address, 20_000 * 10**6, 2, 0, v.address])
        self.exec(v, owner, weth, "approve", [self.morpho.address, MAX])
        self.exec(v, owner, usdc, "approve", [self.morpho.address, MAX])
        self.exec(v, owner, self.morpho, "supplyCollateral", [self.params, 5 * E18, v.address, b""])
        self.exec(v, owner, self.morpho, "borrow", [self.params, 6_800 * 10**6, 0, v.address, v.address])
        self.open_perp("ETH-long", 2 * E18, 20_000, owner, v)
        self.open_perp("BTC-short", 3_000 * 10**6, 9_000, owner, v)
        return {"address": v.address, "owner": owner}

    def bob(self) -> dict[str, Any]:
        owner = self.roles.bob
        v = self.vault(owner)
        weth, usdc = self.token("WETH"), self.token("USDC")
        self.mint("WETH", owner, 8 * E18)
        self.mint("WETH", v.address, 3 * E18)
        self.mint("USDC", v.address, 10_000 * 10**6)
        self.d.send(weth.functions.approve(self.pool.address, MAX), sender=owner)
        self.d.send(self.pool.functions.supply(weth.address, 5 * E18, owner, 0), sender=owner)
        self.d.send(self.pool.functions.borrow(usdc.address, 6_000 * 10**6, 2, 0, owner), sender=owner)
        self.d.send(weth.functions.approve(self.morpho.address, MAX), sender=owner)
        self.d.send(self.morpho.functions.supplyCollateral(self.params, 3 * E18, owner, b""), sender=owner)
        self.d.send(self.morpho.functions.borrow(self.params, 4_000 * 10**6, 0, owner, owner), sender=owner)
        # Authorise the vault on the owner-held positions (needed to withdraw excess from them).
        a_weth = self.d.at(self.dep["aave_v3"]["a_tokens"]["WETH"], self.erc20)
        self.d.send(a_weth.functions.approve(v.address, MAX), sender=owner)
        self.d.send(self.morpho.functions.setAuthorization(v.address, True), sender=owner)
        self.d.send(self.perp.functions.addRouter(v.address), sender=owner)
        return {"address": v.address, "owner": owner}

    def carol(self) -> None:
        owner = self.roles.carol
        weth, wbtc, usdc = self.token("WETH"), self.token("WBTC"), self.token("USDC")
        self.mint("WETH", owner, 10 * E18)
        self.mint("WBTC", owner, 5 * 10**7)
        self.d.send(weth.functions.approve(self.pool.address, MAX), sender=owner)
        self.d.send(wbtc.functions.approve(self.pool.address, MAX), sender=owner)
        self.d.send(self.pool.functions.supply(weth.address, 10 * E18, owner, 0), sender=owner)
        self.d.send(self.pool.functions.supply(wbtc.address, 5 * 10**7, owner, 0), sender=owner)
        self.d.send(self.pool.functions.borrow(usdc.address, 20_000 * 10**6, 2, 0, owner), sender=owner)
        # Twins of alice's Morpho position and of both perps.
        self.mint("WETH", owner, 5 * E18 + 2 * E18)
        self.mint("USDC", owner, 3_000 * 10**6)
        self.d.send(weth.functions.approve(self.morpho.address, MAX), sender=owner)
        self.d.send(self.morpho.functions.supplyCollateral(self.params, 5 * E18, owner, b""), sender=owner)
        self.d.send(self.morpho.functions.borrow(self.params, 6_800 * 10**6, 0, owner, owner), sender=owner)
        self.open_perp("ETH-long", 2 * E18, 20_000, owner)
        self.open_perp("BTC-short", 3_000 * 10**6, 9_000, owner)

    def weth_liquidity(self) -> None:
        """WETH for dave's and erin's WETH borrows to draw on (keeps WETH's utilisation, hence the
        interest alice's, bob's and carol's WETH collateral earns, near zero)."""
        lp = self.roles.lp
        weth = self.token("WETH")
        self.mint("WETH", lp, 300 * E18)
        self.d.send(weth.functions.approve(self.pool.address, MAX), sender=lp)
        self.d.send(self.pool.functions.supply(weth.address, 300 * E18, lp, 0), sender=lp)

    def dave(self) -> dict[str, Any]:
        owner = self.roles.dave
        v = self.vault(owner)
        weth, wbtc, usdc = self.token("WETH"), self.token("WBTC"), self.token("USDC")
        # Position collateral plus a reserve (3 WETH, 5,000 USDC) the keeper may use.
        self.mint("WETH", v.address, 10 * E18 + 3 * E18)
        self.mint("WBTC", v.address, 2 * 10**7)
        self.mint("USDC", v.address, 5_000 * 10**6)
        for t in (weth, wbtc, usdc):
            self.exec(v, owner, t, "approve", [self.pool.address, MAX])
        self.exec(v, owner, self.pool, "supply", [weth.address, 10 * E18, v.address, 0])
        self.exec(v, owner, self.pool, "supply", [wbtc.address, 2 * 10**7, v.address, 0])
        self.exec(v, owner, self.pool, "setUserEMode", [ETH_EMODE])
        self.exec(v, owner, self.pool, "borrow", [weth.address, 85 * E18 // 10, 2, 0, v.address])
        return {"address": v.address, "owner": owner}

    def frank(self) -> dict[str, Any]:
        owner = self.roles.frank
        v = self.vault(owner)
        weth, usdc = self.token("WETH"), self.token("USDC")
        self.mint("WETH", v.address, 10 * E18)
        self.exec(v, owner, weth, "approve", [self.pool.address, MAX])
        self.exec(v, owner, self.pool, "supply", [weth.address, 10 * E18, v.address, 0])
        self.exec(v, owner, self.pool, "borrow", [usdc.address, 14_000 * 10**6, 2, 0, v.address])
        self.d.send(v.functions.withdraw(usdc.address, MAX), sender=owner)  # borrowed to spend: no reserve
        self.d.send(v.functions.withdraw(NATIVE, MAX), sender=owner)  # no ether either (no perps here)
        uni = self.dep["uniswap_v3"]

        def send(fn: ContractFunction) -> TxReceipt:
            return self.d.send(fn, sender=owner)

        send(v.functions.setFlashSource(self.morpho.address, 1))  # Morpho Blue: free flash loans
        send(v.functions.setSwapPool(uni["pools"]["WETH/USDC"]["address"], True))
        for sym in ("WETH", "USDC"):
            send(v.functions.setPriceFeed(self.token(sym).address, self.dep["tokens"][sym]["feed"], 86_400))
        send(v.functions.setMaxSlippage(100))  # 1 %: the 0.3 % pool's fee and impact must fit inside
        send(v.functions.setDeleverageCap(weth.address, 5 * E18, 10 * E18))
        return {"address": v.address, "owner": owner}

    def erin(self) -> None:
        owner = self.roles.erin
        weth, usdc = self.token("WETH"), self.token("USDC")
        for sym, amount in (("WETH", 5 * E18), ("WBTC", 3 * 10**7), ("USDC", 5_000 * 10**6)):
            self.mint(sym, owner, amount)
            token = self.token(sym)
            self.d.send(token.functions.approve(self.pool.address, MAX), sender=owner)
            self.d.send(self.pool.functions.supply(token.address, amount, owner, 0), sender=owner)
        self.d.send(self.pool.functions.borrow(usdc.address, 8_000 * 10**6, 2, 0, owner), sender=owner)
        self.d.send(self.pool.functions.borrow(weth.address, 2 * E18, 2, 0, owner), sender=owner)


def seed_positions(w3: Web3, d: Deployer, dep: dict[str, Any], roles: Roles) -> None:
    s = _Seeder(w3, d, dep, roles)
    s.liquidity()
    alice, bob = s.alice(), s.bob()
    s.carol()
    s.weth_liquidity()
    dave = s.dave()
    s.erin()
    frank = s.frank()
    dep["keeper_vaults"] = {"alice": alice, "bob": bob, "dave": dave, "frank": frank}
    mid = dep["morpho_blue"]["markets"]["WETH/USDC"]["id"]
    pool, morpho, perp = dep["aave_v3"]["pool"], dep["morpho_blue"]["morpho"], dep["perp"]["vault"]
    pm = dep["perp"]["markets"]
    dep["positions"] = [
        {"id": "alice-aave", "protocol": "aave_v3", "address": pool, "account": alice["address"],
         "holder": "vault", "vault": alice["address"], "owner": alice["owner"],
         "note": "10 WETH + 0.5 WBTC collateral, 20,000 USDC debt"},
        {"id": "alice-morpho", "protocol": "morpho_blue", "address": morpho, "market": mid, "account": alice["address"],
         "holder": "vault", "vault": alice["address"], "owner": alice["owner"],
         "note": "5 WETH collateral, 6,800 USDC debt, LLTV 0.86"},
        {"id": "alice-perp-eth-long", "protocol": "perp", "address": perp, "account": alice["address"],
         "holder": "vault", "vault": alice["address"], "owner": alice["owner"], **pm["ETH-long"],
         "note": "ETH long 5x: 2 WETH collateral, 20,000 USD size"},
        {"id": "alice-perp-btc-short", "protocol": "perp", "address": perp, "account": alice["address"],
         "holder": "vault", "vault": alice["address"], "owner": alice["owner"], **pm["BTC-short"],
         "note": "BTC short 3x: 3,000 USDC collateral, 9,000 USD size"},
        {"id": "bob-aave", "protocol": "aave_v3", "address": pool, "account": bob["owner"],
         "holder": "owner", "vault": bob["address"], "owner": bob["owner"],
         "note": "5 WETH collateral, 6,000 USDC debt, held by the owner's address"},
        {"id": "bob-morpho", "protocol": "morpho_blue", "address": morpho, "market": mid, "account": bob["owner"],
         "holder": "owner", "vault": bob["address"], "owner": bob["owner"],
         "note": "3 WETH collateral, 4,000 USDC debt, LLTV 0.86, held by the owner's address"},
        {"id": "carol-aave-unprotected", "protocol": "aave_v3", "address": pool, "account": roles.carol,
         "holder": "none", "vault": None, "owner": roles.carol,
         "note": "twin of alice-aave without a keeper"},
        {"id": "carol-morpho-unprotected", "protocol": "morpho_blue", "address": morpho, "market": mid,
         "account": roles.carol, "holder": "none", "vault": None, "owner": roles.carol,
         "note": "twin of alice-morpho without a keeper"},
        {"id": "carol-perp-eth-long-unprotected", "protocol": "perp", "address": perp, "account": roles.carol,
         "holder": "none", "vault": None, "owner": roles.carol, **pm["ETH-long"],
         "note": "twin of alice-perp-eth-long without a keeper"},
        {"id": "carol-perp-btc-short-unprotected", "protocol": "perp", "address": perp, "account": roles.carol,
         "holder": "none", "vault": None, "owner": roles.carol, **pm["BTC-short"],
         "note": "twin of alice-perp-btc-short without a keeper"},
        {"id": "dave-aave-emode", "protocol": "aave_v3", "address": pool, "account": dave["address"],
         "holder": "vault", "vault": dave["address"], "owner": dave["owner"], "emode": ETH_EMODE,
         "note": "e-mode 1 (ETH correlated): 10 WETH + 0.2 WBTC collateral, 8.5 WETH debt"},
        # "watch": followed and reported, never acted on (no vault), and not one of carol's twins.
        {"id": "erin-aave-multi", "protocol": "aave_v3", "address": pool, "account": roles.erin,
         "holder": "watch", "vault": None, "owner": roles.erin,
         "note": "5 WETH + 0.3 WBTC + 5,000 USDC collateral, 8,000 USDC + 2 WETH debt"},
        {"id": "frank-aave-noreserve", "protocol": "aave_v3", "address": pool, "account": frank["address"],
         "holder": "vault", "vault": frank["address"], "owner": frank["owner"],
         "note": "10 WETH collateral, 14,000 USDC debt; the vault holds no reserve: deleverage only"},
    ]


# gina's pre-liquidation: (preLltv, preLCF1, preLCF2, preLIF1, preLIF2), 1e18-scaled.
GINA_PRELIQ = (80 * E18 // 100, 10 * E18 // 100, E18, 101 * E18 // 100, 1022 * E18 // 1000)


def seed_preliquidation(w3: Web3, d: Deployer, dep: dict[str, Any], roles: Roles) -> None:
    """gina's Morpho position and her pre-liquidation (see the module doc): needs the devnet's
    pre-liquidation factory (``dep["morpho_blue"]["preliq_factory"]``)."""
    s = _Seeder(w3, d, dep, roles)
    owner = roles.gina
    weth = s.token("WETH")
    market = dep["morpho_blue"]["markets"]["WETH/USDC"]
    params = (market["loan_token"], market["collateral_token"], market["oracle"], market["irm"], market["lltv"])
    mid = bytes.fromhex(market["id"][2:])
    s.mint("WETH", owner, 5 * E18)
    d.send(weth.functions.approve(s.morpho.address, MAX), sender=owner)
    d.send(s.morpho.functions.supplyCollateral(params, 5 * E18, owner, b""), sender=owner)
    d.send(s.morpho.functions.borrow(params, 6_800 * 10**6, 0, owner, owner), sender=owner)
    factory = d.at(dep["morpho_blue"]["preliq_factory"], C.preliq("PreLiquidationFactory"))
    rc = d.send(factory.functions.createPreLiquidation(mid, (*GINA_PRELIQ, market["oracle"])), sender=owner)
    (ev,) = factory.events.CreatePreLiquidation().process_receipt(rc, errors=DISCARD)
    pre = ev.args.preLiquidation
    d.send(s.morpho.functions.setAuthorization(pre, True), sender=owner)
    dep["preliquidations"] = [{"position": "gina-morpho-preliq", "address": pre, "market": market["id"],
                               "params": [str(x) for x in GINA_PRELIQ], "oracle": market["oracle"]}]
    dep["positions"].append(
        {"id": "gina-morpho-preliq", "protocol": "morpho_blue", "address": s.morpho.address, "market": market["id"],
         "account": owner, "holder": "preliq", "vault": None, "owner": owner,
         "note": "5 WETH collateral, 6,800 USDC debt, LLTV 0.86; no keeper, opted in to Morpho pre-liquidation"})
