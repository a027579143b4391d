"""Aave v3 (and forks with the same interface, e.g. Spark): positions of accounts at a Pool.

Per account and block: ``Pool.getUserAccountData`` (the health factor exactly as the pool computes
it, e-mode included), ``Pool.getUserEMode`` and ``PoolDataProvider.getUserReserveData`` for every
reserve. Reserve metadata (decimals, liquidation thresholds, e-mode categories) is read by
``prepare`` and cached; prices come from ``AaveOracle.getAssetsPrices`` each tick (the prices the
pool itself uses; USD with 8 decimals on Aave v3 mainnet and the devnet)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import decode

from keeper.chain.multicall import Call, Multicall, Result
from keeper.domain import Asset, Leg, Position, Protocol, Side
from keeper.protocols.base import (Adapter, ReadContext, ReadPlan, address_word, enc_address, enc_uint, price_issue,
                                   word)

SEL_ACCOUNT_DATA = bytes.fromhex("bf92857c")
SEL_USER_RESERVE = bytes.fromhex("28dd2d01")
SEL_USER_EMODE = bytes.fromhex("eddf1b79")
SEL_RESERVE_CONFIG = bytes.fromhex("3e150141")
SEL_ALL_RESERVES = bytes.fromhex("b316ff89")
SEL_RESERVE_EMODE = bytes.fromhex("163a0f20")
SEL_EMODE_DATA = bytes.fromhex("6c6f6ae1")
SEL_ASSETS_PRICES = bytes.fromhex("9d23d9f2")
BPS = 10_000


@dataclass(frozen=True)
class Reserve:
    asset: Asset
    liquidation_threshold_bps: int
    ltv_bps: int
    liquidation_bonus_bps: int
    emode_category: int
    usable_as_collateral: bool


@dataclass(frozen=True)
class EModeCategory:
    liquidation_threshold_bps: int
    price_source: str


class AaveV3Adapter(Adapter):
    protocol = Protocol.AAVE_V3

    def __init__(self, chain: str, pool: str, data_provider: str, oracle: str, *, price_decimals: int = 8,
                 refresh_blocks: int = 300) -> None:
        self.chain = chain
        self.pool = pool
        self.data_provider = data_provider
        self.oracle = oracle
        self.price_scale = 10**price_decimals
        self.refresh_blocks = refresh_blocks
        self.reserves: list[Reserve] = []
        self.emode: dict[int, EModeCategory] = {}
        self._prepared_at: int | None = None

    # --- metadata ----------------------------------------------------------------------------
    def prepare(self, mc: Multicall, block: int) -> None:
        if self._prepared_at is not None and block - self._prepared_at < self.refresh_blocks:
            return
        (tokens,) = mc.call([Call(self.data_provider, SEL_ALL_RESERVES, allow_failure=False)], block)
        (pairs,) = decode(["(string,address)[]"], tokens.data)
        calls = []
        for _sym, addr in pairs:
            calls.append(Call(self.data_provider, SEL_RESERVE_CONFIG + enc_address(addr), allow_failure=False))
            calls.append(Call(self.data_provider, SEL_RESERVE_EMODE + enc_address(addr), allow_failure=False))
        results = mc.call(calls, block)
        reserves = []
        for k, (sym, addr) in enumerate(pairs):
            cfg, em = results[2 * k].data, results[2 * k + 1].data
            # getReserveConfigurationData: decimals, ltv, liquidationThreshold, liquidationBonus,
            # reserveFactor, usageAsCollateralEnabled, borrowingEnabled, stableBorrowRateEnabled, isActive, isFrozen
            reserves.append(Reserve(Asset(sym, addr, word(cfg, 0)), word(cfg, 2), word(cfg, 1), word(cfg, 3),
                                    word(em, 0), bool(word(cfg, 5))))
        categories = sorted({r.emode_category for r in reserves if r.emode_category})
        emode = {}
        if categories:
            res = mc.call([Call(self.pool, SEL_EMODE_DATA + enc_uint(c), allow_failure=False) for c in categories], block)
            for c, r in zip(categories, res):
                # EModeCategory(uint16 ltv, uint16 liquidationThreshold, uint16 liquidationBonus, address priceSource, string label)
                emode[c] = EModeCategory(word(r.data, 2), address_word(r.data, 4))
        self.reserves, self.emode, self._prepared_at = reserves, emode, block

    # --- reads -------------------------------------------------------------------------------
    def plan(self, accounts: Sequence[str]) -> ReadPlan:
        reserves = list(self.reserves)
        assets = [r.asset.address for r in reserves]
        # In e-mode a category with a price source prices its assets from that source (Aave v3.0).
        sources = sorted({c.price_source for c in self.emode.values() if int(c.price_source, 16)})
        priced = assets + sources
        price_call = Call(self.oracle, SEL_ASSETS_PRICES + enc_uint(32) + enc_uint(len(priced))
                          + b"".join(enc_address(a) for a in priced))
        calls = [price_call]
        for acct in accounts:
            a = enc_address(acct)
            calls.append(Call(self.pool, SEL_ACCOUNT_DATA + a))
            calls.append(Call(self.pool, SEL_USER_EMODE + a))
            calls.extend(Call(self.data_provider, SEL_USER_RESERVE + enc_address(r) + a) for r in assets)
        per = 2 + len(reserves)

        def decode_all(results: Sequence[Result], ctx: ReadContext) -> list[Position]:
            prices_raw = results[0].data
            if results[0].success:
                all_prices = [word(prices_raw, 2 + i) for i in range(word(prices_raw, 1))]
            else:  # AaveOracle reverts when a source answers <= 0 and there is no fallback oracle
                all_prices = [0] * len(priced)
            prices = all_prices[:len(assets)]
            source_price = dict(zip(sources, all_prices[len(assets):]))
            out = []
            for k, acct in enumerate(accounts):
                chunk = results[1 + k * per:1 + (k + 1) * per]
                pos = self._decode_account(acct, chunk, reserves, prices, source_price, ctx)
                if pos is not None:
                    out.append(pos)
            return out

        return ReadPlan(calls, decode_all)

    def _decode_account(self, account: str, chunk: Sequence[Result], reserves: list[Reserve], prices: list[int],
                        source_price: dict[str, int], ctx: ReadContext) -> Position | None:
        acct_data, emode_res = chunk[0], chunk[1]
        if acct_data.success:
            total_collateral, total_debt = word(acct_data.data, 0), word(acct_data.data, 1)
            if total_collateral == 0 and total_debt == 0:
                return None
            health_wad = word(acct_data.data, 5)
        else:
            # The pool prices every reserve through its oracle: when that reverts (a zero or negative
            # answer), health is unknown. The balances below still show whether there is a position.
            total_collateral = total_debt = health_wad = 0
        category = word(emode_res.data, 0) if emode_res.success else 0
        legs = []
        for r, res, price in zip(reserves, chunk[2:], prices):
            if not res.success:
                continue
            d = res.data
            supplied, stable, variable, as_collateral = word(d, 0), word(d, 1), word(d, 2), bool(word(d, 8))
            lt = r.liquidation_threshold_bps
            if category and r.emode_category == category and category in self.emode:
                cat = self.emode[category]
                lt = cat.liquidation_threshold_bps
                price = source_price.get(cat.price_source, price)
            usd = price / self.price_scale
            if supplied and as_collateral and r.usable_as_collateral:
                legs.append(Leg(r.asset, Side.COLLATERAL, supplied, usd, lt / BPS))
            elif supplied:
                legs.append(Leg(r.asset, Side.COLLATERAL, supplied, usd, 0.0))  # supplied, not collateral
            if stable + variable:
                legs.append(Leg(r.asset, Side.DEBT, stable + variable, usd))
        if not legs:
            return None
        issue = price_issue(ctx.prices, [leg.asset.address for leg in legs])
        if issue is None and not acct_data.success:
            issue = "price unusable: getUserAccountData reverted (the pool's oracle failed)"
        if issue is None and any(leg.price_usd <= 0 for leg in legs):
            issue = "price unusable: the pool's oracle answered 0"
        return Position(
            chain=ctx.chain, protocol=self.protocol, protocol_address=self.pool, account=account, market="pool",
            legs=tuple(legs), health_wad=health_wad, block=ctx.block, price_ok=issue is None, price_issue=issue,
            extra={"emode": category, "total_collateral_base": total_collateral, "total_debt_base": total_debt},
        )
