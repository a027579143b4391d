"""GMX v1 on the devnet, for the KeeperVault tests: open positions as GMX's own UI does in each mode,
move a Chainlink feed, probe a liquidation the way the mode allows it, and an independent Python
twin of ``HealthLib.perp`` built only from GMX's own views.

The twin charges the position fee at the rate liquidations run with (the Timelock's when the Vault
is in private liquidation mode, the Vault's otherwise) with GMX's formula, never through
``Vault.getPositionFee``, so it does not share the Solidity code's branch."""

from __future__ import annotations

from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.devnet.position_keeper import PositionKeeper

E18, USD30 = 10**18, 10**30
MAX = 2**256 - 1
ZERO = "0x" + "00" * 20
PERP = 2
BPS = 10_000
GMX_ABIS = [C.gmx("Vault").abi, C.gmx("PositionRouter").abi, C.gmx("Router").abi]
NOT_LIQUIDATABLE = "Vault: position cannot be liquidated"


def market_key(w3: Web3, coll: str, index: str, is_long: bool) -> bytes:
    """The KeeperVault's perp market key: keccak256(abi.encode(coll, index, isLong))."""
    return Web3.keccak(w3.codec.encode(["address", "address", "bool"], [coll, index, is_long]))


class Gmx:
    """Handles on one devnet's GMX v1 deployment (``dep["perp"]``)."""

    def __init__(self, w3: Web3, dep: dict, d: Deployer) -> None:
        perp = dep["perp"]
        self.w3, self.dep, self.d = w3, dep, d
        self.mode = perp["mode"]
        self.gated = self.mode == "gated"
        self.vault = d.at(perp["vault"], C.gmx("Vault"))
        self.router = d.at(perp["router"], C.gmx("Router"))
        self.position_router = d.at(perp["position_router"], C.gmx("PositionRouter"))
        self.position_manager = d.at(perp["position_manager"], C.gmx("PositionManager"))
        self.timelock = d.at(perp["timelock"], C.gmx("Timelock"))
        self.keeper = PositionKeeper(w3, perp["position_router"], perp["position_keeper"])
        self.liquidator = perp["liquidator"]
        self.fee = perp["min_execution_fee"]
        self.markets = perp["markets"]
        self.admin = dep["roles"]["admin"]
        self.erc20 = C.ours("TestERC20")
        self.aggregator = C.third_party("MockV3Aggregator")

    # ---- markets and tokens
    def params(self, market: str) -> tuple[str, str, bool]:
        m = self.markets[market]
        return m["collateral_token"], m["index_token"], m["is_long"]

    def key(self, market: str) -> bytes:
        return market_key(self.w3, *self.params(market))

    def token(self, address: str):
        return self.d.at(address, self.erc20)

    def set_price(self, sym: str, answer: int) -> None:
        """Move the Chainlink feed of ``sym`` (8 decimals) that GMX's VaultPriceFeed reads."""
        feed = self.d.at(self.dep["tokens"][sym]["feed"], self.aggregator)
        self.d.send(feed.functions.updateAnswer(answer), sender=self.admin)

    def sync_funding(self, market: str) -> dict:
        coll, index, _ = self.params(market)
        return self.d.send(self.vault.functions.updateCumulativeFundingRate(coll, index), sender=self.admin)

    def fresh_interval(self, *markets: str) -> int:
        """Move to 1 s into the next funding interval and bring the markets' funding up to date
        there: the next hour of chain time charges no new funding (exact collateral checks across
        several blocks). Returns that timestamp."""
        interval = self.vault.functions.fundingInterval().call()
        now = self.w3.eth.get_block("latest")["timestamp"]
        ts = (now // interval + 1) * interval + 1
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
        for m in markets:
            self.sync_funding(m)
        return ts

    def position(self, account: str, market: str, block="latest") -> tuple:
        """GMX's getPosition: (size, collateral, averagePrice, entryFundingRate, reserveAmount,
        realisedPnl, hasRealisedProfit, lastIncreasedTime)."""
        return tuple(self.vault.functions.getPosition(account, *self.params(market)).call(block_identifier=block))

    def funding_fee(self, account: str, market: str) -> int:
        """What GMX charges the position for funding at its next change (as of the last update)."""
        size, _, _, entry, *_ = self.position(account, market)
        return self.vault.functions.getFundingFee(account, *self.params(market), size, entry).call()

    # ---- opening positions as GMX's UI does
    def open(self, market: str, amount: int, size_usd: int, account: str, *, kv=None, owner: str | None = None,
             mint: bool = True) -> None:
        """Open (or increase) ``account``'s position with ``amount`` collateral tokens and ``size_usd``
        whole dollars of size. ``kv``: the KeeperVault holding it (``account`` is then the vault and
        ``owner`` sends through its ``execute``). Gated: a PositionRouter request, executed at once
        by the devnet's position keeper; direct: ``Router.increasePosition``."""
        coll, index, is_long = self.params(market)
        token = self.token(coll)
        if mint:
            self.d.send(token.functions.mint(account, amount), sender=self.admin)
        price = (self.vault.functions.getMaxPrice(index).call() * 101 // 100 if is_long
                 else self.vault.functions.getMinPrice(index).call() * 99 // 100)

        def call(target, fn: str, args: list, value: int = 0):
            if kv is None:
                return self.d.send(getattr(target.functions, fn)(*args), sender=account, value=value)
            data = target.encode_abi(fn, args=args)
            return self.d.send(kv.functions.execute(target.address, value, data), sender=owner, value=value)

        call(token, "approve", [self.router.address, amount])
        if not self.gated:
            call(self.router, "increasePosition", [[coll], index, amount, 0, size_usd * USD30, is_long, price])
            return
        call(self.router, "approvePlugin", [self.position_router.address])
        call(self.position_router, "createIncreasePosition",
             [[coll], index, amount, 0, size_usd * USD30, is_long, price, self.fee, bytes(32), ZERO], self.fee)
        assert self.keeper.step() >= 1
        assert self.position(account, market)[0] > 0, "the position keeper did not open the position"

    # ---- the protocol's own rules, independent of our Solidity
    def liquidation_bps(self, block="latest") -> int:
        """Private liquidation mode: the PositionManager liquidates inside the governor's
        ``enableLeverage``, at a GMX Timelock's ``marginFeeBasisPoints``; a governor without code
        (an EOA) has no such fee, and its own liquidators are charged the Vault's."""
        v = self.vault.functions
        current = v.marginFeeBasisPoints().call(block_identifier=block)
        if not v.inPrivateLiquidationMode().call(block_identifier=block):
            return current
        gov = v.gov().call(block_identifier=block)
        if not self.w3.eth.get_code(gov, block_identifier=block):
            return current
        return self.d.at(gov, C.gmx("Timelock")).functions.marginFeeBasisPoints().call(block_identifier=block)

    def health(self, account: str, market: str, block="latest") -> int:
        """VaultUtils.validateLiquidation(..., false) as a ratio (see HealthLib.perp)."""
        coll, index, is_long = self.params(market)
        v = self.vault.functions
        size, collateral, avg, entry, _, _, _, last = self.position(account, market, block)
        if size == 0:
            return MAX
        has_profit, delta = v.getDelta(index, size, avg, is_long, last).call(block_identifier=block)
        if not has_profit and collateral < delta:
            return 0
        remaining = collateral + delta if has_profit else collateral - delta
        bps = self.liquidation_bps(block)
        fees = (v.getFundingFee(account, coll, index, is_long, size, entry).call(block_identifier=block)
                + size - size * (BPS - bps) // BPS)
        if remaining < fees:
            return 0
        by_leverage = remaining * E18 * v.maxLeverage().call(block_identifier=block) // (size * BPS)
        liquidation_fee = v.liquidationFeeUsd().call(block_identifier=block)
        if liquidation_fee == 0:
            return by_leverage
        return min(by_leverage, (remaining - fees) * E18 // liquidation_fee)

    def liquidatable(self, account: str, market: str, *, manager: bool | None = None) -> bool:
        """Whether a liquidation of the position goes through now (eth_call, nothing changes):
        gated through the PositionManager from its registered liquidator, direct on the Vault from
        anyone (``manager=False``: on the Vault from the liquidator, whatever the mode). A refusal
        must be GMX's "cannot be liquidated", not some other failure."""
        coll, index, is_long = self.params(market)
        if manager is False:
            fn, sender = self.vault.functions.liquidatePosition(account, coll, index, is_long,
                                                                self.liquidator), self.liquidator
        elif self.gated:
            fn, sender = self.position_manager.functions.liquidatePosition(account, coll, index, is_long,
                                                                           self.liquidator), self.liquidator
        else:
            fn, sender = self.vault.functions.liquidatePosition(account, coll, index, is_long, self.admin), self.admin
        try:
            fn.call({"from": sender})
        except (ContractLogicError, ContractCustomError) as e:
            assert NOT_LIQUIDATABLE in str(e), e
            return False
        return True
