"""Isolated-margin perps with the GMX v1 Vault interface (our PerpVault, and GMX v1 forks).

Per position: ``getPosition``, ``getPositionDelta`` and ``validateLiquidation(..., false)``, whose
``marginFees`` (funding + closing fee) are exactly what a liquidation would charge. Each chunk of
the multicall first calls ``updateCumulativeFundingRate`` for every market (permissionless, as in
GMX v1; nothing is written inside ``eth_call``) so funding includes every elapsed interval, as
``liquidatePosition`` would see it. Health at 1e18 is ``keeper.risk.perp_math.perp_health``: below
1e18 exactly when ``validateLiquidation`` returns state 1 or 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keeper.chain.multicall import Call, Multicall, Result
from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.protocols.base import Adapter, ReadContext, ReadPlan, enc_address, enc_bool, price_issue, word
from keeper.protocols.erc20 import load_assets
from keeper.risk.perp_math import perp_health

SEL_GET_POSITION = bytes.fromhex("4a3f088d")
SEL_POSITION_DELTA = bytes.fromhex("45a6f370")
SEL_VALIDATE_LIQ = bytes.fromhex("d54d5a9f")
SEL_MIN_PRICE = bytes.fromhex("81a612d6")
SEL_LIQ_FEE = bytes.fromhex("174d2694")
SEL_MAX_LEVERAGE = bytes.fromhex("ae3302c2")
SEL_UPDATE_FUNDING = bytes.fromhex("fbfded6d")
USD = 10**30
BPS = 10_000
USD_ASSET = Asset("USD", "usd", 30)


@dataclass(frozen=True)
class PerpMarket:
    collateral_token: str
    index_token: str
    is_long: bool

    @property
    def key(self) -> str:
        return f"{self.collateral_token}:{self.index_token}:{'long' if self.is_long else 'short'}".lower()


class PerpVaultAdapter(Adapter):
    protocol = Protocol.PERP

    def __init__(self, chain: str, vault: str, markets: Sequence[PerpMarket]) -> None:
        self.chain = chain
        self.vault = vault
        self.markets = list(markets)
        self.assets: dict[str, Asset] = {}

    def prepare(self, mc: Multicall, block: int) -> None:
        if not self.assets:
            tokens = sorted({t for m in self.markets for t in (m.collateral_token, m.index_token)})
            self.assets = load_assets(mc, tokens, block)

    def plan(self, accounts: Sequence[str]) -> ReadPlan:
        markets = list(self.markets)
        prefix = tuple(Call(self.vault, SEL_UPDATE_FUNDING + enc_address(m.collateral_token) + enc_address(m.index_token))
                       for m in markets)
        indexes = sorted({m.index_token for m in markets})
        calls = [Call(self.vault, SEL_LIQ_FEE), Call(self.vault, SEL_MAX_LEVERAGE)]
        calls += [Call(self.vault, SEL_MIN_PRICE + enc_address(t)) for t in indexes]
        head = len(calls)
        for m in markets:
            for a in accounts:
                args = enc_address(a) + enc_address(m.collateral_token) + enc_address(m.index_token) + enc_bool(m.is_long)
                calls.append(Call(self.vault, SEL_GET_POSITION + args))
                calls.append(Call(self.vault, SEL_POSITION_DELTA + args))
                calls.append(Call(self.vault, SEL_VALIDATE_LIQ + args + enc_bool(False)))

        def decode_all(results: Sequence[Result], ctx: ReadContext) -> list[Position]:
            liq_fee, max_lev = word(results[0].data, 0), word(results[1].data, 0)
            marks = {t.lower(): (word(r.data, 0) if r.success else 0) for t, r in zip(indexes, results[2:head])}
            out, k = [], head
            for m in markets:
                for a in accounts:
                    pos = self._decode(m, a, results[k:k + 3], liq_fee, max_lev, marks[m.index_token.lower()], ctx)
                    k += 3
                    if pos is not None:
                        out.append(pos)
            return out

        return ReadPlan(calls, decode_all, prefix)

    def _decode(self, m: PerpMarket, account: str, rs: Sequence[Result], liq_fee: int, max_lev: int, mark: int,
                ctx: ReadContext) -> Position | None:
        got, delta_r, valid_r = rs
        if not got.success:
            return None
        size, collateral, avg_price, entry_funding = (word(got.data, i) for i in range(4))
        if size == 0:
            return None
        if not (delta_r.success and valid_r.success) or mark == 0:
            # Health unknown: 0 with price_ok False, so nothing ever acts on it.
            issue: str | None = "price unusable: the vault's price read reverted"
            has_profit, delta, state, fees, h = True, 0, 0, 0, 0
        else:
            has_profit, delta = bool(word(delta_r.data, 0)), word(delta_r.data, 1)
            state, fees = word(valid_r.data, 0), word(valid_r.data, 1)
            h = perp_health(collateral, size, has_profit, delta, fees, liq_fee, max_lev)
            issue = price_issue(ctx.prices, [m.index_token, m.collateral_token])
        index = self.assets[m.index_token.lower()]
        terms = PerpTerms(index=index, is_long=m.is_long, size_usd=size / USD, collateral_usd=collateral / USD,
                          average_price=avg_price / USD, mark_price=mark / USD, margin_fees_usd=fees / USD,
                          liquidation_fee_usd=liq_fee / USD, max_leverage=max_lev / BPS, liquidation_state=state)
        # GMX v1 books collateral in USD at deposit: one leg in USD (1e30), the exposure is in ``perp``.
        legs = (Leg(USD_ASSET, Side.COLLATERAL, collateral, 1.0),)
        return Position(
            chain=ctx.chain, protocol=self.protocol, protocol_address=self.vault, account=account, market=m.key,
            legs=legs, health_wad=h, block=ctx.block, perp=terms, price_ok=issue is None, price_issue=issue,
            extra={"entry_funding_rate": entry_funding, "has_profit": has_profit, "delta": delta,
                   "size": size, "collateral": collateral, "margin_fees": fees},
        )
